//! Fuzz target `blob_frame`: the headers of `/cue-blob/1.0.0` — the request as the holder
//! reads it, the answer's status and size as the requester reads them (`node/blobs.rs`).

use super::Verdict;
use crate::crypto::Digest;
use crate::node::{TransferError, parse_size, parse_status};
use crate::sandbox::SandboxConfig;
use crate::store::BlobError;

/// Reads `data` as a request (32 bytes: the SHA-256 wanted) and as an answer (a status byte,
/// then for "found" the size, `u64` big-endian). Properties: never panics; each status byte
/// has its one meaning (0 found, 1 not found, 2 busy, anything else a protocol error); a size
/// above the node's blob limit (the sandbox's largest component) is refused before any byte
/// of the blob is read; an accepted header is the one encoding of what it says.
pub fn blob_frame(data: &[u8]) -> Verdict {
    let mut verdict = Verdict::default();
    let request = data.get(..32).map(|wanted| Digest(wanted.try_into().unwrap_or([0; 32])));
    verdict.note("blob-request", &request.ok_or("the stream ended before 32 bytes"));

    let wanted = Digest::of(b"the blob asked for");
    let Some((&status, rest)) = data.split_first() else {
        verdict.note("status", &Err::<(), _>("the stream ended"));
        return verdict;
    };
    let answer = parse_status(status, wanted);
    verdict.note("status", &answer);
    match (status, &answer) {
        (0, Ok(())) | (1, Err(TransferError::NotFound(_))) | (2, Err(TransferError::Busy)) => {}
        (3.., Err(TransferError::Protocol(_))) => {}
        (status, answer) => panic!("status byte {status} read as {answer:?}"),
    }
    if answer.is_err() {
        return verdict;
    }
    let Some(size) = rest.get(..8) else {
        verdict.note("size", &Err::<(), _>("the stream ended"));
        return verdict;
    };
    let size: [u8; 8] = size.try_into().expect("8 bytes");
    let limit = SandboxConfig::default().max_component_bytes as u64;
    let read = parse_size(size, limit);
    verdict.note("size", &read);
    match read {
        Ok(read) => {
            assert!(read <= limit, "a size above the limit was accepted");
            assert_eq!([&[0u8][..], &read.to_be_bytes()].concat(), data[..9], "one encoding per header");
        }
        Err(TransferError::Blob(BlobError::TooLarge { size: refused, .. })) => {
            assert!(refused > limit, "a size within the limit was refused");
            assert_eq!(refused, u64::from_be_bytes(size));
        }
        Err(other) => panic!("a size refused as {other:?}"),
    }
    verdict
}
