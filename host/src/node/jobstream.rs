//! `/cue-job/1.0.0`: one stream per job, opened by the consumer.
//!
//! Frames are length-prefixed JSON (`u32` big-endian length, then the object). A job starts
//! one of two ways: negotiated on the stream itself (one stream does the whole contract), or
//! negotiated first by `Compute` on `/cue-rpc` and then started here:
//!
//! ```text
//! consumer → provider: {"request": {"request": "<hex signed COMPUTE_REQUEST>",
//!                                   "input": "<WAVE call>"}}      (input: only when streamed)
//!                  or: {"start": {"contract": "<hex hash of the COMPUTE_ACCEPT>",
//!                                 "input": "<WAVE call>"}}        (after `Compute`)
//! provider → consumer: {"rejected": {"reject": "<hex signed COMPUTE_REJECT>"}}  (the end), or
//!                      {"contract": {"accept": "<hex signed COMPUTE_ACCEPT>"}}  (stored; a job
//!                                   still running after 50 ms, negotiated here)
//!                      {"event": {"event": "progress", "done": N, "total": M}}   (any number)
//!                      {"event": {"event": "log", "source": .., "text": ..}}
//!                      {"outcome": {"receipt": "<hex signed RECEIPT>", "output": "<WAVE>" | null}}
//!                  or: {"delivered": {"accept": .., "receipt": .., "output": ..}}  (a job done
//!                                   within 50 ms: its contract told with its outcome)
//!                  or: {"refused": {"message": ".."}}  (the start or its input does not check)
//! consumer → provider: {"pay": {"transfer": "<hex signed TOKEN_TRANSFER>"}}  (optional, after
//!                                                                          the outcome)
//! provider → consumer: "paid" (stored), or {"refused": {"message": ".."}}
//! ```
//!
//! After `"paid"` the stream stays open for the same consumer's next job (a new `request` or
//! `start` frame), 10 s on the provider's side.
//!
//! The origin design names the stream `/cue-compute-job/<job-id>`; one protocol name with the
//! contract in the first frame does the same without registering a protocol per job. Only the
//! contract's consumer may start it, once.

use std::time::Duration;

use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use serde::{Deserialize, Serialize};

use crate::net::Stream;
use crate::sandbox::JobEvent;

/// The stream protocol for jobs.
pub const JOB_PROTOCOL: &str = "/cue-job/1.0.0";
/// Largest frame: a result of the sandbox's largest size, in WAVE, plus its receipt.
pub const MAX_FRAME_BYTES: usize = 17 * 1024 * 1024;
/// Longest wait for the start frame.
pub const START_DEADLINE: Duration = Duration::from_secs(15);

/// One frame of a job stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// The consumer starts the contracted job.
    Start {
        /// Hex hash of the `COMPUTE_ACCEPT`.
        contract: String,
        /// The call text, when the request announced it as streamed (too long to go inline).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// The consumer asks for a job and starts it on the same stream, once accepted.
    Request {
        /// Hex of the signed `COMPUTE_REQUEST`'s canonical bytes.
        request: String,
        /// The call text, when the request announces it as streamed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        /// Hex of the signed `TOKEN_LOCK` funding the offer (required: a request without one is
        /// rejected `unfunded`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lock: Option<String>,
    },
    /// The provider will not take the requested job (the stream ends).
    Rejected {
        /// Hex of the signed `COMPUTE_REJECT`'s canonical bytes.
        reject: String,
    },
    /// The contract of a requested job that is still running, stored by the provider.
    Contract {
        /// Hex of the signed `COMPUTE_ACCEPT`'s canonical bytes.
        accept: String,
    },
    /// The end of a requested job that finished quickly: its contract with its outcome, stored
    /// by the provider in one commit before it is sent.
    Delivered {
        /// Hex of the signed `COMPUTE_ACCEPT`'s canonical bytes.
        accept: String,
        /// Hex of the signed `RECEIPT`'s canonical bytes.
        receipt: String,
        /// The result in WAVE, when the run produced one.
        output: Option<String>,
    },
    /// Live progress or a log line from the guest.
    Event(JobEvent),
    /// The end: the signed receipt and, for a result, its WAVE text.
    Outcome {
        /// Hex of the signed `RECEIPT`'s canonical bytes.
        receipt: String,
        /// The result in WAVE, when the run produced one.
        output: Option<String>,
    },
    /// The provider will not run the job: the start frame or its input does not check (the
    /// contract is recorded as failed; nothing is owed); or a payment on the stream was refused.
    Refused {
        /// Why.
        message: String,
    },
    /// The consumer pays, after the outcome, on the stream that is open anyway.
    Pay {
        /// Hex of the signed `TOKEN_TRANSFER`'s canonical bytes.
        transfer: String,
    },
    /// The payment is stored.
    Paid,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or closed.
    #[error("job stream: {0}")]
    Io(#[from] std::io::Error),
    /// A frame bigger than [`MAX_FRAME_BYTES`].
    #[error("job stream: a frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not a frame of this protocol.
    #[error("job stream: malformed frame: {0}")]
    Malformed(String),
    /// The other side took nothing of a frame for [`WRITE_STALL`].
    #[error("job stream: the reader took nothing for {WRITE_STALL:?}")]
    Stalled,
}

/// Longest wait for any 64 KiB of a frame to be taken by the stream: a reader that stops
/// reading (or reads all but the last bytes) fails the write instead of holding the writer.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// Bytes written at once, each within [`WRITE_STALL`].
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes one frame, failing with [`FrameError::Stalled`] when the reader takes no part of it
/// for [`WRITE_STALL`].
pub async fn write(stream: &mut Stream, frame: &Frame) -> Result<(), FrameError> {
    // The length and the body travel together: a small frame is one multiplexer frame (one
    // encryption, one wake-up of the reader) instead of two.
    let framed = encode_frame(frame)?;
    for chunk in framed.chunks(WRITE_CHUNK) {
        tokio::time::timeout(WRITE_STALL, stream.write_all(chunk))
            .await
            .map_err(|_| FrameError::Stalled)??;
    }
    tokio::time::timeout(WRITE_STALL, stream.flush()).await.map_err(|_| FrameError::Stalled)??;
    Ok(())
}

/// Largest start frame: a streamed call of the largest size, every byte escaped in JSON.
pub const MAX_START_FRAME_BYTES: usize = 2 * crate::protocol::MAX_STREAMED_CALL_BYTES as usize + 1024;

/// Reads one frame.
pub async fn read(stream: &mut Stream) -> Result<Frame, FrameError> {
    read_limited(stream, MAX_FRAME_BYTES).await
}

/// A frame as [`write`] sends it: the length (`u32` big-endian), then the JSON body of at most
/// [`MAX_FRAME_BYTES`].
pub(crate) fn encode_frame(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(frame).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    Ok(framed)
}

/// Reads the frame at the start of `bytes` exactly as [`read_limited`] reads one off a stream:
/// the frame and how many bytes it took (the rest is the next frame's).
pub(crate) fn decode_frame(bytes: &[u8], limit: usize) -> Result<(Frame, usize), FrameError> {
    use futures::FutureExt as _;
    let mut cursor = futures::io::Cursor::new(bytes);
    let frame = read_limited(&mut cursor, limit).now_or_never().unwrap_or_else(|| {
        Err(FrameError::Io(std::io::Error::new(std::io::ErrorKind::WouldBlock, "in-memory read stalled")))
    })?;
    Ok((frame, cursor.position() as usize))
}

/// Reads one frame of at most `limit` bytes.
pub async fn read_limited(
    stream: &mut (impl futures::AsyncRead + Unpin),
    limit: usize,
) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))
}
