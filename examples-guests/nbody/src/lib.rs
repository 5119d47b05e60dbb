//! `nbody`: the Jovian n-body simulation, f64-heavy and deterministic (WIT-first, wit-bindgen).

wit_bindgen::generate!({ world: "cue:examples/nbody", path: ["../../wit", "../wit"], generate_all });

use cue::job::host::progress;

struct NBody;

impl Guest for NBody {
    fn energy_after(steps: u32) -> f64 {
        let every = (steps / 100).max(1);
        cue_kernels::nbody_energy_after(steps, every, |done| progress(u64::from(done), u64::from(steps)))
    }
}

export!(NBody);
