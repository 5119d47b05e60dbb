//! Hostile guest `panic`: panics; ends in a trap carrying the panic message.

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

impl Guest for Attack {
    fn run() {
        let answer = std::hint::black_box(42);
        panic!("the guest gave up at {answer}");
    }
}

export!(Attack);
