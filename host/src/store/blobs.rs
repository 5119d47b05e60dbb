//! The content-addressed blob store: component bytes in files named by their SHA-256, written
//! so that a blob is either whole under its name or absent, under a total cap.
//!
//! Layout: `<dir>/<first 2 hex>/<64 hex>` for each blob, and `<dir>/tmp/` for writes in
//! progress. A write goes to a new file in `tmp/`, is fsynced, renamed under its hash and the
//! directory fsynced, so a crash never leaves a half-written blob under a hash. Temporary files
//! a crash left behind are removed by the next [`BlobStore::open`] once an hour old.
//!
//! The cap (`blob_space.rs`): the stored blobs and the bytes promised to writes in progress
//! stay within `max_total_bytes`. A write promises its size before its first byte (a transfer:
//! its declared size); when that does not fit, the least recently used blobs go first, except
//! those the [`Keep`] given with [`BlobStore::keeping`] names and those being read; when even
//! that is not enough the write is refused with [`BlobError::StoreFull`] and nothing is
//! evicted. A use is a read ([`BlobStore::get`], which also renews the file's modification
//! time, the order of use a reopened store starts from), a [`BlobStore::touch`] or a write.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Keep;
use super::blob_space::{Reservation, Space};
use crate::crypto::{Digest, IncrementalDigest};

/// Age after which a temporary file is taken for a crash's leftover (a live transfer writes
/// to its file more often than this).
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Why a blob was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Bigger than the store's limit.
    #[error("blob of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Bytes given or declared.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes do not have the expected hash.
    #[error("blob hash mismatch: expected {expected}, received {actual}")]
    HashMismatch {
        /// The hash asked for.
        expected: Digest,
        /// The hash of the bytes received.
        actual: Digest,
    },
    /// More or fewer bytes arrived than were declared.
    #[error("blob declared as {declared} bytes, but {received} arrived")]
    SizeMismatch {
        /// The size declared when the transfer began.
        declared: u64,
        /// Bytes received (so far, if too many).
        received: u64,
    },
    /// The store is full of blobs it must keep (or is reading, or is receiving): a new blob
    /// would take it past its total cap.
    #[error(
        "the blob store is full: {size} more bytes do not fit in its limit of {limit} bytes, \
         {held} of which hold components this node must keep, is reading or is receiving"
    )]
    StoreFull {
        /// Bytes the new blob needs.
        size: u64,
        /// Bytes that could not be evicted.
        held: u64,
        /// The store's total cap.
        limit: u64,
    },
    /// A file-system operation failed.
    #[error("blob store: cannot {what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BlobError {
    let path = path.to_path_buf();
    move |source| BlobError::Io { what, path, source }
}

/// The default cap on a node's blob store: 4 GiB, 64 components of the sandbox's largest
/// (64 MiB). `cue node --max-blob-store BYTES` sets another.
pub const DEFAULT_MAX_BLOB_STORE_BYTES: u64 = 4 << 30;

/// Blobs on disk, each at most `max_blob_bytes` and all together at most `max_total_bytes`,
/// named by their SHA-256. Clones share the store (and its cap).
///
/// ```
/// use cue_host::store::{BlobError, BlobStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let blobs = BlobStore::open(dir.path(), 1 << 20, 64 << 20).unwrap();
/// let digest = blobs.put(b"component bytes").unwrap();
/// assert_eq!(blobs.get(&digest).unwrap().as_deref(), Some(&b"component bytes"[..]));
///
/// // From the network: size declared up front, chunks as they arrive, checked at the end.
/// let mut writer = blobs.writer(digest, 15).unwrap();
/// writer.write(b"component ").unwrap();
/// writer.write(b"bytes").unwrap();
/// writer.finish().unwrap();
/// assert!(matches!(blobs.writer(digest, 2 << 20), Err(BlobError::TooLarge { .. })));
/// ```
#[derive(Clone)]
pub struct BlobStore {
    dir: PathBuf,
    max_blob_bytes: u64,
    /// What the store holds against its cap, shared by clones.
    pub(super) space: Arc<Space>,
    /// What eviction must leave; without it every blob may go.
    keep: Option<Arc<dyn Keep>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("dir", &self.dir)
            .field("max_blob_bytes", &self.max_blob_bytes)
            .field("max_total_bytes", &self.space.max_total_bytes())
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens (creating if needed) the store in `dir`, removing stale temporary files, with
    /// blobs of at most `max_blob_bytes` and at most `max_total_bytes` in all. A store found
    /// over its cap (a lower cap than before) is brought under it by the next write.
    pub fn open(dir: &Path, max_blob_bytes: u64, max_total_bytes: u64) -> Result<BlobStore, BlobError> {
        fs::create_dir_all(dir.join("tmp")).map_err(io_error("create", &dir.join("tmp")))?;
        let found = scan(dir)?;
        let space = Arc::new(Space::new(max_total_bytes, found));
        let store = BlobStore { dir: dir.to_path_buf(), max_blob_bytes, space, keep: None };
        store.remove_stale_temp_files();
        Ok(store)
    }

