#[cue_sdk::jobs]
mod jobs {
    fn private_only(n: u32) -> u32 {
        n
    }
}

fn main() {}
