//! `nbody`: the Jovian n-body simulation, f64-heavy and deterministic, written with the Cue SDK.

/// The n-body simulation of the Jovian planets (the benchmarks-game program): f64-heavy and
/// bit-for-bit deterministic.
#[cue_sdk::jobs]
mod jobs {
    /// Energy of the system after `steps` steps of 0.01, reporting progress.
    pub fn energy_after(steps: u32) -> f64 {
        let every = (steps / 100).max(1);
        cue_kernels::nbody_energy_after(steps, every, |done| {
            cue_sdk::progress(u64::from(done), u64::from(steps))
        })
    }
}
