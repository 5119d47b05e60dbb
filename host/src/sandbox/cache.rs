//! The on-disk cache of compiled components.
//!
//! Entries are keyed by the component's sha256 (with the float pass's version: what the host
//! did to it before compiling) and the engine's precompile compatibility hash. Deserialising compiled code is trusting it completely, so every entry carries an
//! HMAC-SHA256 tag under a key that only this host knows (a 0600 file beside the cache):
//! an artifact this host did not write — planted, corrupted or truncated — fails the tag
//! check and is recompiled from the component instead of loaded.

use std::fs;
use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::SandboxError;

/// How a component's compiled code was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeSource {
    /// Compiled now from the component.
    Compiled,
    /// Loaded from this host's compiled-code cache.
    Cache,
}

type Tag = Hmac<Sha256>;
const TAG_LEN: usize = 32;

/// Compiled components on disk, authenticated with a host-local key, bounded in size: when
/// the entries pass `max_bytes`, the least recently used are deleted.
pub(crate) struct CodeCache {
    dir: PathBuf,
    max_bytes: u64,
    key: [u8; 32],
    /// Hex of the engine's precompile compatibility hash: part of every entry's name.
    compat: String,
}

impl CodeCache {
    /// Opens (creating if needed) the cache in `dir` for `engine`.
    pub(crate) fn open(dir: &Path, max_bytes: u64, engine: &Engine) -> Result<Self, SandboxError> {
        let io = |source| SandboxError::Cache { path: dir.to_path_buf(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let key = load_or_create_key(&dir.join("cache.key")).map_err(io)?;
        let mut hasher = Sha256Hasher::default();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..12]);
        Ok(CodeCache { dir: dir.to_path_buf(), max_bytes, key, compat })
    }

    fn entry(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}-{}.cwasm", self.compat))
    }

    fn tag(&self, id: &str, artifact: &[u8]) -> Tag {
        let mut mac = Tag::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(self.compat.as_bytes());
        mac.update(artifact);
        mac
    }

    /// The compiled component stored under `key` (the component's sha256, and what the host
    /// did to it before compiling: see `Sandbox::cache_key`), if this host cached it and it is
    /// intact.
    pub(crate) fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let artifact = self.read(key)?;
        // SAFETY: the artifact carries a valid HMAC under this host's secret key, so this
        // host serialised it from a component it compiled with a compatible engine.
        unsafe { Component::deserialize(engine, &artifact) }.ok()
    }

    /// A component this host derived (pre-initialised) and stored under `id`, if intact.
    pub(crate) fn load_derived(&self, id: &str) -> Option<Vec<u8>> {
        self.read(&format!("derived-{id}"))
    }

    /// Stores a component derived from another under `id` (same rules as [`Self::store`]).
    pub(crate) fn store_derived(&self, id: &str, bytes: &[u8]) {
        let id = format!("derived-{id}");
        if let Err(err) = self.write(&id, bytes) {
            tracing::warn!(id, %err, "could not cache a derived component");
        }
    }

    /// The bytes stored under `id`, if their tag checks out.
    fn read(&self, id: &str) -> Option<Vec<u8>> {
        let path = self.entry(id);
        let mut bytes = fs::read(&path).ok()?;
        if bytes.len() < TAG_LEN {
            return None;
        }
        let (tag, artifact) = bytes.split_at(TAG_LEN);
        if self.tag(id, artifact).verify_slice(tag).is_err() {
            tracing::warn!(id, "a cache entry failed its integrity check; recomputing it");
            return None;
        }
        // Mark the entry as recently used, for eviction.
        if let Ok(file) = fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        Some(bytes.split_off(TAG_LEN))
    }

    fn write(&self, id: &str, artifact: &[u8]) -> std::io::Result<()> {
        let tag = self.tag(id, artifact).finalize().into_bytes();
        let path = self.entry(id);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&tag)?;
        file.write_all(artifact)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        self.evict()
    }

    /// Deletes the least recently used entries until the cache holds at most `max_bytes`.
    fn evict(&self) -> std::io::Result<()> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "cwasm") {
                let meta = entry.metadata()?;
                entries.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }

    /// Stores `component` under `key` (as for [`CodeCache::load`]); failures only cost a
    /// recompile later, so they are logged, not returned.
    pub(crate) fn store(&self, key: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(std::io::Error::other)
            .and_then(|artifact| self.write(key, &artifact));
        if let Err(err) = result {
            tracing::warn!(key, %err, "could not cache compiled code");
        }
    }
}

fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(&key)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(key)
}

/// Feeds `Hash` output into SHA-256, to turn wasmtime's compatibility hash into stable bytes.
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        u64::from_le_bytes(self.0.clone().finalize()[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
