//! The wall clock, read in one place: milliseconds since the Unix epoch, as signed events,
//! contracts and the ledger record time. The pure layers (`protocol`, `ledger`, `market`,
//! `contract`) never read it: their callers pass the time in.

/// Milliseconds since the Unix epoch by this machine's clock (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
