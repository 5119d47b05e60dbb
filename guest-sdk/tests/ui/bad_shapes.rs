#[cue_sdk::jobs]
mod jobs {
    #[derive(cue_sdk::Type)]
    pub enum Shape {
        Rect { w: f64, h: f64 },
        Pair(f64, f64),
    }

    #[derive(cue_sdk::Type)]
    pub struct Generic<T> {
        pub value: T,
    }

    pub fn area(shape: Shape) -> f64 {
        let _ = shape;
        0.0
    }

    pub fn unit(v: ()) -> u32 {
        let _ = v;
        0
    }
}

fn main() {}
