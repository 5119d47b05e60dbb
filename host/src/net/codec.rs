//! The `/cue-rpc/1.0.0` codec: libp2p's CBOR codec with our size limits, counting and logging
//! every request that cannot be read (libp2p itself drops those silently).

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use libp2p::request_response;
use libp2p::request_response::Codec as _;

use super::rpc::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, RpcRequest, RpcResponse};
use super::{Refusal, Refusals};

type Cbor = request_response::cbor::codec::Codec<RpcRequest, RpcResponse>;

/// CBOR with limits, counting unreadable requests.
#[derive(Clone)]
pub(super) struct RpcCodec {
    cbor: Cbor,
    refusals: Arc<Refusals>,
}

impl RpcCodec {
    pub(super) fn new(refusals: Arc<Refusals>) -> RpcCodec {
        let cbor = Cbor::default()
            .set_request_size_maximum(MAX_REQUEST_BYTES)
            .set_response_size_maximum(MAX_RESPONSE_BYTES);
        RpcCodec { cbor, refusals }
    }
}

impl request_response::Codec for RpcCodec {
    type Protocol = StreamProtocol;
    type Request = RpcRequest;
    type Response = RpcResponse;

    async fn read_request<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<RpcRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let request = self.cbor.read_request(protocol, io).await;
        if let Err(e) = &request {
            self.refusals.count(Refusal::Request);
            tracing::info!("refused an unreadable request: {e}");
        }
        request
    }

    async fn read_response<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<RpcResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.cbor.read_response(protocol, io).await
    }

    async fn write_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        request: RpcRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.cbor.write_request(protocol, io, request).await
    }

    async fn write_response<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        response: RpcResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.cbor.write_response(protocol, io, response).await
    }
}

/// Reads `bytes` as a request exactly as the codec reads one off a stream: at most
/// [`MAX_REQUEST_BYTES`] of them, then one CBOR item (what follows it is not looked at).
pub(crate) fn decode_request(bytes: &[u8]) -> io::Result<RpcRequest> {
    let mut codec = RpcCodec::new(Arc::default());
    let protocol = StreamProtocol::new(super::rpc::RPC_PROTOCOL);
    in_memory(codec.read_request(&protocol, &mut futures::io::Cursor::new(bytes)))
}

/// Reads `bytes` as a response exactly as the codec reads one off a stream: at most
/// [`MAX_RESPONSE_BYTES`] of them, then one CBOR item.
pub(crate) fn decode_response(bytes: &[u8]) -> io::Result<RpcResponse> {
    let mut codec = RpcCodec::new(Arc::default());
    let protocol = StreamProtocol::new(super::rpc::RPC_PROTOCOL);
    in_memory(codec.read_response(&protocol, &mut futures::io::Cursor::new(bytes)))
}

/// The bytes the codec writes for `request`.
pub(crate) fn encode_request(request: RpcRequest) -> io::Result<Vec<u8>> {
    let mut codec = RpcCodec::new(Arc::default());
    let protocol = StreamProtocol::new(super::rpc::RPC_PROTOCOL);
    let mut out = futures::io::Cursor::new(Vec::new());
    in_memory(codec.write_request(&protocol, &mut out, request))?;
    Ok(out.into_inner())
}

/// The bytes the codec writes for `response`.
pub(crate) fn encode_response(response: RpcResponse) -> io::Result<Vec<u8>> {
    let mut codec = RpcCodec::new(Arc::default());
    let protocol = StreamProtocol::new(super::rpc::RPC_PROTOCOL);
    let mut out = futures::io::Cursor::new(Vec::new());
    in_memory(codec.write_response(&protocol, &mut out, response))?;
    Ok(out.into_inner())
}

/// Runs codec I/O on an in-memory cursor, which is always ready: it completes on its first
/// poll.
fn in_memory<T>(io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    use futures::FutureExt as _;
    io.now_or_never()
        .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::WouldBlock, "in-memory I/O did not complete")))
}
