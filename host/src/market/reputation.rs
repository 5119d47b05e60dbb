//! Reputation: how much this node trusts each peer, from its own contracts and the outcome
//! attestations others gossip, weighted by its trust in them. Pure: the time is passed in.
//!
//! After a contract each side attests its outcome ([`Verdict`]). A [`ReputationBook`] keeps
//! the attestations it heard (bounded, see [`ReputationLimits`]) and computes, from this
//! node's point of view (`me`):
//!
//! ```text
//! decay(a)   = 2^(−age(a) / 7 days)                      age = now − at, at least 0
//! pos_ij     = Σ decay(a) over i's Completed about j     neg_ij = Σ decay(a) × penalty(a)
//! penalty    = Timeout 1, Default 2, InvalidResult 3
//! c_ij       = max(pos_ij − neg_ij, 0) / Σ_k max(pos_ik − neg_ik, 0)  (row i sums to 1, or is 0)
//! t          = EigenTrust, pre-trusting only me (p = me, t₀ = p, a = 0.15):
//!              t ← (1 − a)·(Cᵀ·t + (t's mass on rows that are 0)·p) + a·p
//!              until a round changes t by less than 10⁻⁹ (L1), at most 50 rounds
//! w_i        = 1 for me, min(1, t_i / t_me) for any other attester
//! P_j, N_j   = Σ_i w_i·pos_ij, Σ_i w_i·neg_ij
//! reputation = (1 + P_j) / (2 + P_j + N_j)                the mean of Beta(1 + P, 1 + N)
//! ```
//!
//! A peer nobody attested is [`NEUTRAL_REPUTATION`]; a flagged peer (an equivocation proof) is
//! 0, its attestations are forgotten and it is left out of the trust graph. `t_i / t_me` is how
//! often a walk of trust that starts at me, follows the `c` edges and goes home with
//! probability `a` at each step, passes through `i` per pass through me: a peer I have no
//! positive path to has weight 0, however much it and its friends praise each other. Since
//! `t` sums to 1 and `t_me ≥ a`, all other attesters together weigh at most
//! `(1 − a) / a ≈ 5.7` times my own experience, whatever their number.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::NEUTRAL_REPUTATION;
use crate::crypto::PublicKey;
use crate::protocol::{MAX_CLOCK_SKEW_MS, Verdict};

/// Evidence loses half its weight every week: a peer can redeem itself, and must keep earning.
const HALF_LIFE_MS: f64 = 7.0 * 24.0 * 60.0 * 60.0 * 1000.0;
/// EigenTrust's `a`: the share of trust that returns to this node at each step of the walk.
const PRE_TRUST: f64 = 0.15;
/// Rounds of the trust iteration at most; it converges as `(1 − a)^k` (0.85⁵⁰ < 10⁻³).
const MAX_ROUNDS: usize = 50;
/// The iteration stops earlier once a round moves the trust vector less than this (L1).
const CONVERGED: f64 = 1e-9;

/// Positive and negative evidence of one attestation's verdict, before decay.
fn evidence(verdict: Verdict) -> (f64, f64) {
    match verdict {
        Verdict::Completed => (1.0, 0.0),
        Verdict::Timeout => (0.0, 1.0),
        Verdict::Default => (0.0, 2.0),
        Verdict::InvalidResult => (0.0, 3.0),
    }
}

/// One side's statement about the outcome of a contract with another peer. The caller checks
/// its signature before recording it; the book believes the attester said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// Who says it. The book's own key makes it this node's own experience (full weight).
    pub attester: PublicKey,
    /// Whom it is about.
    pub subject: PublicKey,
    /// How the contract ended.
    pub verdict: Verdict,
    /// When the contract ended, ms since the Unix epoch, as the attester says: the age decays it.
    pub at_ms: u64,
}

