//! Where a Cue node keeps its files: `--data-dir`, else `$CUE_DATA_DIR`, else the
//! platform's data directory (`~/.local/share/cue` on Linux).

use std::path::{Path, PathBuf};

/// A node's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory given explicitly, or the platform default.
    pub fn resolve(explicit: Option<PathBuf>) -> Self {
        let root = explicit
            .or_else(|| dirs::data_dir().map(|dir| dir.join("cue")))
            .unwrap_or_else(|| PathBuf::from(".cue"));
        DataDir { root }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The compiled-code cache (see `sandbox`).
    pub fn code_cache(&self) -> PathBuf {
        self.root.join("cache").join("code")
    }

    /// The content-addressed blob store of components (see `store::BlobStore`).
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The registry database: component manifests, name owners, known peers (see
    /// `store::Registry`).
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.sqlite3")
    }

    /// The latest signed resource manifest, as written by `cue benchmark`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.cbor")
    }
}
