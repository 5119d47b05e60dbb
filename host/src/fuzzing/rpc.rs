//! Fuzz target `rpc`: `/cue-rpc/1.0.0` requests and answers as the request-response codec
//! reads them (size limit, then CBOR), and the signed events they carry as the node reads them.

use super::{NOW_MS, Verdict, ledger_entry, signed_event};
use crate::crypto::PublicKey;
use crate::market::open_manifest;
use crate::net::{RpcRequest, RpcResponse, decode_request, decode_response, encode_request, encode_response};
use crate::protocol::{ComputeAccept, ComputeReject, ComputeRequest, check_name, open_component_manifest};

/// Reads `data` as a request and as an answer. Properties: never panics; whatever decodes
/// re-encodes to bytes that decode to the same value (this CBOR is serde's, not canonical: many
/// encodings of one value decode, and bytes after the first item are not looked at).
pub fn rpc(data: &[u8]) -> Verdict {
    let mut verdict = Verdict::default();
    let request = decode_request(data);
    verdict.note("request", &request);
    if let Ok(request) = request {
        let again = encode_request(request.clone()).expect("a decoded request encodes");
        assert_eq!(decode_request(&again).ok(), Some(request.clone()), "a request round-trips");
        request_content(&mut verdict, request);
    }
    let response = decode_response(data);
    verdict.note("response", &response);
    if let Ok(response) = response {
        let again = encode_response(response.clone()).expect("a decoded answer encodes");
        assert_eq!(decode_response(&again).ok(), Some(response.clone()), "an answer round-trips");
        response_content(&mut verdict, response);
    }
    verdict
}

/// What a node reads inside a request (`dispatch`, `provider`, `gossip::ledger`).
fn request_content(verdict: &mut Verdict, request: RpcRequest) {
    match request {
        RpcRequest::GetComponents { name } => verdict.note("component-name", &check_name(&name)),
        RpcRequest::GetChain { account, .. } => {
            let key = <[u8; 32]>::try_from(account.as_slice())
                .map_err(|_| "not 32 bytes".to_string())
                .and_then(|k| PublicKey::from_bytes(k).map_err(|e| e.to_string()));
            verdict.note("chain-account", &key);
        }
        RpcRequest::Compute(bytes) => {
            signed_event::<ComputeRequest>(verdict, "compute-request", &bytes);
        }
        RpcRequest::Pay(bytes) => {
            ledger_entry(verdict, &bytes);
        }
        RpcRequest::GetManifest => {}
    }
}

/// What a node reads inside an answer (`discovery`, `components`, `gossip::ledger`,
/// `consumer`).
fn response_content(verdict: &mut Verdict, response: RpcResponse) {
    match response {
        RpcResponse::Manifest(bytes) => verdict.note("resource-manifest", &open_manifest(&bytes, NOW_MS)),
        RpcResponse::Components(list) => {
            for bytes in list {
                verdict.note("component-manifest", &open_component_manifest(&bytes, NOW_MS));
            }
        }
        RpcResponse::Chain(list) => {
            for bytes in list {
                ledger_entry(verdict, &bytes);
            }
        }
        RpcResponse::Accepted(bytes) => {
            signed_event::<ComputeAccept>(verdict, "compute-accept", &bytes);
        }
        RpcResponse::Rejected(bytes) => {
            signed_event::<ComputeReject>(verdict, "compute-reject", &bytes);
        }
        RpcResponse::Paid | RpcResponse::Refused { .. } => {}
    }
}
