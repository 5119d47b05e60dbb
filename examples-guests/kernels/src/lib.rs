//! Compute kernels of the example jobs, in plain portable Rust.
//!
//! The example guests call these, and the host's benchmarks compile the very same code
//! natively, so "metered wasm vs native" compares like with like.

/// The n-th Fibonacci number, iteratively; wraps past `fib(93)`.
pub fn fib(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let next = a.wrapping_add(b);
        a = b;
        b = next;
    }
    a
}

/// SHA-256 (FIPS 180-4), a straightforward portable implementation.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    block_len: usize,
    total_len: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Default for Sha256 {
    fn default() -> Self {
        Sha256 {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            block_len: 0,
            total_len: 0,
        }
    }
}

impl Sha256 {
    /// Feeds bytes into the hash.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total_len = self.total_len.wrapping_add(data.len() as u64);
        if self.block_len > 0 {
            let take = (64 - self.block_len).min(data.len());
            self.block[self.block_len..self.block_len + take].copy_from_slice(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == 64 {
                let block = self.block;
                compress(&mut self.state, &block);
                self.block_len = 0;
            }
        }
        let mut chunks = data.chunks_exact(64);
        for chunk in &mut chunks {
            compress(&mut self.state, chunk.try_into().expect("64-byte chunk"));
        }
        let rest = chunks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.block_len += rest.len();
    }

    /// Finishes the hash and returns the 32-byte digest.
    pub fn finish(mut self) -> [u8; 32] {
        let bit_len = self.total_len.wrapping_mul(8);
        let mut pad = [0u8; 64];
        pad[0] = 0x80;
        let pad_len = if self.block_len < 56 { 56 - self.block_len } else { 120 - self.block_len };
        self.update(&pad[..pad_len]);
        self.update(&bit_len.to_be_bytes());
        let mut out = [0u8; 32];
        for (word, bytes) in self.state.iter().zip(out.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 64];
    for (i, bytes) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// SHA-256 of `data` as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut hasher = Sha256::default();
    hasher.update(data);
    hex(&hasher.finish())
}

/// SHA-256 of `len` bytes of the pattern `i mod 251`, as lowercase hex, hashed in 4 KiB
/// pieces without allocating the whole input.
pub fn sha256_pattern_hex(len: u32) -> String {
    let mut piece = [0u8; 4096];
    let mut hasher = Sha256::default();
    let mut offset = 0u32;
    while offset < len {
        let n = (len - offset).min(piece.len() as u32);
        for (i, byte) in piece[..n as usize].iter_mut().enumerate() {
            *byte = ((offset as usize + i) % 251) as u8;
        }
        hasher.update(&piece[..n as usize]);
        offset += n;
    }
    hex(&hasher.finish())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out
}

/// One body of the n-body system.
#[derive(Clone, Copy)]
struct Body {
    pos: [f64; 3],
    vel: [f64; 3],
    mass: f64,
}

const SOLAR_MASS: f64 = 4.0 * core::f64::consts::PI * core::f64::consts::PI;
const DAYS_PER_YEAR: f64 = 365.24;

fn jovian_system() -> [Body; 5] {
    let body = |pos: [f64; 3], vel: [f64; 3], mass: f64| Body {
        pos,
        vel: [vel[0] * DAYS_PER_YEAR, vel[1] * DAYS_PER_YEAR, vel[2] * DAYS_PER_YEAR],
        mass: mass * SOLAR_MASS,
    };
    let mut bodies = [
        body([0.0; 3], [0.0; 3], 1.0),
        body(
            [4.841_431_442_464_72, -1.160_320_044_027_428_4, -0.103_622_044_471_123_1],
            [0.001_660_076_642_744_037, 0.007_699_011_184_197_404, -0.000_069_046_000_000_000_9],
            0.000_954_791_938_424_326_6,
        ),
        body(
            [8.343_366_718_244_58, 4.124_798_564_124_305, -0.403_523_417_114_321_4],
            [-0.002_767_425_107_268_624, 0.004_998_528_012_349_172, 0.000_023_041_729_757_376_4],
            0.000_285_885_980_666_130_8,
        ),
        body(
            [12.894_369_562_139_13, -15.111_151_401_698_63, -0.223_307_578_892_655_8],
            [0.002_964_601_375_647_616, 0.002_378_471_739_594_809_5, -0.000_029_658_956_854_023_8],
            0.000_043_662_440_433_515_6,
        ),
        body(
            [15.379_697_114_850_917, -25.919_314_609_987_964, 0.179_258_772_950_371_2],
            [0.002_680_677_724_903_893_2, 0.001_628_241_700_382_422_9, -0.000_095_159_225_451_971_6],
            0.000_051_513_890_204_661_4,
        ),
    ];
    let mut momentum = [0.0; 3];
    for b in &bodies {
        for k in 0..3 {
            momentum[k] += b.vel[k] * b.mass;
        }
    }
    for k in 0..3 {
        bodies[0].vel[k] = -momentum[k] / SOLAR_MASS;
    }
    bodies
}

fn advance(bodies: &mut [Body; 5], dt: f64) {
    for i in 0..bodies.len() {
        for j in i + 1..bodies.len() {
            let d = [
                bodies[i].pos[0] - bodies[j].pos[0],
                bodies[i].pos[1] - bodies[j].pos[1],
                bodies[i].pos[2] - bodies[j].pos[2],
            ];
            let dist2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            let mag = dt / (dist2 * libm_sqrt(dist2));
            let (mi, mj) = (bodies[i].mass, bodies[j].mass);
            for k in 0..3 {
                bodies[i].vel[k] -= d[k] * mj * mag;
                bodies[j].vel[k] += d[k] * mi * mag;
            }
        }
    }
    for b in bodies.iter_mut() {
        for k in 0..3 {
            b.pos[k] += dt * b.vel[k];
        }
    }
}

fn energy(bodies: &[Body; 5]) -> f64 {
    let mut e = 0.0;
    for i in 0..bodies.len() {
        let b = &bodies[i];
        e += 0.5 * b.mass * (b.vel[0] * b.vel[0] + b.vel[1] * b.vel[1] + b.vel[2] * b.vel[2]);
        for other in &bodies[i + 1..] {
            let d = [b.pos[0] - other.pos[0], b.pos[1] - other.pos[1], b.pos[2] - other.pos[2]];
            e -= b.mass * other.mass / libm_sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        }
    }
    e
}

/// IEEE 754 square root is correctly rounded, so wasm `f64.sqrt` and the native instruction
/// agree bit for bit: the result does not depend on the machine.
#[inline]
fn libm_sqrt(x: f64) -> f64 {
    x.sqrt()
}

/// Energy of the Jovian system after `steps` steps of 0.01; `on_progress(done)` is called
/// every `progress_every` steps.
pub fn nbody_energy_after(steps: u32, progress_every: u32, mut on_progress: impl FnMut(u32)) -> f64 {
    let mut bodies = jovian_system();
    for step in 0..steps {
        advance(&mut bodies, 0.01);
        if progress_every > 0 && (step + 1) % progress_every == 0 {
            on_progress(step + 1);
        }
    }
    energy(&bodies)
}

/// `n`×`n` matrices `a` (`a[i][j] = (i + 2j) mod 7 - 3`, scaled by 1/8) and `b`
/// (`b[i][j] = (3i + j) mod 5 - 2`, scaled by 1/4): the product's sum, in `T`'s arithmetic.
/// The same correctly rounded operations in the same order on every machine, so wasm and
/// native agree bit for bit.
fn matmul_sum<T>(n: u32, from: impl Fn(i32) -> T, scale_a: T, scale_b: T) -> T
where
    T: Copy + Default + core::ops::Add<Output = T> + core::ops::Mul<Output = T>,
{
    let n = n as usize;
    let a: Vec<T> = (0..n * n).map(|k| from(((k / n + 2 * (k % n)) % 7) as i32 - 3) * scale_a).collect();
    let b: Vec<T> = (0..n * n).map(|k| from(((3 * (k / n) + k % n) % 5) as i32 - 2) * scale_b).collect();
    let mut c = vec![T::default(); n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] = c[i * n + j] + aik * b[k * n + j];
            }
        }
    }
    c.iter().fold(T::default(), |sum, &x| sum + x)
}

