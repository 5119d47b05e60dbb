//! `hash`: SHA-256 digests, written with the Cue SDK.

/// SHA-256 digests, as lowercase hex.
#[cue_sdk::jobs]
mod jobs {
    /// SHA-256 of the UTF-8 bytes of `text`.
    pub fn sha256_string(text: String) -> String {
        cue_kernels::sha256_hex(text.as_bytes())
    }

    /// SHA-256 of `data`.
    pub fn sha256_bytes(data: Vec<u8>) -> String {
        cue_kernels::sha256_hex(&data)
    }

    /// SHA-256 of `len` bytes of the pattern `i mod 251`: a CPU-bound benchmark without a
    /// large input.
    pub fn sha256_pattern(len: u32) -> String {
        cue_kernels::sha256_pattern_hex(len)
    }
}
