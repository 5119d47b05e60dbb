//! The compute contract's rules, without I/O: what a provider accepts, what a consumer checks in
//! an accept and a receipt, what is owed, and which replicas agree. The node drives these
//! with the network, the sandbox and the stores (see `node/provider/`, `node/consumer/`).

use crate::crypto::{Digest, PublicKey};
use crate::market::ProviderPolicy;
use crate::protocol::{ComputeAccept, ComputeRequest, Receipt, RejectReason, RunOutcome, Signed};

/// Why a provider declines a request: the reason and the words of its signed reject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decline {
    /// The typed reason, signed in the reject.
    pub reason: RejectReason,
    /// What the consumer is told.
    pub message: String,
}

impl Decline {
    /// A decline for `reason`, saying `message`.
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Decline {
        Decline { reason, message: message.into() }
    }
}

/// What a provider weighs a request against: who and where it is, its policy, its load, and
/// what it thinks of the consumer.
#[derive(Clone, Debug)]
pub struct Evaluation<'a> {
    /// The provider's key.
    pub me: &'a PublicKey,
    /// The network's genesis id.
    pub genesis: &'a Digest,
    /// Its policy (prices and bounds).
    pub policy: &'a ProviderPolicy,
    /// Jobs accepted and not finished.
    pub in_flight: usize,
    /// Most jobs accepted at once (running plus waiting to start).
    pub capacity: usize,
    /// Jobs of this consumer accepted and not finished.
    pub consumer_in_flight: usize,
    /// Most jobs one consumer may hold at once (its share of the capacity).
    pub per_consumer: usize,
    /// The consumer's reputation here, in `[0, 1]`.
    pub consumer_reputation: f64,
    /// The lowest reputation this provider serves.
    pub min_reputation: f64,
}

/// The least a request must offer for its fuel budget at `policy`'s prices.
pub fn minimum_offer(policy: &ProviderPolicy, max_fuel: u64) -> u64 {
    let fuel = (u128::from(max_fuel) * u128::from(policy.price_per_mfuel)).div_ceil(1_000_000);
    u64::try_from(u128::from(policy.base_fee) + fuel).unwrap_or(u64::MAX)
}

/// The most fuel a consumer lets a job use when it gives no budget of its own: far beyond what
/// any provider's time limit lets a job burn, so the time limit ends such a job first.
pub const MAX_DERIVED_FUEL: u64 = 1_000_000_000_000_000;

/// The most fuel `offer` buys at `policy`'s prices: what is left after the base fee, at its
/// price per million fuel (so that [`minimum_offer`] of it is at most `offer`), at most
/// [`MAX_DERIVED_FUEL`]; 0 when the offer does not exceed the base fee. A job submitted with
/// an offer and no fuel budget gets this budget from each provider it asks.
pub fn fuel_bought(policy: &ProviderPolicy, offer: u64) -> u64 {
    let Some(left) = offer.checked_sub(policy.base_fee) else { return 0 };
    if policy.price_per_mfuel == 0 {
        return MAX_DERIVED_FUEL;
    }
    let fuel = u128::from(left) * 1_000_000 / u128::from(policy.price_per_mfuel);
    u64::try_from(fuel).unwrap_or(u64::MAX).min(MAX_DERIVED_FUEL)
}

/// The checks a provider makes before looking at the component: addressee, network, bounds,
/// price, capacity, reputation. The component and the call are checked after (they need the
/// sandbox).
pub fn evaluate(request: &ComputeRequest, view: &Evaluation<'_>) -> Result<(), Decline> {
    let policy = view.policy;
    if request.provider != *view.me {
        return Err(Decline::new(RejectReason::Invalid, "the request is for another provider"));
    }
    if request.genesis != *view.genesis {
        return Err(Decline::new(RejectReason::Invalid, "the request is for another network"));
    }
    if request.max_memory_bytes > policy.max_memory_bytes {
        let message = format!(
            "max memory {} exceeds this provider's {}",
            request.max_memory_bytes, policy.max_memory_bytes
        );
        return Err(Decline::new(RejectReason::OverLimits, message));
    }
    if request.max_execution_ms > policy.max_execution_ms {
        let message = format!(
            "max time {} ms exceeds this provider's {} ms",
            request.max_execution_ms, policy.max_execution_ms
        );
        return Err(Decline::new(RejectReason::OverLimits, message));
    }
    let minimum = minimum_offer(policy, request.max_fuel);
    if request.offer < minimum {
        let message = format!(
            "offer {} is below base fee {} + {} per million fuel × {} fuel = {minimum}",
            request.offer, policy.base_fee, policy.price_per_mfuel, request.max_fuel
        );
        return Err(Decline::new(RejectReason::OfferTooLow, message));
    }
    if view.in_flight >= view.capacity {
        return Err(Decline::new(
            RejectReason::Busy,
            format!("all {} job slots are taken; try again later", view.capacity),
        ));
    }
    if view.consumer_in_flight >= view.per_consumer {
        return Err(Decline::new(
            RejectReason::Busy,
            format!(
                "you hold {} of the {} job slots, the most one consumer may; try again later",
                view.consumer_in_flight, view.capacity
            ),
        ));
    }
    if view.consumer_reputation < view.min_reputation {
        let message = format!(
            "reputation {:.2} is below this provider's threshold {:.2}",
            view.consumer_reputation, view.min_reputation
        );
        return Err(Decline::new(RejectReason::Reputation, message));
    }
    Ok(())
}

