//! Auditing a failure: a run that one provider alone says failed (no replica to compare with)
//! is re-run here, when this node's engine is the provider's (same engine, same outcome and
//! fuel), within the job's audit budget (`SubmitOptions::audit_fuel`). A failure the re-run
//! reproduces is confirmed and paid; one it contradicts is refuted: not paid, the contract
//! recorded invalid and the provider given an `invalid-result` verdict. A re-run that cannot
//! tell (its budget ran out before the claimed fuel, or it met its own wall-clock limit) leaves
//! the failure paid as claimed — a lie about a long job is caught by replication, not here.

use std::sync::Arc;

use super::Job;
use crate::protocol::{Receipt, RunOutcome};
use crate::sandbox::{Call, FailureKind, Invocation, Limits, LoadedComponent};

/// What the re-run of a failure showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Audit {
    /// Not a failure, or not auditable here (another engine, no budget): paid as claimed.
    NotRun,
    /// The re-run ended the same way with the same fuel.
    Confirmed,
    /// The re-run could not tell (budget or wall clock ran out first).
    Inconclusive,
    /// The re-run ended otherwise: what it found, in words.
    Refuted(String),
}

impl Job {
    /// Re-runs the failure a delivery's `receipt` reports, when it can (see the module docs).
    /// `max_fuel`: the contract's fuel budget.
    pub(super) async fn audit(
        &self,
        receipt: &Receipt,
        max_fuel: u64,
        loaded: &Arc<LoadedComponent>,
        call: &Call,
    ) -> Audit {
        let RunOutcome::Failed { kind, .. } = &receipt.outcome else { return Audit::NotRun };
        let engine = &self.shared.components.sandbox().fingerprint().id;
        if self.options.audit_fuel == 0 || *engine != receipt.engine {
            return Audit::NotRun;
        }
        let budget = max_fuel.min(self.options.audit_fuel);
        let limits = Limits {
            fuel: budget,
            timeout: self.options.timeout,
            memory_bytes: self.options.max_memory_bytes,
            ..Limits::default()
        };
        let (loaded, call) = (loaded.clone(), call.clone());
        let rerun =
            tokio::task::spawn_blocking(move || loaded.invoke(&call, &limits, &Invocation::default())).await;
        let Ok(outcome) = rerun else { return Audit::Inconclusive };
        let found = match &outcome.result {
            Ok(_) => {
                return Audit::Refuted(format!("the job succeeded here with {} fuel", outcome.fuel_used));
            }
            Err(e) => e.kind,
        };
        let claimed_fuel = receipt.fuel_used;
        match found {
            FailureKind::OutOfFuel if budget < claimed_fuel => Audit::Inconclusive,
            FailureKind::Timeout => Audit::Inconclusive,
            found if found.to_string() == *kind && outcome.fuel_used == claimed_fuel => Audit::Confirmed,
            found => Audit::Refuted(format!(
                "re-run here it ended {found} with {} fuel, not {kind} with {claimed_fuel}",
                outcome.fuel_used
            )),
        }
    }
}

/// The default audit budget: a second or two of work on a typical machine.
pub const DEFAULT_AUDIT_FUEL: u64 = 1_000_000_000;