    /// The store, never evicting the blobs `keep` names.
    pub fn keeping(self, keep: Arc<dyn Keep>) -> BlobStore {
        BlobStore { keep: Some(keep), ..self }
    }

    /// The largest blob accepted, in bytes.
    pub fn max_blob_bytes(&self) -> u64 {
        self.max_blob_bytes
    }

    /// The cap on all blobs together, in bytes.
    pub fn max_total_bytes(&self) -> u64 {
        self.space.max_total_bytes()
    }

    /// Bytes of the blobs stored now.
    pub fn stored_bytes(&self) -> u64 {
        self.space.stored()
    }

    /// Where the blob with this hash is (or would be) stored.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    /// Whether a blob with this hash is stored (not re-verified: see [`BlobStore::get`]).
    pub fn has(&self, digest: &Digest) -> bool {
        self.space.size(digest).is_some()
    }

    /// The size of the stored blob, if any.
    pub fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        Ok(self.space.size(digest))
    }

    /// The size of the stored blob, if any, counting a use of it: a blob about to be read
    /// (a component about to be loaded) is the last the cap evicts.
    pub fn touch(&self, digest: &Digest) -> Option<u64> {
        self.space.touch(digest)
    }

    /// Stores `bytes`, returning their hash. Storing a blob again is harmless (the file is
    /// replaced whole, which also repairs a corrupt copy).
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, BlobError> {
        self.check_size(bytes.len() as u64)?;
        let digest = Digest::of(bytes);
        self.install(bytes, &digest)?;
        Ok(digest)
    }

    /// Stores `bytes` if they are at most the limit and hash to `expected`.
    pub fn put_expected(&self, bytes: &[u8], expected: &Digest) -> Result<(), BlobError> {
        self.check_size(bytes.len() as u64)?;
        let actual = Digest::of(bytes);
        if actual != *expected {
            return Err(BlobError::HashMismatch { expected: *expected, actual });
        }
        self.install(bytes, expected)
    }

    fn install(&self, bytes: &[u8], digest: &Digest) -> Result<(), BlobError> {
        let reservation = self.reserve(digest, bytes.len() as u64)?;
        let mut temp = TempFile::create(&self.tmp_dir())?;
        temp.file.write_all(bytes).map_err(io_error("write", &temp.path))?;
        temp.commit(&self.path(digest))?;
        reservation.stored(bytes.len() as u64);
        Ok(())
    }

    /// Promises `size` bytes to the blob `digest`, evicting what the cap rule allows when they
    /// do not fit (see the module docs).
    fn reserve(&self, digest: &Digest, size: u64) -> Result<Reservation, BlobError> {
        if let Some(reservation) = self.space.try_reserve(digest, size) {
            return Ok(reservation);
        }
        let kept = match &self.keep {
            None => Some(HashSet::new()),
            Some(keep) => keep
                .components()
                .inspect_err(|e| tracing::error!("cannot tell which blobs to keep, so none is evicted: {e}"))
                .ok(),
        };
        self.space.reserve_evicting(digest, size, kept.as_ref(), |victim| self.remove_file(victim))
    }

    /// The blob with this hash, re-verified; it is not evicted while being read, and the read
    /// counts as a use (renewing the file's modification time). A stored file that does not
    /// match its hash (or is over the limit) is logged, removed and reported as absent.
    pub fn get(&self, digest: &Digest) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(_reading) = self.space.start_read(digest) else { return Ok(None) };
        let path = self.path(digest);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.space.forget(digest);
                return Ok(None);
            }
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        let size = file.metadata().map_err(io_error("read", &path))?.len();
        if size > self.max_blob_bytes {
            self.discard(digest, "it is larger than the blob limit");
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(io_error("read", &path))?;
        if Digest::of(&bytes) != *digest {
            self.discard(digest, "its content does not match its hash");
            return Ok(None);
        }
        if let Err(err) = file.set_modified(SystemTime::now()) {
            tracing::debug!(%digest, %err, "could not record a blob's use on disk");
        }
        Ok(Some(bytes))
    }

    fn discard(&self, digest: &Digest, reason: &str) {
        tracing::warn!(%digest, reason, "removing a corrupt blob");
        self.space.forget(digest);
        if let Err(err) = fs::remove_file(self.path(digest)) {
            tracing::warn!(%digest, %err, "could not remove a corrupt blob");
        }
    }

    /// Removes the blob with this hash; `false` if there was none.
    pub fn remove(&self, digest: &Digest) -> Result<bool, BlobError> {
        let held = self.space.size(digest).is_some();
        self.space.forget(digest);
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(held),
            Err(e) => Err(io_error("remove", &path)(e)),
        }
    }

    /// Removes an evicted blob's file (already gone is fine).
    fn remove_file(&self, digest: &Digest) -> Result<(), BlobError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Every stored blob's hash and size, by hash.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>, BlobError> {
        Ok(self.space.list())
    }

    /// Starts receiving the blob `expected` of `declared_size` bytes in chunks, refusing a
    /// declared size over the limit, or one the cap cannot make room for, before anything is
    /// written. The declared size counts against the cap until the writer finishes or drops.
    pub fn writer(&self, expected: Digest, declared_size: u64) -> Result<BlobWriter, BlobError> {
        self.check_size(declared_size)?;
        let reservation = self.reserve(&expected, declared_size)?;
        let temp = TempFile::create(&self.tmp_dir())?;
        Ok(BlobWriter {
            temp,
            reservation,
            target: self.path(&expected),
            expected,
            declared_size,
            received: 0,
            digest: IncrementalDigest::default(),
        })
    }

    fn check_size(&self, size: u64) -> Result<(), BlobError> {
        if size > self.max_blob_bytes {
            return Err(BlobError::TooLarge { size, limit: self.max_blob_bytes });
        }
        Ok(())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Removes temporary files not written to for [`STALE_TEMP_AGE`]: what crashes left.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let modified = entry.metadata().and_then(|meta| meta.modified());
            let stale = modified.is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age > STALE_TEMP_AGE));
            if stale && let Err(err) = fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), %err, "could not remove a stale blob file");
            }
        }
    }
}

