//! Hostile guest `infinite-loop`: spins forever; ends out of fuel (or at the deadline).

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

impl Guest for Attack {
    fn run() {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

export!(Attack);
