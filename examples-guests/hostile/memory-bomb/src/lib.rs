//! Hostile guest `memory-bomb`: allocates without end; ends at the memory limit.

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

impl Guest for Attack {
    fn run() {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export!(Attack);
