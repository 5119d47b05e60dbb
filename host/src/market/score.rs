//! Ranking providers: how a consumer orders the providers it discovered.
//!
//! ```text
//! score = reputation × speed / ((1 + job_price / 1000) × (1 + latency_ms / 100))
//!   speed      = fuel_per_second / 10⁹            (billions of fuel per second)
//!   job_price  = base_fee + price_per_mfuel × 1000 (the price of a 1-Gfuel reference job)
//!   reputation ∈ [0, 1], 0.5 for a peer with no history
//! ```
//!
//! A provider twice as fast scores twice as high; one whose reference job costs 1000 units
//! more scores half; 100 ms more latency halves it again. Reputation multiplies everything:
//! a provider with reputation 0 is never chosen. Ties are broken by peer id, so a ranking is
//! deterministic for the same inputs.
//!
//! **Claimed and observed speed.** `fuel_per_second` is the provider's own claim. Once a
//! consumer has seen [`MIN_OBSERVED_FUEL`] fuel delivered by it ([`Observed`]: fuel over the
//! wall time the consumer measured, network included), [`score_observed`] uses the observed
//! rate instead (never more than the claim), and a claim above [`OVERCLAIM`] × the observed rate
//! scales the score down by `OVERCLAIM × observed / claimed`: a provider that lies about its
//! speed ranks below an honest one as soon as it has been seen.

use super::ResourceManifest;

/// The reputation of a peer nobody has experience with.
pub const NEUTRAL_REPUTATION: f64 = 0.5;
/// Fuel of the reference job the price term uses.
pub const REFERENCE_JOB_FUEL: u64 = 1_000_000_000;

/// Fuel a consumer must have seen a provider deliver before its observed rate replaces the
/// claim (a billion: a second or two of work, where the network's share of the time is small).
pub const MIN_OBSERVED_FUEL: u64 = 1_000_000_000;
/// How far a claim may exceed the observed rate before it costs trust (network time and load
/// make honest observations lower than the measurement).
pub const OVERCLAIM: f64 = 4.0;

/// What a consumer has seen one provider deliver: fuel, and the wall time it measured for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Fuel delivered (receipts of checked jobs), summed.
    pub fuel: u64,
    /// Microseconds from each job's request to its checked receipt, summed.
    pub micros: u64,
    /// Jobs counted.
    pub jobs: u32,
}

impl Observed {
    /// Adds one job: `fuel` delivered in `micros` as the consumer timed it.
    pub fn add(&mut self, fuel: u64, micros: u64) {
        self.fuel = self.fuel.saturating_add(fuel);
        self.micros = self.micros.saturating_add(micros.max(1));
        self.jobs = self.jobs.saturating_add(1);
    }

    /// The observed fuel per second, once [`MIN_OBSERVED_FUEL`] has been seen.
    pub fn fuel_per_second(&self) -> Option<u64> {
        (self.fuel >= MIN_OBSERVED_FUEL && self.micros > 0).then(|| {
            u64::try_from(u128::from(self.fuel) * 1_000_000 / u128::from(self.micros)).unwrap_or(u64::MAX)
        })
    }
}

/// The score of a provider with what this consumer `observed` of it (see the module docs).
pub fn score_observed(
    manifest: &ResourceManifest,
    latency_ms: f64,
    reputation: f64,
    observed: Option<u64>,
) -> f64 {
    let claimed = manifest.fuel_per_second;
    let Some(observed) = observed else { return score(manifest, latency_ms, reputation) };
    let believed = ResourceManifest { fuel_per_second: observed.min(claimed), ..manifest.clone() };
    let trust = (OVERCLAIM * observed as f64 / claimed.max(1) as f64).min(1.0);
    score(&believed, latency_ms, reputation) * trust
}

/// The score of a provider (higher is better); see the module docs for the formula.
pub fn score(manifest: &ResourceManifest, latency_ms: f64, reputation: f64) -> f64 {
    let speed = manifest.fuel_per_second as f64 / 1e9;
    let job_price = manifest.policy.base_fee as f64
        + manifest.policy.price_per_mfuel as f64 * (REFERENCE_JOB_FUEL / 1_000_000) as f64;
    let reputation = reputation.clamp(0.0, 1.0);
    let latency_ms = latency_ms.max(0.0);
    reputation * speed / ((1.0 + job_price / 1000.0) * (1.0 + latency_ms / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::market::ProviderPolicy;

    fn manifest(fuel_per_second: u64, price_per_mfuel: u64, base_fee: u64) -> ResourceManifest {
        ResourceManifest {
            genesis: crate::market::NO_NETWORK,
            provider: Keypair::from_seed([1; 32]).public(),
            cores: 4,
            memory_bytes: 8 << 30,
            fuel_per_second,
            engine: "e".into(),
            wasmtime: "48.0.8".into(),
            policy: ProviderPolicy {
                price_per_mfuel,
                base_fee,
                max_concurrent_jobs: 4,
                max_memory_bytes: 1 << 30,
                max_execution_ms: 30_000,
            },
            measured_ms: 0,
        }
    }

    #[test]
    fn faster_cheaper_closer_and_trusted_score_higher() {
        let base = score(&manifest(1_000_000_000, 1, 0), 10.0, NEUTRAL_REPUTATION);
        assert!(score(&manifest(2_000_000_000, 1, 0), 10.0, NEUTRAL_REPUTATION) > base);
        assert!(score(&manifest(1_000_000_000, 5, 0), 10.0, NEUTRAL_REPUTATION) < base);
        assert!(score(&manifest(1_000_000_000, 1, 500), 10.0, NEUTRAL_REPUTATION) < base);
        assert!(score(&manifest(1_000_000_000, 1, 0), 200.0, NEUTRAL_REPUTATION) < base);
        assert!(score(&manifest(1_000_000_000, 1, 0), 10.0, 0.9) > base);
        assert_eq!(score(&manifest(1_000_000_000, 1, 0), 10.0, 0.0), 0.0);
    }

    #[test]
    fn an_observed_rate_replaces_the_claim_and_an_overclaim_costs_trust() {
        let mut seen = Observed::default();
        seen.add(500_000_000, 500_000);
        assert_eq!(seen.fuel_per_second(), None, "too little seen to tell");
        seen.add(500_000_000, 500_000);
        assert_eq!(seen.fuel_per_second(), Some(1_000_000_000));
        let honest = manifest(1_000_000_000, 1, 0);
        let liar = manifest(1u64 << 50, 1, 0);
        assert!(score(&liar, 10.0, 0.5) > score(&honest, 10.0, 0.5), "a claim alone ranks the liar first");
        let liar_seen = score_observed(&liar, 10.0, 0.5, seen.fuel_per_second());
        let honest_seen = score_observed(&honest, 10.0, 0.5, seen.fuel_per_second());
        assert!(liar_seen < honest_seen / 1000.0, "{liar_seen} vs {honest_seen}");
        assert_eq!(honest_seen, score(&honest, 10.0, 0.5), "an honest claim costs nothing");
        let slower = score_observed(&honest, 10.0, 0.5, Some(500_000_000));
        assert!((slower - score(&honest, 10.0, 0.5) / 2.0).abs() < 1e-12, "the observed rate is used");
    }

    #[test]
    fn the_formula_is_the_documented_one() {
        // speed 2, job price 1000 (price 1/Mfuel × 1000 Mfuel), latency 100 ms, reputation 0.5:
        // 0.5 × 2 / (2 × 2) = 0.25.
        let s = score(&manifest(2_000_000_000, 1, 0), 100.0, 0.5);
        assert!((s - 0.25).abs() < 1e-12, "{s}");
    }
}
