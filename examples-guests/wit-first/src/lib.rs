//! `wit-first`: a job whose world is written by hand (`cue:examples/stats` in
//! `../wit/examples.wit`), implemented with the bindings of the SDK's re-exported
//! wit-bindgen. `cue:job/host` is mapped to `cue_sdk::host`, so the SDK's helpers
//! (`cue_sdk::info!`, `cue_sdk::progress`, ...) work here as in a Rust-first job.

cue_sdk::wit_bindgen::generate!({
    world: "cue:examples/stats",
    path: ["../../wit", "../wit"],
    runtime_path: "cue_sdk::wit_bindgen::rt",
    with: { "cue:job/host@0.1.0": cue_sdk::host },
});

struct Stats;

impl Guest for Stats {
    fn summarize(values: Vec<f64>) -> Option<Summary> {
        let (first, rest) = values.split_first()?;
        let (min, max, sum) =
            rest.iter().fold((*first, *first, *first), |(lo, hi, sum), v| (lo.min(*v), hi.max(*v), sum + v));
        cue_sdk::debug!("summarized {} values", values.len());
        Some(Summary { count: values.len() as u32, mean: sum / values.len() as f64, min, max })
    }
}

export!(Stats);
