#[cue_sdk::jobs]
mod jobs {
    pub fn size(n: usize) -> u32 {
        n as u32
    }

    pub fn borrowed(text: &str) -> u32 {
        text.len() as u32
    }

    pub fn map(m: std::collections::HashMap<String, u32>) -> u32 {
        m.len() as u32
    }

    pub struct NotAType {
        pub x: u32,
    }

    pub fn undeclared(v: NotAType) -> u32 {
        v.x
    }
}

fn main() {}