/// The sum of the product of two `n`×`n` f32 matrices (see [`matmul_sum`]).
pub fn matmul_f32(n: u32) -> f32 {
    matmul_sum(n, |x| x as f32, 0.125, 0.25)
}

/// The sum of the product of two `n`×`n` f64 matrices (see [`matmul_sum`]).
pub fn matmul_f64(n: u32) -> f64 {
    matmul_sum(n, |x| x as f64, 0.125, 0.25)
}

/// How many points of a `size`×`size` grid over [-2, 0.5]×[-1.25, 1.25] stay within radius 2
/// for 256 iterations of z² + c (f64). Each step is correctly rounded IEEE arithmetic, so wasm
/// and native agree.
pub fn mandelbrot(size: u32) -> u32 {
    let mut inside = 0;
    for y in 0..size {
        let ci = -1.25 + 2.5 * f64::from(y) / f64::from(size);
        for x in 0..size {
            let cr = -2.0 + 2.5 * f64::from(x) / f64::from(size);
            let (mut zr, mut zi) = (0.0f64, 0.0f64);
            let mut escaped = false;
            for _ in 0..256 {
                let (zr2, zi2) = (zr * zr, zi * zi);
                if zr2 + zi2 > 4.0 {
                    escaped = true;
                    break;
                }
                zi = 2.0 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
            }
            inside += u32::from(!escaped);
        }
    }
    inside
}
