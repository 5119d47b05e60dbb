//! `/cue-blob/1.0.0`: moving a content-addressed blob between two peers over one stream.
//!
//! ```text
//! requester → server:  sha256 (32 bytes)
//! server → requester:  status (1 byte: 0 found, 1 not found, 2 busy)
//!                      if found: size (u64, big-endian), then exactly `size` bytes; then EOF
//! ```
//!
//! The requester refuses a size above its limit before reading any of it, hashes as it reads,
//! and keeps the blob only if the hash and the size match (the store's `BlobWriter`). Every
//! read and write has a deadline, so a stalled peer cannot hold a transfer open.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use super::quota::Places;
use super::{NodeError, Shared, next_stream};
use crate::crypto::Digest;
use crate::net::{Refusal, Stream};
use crate::store::{BlobError, BlobStore};

/// The stream protocol for blobs.
pub const BLOB_PROTOCOL: &str = "/cue-blob/1.0.0";
/// Blob transfers served at once; more requests are answered "busy" (and counted as overload).
pub const MAX_UPLOADS: usize = 16;
/// Blob transfers served at once to one peer; more of its requests are answered "busy".
pub const MAX_UPLOADS_PER_PEER: usize = 4;
/// Bytes per read or write.
const CHUNK: usize = 64 * 1024;
/// Longest wait for any one read or write.
const IO_DEADLINE: Duration = Duration::from_secs(15);

const FOUND: u8 = 0;
const NOT_FOUND: u8 = 1;
const BUSY: u8 = 2;

/// Why a blob did not arrive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The peer does not have it.
    #[error("the peer does not have blob {0}")]
    NotFound(Digest),
    /// The peer is serving too many transfers.
    #[error("the peer is busy")]
    Busy,
    /// The peer answered something that is not this protocol.
    #[error("the peer broke the blob protocol: {0}")]
    Protocol(String),
    /// The bytes did not check (size, hash) or could not be stored.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The stream failed or stalled.
    #[error("transfer failed: {0}")]
    Io(String),
}

async fn timed<T>(what: &str, io: impl Future<Output = std::io::Result<T>>) -> Result<T, TransferError> {
    match tokio::time::timeout(IO_DEADLINE, io).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(TransferError::Io(format!("{what}: {e}"))),
        Err(_) => Err(TransferError::Io(format!("{what}: no progress for {IO_DEADLINE:?}"))),
    }
}

/// Reads the holder's status byte for `sha256`: `Ok` when the size and the blob follow.
pub(crate) fn parse_status(status: u8, sha256: Digest) -> Result<(), TransferError> {
    match status {
        FOUND => Ok(()),
        NOT_FOUND => Err(TransferError::NotFound(sha256)),
        BUSY => Err(TransferError::Busy),
        other => Err(TransferError::Protocol(format!("unknown status {other}"))),
    }
}

/// Reads the size that follows "found", refusing one above `limit` (the blob store's) before
/// any of the blob is read.
pub(crate) fn parse_size(size: [u8; 8], limit: u64) -> Result<u64, TransferError> {
    let size = u64::from_be_bytes(size);
    if size > limit {
        return Err(TransferError::Blob(BlobError::TooLarge { size, limit }));
    }
    Ok(size)
}

/// Asks the peer at the other end of `stream` for `sha256` and stores it in `blobs`, calling
/// `progress(received, total)` as bytes arrive.
pub(super) async fn fetch(
    mut stream: Stream,
    sha256: Digest,
    blobs: &BlobStore,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, TransferError> {
    timed("send request", stream.write_all(&sha256.0)).await?;
    timed("flush request", stream.flush()).await?;
    let mut status = [0u8; 1];
    timed("read status", stream.read_exact(&mut status)).await?;
    parse_status(status[0], sha256)?;
    let mut size = [0u8; 8];
    timed("read size", stream.read_exact(&mut size)).await?;
    let size = parse_size(size, blobs.max_blob_bytes())?;
    let mut writer = blobs.writer(sha256, size)?;
    let mut buffer = vec![0u8; CHUNK];
    let mut received = 0u64;
    progress(0, size);
    while received < size {
        let want = usize::try_from(size - received).unwrap_or(CHUNK).min(CHUNK);
        let n = timed("read blob", stream.read(&mut buffer[..want])).await?;
        if n == 0 {
            return Err(TransferError::Io(format!("the peer closed after {received} of {size} bytes")));
        }
        writer.write(&buffer[..n])?;
        received += n as u64;
        progress(received, size);
    }
    writer.finish()?;
    let _ = stream.close().await;
    Ok(size)
}

/// Answers one blob request on `stream` from `blobs` (`busy`: refuse politely instead).
async fn serve(mut stream: Stream, blobs: &BlobStore, busy: bool) -> Result<(), TransferError> {
    let mut wanted = [0u8; 32];
    timed("read request", stream.read_exact(&mut wanted)).await?;
    let wanted = Digest(wanted);
    let blob = if busy { None } else { blobs.get(&wanted)? };
    match blob {
        Some(bytes) => {
            timed("write status", stream.write_all(&[FOUND])).await?;
            timed("write size", stream.write_all(&(bytes.len() as u64).to_be_bytes())).await?;
            for chunk in bytes.chunks(CHUNK) {
                timed("write blob", stream.write_all(chunk)).await?;
            }
        }
        None => timed("write status", stream.write_all(&[if busy { BUSY } else { NOT_FOUND }])).await?,
    }
    timed("flush", stream.flush()).await?;
    timed("close", stream.close()).await
}

/// Serves `/cue-blob/1.0.0` until shutdown: at most [`MAX_UPLOADS`] transfers at once, at
/// most [`MAX_UPLOADS_PER_PEER`] of them to one peer.
pub(super) fn serve_all(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()>, NodeError> {
    let mut incoming = shared.client.accept(BLOB_PROTOCOL)?;
    let uploads = Places::new(MAX_UPLOADS, MAX_UPLOADS_PER_PEER);
    Ok(async move {
        while let Some((peer, stream)) = next_stream(&mut incoming, &shutdown).await {
            let permit = uploads.take(peer).ok();
            let shared = shared.clone();
            tokio::spawn(async move {
                let busy = permit.is_none();
                if busy {
                    shared.refusals.count(Refusal::Overload);
                }
                if let Err(e) = serve(stream, shared.components.blobs(), busy).await {
                    tracing::info!(%peer, "blob transfer failed: {e}");
                }
                drop(permit);
            });
        }
    })
}
