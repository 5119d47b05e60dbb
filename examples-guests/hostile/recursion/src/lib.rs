//! Hostile guest `recursion`: recurses without end; ends in a stack overflow.

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

#[allow(unconditional_recursion, reason = "the attack is recursion without end")]
fn dive(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    dive(depth + 1).wrapping_add(frame[(depth % 16) as usize])
}

impl Guest for Attack {
    fn run() {
        std::hint::black_box(dive(0));
    }
}

export!(Attack);
