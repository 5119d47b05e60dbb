//! `fib`: the n-th Fibonacci number, written with the Cue SDK.

/// The n-th Fibonacci number.
#[cue_sdk::jobs]
mod jobs {
    /// fib(0) = 0, fib(1) = 1; wraps on overflow past fib(93).
    pub fn fib(n: u32) -> u64 {
        cue_kernels::fib(n)
    }
}
