//! Per-job resource limits and the limiter that enforces them while the job runs.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::error::{FailureKind, JobError, Stop};

/// The bounds one job call runs under. Every field is enforced by the sandbox; a job that
/// reaches one ends with the matching [`FailureKind`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Fuel budget for the call (roughly one unit per wasm instruction; host calls cost
    /// more). Reaching it ends the job with `out-of-fuel`.
    pub fuel: u64,
    /// Wall-clock deadline, enforced by epoch interruption; also the most the job's virtual
    /// clock may advance (a wait past it ends the job at once). Reaching either: `timeout`.
    pub timeout: Duration,
    /// Total bytes of linear memory across the job's memories. Growing past it: `memory-limit`.
    pub memory_bytes: u64,
    /// Elements per table. Growing past it: `table-limit`.
    pub table_elements: u64,
    /// Core instances the component may create.
    pub instances: usize,
    /// Linear memories the component may create.
    pub memories: usize,
    /// Tables the component may create.
    pub tables: usize,
    /// Bytes of the result, measured as its WAVE text. Past it: `too-large`.
    pub result_bytes: usize,
    /// Bytes of log (host `log` lines plus stdout and stderr). Past it: `too-large`.
    pub log_bytes: usize,
}

/// Bytes of host memory a job may make the host allocate, in one host call's arguments or in
/// its result, per byte of its result or log limit (wasmtime's "hostcall fuel"; see
/// [`Limits::lift_bytes`]). A result's values take more room on the host than its WAVE text
/// (a `list<u8>` element is 3 bytes of WAVE but a 32-byte value), hence the factor.
pub const LIFT_BYTES_PER_LIMIT_BYTE: usize = 4;

impl Limits {
    /// The most bytes of host memory one transfer from the job to the host may take — the
    /// arguments of one host call, or the result: [`LIFT_BYTES_PER_LIMIT_BYTE`] × the larger
    /// of `result_bytes` and `log_bytes` (64 MiB by default). A bigger transfer is refused
    /// before the host allocates it, and the job ends with `too-large`.
    pub fn lift_bytes(&self) -> usize {
        self.result_bytes.max(self.log_bytes).saturating_mul(LIFT_BYTES_PER_LIMIT_BYTE)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000_000,
            timeout: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            instances: 32,
            memories: 4,
            tables: 8,
            result_bytes: 16 << 20,
            log_bytes: 1 << 20,
        }
    }
}

/// Enforces the memory and table limits of one job and records its peak memory.
pub(crate) struct JobLimiter {
    memory_limit: u64,
    table_limit: u64,
    instances: usize,
    memories: usize,
    tables: usize,
    /// Bytes of linear memory currently held across all of the job's memories.
    memory_now: u64,
    /// The most `memory_now` has been: reported as the job's peak memory.
    pub(crate) peak_memory: u64,
}

impl JobLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        JobLimiter {
            memory_limit: limits.memory_bytes,
            table_limit: limits.table_elements,
            instances: limits.instances,
            memories: limits.memories,
            tables: limits.tables,
            memory_now: 0,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = (desired - current) as u64;
        let total = self.memory_now.saturating_add(grown);
        if total > self.memory_limit {
            return Err(wasmtime::Error::new(Stop(JobError::new(
                FailureKind::MemoryLimit,
                format!(
                    "the job tried to grow its memory to {} but its limit is {}",
                    human_bytes(total),
                    human_bytes(self.memory_limit)
                ),
            ))));
        }
        self.memory_now = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_limit {
            return Err(wasmtime::Error::new(Stop(JobError::new(
                FailureKind::TableLimit,
                format!(
                    "the job tried to grow a table to {desired} elements but its limit is {}",
                    self.table_limit
                ),
            ))));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.memories
    }

    fn tables(&self) -> usize {
        self.tables
    }
}

/// `1.5 MiB`-style byte counts for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Parses `64MiB`, `512KiB`, `1GiB`, `1048576`, `10MB` into bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size like 64MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `5s`, `250ms`, `2m`, `1500us`, `1h` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 5s or 250ms"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` (use us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1XB").is_err());
        assert!(parse_bytes("99999999999GiB").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn limiter_refuses_growth_past_the_limit_and_tracks_the_peak() {
        let limits = Limits { memory_bytes: 1 << 20, ..Limits::default() };
        let mut limiter = JobLimiter::new(&limits);
        assert!(limiter.memory_growing(0, 512 << 10, None).unwrap());
        assert!(limiter.memory_growing(512 << 10, 1 << 20, None).unwrap());
        let err = limiter.memory_growing(1 << 20, 2 << 20, None).unwrap_err();
        let stop = err.downcast_ref::<Stop>().expect("a typed stop");
        assert_eq!(stop.0.kind, FailureKind::MemoryLimit);
        assert_eq!(limiter.peak_memory, 1 << 20);
    }
}