/// A blob being received in chunks, from [`BlobStore::writer`].
///
/// Nothing appears under the blob's hash until [`BlobWriter::finish`] has checked the size
/// and hash; dropping an unfinished writer removes what it wrote and gives back its room.
pub struct BlobWriter {
    temp: TempFile,
    /// Its declared size, counted against the store's cap.
    reservation: Reservation,
    /// Where the blob goes once checked.
    target: PathBuf,
    expected: Digest,
    declared_size: u64,
    received: u64,
    /// Hash of what was received so far.
    digest: IncrementalDigest,
}

impl BlobWriter {
    /// Appends the next chunk, refusing one that takes the blob past its declared size.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let received = self.received.saturating_add(chunk.len() as u64);
        if received > self.declared_size {
            return Err(BlobError::SizeMismatch { declared: self.declared_size, received });
        }
        self.temp.file.write_all(chunk).map_err(io_error("write", &self.temp.path))?;
        self.digest.update(chunk);
        self.received = received;
        Ok(())
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Checks that exactly the declared size arrived with the expected hash, then stores the
    /// blob under its hash. On an error nothing is stored.
    pub fn finish(self) -> Result<Digest, BlobError> {
        if self.received != self.declared_size {
            return Err(BlobError::SizeMismatch { declared: self.declared_size, received: self.received });
        }
        let actual = self.digest.finish();
        if actual != self.expected {
            return Err(BlobError::HashMismatch { expected: self.expected, actual });
        }
        self.temp.commit(&self.target)?;
        self.reservation.stored(self.received);
        Ok(actual)
    }
}

