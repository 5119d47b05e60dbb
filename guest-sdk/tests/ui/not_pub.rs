#[cue_sdk::jobs]
mod jobs {
    #[derive(cue_sdk::Type)]
    struct Hidden {
        pub x: u32,
    }

    #[derive(cue_sdk::Type)]
    pub struct HalfOpen {
        pub x: u32,
        y: u32,
    }

    pub fn use_them(a: Hidden, b: HalfOpen) -> u32 {
        a.x + b.x + b.y
    }
}

fn main() {}
