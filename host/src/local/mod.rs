//! Running a component locally, as `cue run` does: load, call (possibly many times), and
//! report in the stable shape of `cue run --json`; [`js`]: JavaScript jobs on the runtime
//! embedded in `cue`.

pub mod js;

use std::time::Duration;

use serde::Serialize;

use crate::sandbox::{
    Call, CodeSource, FailureKind, Invocation, JobError, Limits, LoadedComponent, LogLine, Outcome, Sandbox,
};

/// What to run.
#[derive(Clone, Debug)]
pub struct LocalRun {
    /// The call: WAVE (`fib(30)`), or JSON `{"function": "fib", "args": [30]}` (args as an
    /// array in order or an object by parameter name).
    pub call: String,
    /// Bounds of each call.
    pub limits: Limits,
    /// How many times to call, each on a fresh instance (at least 1).
    pub repeat: u32,
}

/// The report of a local run; its JSON form is the documented output of `cue run --json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The result as JSON (by its WIT type), or `null`.
    pub result: serde_json::Value,
    /// The result in WAVE, or `null` on failure.
    pub wave: Option<String>,
    /// `null`, or the typed failure.
    pub error: Option<JobError>,
    /// Fuel used by the (last) call.
    pub fuel: u64,
    /// Wall time of the (last) call in microseconds.
    pub wall_us: u64,
    /// Peak linear memory of the (last) call.
    pub peak_memory_bytes: u64,
    /// Median call time over `--repeat` calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<u64>,
    /// 99th-percentile call time over `--repeat` calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<u64>,
    /// The job's log lines (host `log`, stdout, stderr).
    pub log: Vec<LogLine>,
    /// How the code was obtained and how long loading took.
    #[serde(skip)]
    pub load: Option<(CodeSource, Duration)>,
}

impl RunReport {
    /// Whether the job produced a result.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    pub(crate) fn failed(error: JobError) -> Self {
        RunReport {
            result: serde_json::Value::Null,
            wave: None,
            error: Some(error),
            fuel: 0,
            wall_us: 0,
            peak_memory_bytes: 0,
            p50_us: None,
            p99_us: None,
            log: Vec::new(),
            load: None,
        }
    }
}

/// Loads `bytes` into `sandbox` and runs `run` against it.
pub fn run_component(sandbox: &Sandbox, bytes: &[u8], run: &LocalRun) -> RunReport {
    match sandbox.load(bytes) {
        Ok(loaded) => run_loaded(&loaded, run),
        Err(error) => RunReport::failed(error),
    }
}

/// Runs `run` against a component already loaded.
pub fn run_loaded(loaded: &LoadedComponent, run: &LocalRun) -> RunReport {
    let call = match parse_call(loaded, &run.call) {
        Ok(call) => call,
        Err(error) => return RunReport { load: Some(loaded.load_stats()), ..RunReport::failed(error) },
    };
    let mut times = Vec::with_capacity(run.repeat.max(1) as usize);
    let mut last: Option<Outcome> = None;
    for _ in 0..run.repeat.max(1) {
        let outcome = loaded.invoke(&call, &run.limits, &Invocation::default());
        times.push(outcome.wall);
        let failed = outcome.result.is_err();
        last = Some(outcome);
        if failed {
            break;
        }
    }
    let outcome = last.expect("at least one call");
    let (p50_us, p99_us) = if run.repeat > 1 { percentiles(&mut times) } else { (None, None) };
    let (result, wave, error) = match outcome.result {
        Ok(output) => (output.json, Some(output.wave), None),
        Err(error) => (serde_json::Value::Null, None, Some(error)),
    };
    RunReport {
        result,
        wave,
        error,
        fuel: outcome.fuel_used,
        wall_us: outcome.wall.as_micros() as u64,
        peak_memory_bytes: outcome.peak_memory_bytes,
        p50_us,
        p99_us,
        log: outcome.log,
        load: Some(loaded.load_stats()),
    }
}

/// Parses a call given as WAVE or as a JSON object.
pub fn parse_call(loaded: &LoadedComponent, text: &str) -> Result<Call, JobError> {
    if !text.trim_start().starts_with('{') {
        return loaded.parse_call(text);
    }
    let bad = |message: String| JobError { kind: FailureKind::BadArguments, message };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("the call is not valid JSON: {e}")))?;
    let function = value.get("function").and_then(|f| f.as_str()).ok_or_else(|| {
        bad("a JSON call needs a \"function\" name, e.g. {\"function\": \"fib\", \"args\": [30]}".into())
    })?;
    let args = value.get("args").cloned().unwrap_or(serde_json::Value::Array(Vec::new()));
    loaded.json_call(function, &args)
}

fn percentiles(times: &mut [Duration]) -> (Option<u64>, Option<u64>) {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[index].as_micros() as u64
    };
    (Some(at(0.50)), Some(at(0.99)))
}
