//! `roundtrip`: every type `#[cue_sdk::jobs]` supports, passed through identity functions
//! and a few transforms, so the host's tests can check each mapping end to end.

/// Identity and transform functions over every supported type.
#[cue_sdk::jobs]
mod jobs {
    /// A point on a grid.
    #[derive(cue_sdk::Type, Clone, Copy, Debug, PartialEq)]
    pub struct Point {
        /// Horizontal position.
        pub x: i32,
        /// Vertical position.
        pub y: i32,
    }

    /// A primary colour.
    #[derive(cue_sdk::Type, Debug, PartialEq)]
    pub enum Color {
        Red,
        Green,
        /// The last one.
        Blue,
    }

    /// A shape: a variant, some cases with data.
    #[derive(cue_sdk::Type, Debug, PartialEq)]
    pub enum Shape {
        /// A circle of this radius.
        Circle(f64),
        /// A square from the origin to this corner.
        Square(Point),
        Empty,
    }

    /// Everything nested in one record.
    #[derive(cue_sdk::Type, Debug, PartialEq)]
    pub struct Everything {
        pub flag: bool,
        pub color: Color,
        pub shape: Shape,
        pub tags: Vec<String>,
        pub nested: Option<Vec<(u8, Option<Point>)>>,
        pub outcome: Result<u64, String>,
    }

    pub fn echo_bool(v: bool) -> bool {
        v
    }
    pub fn echo_u8(v: u8) -> u8 {
        v
    }
    pub fn echo_u16(v: u16) -> u16 {
        v
    }
    pub fn echo_u32(v: u32) -> u32 {
        v
    }
    pub fn echo_u64(v: u64) -> u64 {
        v
    }
    pub fn echo_s8(v: i8) -> i8 {
        v
    }
    pub fn echo_s16(v: i16) -> i16 {
        v
    }
    pub fn echo_s32(v: i32) -> i32 {
        v
    }
    pub fn echo_s64(v: i64) -> i64 {
        v
    }
    pub fn echo_f32(v: f32) -> f32 {
        v
    }
    pub fn echo_f64(v: f64) -> f64 {
        v
    }
    pub fn echo_char(v: char) -> char {
        v
    }
    pub fn echo_string(v: String) -> String {
        v
    }
    pub fn echo_bytes(v: Vec<u8>) -> Vec<u8> {
        v
    }
    pub fn echo_list(v: Vec<i64>) -> Vec<i64> {
        v
    }
    pub fn echo_option(v: Option<String>) -> Option<String> {
        v
    }
    pub fn echo_nested_option(v: Option<Option<u8>>) -> Option<Option<u8>> {
        v
    }
    pub fn echo_result(v: Result<u32, String>) -> Result<u32, String> {
        v
    }
    pub fn echo_tuple(v: (u8, String, f64)) -> (u8, String, f64) {
        v
    }
    pub fn echo_point(v: Point) -> Point {
        v
    }
    pub fn echo_color(v: Color) -> Color {
        v
    }
    pub fn echo_shape(v: Shape) -> Shape {
        v
    }
    pub fn echo_everything(v: Everything) -> Everything {
        v
    }

    /// The area of a shape.
    pub fn area(shape: Shape) -> f64 {
        match shape {
            Shape::Circle(r) => std::f64::consts::PI * r * r,
            Shape::Square(corner) => f64::from(corner.x) * f64::from(corner.y),
            Shape::Empty => 0.0,
        }
    }

    /// The next colour, wrapping around.
    pub fn next_color(color: Color) -> Color {
        match color {
            Color::Red => Color::Green,
            Color::Green => Color::Blue,
            Color::Blue => Color::Red,
        }
    }

    /// Parses comma-separated numbers.
    pub fn parse(input: String) -> Result<Vec<f64>, String> {
        input
            .split(',')
            .map(|s| s.trim().parse::<f64>().map_err(|e| format!("`{}`: {e}", s.trim())))
            .collect()
    }

    /// `a / b`, none when `b` is zero or the quotient overflows.
    pub fn checked_div(a: i32, b: i32) -> Option<i32> {
        a.checked_div(b)
    }

    /// `Ok(())` or an error: a result without an ok value.
    pub fn check(ok: bool) -> Result<(), String> {
        if ok { Ok(()) } else { Err("not ok".into()) }
    }

    /// Swaps a pair.
    pub fn swap(pair: (String, u32)) -> (u32, String) {
        (pair.1, pair.0)
    }

    /// Moves every point by (`dx`, `dy`).
    pub fn translate(points: Vec<Point>, dx: i32, dy: i32) -> Vec<Point> {
        points.into_iter().map(|p| Point { x: p.x + dx, y: p.y + dy }).collect()
    }

    /// `n` deterministic dice rolls.
    pub fn dice(n: u32) -> Vec<u64> {
        (0..n).map(|_| cue_sdk::random_below(6) + 1).collect()
    }

    /// Counts to `steps`, logging at each level and reporting progress.
    pub fn work(steps: u32) -> u32 {
        cue_sdk::trace!("trace");
        cue_sdk::debug!("debug");
        cue_sdk::warn!("warn");
        cue_sdk::error!("error");
        for done in 1..=steps {
            cue_sdk::progress(u64::from(done), u64::from(steps));
        }
        cue_sdk::info!("worked {steps} steps");
        steps
    }

    /// Panics with `message`: the caller sees a trap carrying it.
    pub fn fail(message: String) -> u32 {
        panic!("{message}")
    }

    /// Not exported: a private helper is ordinary Rust.
    #[allow(dead_code)]
    fn helper() -> u32 {
        7
    }
}
