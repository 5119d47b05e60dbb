//! What a multiaddr says: the peer it names, and whether it can be dialled.

use libp2p::Multiaddr;

/// The `/p2p/<peer id>` at the end of an address, if any.
pub(super) fn peer_of(addr: &Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The address without its `/p2p/<peer id>`.
pub(super) fn without_p2p(addr: Multiaddr) -> Multiaddr {
    addr.into_iter().filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_))).collect()
}

/// Whether an address can be dialled (not `0.0.0.0`/`::`, not port 0).
pub(super) fn is_dialable(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().all(|p| match p {
        Protocol::Ip4(ip) => !ip.is_unspecified(),
        Protocol::Ip6(ip) => !ip.is_unspecified(),
        Protocol::Tcp(0) | Protocol::Udp(0) => false,
        _ => true,
    })
}