/// Every blob file under `dir` (hash, size, modification time). Files not named like blobs
/// are skipped.
fn scan(dir: &Path) -> Result<Vec<(Digest, u64, SystemTime)>, BlobError> {
    let mut blobs = Vec::new();
    for shard in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let shard = shard.map_err(io_error("list", dir))?.path();
        if shard.file_name().is_none_or(|n| n.len() != 2) || !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard).map_err(io_error("list", &shard))? {
            let entry = entry.map_err(io_error("list", &shard))?;
            let digest = entry.file_name().to_str().and_then(Digest::from_hex);
            let Some(digest) = digest.filter(|d| blob_path(dir, d) == entry.path()) else { continue };
            let meta = entry.metadata().map_err(io_error("read", &entry.path()))?;
            blobs.push((digest, meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        }
    }
    Ok(blobs)
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.to_string();
    dir.join(&hex[..2]).join(hex)
}

/// A file in the store's `tmp/`, removed on drop unless committed under its final name.
struct TempFile {
    file: File,
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Creates a new, randomly named file in `dir`.
    fn create(dir: &Path) -> Result<TempFile, BlobError> {
        let random = crate::crypto::unique_bytes::<8>()
            .map_err(|e| io_error("name a file in", dir)(io::Error::other(e)))?;
        let path = dir.join(format!("{}.part", hex::encode(random)));
        let file =
            File::options().write(true).create_new(true).open(&path).map_err(io_error("create", &path))?;
        Ok(TempFile { file, path, committed: false })
    }

    /// Flushes the file to disk and renames it to `target`, durably.
    fn commit(mut self, target: &Path) -> Result<(), BlobError> {
        self.file.sync_all().map_err(io_error("sync", &self.path))?;
        let shard = target.parent().unwrap_or(target);
        fs::create_dir_all(shard).map_err(io_error("create", shard))?;
        fs::rename(&self.path, target).map_err(io_error("store", target))?;
        self.committed = true;
        sync_dir(shard).map_err(io_error("sync", shard))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Makes a rename in `dir` durable (on Unix a directory is fsynced like a file).
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1024;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs"), LIMIT, 1 << 20).unwrap();
        (dir, store)
    }

    fn temp_files(store: &BlobStore) -> usize {
        fs::read_dir(store.tmp_dir()).unwrap().count()
    }

    #[test]
    fn blobs_are_stored_under_their_hash() {
        let (dir, store) = store();
        let digest = store.put(b"component").unwrap();
        assert_eq!(digest, Digest::of(b"component"));
        let hex = digest.to_string();
        assert_eq!(store.path(&digest), dir.path().join("blobs").join(&hex[..2]).join(&hex));
        assert!(store.has(&digest));
        assert_eq!(store.size(&digest).unwrap(), Some(9));
        assert_eq!(store.get(&digest).unwrap().as_deref(), Some(&b"component"[..]));
        assert_eq!(store.put(b"component").unwrap(), digest, "storing again is harmless");
        let other = Digest::of(b"absent");
        assert!(!store.has(&other));
        assert_eq!((store.size(&other).unwrap(), store.get(&other).unwrap()), (None, None));
        assert_eq!(temp_files(&store), 0);
    }

    #[test]
    fn a_blob_must_match_its_hash_and_the_limit() {
        let (_dir, store) = store();
        let expected = Digest::of(b"wanted");
        assert!(matches!(
            store.put_expected(b"offered", &expected),
            Err(BlobError::HashMismatch { expected: e, actual }) if e == expected && actual == Digest::of(b"offered")
        ));
        let big = vec![7; LIMIT as usize + 1];
        assert!(
            matches!(store.put(&big), Err(BlobError::TooLarge { size, limit: LIMIT }) if size == LIMIT + 1)
        );
        assert!(matches!(store.put_expected(&big, &Digest::of(&big)), Err(BlobError::TooLarge { .. })));
        store.put_expected(b"wanted", &expected).unwrap();
        assert_eq!(store.list().unwrap(), [(expected, 6)], "only the good blob was stored");
    }

