//! `hash`: SHA-256 digests (WIT-first, wit-bindgen).

wit_bindgen::generate!({ world: "cue:examples/hash", path: ["../../wit", "../wit"], generate_all });

struct Hash;

impl Guest for Hash {
    fn sha256_string(text: String) -> String {
        cue_kernels::sha256_hex(text.as_bytes())
    }

    fn sha256_bytes(data: Vec<u8>) -> String {
        cue_kernels::sha256_hex(&data)
    }

    fn sha256_pattern(len: u32) -> String {
        cue_kernels::sha256_pattern_hex(len)
    }
}

export!(Hash);