/// The bounds of a [`ReputationBook`]: what it keeps, and what it forgets first. Each is at
/// least 1 (a 0 counts as 1). With the defaults it holds at most about 10 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReputationLimits {
    /// Attestations kept per (attester, subject): the newest; an older one arriving at a full
    /// pair is ignored. Bounds how much one attester can say about one peer.
    pub per_pair: usize,
    /// Peers this node keeps its own experience about; beyond it, the peer whose newest
    /// contract is oldest is forgotten. Others' attestations never displace it.
    pub own_subjects: usize,
    /// Peers one other attester is heard about; beyond it, its stalest pair is forgotten.
    pub subjects_per_attester: usize,
    /// (attester, subject) pairs from other attesters in all; beyond it, the attester holding
    /// the most pairs loses its stalest, so a flooder evicts itself first.
    pub pairs: usize,
    /// Flagged accounts remembered; beyond it, the oldest flag is forgotten (its holder, whose
    /// attestations were dropped when flagged, becomes unknown again).
    pub flagged: usize,
}

impl Default for ReputationLimits {
    fn default() -> ReputationLimits {
        ReputationLimits {
            per_pair: 16,
            own_subjects: 4096,
            subjects_per_attester: 256,
            pairs: 16_384,
            flagged: 16_384,
        }
    }
}

/// What [`ReputationBook::record`] did with an attestation: gossip only what is [`New`].
///
/// [`New`]: Recorded::New
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Kept: it counts from now on.
    New,
    /// Already kept (same attester, subject, verdict and time): gossip delivers twice.
    Duplicate,
    /// Not kept: about the attester itself, from or about a flagged account, dated more than
    /// the clock skew ahead of `now_ms`, or older than everything a full pair keeps.
    Ignored,
}

/// A provider's acceptance rule: serve only consumers whose reputation is high enough.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReputationPolicy {
    /// The lowest reputation served. The default, 0.3, serves strangers (0.5) and a peer with
    /// one recent timeout (1/3), refuses one with a recent default (1/4) until a week of decay
    /// lifts it back to 1/3, and always refuses a flagged peer (0).
    pub min_reputation_to_serve: f64,
}

impl Default for ReputationPolicy {
    fn default() -> ReputationPolicy {
        ReputationPolicy { min_reputation_to_serve: 0.3 }
    }
}

impl ReputationPolicy {
    /// Whether a peer with this reputation is served.
    pub fn serves(&self, reputation: f64) -> bool {
        reputation >= self.min_reputation_to_serve
    }
}

/// One kept attestation; the pair it is about is where it is kept. Ordered by time first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    at_ms: u64,
    verdict: Verdict,
}

/// The attestations a node knows and the accounts it has flagged, from which it computes its
/// view of every peer's reputation (see the module docs for the formula).
///
/// ```
/// use cue_host::crypto::Keypair;
/// use cue_host::market::{Attestation, Recorded, ReputationBook, ReputationLimits};
/// use cue_host::protocol::Verdict;
///
/// let me = Keypair::from_seed([1; 32]).public();
/// let provider = Keypair::from_seed([2; 32]).public();
/// let now_ms = 1_800_000_000_000;
/// let mut book = ReputationBook::new(me, ReputationLimits::default());
/// assert_eq!(book.reputation(&provider, now_ms), 0.5);
/// let done = Attestation { attester: me, subject: provider, verdict: Verdict::Completed, at_ms: now_ms };
/// assert_eq!(book.record(done, now_ms), Recorded::New);
/// assert!(book.reputation(&provider, now_ms) > 0.5);
/// ```
#[derive(Clone, Debug)]
pub struct ReputationBook {
    /// This node: its attestations are its own experience, and the trust walk starts here.
    me: PublicKey,
    /// What the book keeps at most.
    limits: ReputationLimits,
    /// attester → subject → the attester's attestations about the subject, oldest first.
    opinions: BTreeMap<PublicKey, BTreeMap<PublicKey, Vec<Stamp>>>,
    /// Pairs in `opinions` whose attester is not `me`: what `limits.pairs` bounds.
    others_pairs: usize,
    /// Accounts with an equivocation proof: reputation 0, their attestations refused.
    flagged: BTreeSet<PublicKey>,
    /// `flagged` in the order flagged, so that the oldest flag is the one forgotten.
    flag_order: VecDeque<PublicKey>,
}

