//! `cue new`: a job crate that depends on the guest SDK by path, with an example job and a
//! test, ready for `cargo build --release --target wasm32-wasip2`.

use std::path::{Path, PathBuf};

use super::error::AuthoringError;

/// What to scaffold.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The directory to create (it may exist if empty).
    pub path: PathBuf,
    /// The crate name; by default the directory's name.
    pub name: Option<String>,
    /// The guest SDK crate (`guest-sdk/` of a checkout of this repository) the job depends
    /// on by path, so nothing has to be published to a registry.
    pub sdk: PathBuf,
}

/// A scaffolded crate.
#[derive(Clone, Debug)]
pub struct Scaffolded {
    /// The crate name.
    pub name: String,
    /// The crate directory.
    pub dir: PathBuf,
    /// Where `cargo build --release --target wasm32-wasip2` puts the component.
    pub component: PathBuf,
}

/// The guest SDK of the checkout this `cue` was built from.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk")
}

/// Writes a new job crate at `new.path`: `Cargo.toml`, `src/lib.rs` (an example job and its
/// test), `.cargo/config.toml` (WebAssembly SIMD on) and `.gitignore`. Refuses a non-empty
/// directory.
pub fn scaffold(new: &NewJob) -> Result<Scaffolded, AuthoringError> {
    let dir = &new.path;
    let name = match &new.name {
        Some(name) => name.clone(),
        None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    if !valid_crate_name(&name) {
        return Err(AuthoringError::InvalidName(name));
    }
    let sdk = new.sdk.canonicalize().map_err(|_| AuthoringError::SdkNotFound(new.sdk.clone()))?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(AuthoringError::SdkNotFound(sdk));
    }
    if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(AuthoringError::NotEmpty(dir.clone()));
    }
    let (src, cargo_dir) = (dir.join("src"), dir.join(".cargo"));
    for new_dir in [&src, &cargo_dir] {
        std::fs::create_dir_all(new_dir).map_err(AuthoringError::io(new_dir))?;
    }
    let files = [
        (dir.join("Cargo.toml"), cargo_toml(&name, &sdk)),
        (src.join("lib.rs"), lib_rs(&name)),
        (cargo_dir.join("config.toml"), CARGO_CONFIG.to_string()),
        (dir.join(".gitignore"), "/target\n".to_string()),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).map_err(AuthoringError::io(&path))?;
    }
    let component = dir.join("target/wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    Ok(Scaffolded { name, dir: dir.clone(), component })
}

/// The job crate's cargo configuration: WebAssembly SIMD, so LLVM vectorises loops as it
/// does for a native build; every Cue provider runs it, deterministically.
const CARGO_CONFIG: &str = r#"# WebAssembly SIMD: LLVM vectorises loops as it does natively, and every Cue provider runs
# it deterministically (docs/jobs.md in the Cue repository). `cue build` and `cargo build`
# both read this file when run on this crate.
[target.wasm32-wasip2]
rustflags = ["-C", "target-feature=+simd128"]
"#;

fn valid_crate_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    // A JSON string is a valid TOML basic string.
    let sdk = serde_json::to_string(&sdk.to_string_lossy()).expect("a string serialises");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
cue-sdk = {{ path = {sdk} }}

# Small, fast components: see docs/jobs.md in the Cue repository.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A job crate is a workspace of its own, wherever it is created.
[workspace]
"#
    )
}

fn lib_rs(name: &str) -> String {
    let file = name.replace('-', "_");
    format!(
        r#"//! `{name}`: a Cue job. Build it with `cue build` (or `cargo build --release --target
//! wasm32-wasip2`) and try it with
//! `cue run target/wasm32-wasip2/release/{file}.wasm 'greet("world")'`.

/// The jobs of `{name}`: every `pub fn` is an export, typed by its Rust signature.
#[cue_sdk::jobs]
mod jobs {{
    use std::collections::BTreeMap;

    /// A word and how often it occurs.
    #[derive(cue_sdk::Type)]
    pub struct WordCount {{
        /// The word, lowercased.
        pub word: String,
        /// How many times it occurs.
        pub count: u32,
    }}

    /// Greets `name`.
    pub fn greet(name: String) -> String {{
        format!("Hello, {{name}}!")
    }}

    /// Counts the words of `text`, most frequent first.
    pub fn count_words(text: String) -> Vec<WordCount> {{
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for word in text.split_whitespace() {{
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }}
        let mut words: Vec<WordCount> =
            counts.into_iter().map(|(word, count)| WordCount {{ word, count }}).collect();
        words.sort_by_key(|w| std::cmp::Reverse(w.count));
        words
    }}
}}

#[cfg(test)]
mod tests {{
    use super::jobs;

    #[test]
    fn greets() {{
        assert_eq!(jobs::greet("world".into()), "Hello, world!");
    }}

    #[test]
    fn counts_words() {{
        let words = jobs::count_words("b a b".into());
        assert_eq!((words[0].word.as_str(), words[0].count), ("b", 2));
    }}
}}
"#
    )
}
