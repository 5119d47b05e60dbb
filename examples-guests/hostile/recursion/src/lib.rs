//! Hostile guest `recursion`: recurses without end; ends in a stack overflow.
//!
//! Its frames live on the wasm stack (no locals in linear memory), so it is the host's
//! wasm stack limit that stops it, not an out-of-bounds write of Rust's shadow stack.

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

#[allow(unconditional_recursion, reason = "the attack is recursion without end")]
#[inline(never)]
fn dive(depth: u64) -> u64 {
    dive(depth.wrapping_mul(6364136223846793005).wrapping_add(1)).rotate_left(7) ^ depth
}

impl Guest for Attack {
    fn run() {
        std::hint::black_box(dive(std::hint::black_box(1)));
    }
}

export!(Attack);
