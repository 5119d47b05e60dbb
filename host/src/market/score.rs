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

use super::ResourceManifest;

/// The reputation of a peer nobody has experience with.
pub const NEUTRAL_REPUTATION: f64 = 0.5;
/// Fuel of the reference job the price term uses.
pub const REFERENCE_JOB_FUEL: u64 = 1_000_000_000;

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
    fn the_formula_is_the_documented_one() {
        // speed 2, job price 1000 (price 1/Mfuel × 1000 Mfuel), latency 100 ms, reputation 0.5:
        // 0.5 × 2 / (2 × 2) = 0.25.
        let s = score(&manifest(2_000_000_000, 1, 0), 100.0, 0.5);
        assert!((s - 0.25).abs() < 1e-12, "{s}");
    }
}