    #[test]
    fn a_corrupt_blob_is_removed_and_treated_as_absent() {
        let (_dir, store) = store();
        let digest = store.put(b"component").unwrap();
        fs::write(store.path(&digest), b"c0mponent").unwrap();
        assert_eq!(store.get(&digest).unwrap(), None);
        assert!(!store.has(&digest), "removed");
        let oversized = store.put(b"small").unwrap();
        fs::write(store.path(&oversized), vec![0; LIMIT as usize + 1]).unwrap();
        assert_eq!(store.get(&oversized).unwrap(), None);
        assert!(!store.has(&oversized));
        store.put(b"component").unwrap();
        assert!(store.get(&digest).unwrap().is_some(), "a later put repairs it");
    }

    #[test]
    fn a_streamed_blob_appears_only_when_whole_and_correct() {
        let (_dir, store) = store();
        let bytes = b"streamed component";
        let digest = Digest::of(bytes);
        let mut writer = store.writer(digest, bytes.len() as u64).unwrap();
        for chunk in bytes.chunks(5) {
            assert!(!store.has(&digest), "nothing under the hash before finish");
            writer.write(chunk).unwrap();
        }
        assert_eq!(writer.received(), bytes.len() as u64);
        assert_eq!(writer.finish().unwrap(), digest);
        assert_eq!(store.get(&digest).unwrap().as_deref(), Some(&bytes[..]));
        assert_eq!(temp_files(&store), 0);
    }

    #[test]
    fn a_streamed_blob_is_refused_for_its_size_or_hash() {
        let (_dir, store) = store();
        let digest = Digest::of(b"12345");
        assert!(matches!(store.writer(digest, LIMIT + 1), Err(BlobError::TooLarge { .. })));

        let mut writer = store.writer(digest, 5).unwrap();
        writer.write(b"1234").unwrap();
        assert!(matches!(writer.write(b"56"), Err(BlobError::SizeMismatch { declared: 5, received: 6 })));
        assert!(matches!(writer.finish(), Err(BlobError::SizeMismatch { declared: 5, received: 4 })));

        let mut writer = store.writer(digest, 5).unwrap();
        writer.write(b"54321").unwrap();
        assert!(matches!(writer.finish(), Err(BlobError::HashMismatch { .. })));

        let mut writer = store.writer(digest, 5).unwrap();
        writer.write(b"12").unwrap();
        assert_eq!(temp_files(&store), 1);
        drop(writer);
        assert_eq!(temp_files(&store), 0, "an abandoned transfer leaves nothing");
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn opening_removes_only_stale_temporary_files() {
        let (dir, store) = store();
        let stale = store.tmp_dir().join("stale.part");
        let live = store.tmp_dir().join("live.part");
        fs::write(&live, b"in progress").unwrap();
        let file = File::create(&stale).unwrap();
        file.set_modified(SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60)).unwrap();
        drop(file);
        BlobStore::open(&dir.path().join("blobs"), LIMIT, 1 << 20).unwrap();
        assert!(!stale.exists());
        assert!(live.exists());
    }

    #[test]
    fn listing_skips_files_that_are_not_blobs() {
        let (_dir, store) = store();
        let a = store.put(b"a").unwrap();
        let b = store.put(b"bb").unwrap();
        let shard = store.path(&a).parent().unwrap().to_path_buf();
        fs::write(shard.join("notes.txt"), b"x").unwrap();
        fs::write(shard.join(Digest::of(b"elsewhere").to_string()), b"x").unwrap();
        fs::write(store.dir.join("stray"), b"x").unwrap();
        let mut expected = vec![(a, 1), (b, 2)];
        expected.sort();
        let store = BlobStore::open(&store.dir, LIMIT, 1 << 20).unwrap();
        assert_eq!(store.list().unwrap(), expected);
    }
}