/// Why a provider's policy does not fit a job's terms (a consumer's choice, before asking),
/// with the figures that decide it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unfit {
    /// The job asks for more memory than the provider allows.
    #[error("max memory {} exceeds its {}", grouped(*asked), grouped(*allowed))]
    Memory {
        /// Bytes the job asks for.
        asked: u64,
        /// Bytes the provider allows.
        allowed: u64,
    },
    /// The job asks for more time than the provider allows.
    #[error("time limit {} ms exceeds its {} ms", grouped(*asked), grouped(*allowed))]
    Time {
        /// Milliseconds the job asks for.
        asked: u64,
        /// Milliseconds the provider allows.
        allowed: u64,
    },
    /// The fixed offer is below what the provider charges for the job's worst case.
    #[error(
        "offer {} is below the worst case {} = base {} + {} per Mfuel × max fuel {}; lower --max-fuel or raise --pay",
        grouped(*offer), grouped(*minimum), grouped(*base_fee), grouped(*price_per_mfuel), grouped(*max_fuel)
    )]
    Offer {
        /// The offer.
        offer: u64,
        /// The provider's price for the fuel budget.
        minimum: u64,
        /// Its base fee.
        base_fee: u64,
        /// Its price per million fuel.
        price_per_mfuel: u64,
        /// The job's fuel budget.
        max_fuel: u64,
    },
    /// With no fuel budget given, the offer buys no fuel at all from this provider.
    #[error(
        "offer {} buys no fuel: its base fee is {} and it charges {} per Mfuel; raise --pay (or give --max-fuel)",
        grouped(*offer), grouped(*base_fee), grouped(*price_per_mfuel)
    )]
    BuysNoFuel {
        /// The offer.
        offer: u64,
        /// The provider's base fee.
        base_fee: u64,
        /// Its price per million fuel.
        price_per_mfuel: u64,
    },
}

/// Whether `policy` fits a job of `max_memory_bytes`, `max_execution_ms` and `max_fuel` (`None`:
/// what the offer buys, [`fuel_bought`]) with a fixed `offer` (`None`: the consumer pays each
/// provider's own price for the budget).
pub fn fits(
    policy: &ProviderPolicy,
    max_memory_bytes: u64,
    max_execution_ms: u64,
    max_fuel: Option<u64>,
    offer: Option<u64>,
) -> Result<(), Unfit> {
    if max_memory_bytes > policy.max_memory_bytes {
        return Err(Unfit::Memory { asked: max_memory_bytes, allowed: policy.max_memory_bytes });
    }
    if max_execution_ms > policy.max_execution_ms {
        return Err(Unfit::Time { asked: max_execution_ms, allowed: policy.max_execution_ms });
    }
    let (Some(offer), Some(max_fuel)) = (offer, max_fuel) else {
        return match offer {
            Some(offer) if fuel_bought(policy, offer) == 0 => Err(Unfit::BuysNoFuel {
                offer,
                base_fee: policy.base_fee,
                price_per_mfuel: policy.price_per_mfuel,
            }),
            _ => Ok(()),
        };
    };
    let minimum = minimum_offer(policy, max_fuel);
    if offer < minimum {
        return Err(Unfit::Offer {
            offer,
            minimum,
            base_fee: policy.base_fee,
            price_per_mfuel: policy.price_per_mfuel,
            max_fuel,
        });
    }
    Ok(())
}

