//! `numeric`: f32 and f64 kernels (matrix multiply, Mandelbrot), written with the Cue SDK; the
//! float benchmarks (docs/PERFORMANCE.md) run them metered, unmetered and natively.

/// Float-heavy kernels whose results are the same bits on every machine.
#[cue_sdk::jobs]
mod jobs {
    /// The sum of the product of two `n`×`n` f32 matrices.
    pub fn matmul_f32(n: u32) -> f32 {
        cue_kernels::matmul_f32(n)
    }

    /// The sum of the product of two `n`×`n` f64 matrices.
    pub fn matmul_f64(n: u32) -> f64 {
        cue_kernels::matmul_f64(n)
    }

    /// Points of a `size`×`size` grid in the Mandelbrot set (256 iterations, f64).
    pub fn mandelbrot(size: u32) -> u32 {
        cue_kernels::mandelbrot(size)
    }
}
