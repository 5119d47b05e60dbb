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

    /// The local API's bearer token: the one in `api.token` when that file holds a usable
    /// token (hex digits only, [`MIN_API_TOKEN_DIGITS`] to [`MAX_API_TOKEN_DIGITS`] of them,
    /// surrounding whitespace ignored; on Unix, a file only its owner may read or write), else
    /// a fresh one (32 random bytes, 64 hex digits) written atomically in its place, mode 0600;
    /// [`ApiToken::origin`] says which, and why a file was replaced. An error (the file or
    /// the data dir cannot be read or written) means there is no token to serve with.
    pub fn api_token(&self) -> std::io::Result<ApiToken> {
        let path = self.api_token_path();
        let origin = match read_token(&path)? {
            None => TokenOrigin::Created,
            Some(Ok(secret)) => return Ok(ApiToken { secret, origin: TokenOrigin::Kept }),
            Some(Err(unusable)) => TokenOrigin::Replaced(unusable),
        };
        std::fs::create_dir_all(&self.root)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let secret = hex::encode(bytes);
        write_private_atomically(&path, secret.as_bytes())?;
        Ok(ApiToken { secret, origin })
    }
}

/// Fewest hex digits an API token may have: 32, i.e. 128 bits, beyond any guessing through a
/// loopback socket. A token file with fewer is replaced (see [`DataDir::api_token`]).
pub const MIN_API_TOKEN_DIGITS: usize = 32;

/// Most hex digits an API token may have: 128 (512 bits). A longer file is not a token, and is
/// replaced without being read past [`TOKEN_FILE_READ_LIMIT`] bytes.
pub const MAX_API_TOKEN_DIGITS: usize = 128;

/// Bytes of `api.token` read at most: the longest token with room for whitespace around it.
const TOKEN_FILE_READ_LIMIT: u64 = 1024;

/// The local API's bearer token and where it came from. `Debug` does not show it.
#[derive(Clone)]
pub struct ApiToken {
    /// The token: hex digits, [`MIN_API_TOKEN_DIGITS`] to [`MAX_API_TOKEN_DIGITS`] of them.
    secret: String,
    /// Whether it was kept, created or replaced a file that held no usable token.
    origin: TokenOrigin,
}

impl ApiToken {
    /// The token, as a request's `Authorization: Bearer` gives it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether the token file was kept, created or replaced (and why).
    pub fn origin(&self) -> &TokenOrigin {
        &self.origin
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken").field("origin", &self.origin).finish_non_exhaustive()
    }
}

/// How [`DataDir::api_token`] came by the token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOrigin {
    /// `api.token` held a usable token; it is used as it is.
    Kept,
    /// There was no `api.token`; a fresh token was written.
    Created,
    /// `api.token` held no usable token; a fresh one was written in its place.
    Replaced(UnusableToken),
}

/// Why the token in an existing `api.token` was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnusableToken {
    /// Nothing but whitespace.
    #[error("it is empty")]
    Empty,
    /// Too few hex digits to be unguessable.
    #[error("it holds {digits} hex digits, fewer than the {MIN_API_TOKEN_DIGITS} (128 bits) required")]
    Short {
        /// How many it holds.
        digits: usize,
    },
    /// More than [`MAX_API_TOKEN_DIGITS`] characters.
    #[error("it is longer than {MAX_API_TOKEN_DIGITS} hex digits")]
    Long,
    /// Characters other than hex digits.
    #[error("it holds characters other than hex digits")]
    NotHex,
    /// Others than the owner may read or write it, so it may be known to them.
    #[error("its mode {mode:o} lets others than its owner read or write it")]
    Exposed {
        /// Its permission bits.
        mode: u32,
    },
}

/// The token in `path`: `None` when there is no such file, `Some(Err)` when it holds no usable
/// token.
fn read_token(path: &Path) -> std::io::Result<Option<Result<String, UnusableToken>>> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Ok(Some(Err(UnusableToken::Exposed { mode })));
        }
    }
    let mut bytes = Vec::new();
    file.take(TOKEN_FILE_READ_LIMIT + 1).read_to_end(&mut bytes)?;
    Ok(Some(usable_token(&bytes)))
}

/// The token `bytes` hold, if it is one (see [`DataDir::api_token`]).
fn usable_token(bytes: &[u8]) -> Result<String, UnusableToken> {
    let token = bytes.trim_ascii();
    if token.is_empty() {
        return Err(UnusableToken::Empty);
    }
    if token.len() > MAX_API_TOKEN_DIGITS {
        return Err(UnusableToken::Long);
    }
    if !token.iter().all(u8::is_ascii_hexdigit) {
        return Err(UnusableToken::NotHex);
    }
    if token.len() < MIN_API_TOKEN_DIGITS {
        return Err(UnusableToken::Short { digits: token.len() });
    }
    Ok(String::from_utf8_lossy(token).into_owned())
}