/// `n` with its thousands grouped by commas (`10,000,010`), as people read figures.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Why a consumer refuses an accept or a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Breach {
    /// The accept or receipt is not signed by the provider asked.
    #[error("signed by {found}, not by the provider asked")]
    WrongSigner {
        /// Who signed.
        found: String,
    },
    /// It does not refer to this request / contract / job.
    #[error("it refers to another {0}")]
    WrongReference(&'static str),
    /// The accept's prices would cost more than offered for the fuel budget.
    #[error("its terms cost up to {cost} for the fuel budget, above the offer of {offer}")]
    Overpriced {
        /// Base fee plus price × max fuel.
        cost: u64,
        /// The offer.
        offer: u64,
    },
    /// The receipt claims more fuel than the budget allows.
    #[error("it claims {claimed} fuel, above the budget of {budget}")]
    FuelOverBudget {
        /// Claimed.
        claimed: u64,
        /// Budget.
        budget: u64,
    },
    /// The receipt's engine differs from the contract's.
    #[error("it names engine {found}, the contract {expected}")]
    WrongEngine {
        /// In the receipt.
        found: String,
        /// In the accept.
        expected: String,
    },
    /// The delivered output does not hash to the receipt's output hash, or is missing.
    #[error("the delivered output does not match the receipt")]
    OutputMismatch,
}

/// Checks a provider's accept against the request it answers.
pub fn check_accept(request: &Signed<ComputeRequest>, accept: &Signed<ComputeAccept>) -> Result<(), Breach> {
    let (req, acc) = (request.body(), accept.body());
    if accept.header().signer != req.provider {
        return Err(Breach::WrongSigner { found: accept.header().signer.peer_id().to_string() });
    }
    if acc.request != request.hash() || acc.job_id != req.job_id {
        return Err(Breach::WrongReference("request"));
    }
    if acc.consumer != request.header().signer {
        return Err(Breach::WrongReference("consumer"));
    }
    let policy = ProviderPolicy {
        price_per_mfuel: acc.price_per_mfuel,
        base_fee: acc.base_fee,
        max_concurrent_jobs: 1,
        max_memory_bytes: 0,
        max_execution_ms: 0,
    };
    let cost = minimum_offer(&policy, req.max_fuel);
    if cost > req.offer {
        return Err(Breach::Overpriced { cost, offer: req.offer });
    }
    Ok(())
}

/// Checks a receipt against its contract, and the delivered output (WAVE) against it.
pub fn check_receipt(
    request: &ComputeRequest,
    accept: &Signed<ComputeAccept>,
    receipt: &Signed<Receipt>,
    output: Option<&str>,
) -> Result<(), Breach> {
    let body = receipt.body();
    if receipt.header().signer != request.provider {
        return Err(Breach::WrongSigner { found: receipt.header().signer.peer_id().to_string() });
    }
    if body.contract != accept.hash() || body.job_id != request.job_id {
        return Err(Breach::WrongReference("contract"));
    }
    if body.component != request.component || body.input != request.input_hash() {
        return Err(Breach::WrongReference("component or input"));
    }
    if body.fuel_used > request.max_fuel {
        return Err(Breach::FuelOverBudget { claimed: body.fuel_used, budget: request.max_fuel });
    }
    if body.engine != accept.body().engine {
        return Err(Breach::WrongEngine {
            found: body.engine.clone(),
            expected: accept.body().engine.clone(),
        });
    }
    match (&body.outcome, output) {
        (RunOutcome::Output(hash), Some(output)) if *hash == Digest::of(output.as_bytes()) => Ok(()),
        (RunOutcome::Output(_), _) => Err(Breach::OutputMismatch),
        (RunOutcome::Failed { .. }, _) => Ok(()),
    }
}

/// What two replicas must agree on: the outcome (output hash or failure kind) and the fuel.
pub fn replica_key(receipt: &Receipt) -> (String, u64) {
    let outcome = match &receipt.outcome {
        RunOutcome::Output(hash) => format!("output:{hash}"),
        RunOutcome::Failed { kind, .. } => format!("failed:{kind}"),
    };
    (outcome, receipt.fuel_used)
}

/// The indexes of the receipts in the strict majority (more than half agree), if there is
/// one; the rest disagree with it.
pub fn majority(receipts: &[&Receipt]) -> Option<Vec<usize>> {
    let keys: Vec<(String, u64)> = receipts.iter().map(|r| replica_key(r)).collect();
    keys.iter().find_map(|key| {
        let agreeing: Vec<usize> =
            keys.iter().enumerate().filter(|(_, k)| *k == key).map(|(i, _)| i).collect();
        (agreeing.len() * 2 > keys.len()).then_some(agreeing)
    })
}

pub mod evidence;

#[cfg(test)]
mod tests;
