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

    /// The event log and ledger database (see `store::LedgerStore`).
    pub fn ledger(&self) -> PathBuf {
        self.root.join("ledger.sqlite3")
    }

    /// The agent's key file (libp2p protobuf encoding, mode 0600).
    pub fn identity_key(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// The bearer token of the local API (mode 0600).
    pub fn api_token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// Where a running node's API listens (written while it runs).
    pub fn api_endpoint(&self) -> PathBuf {
        self.root.join("api.json")
    }

    /// The API token, created (32 random bytes, hex, mode 0600) if there is none yet.
    pub fn api_token(&self) -> std::io::Result<String> {
        let path = self.api_token_path();
        match std::fs::read_to_string(&path) {
            Ok(token) => return Ok(token.trim().to_owned()),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        std::fs::create_dir_all(&self.root)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let token = hex::encode(bytes);
        write_private(&path, token.as_bytes())?;
        Ok(token)
    }
}

/// Writes a new file readable and writable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
