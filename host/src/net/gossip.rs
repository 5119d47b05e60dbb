//! Gossip checked before it is forwarded. Gossipsub holds every message it receives until the
//! node above reports a [`GossipVerdict`] (after its signature and content checks): only an
//! accepted message is delivered onwards; a rejected one costs its sender score (P₄, invalid
//! deliveries), and a peer whose score falls below the graylist threshold is ignored. Each
//! sender is also held to a rate per topic ([`RATE_PER_TOPIC`] messages a second, bursts of
//! [`BURST_PER_TOPIC`]); beyond, its messages are ignored (not forwarded, counted).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::gossipsub::{self, MessageId, PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

use super::{NetworkTag, Refusal, Refusals, from_libp2p};
use crate::crypto::PeerId;

/// Messages one sender may have this node handle per topic and second, on average.
pub const RATE_PER_TOPIC: f64 = 1_000.0;
/// Messages one sender may have this node handle per topic at once, above the rate.
pub const BURST_PER_TOPIC: f64 = 2_000.0;
/// Senders and topics whose rate is tracked at most; beyond, the oldest are forgotten.
const MAX_TRACKED: usize = 4_096;

/// A gossip message held by gossipsub until the node reports its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipId(pub(super) MessageId);

/// What the node makes of a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Valid: deliver it to the other peers.
    Accept,
    /// Invalid (malformed, forged, expired): drop it and penalise its sender.
    Reject,
    /// Not forwarded, without blame (this node was too busy, or cannot judge it).
    Ignore,
}

impl GossipVerdict {
    pub(super) fn acceptance(self) -> gossipsub::MessageAcceptance {
        match self {
            GossipVerdict::Accept => gossipsub::MessageAcceptance::Accept,
            GossipVerdict::Reject => gossipsub::MessageAcceptance::Reject,
            GossipVerdict::Ignore => gossipsub::MessageAcceptance::Ignore,
        }
    }
}

/// Peer scoring: only invalid deliveries and protocol misbehaviour count against a peer.
/// Nodes may share a host (tests, data centres), so IP colocation does not count; mesh delivery
/// rates do not count either (Cue's topics are quiet most of the time).
pub(super) fn score_params() -> (PeerScoreParams, PeerScoreThresholds) {
    let params = PeerScoreParams { ip_colocation_factor_weight: 0.0, ..PeerScoreParams::default() };
    (params, PeerScoreThresholds::default())
}

/// The score parameters of each topic this node subscribes to: -10 per invalid message
/// squared (decaying), so three invalid messages put a peer below the graylist threshold
/// (-80) and its gossip is ignored until it decays.
pub(super) fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    }
}

/// The gossipsub topic of `topic` in `network`: `<topic>/<network tag>`, so two networks never
/// share a mesh.
pub(super) fn scoped_topic(topic: &str, network: &NetworkTag) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("{topic}/{network}"))
}

/// What decides which received gossip reaches the node: the sender's rate per topic, and the
/// topic's network.
pub(super) struct GossipGate {
    rates: RateLimits,
    /// `/<network tag>`: the end of every topic of this node's network.
    suffix: String,
    refusals: Arc<Refusals>,
}

impl GossipGate {
    pub(super) fn new(network: NetworkTag, refusals: Arc<Refusals>) -> GossipGate {
        GossipGate { rates: RateLimits::default(), suffix: format!("/{network}"), refusals }
    }

    /// The sender and the topic (as the node subscribed to it) of a message the node should
    /// judge, or the verdict it gets here: ignored (counted) when its sender is over its rate
    /// or the topic is another network's, rejected when the sender has no ed25519 identity.
    pub(super) fn admit(
        &mut self,
        source: libp2p::PeerId,
        message: &gossipsub::Message,
    ) -> Result<(PeerId, String), GossipVerdict> {
        let from = from_libp2p(&source).ok_or(GossipVerdict::Reject)?;
        if !self.rates.allow(source, &message.topic) {
            self.refusals.count(Refusal::Overload);
            tracing::debug!(%from, topic = %message.topic, "over its gossip rate: a message ignored");
            return Err(GossipVerdict::Ignore);
        }
        let Some(topic) = message.topic.as_str().strip_suffix(&self.suffix) else {
            self.refusals.count(Refusal::OtherNetwork);
            return Err(GossipVerdict::Ignore);
        };
        Ok((from, topic.to_owned()))
    }
}

/// Token buckets per sender and topic.
#[derive(Default)]
struct RateLimits {
    buckets: HashMap<(libp2p::PeerId, TopicHash), (f64, Instant)>,
}

impl RateLimits {
    /// Whether `peer` may have one more message on `topic` handled now (and takes it).
    fn allow(&mut self, peer: libp2p::PeerId, topic: &TopicHash) -> bool {
        let now = Instant::now();
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&(peer, topic.clone())) {
            let full_for = Duration::from_secs_f64(BURST_PER_TOPIC / RATE_PER_TOPIC);
            self.buckets.retain(|_, (_, at)| now.duration_since(*at) < full_for);
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let (tokens, at) = self.buckets.entry((peer, topic.clone())).or_insert((BURST_PER_TOPIC, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * RATE_PER_TOPIC).min(BURST_PER_TOPIC);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_beyond_its_burst_is_held_to_the_rate_and_others_are_not() {
        let mut limits = RateLimits::default();
        let topic = gossipsub::IdentTopic::new("cue/ledger/2").hash();
        let (flooder, other) = (libp2p::PeerId::random(), libp2p::PeerId::random());
        let allowed = (0..3 * BURST_PER_TOPIC as usize).filter(|_| limits.allow(flooder, &topic)).count();
        assert!(allowed >= BURST_PER_TOPIC as usize, "the burst is allowed: {allowed}");
        assert!(allowed < BURST_PER_TOPIC as usize + 200, "then the rate holds: {allowed}");
        assert!(limits.allow(other, &topic), "another sender is not held back");
        let params = topic_params();
        assert!(params.validate().is_ok());
        let (score, thresholds) = score_params();
        assert!(score.validate().is_ok() && thresholds.validate().is_ok());
    }
}
