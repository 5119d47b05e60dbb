//! `fib`: the n-th Fibonacci number (WIT-first, wit-bindgen).

wit_bindgen::generate!({ world: "cue:examples/fib", path: ["../../wit", "../wit"], generate_all });

struct Fib;

impl Guest for Fib {
    fn fib(n: u32) -> u64 {
        cue_kernels::fib(n)
    }
}

export!(Fib);
