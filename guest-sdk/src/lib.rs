//! The Cue guest SDK: write Cue jobs as plain Rust functions and compile them to WIT-typed
//! WebAssembly components (`cargo build --release --target wasm32-wasip2`, or `cue build`).
//!
//! # Rust-first jobs
//!
//! [`jobs`] on an inline module turns every `pub fn` into an export of the component, named
//! in kebab-case (`count_words` → `count-words`). The WIT is inferred from the Rust types;
//! doc comments become WIT doc comments; the module gains a `WIT` constant with the text.
//!
//! ```ignore
//! #[cue_sdk::jobs]
//! mod jobs {
//!     /// A word and how often it occurs.
//!     #[derive(cue_sdk::Type)]
//!     pub struct WordCount { pub word: String, pub count: u32 }
//!
//!     /// The n-th Fibonacci number.
//!     pub fn fib(n: u32) -> u64 {
//!         cue_sdk::info!("fib({n})");
//!         (0..n).fold((0u64, 1u64), |(a, b), _| (b, a.wrapping_add(b))).0
//!     }
//!
//!     pub fn count_words(text: String) -> Vec<WordCount> { /* ... */ }
//! }
//! ```
//!
//! | Rust | WIT |
//! |---|---|
//! | `bool`, `char`, `f32`, `f64` | the same |
//! | `u8`..`u64`, `i8`..`i64` | `u8`..`u64`, `s8`..`s64` |
//! | `String` | `string` |
//! | `Vec<T>` (`Vec<u8>` too) | `list<T>` |
//! | `Option<T>` | `option<T>` |
//! | `Result<T, E>` (`()` for a side without a value) | `result<T, E>` |
//! | `(A, B, ...)` | `tuple<A, B, ...>` |
//! | `#[derive(Type)] pub struct` with named `pub` fields | `record` |
//! | `#[derive(Type)] pub enum` without data | `enum` |
//! | `#[derive(Type)] pub enum` with `Case(T)` cases | `variant` |
//!
//! Anything else in a signature is a compile error pointing at the type. Functions that
//! are not `pub` are ordinary helpers. docs/jobs.md in the repository has the full guide.
//!
//! # Host services
//!
//! [`log`] and the [`info!`]-style macros, [`progress`], and [`random_u64`] (deterministic
//! per job) reach the host through the `cue:job/host` interface. A panic traps the job; its
//! message reaches the caller.
//!
//! # WIT-first jobs
//!
//! A job with a hand-written world (that does `include cue:job/job@0.1.0;`) uses
//! [`wit_bindgen`] as re-exported here and maps `cue:job/host` to [`host`]; see
//! `examples-guests/wit-first` in the repository.

wit_bindgen::generate!({ world: "cue:job/job", path: "../wit" });

pub use cue::job::host::{self, Level, log, progress, random_u64};
pub use cue_sdk_macros::{Type, jobs};
pub use wit_bindgen;

/// A type usable in a [`jobs`] module's signatures: implemented by `#[derive(Type)]`.
pub trait Type {}

/// Logs a formatted line at a [`Level`]: `cue_sdk::log!(Level::Warn, "{n} left")`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log($level, &::std::format!($($arg)+))
    };
}

/// Logs a formatted line at [`Level::Trace`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Trace, $($arg)+) };
}

/// Logs a formatted line at [`Level::Debug`].
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Debug, $($arg)+) };
}

/// Logs a formatted line at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Info, $($arg)+) };
}

/// Logs a formatted line at [`Level::Warn`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Warn, $($arg)+) };
}

/// Logs a formatted line at [`Level::Error`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Error, $($arg)+) };
}

/// A deterministic pseudo-random number in `0..bound` (`bound > 0`), from [`random_u64`]:
/// the same job on the same engine gets the same numbers.
pub fn random_below(bound: u64) -> u64 {
    assert!(bound > 0, "random_below(0)");
    // Rejection sampling keeps the distribution uniform.
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let n = random_u64();
        if n < zone {
            return n % bound;
        }
    }
}

/// What the code `#[jobs]` generates refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::cue::job::host;
    pub use wit_bindgen;
}