impl ReputationBook {
    /// An empty book for the node `me`: every peer is neutral.
    pub fn new(me: PublicKey, limits: ReputationLimits) -> ReputationBook {
        let limits = ReputationLimits {
            per_pair: limits.per_pair.max(1),
            own_subjects: limits.own_subjects.max(1),
            subjects_per_attester: limits.subjects_per_attester.max(1),
            pairs: limits.pairs.max(1),
            flagged: limits.flagged.max(1),
        };
        ReputationBook {
            me,
            limits,
            opinions: BTreeMap::new(),
            others_pairs: 0,
            flagged: BTreeSet::new(),
            flag_order: VecDeque::new(),
        }
    }

    /// Keeps an attestation (see [`Recorded`] for what is refused), evicting as
    /// [`ReputationLimits`] says when a bound is reached.
    pub fn record(&mut self, attestation: Attestation, now_ms: u64) -> Recorded {
        let Attestation { attester, subject, verdict, at_ms } = attestation;
        if attester == subject
            || self.is_flagged(&attester)
            || self.is_flagged(&subject)
            || at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS)
        {
            return Recorded::Ignored;
        }
        let stamp = Stamp { at_ms, verdict };
        let known_pair = self.opinions.get(&attester).is_some_and(|s| s.contains_key(&subject));
        if !known_pair {
            self.make_room_for(attester);
            if attester != self.me {
                self.others_pairs += 1;
            }
        }
        let stamps = self.opinions.entry(attester).or_default().entry(subject).or_default();
        match stamps.binary_search(&stamp) {
            Ok(_) => Recorded::Duplicate,
            Err(0) if stamps.len() >= self.limits.per_pair => Recorded::Ignored,
            Err(at) => {
                stamps.insert(at, stamp);
                if stamps.len() > self.limits.per_pair {
                    stamps.remove(0);
                }
                Recorded::New
            }
        }
    }

    /// Flags an account proven to equivocate: its reputation is 0 from now on, and what it
    /// attested and what was attested about it are forgotten. Flagging `me` is ignored.
    pub fn flag(&mut self, account: PublicKey) {
        if account == self.me || !self.flagged.insert(account) {
            return;
        }
        self.flag_order.push_back(account);
        if self.flag_order.len() > self.limits.flagged
            && let Some(oldest) = self.flag_order.pop_front()
        {
            self.flagged.remove(&oldest);
        }
        if let Some(subjects) = self.opinions.remove(&account) {
            self.others_pairs -= subjects.len();
        }
        for (attester, subjects) in &mut self.opinions {
            if subjects.remove(&account).is_some() && *attester != self.me {
                self.others_pairs -= 1;
            }
        }
        self.opinions.retain(|_, subjects| !subjects.is_empty());
    }

    /// Whether the account is flagged (an equivocation proof was given for it).
    pub fn is_flagged(&self, account: &PublicKey) -> bool {
        self.flagged.contains(account)
    }

    /// Attestations kept, own experience included.
    pub fn stored(&self) -> usize {
        self.opinions.values().flat_map(BTreeMap::values).map(Vec::len).sum()
    }

    /// This node's view of one peer's reputation, in [0, 1]: 0 if flagged,
    /// [`NEUTRAL_REPUTATION`] if nothing is known. Computes the whole trust graph: to rank
    /// many peers, call [`reputations`](Self::reputations) once.
    pub fn reputation(&self, peer: &PublicKey, now_ms: u64) -> f64 {
        if self.is_flagged(peer) {
            return 0.0;
        }
        let graph = TrustGraph::build(self, now_ms);
        match graph.peers.binary_search(peer) {
            Ok(index) => graph.reputations()[index],
            Err(_) => NEUTRAL_REPUTATION,
        }
    }

    /// The reputation of every peer the book knows something about (this node included, as
    /// the peers it trusts see it) and of every flagged account (0). A peer absent from the
    /// map is neutral. Costs at most 50 rounds over the kept pairs.
    pub fn reputations(&self, now_ms: u64) -> BTreeMap<PublicKey, f64> {
        let graph = TrustGraph::build(self, now_ms);
        let mut all: BTreeMap<PublicKey, f64> =
            graph.peers.iter().copied().zip(graph.reputations()).collect();
        all.extend(self.flagged.iter().map(|account| (*account, 0.0)));
        all
    }

    /// Before a new pair from `attester` is added: evicts what its bounds require.
    fn make_room_for(&mut self, attester: PublicKey) {
        let held = self.opinions.get(&attester).map_or(0, BTreeMap::len);
        if attester == self.me {
            if held >= self.limits.own_subjects {
                self.evict_stalest_pair(attester);
            }
            return;
        }
        if held >= self.limits.subjects_per_attester {
            self.evict_stalest_pair(attester);
        }
        if self.others_pairs >= self.limits.pairs {
            let largest = self
                .opinions
                .iter()
                .filter(|(other, _)| **other != self.me)
                .min_by_key(|(other, subjects)| (std::cmp::Reverse(subjects.len()), **other))
                .map(|(other, _)| *other);
            if let Some(largest) = largest {
                self.evict_stalest_pair(largest);
            }
        }
    }

    /// Forgets the attester's pair whose newest attestation is the oldest (ties: lowest key).
    fn evict_stalest_pair(&mut self, attester: PublicKey) {
        let Some(subjects) = self.opinions.get_mut(&attester) else { return };
        let stalest = subjects
            .iter()
            .min_by_key(|(subject, stamps)| (stamps.last().map(|s| s.at_ms), **subject))
            .map(|(subject, _)| *subject);
        if let Some(stalest) = stalest {
            subjects.remove(&stalest);
            if subjects.is_empty() {
                self.opinions.remove(&attester);
            }
            if attester != self.me {
                self.others_pairs -= 1;
            }
        }
    }
}

