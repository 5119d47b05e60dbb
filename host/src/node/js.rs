//! JavaScript jobs on the network: the runtime built into `cue` ([`crate::local::js::RUNTIME`]),
//! pre-initialised, kept in this node's blob store and published as `js@<version>`, then called
//! like any component — `run(code, args)` — by its hash, so a provider fetches exactly the
//! runtime this node runs (never another key's build of the name) and caches it like any
//! other. The report is read back as the function's JSON value.

use super::{NodeError, Shared, SubmitReport, components};
use crate::crypto::Digest;
use crate::local::js::{RUNTIME_NAME, RUNTIME_VERSION, preinitialized, read_result};

/// The runtime's hash, ready in the blob store and published (the first time: pre-initialising
/// it takes seconds, or reads it back from the code cache). When the name `js` belongs to
/// another key here, or its version to other bytes, the runtime is used by its hash alone.
pub(super) async fn runtime(shared: &Shared) -> Result<Digest, NodeError> {
    shared.components.js_runtime().get_or_try_init(|| prepare(shared)).await.copied()
}

async fn prepare(shared: &Shared) -> Result<Digest, NodeError> {
    let bytes = preinitialized_runtime(shared).await?;
    let sha256 = Digest::of(&bytes);
    match components::publish(shared, bytes.clone(), RUNTIME_NAME, RUNTIME_VERSION).await {
        Ok(_) => {
            tracing::info!(%sha256, "the JavaScript runtime is published as {RUNTIME_NAME}@{RUNTIME_VERSION}")
        }
        Err(e) => {
            shared.components.blobs().put_expected(&bytes, &sha256)?;
            tracing::info!(%sha256, "the JavaScript runtime is used by its hash: {e}");
        }
    }
    Ok(sha256)
}

/// Publishes the runtime as `js@<version>`: refused when the name belongs to another key here
/// or the version to other bytes (jobs then use the runtime by its hash all the same).
pub(super) async fn publish(shared: &Shared) -> Result<components::PublishReport, NodeError> {
    let bytes = preinitialized_runtime(shared).await?;
    components::publish(shared, bytes, RUNTIME_NAME, RUNTIME_VERSION).await
}

/// The runtime pre-initialised by this node's sandbox (read back from the code cache after the
/// first time).
async fn preinitialized_runtime(shared: &Shared) -> Result<Vec<u8>, NodeError> {
    let sandbox = shared.components.sandbox().clone();
    tokio::task::spawn_blocking(move || preinitialized(&sandbox))
        .await
        .map_err(|e| NodeError::task("JavaScript runtime", e))?
        .map_err(|e| NodeError::Invalid(format!("the JavaScript runtime cannot be prepared: {e}")))
}

/// The runtime's call for `code` on `args`, once `args` is checked to be a JSON array (a
/// job whose arguments the runtime would refuse is not paid for).
pub(super) fn call(code: &str, args: &str) -> Result<String, NodeError> {
    match serde_json::from_str::<serde_json::Value>(args) {
        Ok(serde_json::Value::Array(_)) => Ok(crate::local::js::wave_call(code, args)),
        Ok(other) => Err(NodeError::Invalid(format!("args must be a JSON array, not {other}"))),
        Err(e) => Err(NodeError::Invalid(format!("args are not JSON: {e}"))),
    }
}

/// A JavaScript job's report as its author reads it: `result` the function's value (`50`,
/// not `{"ok": "50"}`) with its exact JSON text, or `error` the typed JavaScript failure
/// (`thrown`, `syntax`, …, with the message, line and column).
pub(super) fn read_report(report: &mut SubmitReport) {
    if report.error.is_some() {
        return;
    }
    match read_result(&report.result) {
        Ok((value, text)) => {
            report.result = value;
            report.json_text = Some(text);
        }
        Err(failure) => {
            report.result = serde_json::Value::Null;
            report.error = Some(serde_json::to_value(failure).unwrap_or_default());
        }
    }
}
