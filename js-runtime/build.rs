//! Gives the runtime a larger shadow stack than rustc's 1 MiB default: Boa recurses natively
//! when native code calls back into JavaScript (a getter, a `map` callback, `toJSON`), and
//! the stack sits below the data in linear memory, so an overflow traps instead of
//! corrupting anything (`--stack-first`, rustc's layout for wasm).

fn main() {
    println!("cargo:rustc-link-arg=-zstack-size={}", 8 << 20);
}
