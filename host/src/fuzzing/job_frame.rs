//! Fuzz target `job_frame`: a `/cue-job/1.0.0` stream read frame by frame as a provider reads
//! one (the first frame within its own limit), and the signed events the frames carry as the
//! provider and the consumer read them.

use super::{Verdict, hex_field, ledger_entry, signed_event};
use crate::crypto::Digest;
use crate::node::{Frame, FrameError, MAX_FRAME_BYTES, MAX_START_FRAME_BYTES, decode_frame, encode_frame};
use crate::protocol::{ComputeAccept, ComputeReject, ComputeRequest, Receipt};

/// Reads `data` as the bytes of a job stream, frame after frame until one is refused or the
/// bytes end. Properties: never panics; a frame declared longer than the limit is refused as
/// too large before its body is read; a frame takes its 4 length bytes and exactly the length
/// they declare; whatever decodes re-encodes (JSON: not canonical) to a frame that decodes to
/// the same value.
pub fn job_frame(data: &[u8]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut rest = data;
    let mut limit = MAX_START_FRAME_BYTES;
    while !rest.is_empty() {
        let read = decode_frame(rest, limit);
        verdict.note("frame", &read);
        let declared = rest.get(..4).map(|len| u32::from_be_bytes(len.try_into().unwrap_or([0; 4])) as usize);
        let (frame, used) = match read {
            Ok(read) => read,
            Err(FrameError::TooLarge(len)) => {
                assert_eq!(Some(len), declared, "the declared length is what is refused");
                assert!(len > limit, "a frame within the limit was refused as too large");
                break;
            }
            Err(_) => {
                assert!(declared.is_none_or(|len| len <= limit), "a frame beyond the limit was read");
                break;
            }
        };
        assert_eq!(Some(used - 4), declared, "a frame takes exactly its declared length");
        let again = encode_frame(&frame).expect("a decoded frame encodes");
        let (reread, _) = decode_frame(&again, MAX_FRAME_BYTES).expect("a re-encoded frame decodes");
        assert_eq!(reread, frame, "a frame round-trips");
        frame_content(&mut verdict, frame);
        rest = &rest[used..];
        limit = MAX_FRAME_BYTES;
    }
    verdict
}

/// The signed events a frame carries, as hex, read as their receiver reads them (provider:
/// `provider/run.rs`, `provider/payment.rs`; consumer: `consumer/attempt.rs`).
fn frame_content(verdict: &mut Verdict, frame: Frame) {
    match frame {
        Frame::Start { contract, .. } => {
            verdict.note("contract-id", &Digest::from_hex(&contract).ok_or("not a 64-hex-digit hash"));
        }
        Frame::Request { request, .. } => event::<ComputeRequest>(verdict, "compute-request", &request),
        Frame::Rejected { reject } => event::<ComputeReject>(verdict, "compute-reject", &reject),
        Frame::Contract { accept } => event::<ComputeAccept>(verdict, "compute-accept", &accept),
        Frame::Delivered { accept, receipt, .. } => {
            event::<ComputeAccept>(verdict, "compute-accept", &accept);
            event::<Receipt>(verdict, "receipt", &receipt);
        }
        Frame::Outcome { receipt, .. } => event::<Receipt>(verdict, "receipt", &receipt),
        Frame::Pay { transfer } => {
            if let Some(bytes) = hex_field(verdict, "ledger-entry", &transfer) {
                ledger_entry(verdict, &bytes);
            }
        }
        Frame::Event(_) | Frame::Refused { .. } | Frame::Paid => {}
    }
}

fn event<T: crate::protocol::EventBody>(verdict: &mut Verdict, decoder: &'static str, hex: &str) {
    if let Some(bytes) = hex_field(verdict, decoder, hex) {
        signed_event::<T>(verdict, decoder, &bytes);
    }
}