/// The book at one instant: every known peer, and one decayed edge per kept pair.
struct TrustGraph {
    /// Sorted; indices below are into it.
    peers: Vec<PublicKey>,
    /// Index of this node in `peers`.
    me: usize,
    /// Grouped by `from`, in key order, so that every sum is taken in the same order.
    edges: Vec<Edge>,
}

/// What one attester says about one subject, decayed to now.
struct Edge {
    from: usize,
    to: usize,
    positive: f64,
    negative: f64,
}

impl Edge {
    /// EigenTrust's local trust `s_ij`, clipped at 0.
    fn local_trust(&self) -> f64 {
        (self.positive - self.negative).max(0.0)
    }
}

impl TrustGraph {
    fn build(book: &ReputationBook, now_ms: u64) -> TrustGraph {
        let mut peers = BTreeSet::from([book.me]);
        for (attester, subjects) in &book.opinions {
            peers.insert(*attester);
            peers.extend(subjects.keys().copied());
        }
        let peers: Vec<PublicKey> = peers.into_iter().collect();
        let index = |key: &PublicKey| peers.binary_search(key).unwrap_or_default();
        let mut edges = Vec::new();
        for (attester, subjects) in &book.opinions {
            for (subject, stamps) in subjects {
                let (mut positive, mut negative) = (0.0, 0.0);
                for stamp in stamps {
                    let age_ms = now_ms.saturating_sub(stamp.at_ms) as f64;
                    let decay = 0.5_f64.powf(age_ms / HALF_LIFE_MS);
                    let (pos, neg) = evidence(stamp.verdict);
                    positive += decay * pos;
                    negative += decay * neg;
                }
                edges.push(Edge { from: index(attester), to: index(subject), positive, negative });
            }
        }
        let me = index(&book.me);
        TrustGraph { peers, me, edges }
    }

    /// EigenTrust from this node: the stationary trust `t`, summing to 1, `t[me] ≥ a`.
    fn global_trust(&self) -> Vec<f64> {
        let n = self.peers.len();
        let mut row_total = vec![0.0; n];
        for edge in &self.edges {
            row_total[edge.from] += edge.local_trust();
        }
        let mut trust = vec![0.0; n];
        trust[self.me] = 1.0;
        for _ in 0..MAX_ROUNDS {
            let mut next = vec![0.0; n];
            let mut home = PRE_TRUST;
            for (total, t) in row_total.iter().zip(&trust) {
                if *total <= 0.0 {
                    home += (1.0 - PRE_TRUST) * t;
                }
            }
            for edge in &self.edges {
                let total = row_total[edge.from];
                if total > 0.0 {
                    next[edge.to] += (1.0 - PRE_TRUST) * trust[edge.from] * edge.local_trust() / total;
                }
            }
            next[self.me] += home;
            let change: f64 = next.iter().zip(&trust).map(|(a, b)| (a - b).abs()).sum();
            trust = next;
            if change < CONVERGED {
                break;
            }
        }
        trust
    }

