//! The `/cue-rpc/1.0.0` codec: libp2p's CBOR codec with our size limits, counting and logging
//! every request that cannot be read (libp2p itself drops those silently).

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use libp2p::request_response;

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