/// Writes `contents` to `path` so that a reader sees the old file or the whole new one, never
/// a part: into a new temporary file beside it (mode 0600 from its creation), synced, then
/// renamed over `path`, and the directory synced so the rename survives a crash.
fn write_private_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let written = write_private(&temporary, contents).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir() -> (tempfile::TempDir, DataDir) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let data_dir = DataDir::resolve(Some(dir.path().join("data")));
        (dir, data_dir)
    }

    /// The names in the data dir: nothing but what the node means to keep.
    fn files(data_dir: &DataDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(data_dir.root())
            .expect("the data dir")
            .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).expect("the file").permissions().mode() & 0o777
    }

    #[test]
    fn a_missing_token_is_created_as_64_hex_digits_only_its_owner_can_read() {
        let (_dir, data_dir) = data_dir();
        let token = data_dir.api_token().expect("a token");
        assert_eq!(token.origin(), &TokenOrigin::Created);
        assert_eq!(token.secret().len(), 64);
        assert!(token.secret().bytes().all(|b| b.is_ascii_hexdigit()), "{}", token.secret());
        let path = data_dir.api_token_path();
        assert_eq!(std::fs::read_to_string(&path).expect("the file"), token.secret());
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(files(&data_dir), ["api.token"], "no temporary file is left behind");
        let again = data_dir.api_token().expect("the token");
        assert_eq!((again.secret(), again.origin()), (token.secret(), &TokenOrigin::Kept));
    }

    #[test]
    fn a_usable_token_file_is_kept_as_it_is() {
        let (_dir, data_dir) = data_dir();
        std::fs::create_dir_all(data_dir.root()).expect("the data dir");
        let mine = "0123456789ABCDEFabcdef0123456789";
        write_private(&data_dir.api_token_path(), format!("  {mine}\n").as_bytes()).expect("written");
        let token = data_dir.api_token().expect("the token");
        assert_eq!((token.secret(), token.origin()), (mine, &TokenOrigin::Kept));
        assert!(!format!("{token:?}").contains(mine), "Debug does not show the token: {token:?}");
    }

    #[test]
    fn an_empty_short_long_or_non_hex_token_file_is_replaced_by_a_fresh_token_saying_why() {
        let cases: [(&[u8], UnusableToken); 6] = [
            (b"", UnusableToken::Empty),
            (b" \n", UnusableToken::Empty),
            (b"abc", UnusableToken::Short { digits: 3 }),
            (&[b'a'; 31], UnusableToken::Short { digits: 31 }),
            (&[b'a'; 129], UnusableToken::Long),
            (b"0123456789abcdef0123456789abcdeg", UnusableToken::NotHex),
        ];
        for (contents, why) in cases {
            let (_dir, data_dir) = data_dir();
            std::fs::create_dir_all(data_dir.root()).expect("the data dir");
            let path = data_dir.api_token_path();
            write_private(&path, contents).expect("written");
            let token = data_dir.api_token().expect("a token");
            assert_eq!(token.origin(), &TokenOrigin::Replaced(why.clone()), "{contents:?}");
            assert_eq!(token.secret().len(), 64);
            assert_eq!(std::fs::read_to_string(&path).expect("the file"), token.secret(), "{why}");
            #[cfg(unix)]
            assert_eq!(mode(&path), 0o600, "{why}");
            assert_eq!(files(&data_dir), ["api.token"], "{why}: no temporary file is left behind");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_may_read_is_replaced_by_one_only_its_owner_can() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, data_dir) = data_dir();
        std::fs::create_dir_all(data_dir.root()).expect("the data dir");
        let path = data_dir.api_token_path();
        let exposed = "0123456789abcdef0123456789abcdef";
        std::fs::write(&path, exposed).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let token = data_dir.api_token().expect("a token");
        assert_eq!(token.origin(), &TokenOrigin::Replaced(UnusableToken::Exposed { mode: 0o644 }));
        assert_ne!(token.secret(), exposed);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_token_file_that_cannot_be_replaced_is_an_error_not_a_weak_token() {
        let (_dir, data_dir) = data_dir();
        std::fs::create_dir_all(data_dir.api_token_path().join("in-the-way")).expect("a directory");
        let error = data_dir.api_token().expect_err("no token to serve with");
        assert!(data_dir.api_token_path().is_dir(), "{error}");
        assert_eq!(files(&data_dir), ["api.token"], "no temporary file is left behind");
    }
}