    /// Every peer's reputation, in the order of `peers`.
    fn reputations(&self) -> Vec<f64> {
        let trust = self.global_trust();
        let weight = |i: usize| if i == self.me { 1.0 } else { (trust[i] / trust[self.me]).min(1.0) };
        let mut evidence = vec![(0.0, 0.0); self.peers.len()];
        for edge in &self.edges {
            let w = weight(edge.from);
            evidence[edge.to].0 += w * edge.positive;
            evidence[edge.to].1 += w * edge.negative;
        }
        evidence.into_iter().map(|(p, n)| (1.0 + p) / (2.0 + p + n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000_000;
    const DAY: u64 = 24 * 60 * 60 * 1000;

    fn key(n: u8) -> PublicKey {
        Keypair::from_seed([n; 32]).public()
    }

    fn says(attester: PublicKey, subject: PublicKey, verdict: Verdict, at_ms: u64) -> Attestation {
        Attestation { attester, subject, verdict, at_ms }
    }

    fn book() -> ReputationBook {
        ReputationBook::new(key(0), ReputationLimits::default())
    }

    /// `count` attestations from `attester` about `subject`, one a minute up to `NOW`.
    fn record_many(
        book: &mut ReputationBook,
        attester: PublicKey,
        subject: PublicKey,
        verdict: Verdict,
        count: u64,
    ) {
        for k in 0..count {
            book.record(says(attester, subject, verdict, NOW - k * 60_000), NOW);
        }
    }

    #[test]
    fn a_peer_nobody_knows_is_neutral() {
        let mut book = book();
        assert_eq!(book.reputation(&key(1), NOW), NEUTRAL_REPUTATION);
        book.record(says(key(0), key(2), Verdict::Completed, NOW), NOW);
        assert_eq!(book.reputation(&key(1), NOW), NEUTRAL_REPUTATION);
        assert!(!book.reputations(NOW).contains_key(&key(1)));
    }

    #[test]
    fn own_completed_contracts_raise_and_failures_lower() {
        let mut book = book();
        let me = key(0);
        book.record(says(me, key(1), Verdict::Completed, NOW), NOW);
        book.record(says(me, key(2), Verdict::Default, NOW), NOW);
        book.record(says(me, key(3), Verdict::InvalidResult, NOW), NOW);
        book.record(says(me, key(4), Verdict::Timeout, NOW), NOW);
        let r = book.reputations(NOW);
        // The documented formula, with no decay: (1 + P) / (2 + P + N).
        assert!((r[&key(1)] - 2.0 / 3.0).abs() < 1e-12);
        assert!((r[&key(2)] - 1.0 / 4.0).abs() < 1e-12);
        assert!((r[&key(3)] - 1.0 / 5.0).abs() < 1e-12);
        assert!((r[&key(4)] - 1.0 / 3.0).abs() < 1e-12);
        assert!(r[&key(3)] < r[&key(4)], "a lie weighs more than a timeout");
    }

    #[test]
    fn more_completed_contracts_raise_further() {
        let mut book = book();
        record_many(&mut book, key(0), key(1), Verdict::Completed, 1);
        let once = book.reputation(&key(1), NOW);
        record_many(&mut book, key(0), key(1), Verdict::Completed, 10);
        assert!(book.reputation(&key(1), NOW) > once);
    }

    #[test]
    fn a_sybil_clique_cannot_raise_itself_without_a_trust_path() {
        let mut book = book();
        let (me, honest) = (key(0), key(1));
        record_many(&mut book, me, honest, Verdict::Completed, 3);
        let sybils: Vec<PublicKey> = (10..20).map(key).collect();
        for a in &sybils {
            for b in &sybils {
                record_many(&mut book, *a, *b, Verdict::Completed, 16);
            }
            record_many(&mut book, *a, honest, Verdict::InvalidResult, 16);
        }
        let r = book.reputations(NOW);
        for sybil in &sybils {
            assert_eq!(r[sybil], NEUTRAL_REPUTATION, "{sybil:?}");
        }
        let mut alone = self::book();
        record_many(&mut alone, me, honest, Verdict::Completed, 3);
        assert_eq!(r[&honest], alone.reputation(&honest, NOW), "their slander moves nothing");
    }

    #[test]
    fn a_distrusted_peer_moves_nothing() {
        let mut book = book();
        let (me, liar, victim, friend) = (key(0), key(1), key(2), key(3));
        record_many(&mut book, me, liar, Verdict::Default, 1);
        record_many(&mut book, liar, victim, Verdict::InvalidResult, 16);
        record_many(&mut book, liar, friend, Verdict::Completed, 16);
        assert_eq!(book.reputation(&victim, NOW), NEUTRAL_REPUTATION);
        assert_eq!(book.reputation(&friend, NOW), NEUTRAL_REPUTATION);
    }

    #[test]
    fn a_trusted_peers_attestations_count() {
        let mut book = book();
        let (me, trusted, good, bad, stranger) = (key(0), key(1), key(2), key(3), key(4));
        record_many(&mut book, me, trusted, Verdict::Completed, 3);
        record_many(&mut book, trusted, good, Verdict::Completed, 4);
        record_many(&mut book, trusted, bad, Verdict::Default, 2);
        record_many(&mut book, stranger, bad, Verdict::Completed, 16);
        assert!(book.reputation(&good, NOW) > NEUTRAL_REPUTATION);
        assert!(book.reputation(&bad, NOW) < NEUTRAL_REPUTATION);
        // Hearsay counts less than the same experience of my own.
        let mut own = self::book();
        record_many(&mut own, me, good, Verdict::Completed, 4);
        assert!(book.reputation(&good, NOW) < own.reputation(&good, NOW));
    }

    #[test]
    fn trust_is_transitive_and_weakens_with_distance() {
        let mut book = book();
        let chain: Vec<PublicKey> = (0..5).map(key).collect();
        for pair in chain.windows(2) {
            record_many(&mut book, pair[0], pair[1], Verdict::Completed, 4);
        }
        let r = book.reputations(NOW);
        for pair in chain[1..].windows(2) {
            assert!(r[&pair[0]] > r[&pair[1]], "{} vs {}", r[&pair[0]], r[&pair[1]]);
            assert!(r[&pair[1]] > NEUTRAL_REPUTATION);
        }
    }

    #[test]
    fn a_flagged_peer_is_zero_and_its_word_is_forgotten() {
        let mut book = book();
        let (me, cheat, praised) = (key(0), key(1), key(2));
        record_many(&mut book, me, cheat, Verdict::Completed, 5);
        record_many(&mut book, cheat, praised, Verdict::Completed, 16);
        assert!(book.reputation(&praised, NOW) > NEUTRAL_REPUTATION);
        book.flag(cheat);
        assert!(book.is_flagged(&cheat));
        assert_eq!(book.reputation(&cheat, NOW), 0.0);
        assert_eq!(book.reputations(NOW)[&cheat], 0.0);
        assert_eq!(book.reputation(&praised, NOW), NEUTRAL_REPUTATION);
        assert_eq!(book.stored(), 0);
        assert_eq!(book.record(says(cheat, praised, Verdict::Completed, NOW), NOW), Recorded::Ignored);
        assert_eq!(book.record(says(me, cheat, Verdict::Completed, NOW), NOW), Recorded::Ignored);
        book.flag(me);
        assert!(!book.is_flagged(&me));
    }

    #[test]
    fn old_experience_matters_less_than_recent() {
        let (me, peer) = (key(0), key(1));
        let mut recent = book();
        recent.record(says(me, peer, Verdict::Default, NOW - DAY), NOW);
        let mut old = book();
        old.record(says(me, peer, Verdict::Default, NOW - 30 * DAY), NOW);
        let (recent, old) = (recent.reputation(&peer, NOW), old.reputation(&peer, NOW));
        assert!(recent < old && old < NEUTRAL_REPUTATION, "{recent} {old}");
        // One half-life halves the evidence: N = 1, reputation 1/3.
        let mut week = book();
        week.record(says(me, peer, Verdict::Default, NOW - 7 * DAY), NOW);
        assert!((week.reputation(&peer, NOW) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn duplicates_self_praise_and_the_future_are_not_kept() {
        let mut book = book();
        let a = says(key(1), key(2), Verdict::Completed, NOW);
        assert_eq!(book.record(a, NOW), Recorded::New);
        assert_eq!(book.record(a, NOW), Recorded::Duplicate);
        assert_eq!(book.record(says(key(1), key(1), Verdict::Completed, NOW), NOW), Recorded::Ignored);
        let ahead = NOW + MAX_CLOCK_SKEW_MS;
        assert_eq!(book.record(says(key(1), key(2), Verdict::Completed, ahead), NOW), Recorded::New);
        assert_eq!(book.record(says(key(1), key(2), Verdict::Completed, ahead + 1), NOW), Recorded::Ignored);
        assert_eq!(book.stored(), 2);
    }

    #[test]
    fn memory_stays_bounded_and_a_flood_does_not_displace_own_experience() {
        let limits = ReputationLimits {
            per_pair: 3,
            own_subjects: 4,
            subjects_per_attester: 5,
            pairs: 20,
            flagged: 2,
        };
        let mut book = ReputationBook::new(key(0), limits);
        let (me, partner) = (key(0), key(1));
        record_many(&mut book, me, partner, Verdict::Completed, 10);
        assert_eq!(book.stored(), 3, "per pair");
        for subject in 2..10 {
            book.record(says(me, key(subject), Verdict::Completed, NOW - DAY + u64::from(subject)), NOW);
        }
        assert_eq!(book.opinions[&me].len(), 4, "own subjects");
        assert!(book.opinions[&me].contains_key(&partner), "the most recent partner is kept");
        for attester in 50..80 {
            for subject in 100..110 {
                record_many(&mut book, key(attester), key(subject), Verdict::Completed, 5);
            }
        }
        assert_eq!(book.others_pairs, 20);
        assert!(book.opinions.iter().all(|(a, s)| *a == me || s.len() <= 5));
        assert!(book.stored() <= 4 * 3 + 20 * 3);
        assert_eq!(book.opinions[&me].len(), 4, "own experience survives the flood");
        for account in 200..205 {
            book.flag(key(account));
        }
        assert_eq!(book.flagged.len(), 2);
        assert!(book.is_flagged(&key(204)) && !book.is_flagged(&key(200)));
    }

    #[test]
    fn the_acceptance_policy_follows_the_documented_threshold() {
        let policy = ReputationPolicy::default();
        assert!(policy.serves(NEUTRAL_REPUTATION));
        assert!(policy.serves(1.0 / 3.0));
        assert!(!policy.serves(0.25));
        assert!(!policy.serves(0.0));
    }

    fn verdict() -> impl Strategy<Value = Verdict> {
        prop_oneof![
            Just(Verdict::Completed),
            Just(Verdict::Default),
            Just(Verdict::InvalidResult),
            Just(Verdict::Timeout),
        ]
    }

    fn attestations() -> impl Strategy<Value = Vec<Attestation>> {
        prop::collection::vec(
            (0..6u8, 0..6u8, verdict(), 0..60 * DAY)
                .prop_map(|(a, s, verdict, age)| says(key(a), key(s), verdict, NOW - age)),
            0..60,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn reputations_are_bounded_deterministic_and_order_free(
            attestations in attestations(),
            flagged in prop::option::of(1..6u8),
        ) {
            let mut forward = book();
            let mut backward = book();
            for a in &attestations {
                forward.record(*a, NOW);
            }
            for a in attestations.iter().rev() {
                backward.record(*a, NOW);
            }
            if let Some(flagged) = flagged {
                forward.flag(key(flagged));
                backward.flag(key(flagged));
            }
            let r = forward.reputations(NOW);
            prop_assert_eq!(&r, &backward.reputations(NOW));
            prop_assert_eq!(&r, &forward.reputations(NOW));
            for (peer, reputation) in &r {
                prop_assert!((0.0..=1.0).contains(reputation));
                prop_assert_eq!(*reputation, forward.reputation(peer, NOW));
            }
            if let Some(flagged) = flagged {
                prop_assert_eq!(r[&key(flagged)], 0.0);
            }
            let trust = TrustGraph::build(&forward, NOW).global_trust();
            prop_assert!((trust.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}
