//! The blob store's cap: how many bytes it holds and has promised to writes in progress, the
//! order in which blobs were last used, and which are being read — so that a new blob makes
//! room by evicting the least recently used blobs that are neither kept nor being read, or is
//! refused ([`BlobError::StoreFull`]) when they cannot free enough.
//!
//! The index is this process's view of the store's files: built from them at open (their
//! modification times give the order of use, which [`BlobStore::get`] renews on disk; uses
//! within one tick of the file system's clock, a few ms, may tie after a restart), then kept
//! in step by every put, removal and eviction. Files added behind the store's back are seen at
//! the next open; files removed behind its back, at the next read.
//!
//! [`BlobStore::get`]: super::BlobStore::get

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::BlobError;
use crate::crypto::Digest;

/// The bytes a store may hold, and what it holds.
pub(super) struct Space {
    /// The cap: stored blobs plus bytes promised to writes in progress.
    max_total_bytes: u64,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    blobs: HashMap<Digest, Entry>,
    /// Bytes of the blobs in `blobs`.
    stored: u64,
    /// Bytes promised to writes in progress ([`Reservation`]s).
    reserved: u64,
    /// Uses counted up: an entry's `used` is the count at its last use.
    clock: u64,
}

struct Entry {
    size: u64,
    /// When it was last used, in ticks of [`Index::clock`].
    used: u64,
    /// Reads (and re-writes) in progress: an entry with any is never evicted.
    readers: u32,
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn remove(&mut self, digest: &Digest) {
        if let Some(entry) = self.blobs.remove(digest) {
            self.stored -= entry.size;
        }
    }
}

impl Space {
    /// The space of a store holding `found` (hash, size, modification time) under a cap of
    /// `max_total_bytes`; the oldest modification counts as the least recent use.
    pub(super) fn new(max_total_bytes: u64, mut found: Vec<(Digest, u64, SystemTime)>) -> Space {
        found.sort_by_key(|(digest, _, modified)| (*modified, *digest));
        let mut index = Index::default();
        for (digest, size, _) in found {
            let used = index.tick();
            index.stored += size;
            index.blobs.insert(digest, Entry { size, used, readers: 0 });
        }
        Space { max_total_bytes, index: Mutex::new(index) }
    }

    /// The index. Every change to it is whole between statements, so a lock a panicking
    /// thread poisoned is taken anyway.
    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn max_total_bytes(&self) -> u64 {
        self.max_total_bytes
    }

    /// Bytes of the stored blobs.
    pub(super) fn stored(&self) -> u64 {
        self.lock().stored
    }

    pub(super) fn size(&self, digest: &Digest) -> Option<u64> {
        self.lock().blobs.get(digest).map(|entry| entry.size)
    }

    /// The blob's size, counting a use of it.
    pub(super) fn touch(&self, digest: &Digest) -> Option<u64> {
        let mut index = self.lock();
        let used = index.tick();
        index.blobs.get_mut(digest).map(|entry| {
            entry.used = used;
            entry.size
        })
    }

    /// Every blob's hash and size, by hash.
    pub(super) fn list(&self) -> Vec<(Digest, u64)> {
        let mut blobs: Vec<_> = self.lock().blobs.iter().map(|(d, e)| (*d, e.size)).collect();
        blobs.sort();
        blobs
    }

    /// Forgets a blob whose file is gone or going.
    pub(super) fn forget(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    /// Marks the blob as being read, if it is stored: it is not evicted until the answer is
    /// dropped, which counts a use of it.
    pub(super) fn start_read(self: &Arc<Self>, digest: &Digest) -> Option<Reading> {
        let mut index = self.lock();
        let entry = index.blobs.get_mut(digest)?;
        entry.readers += 1;
        Some(Reading { space: self.clone(), digest: *digest })
    }

    /// Promises `size` bytes to the blob `digest` if they fit without evicting anything.
    pub(super) fn try_reserve(self: &Arc<Self>, digest: &Digest, size: u64) -> Option<Reservation> {
        let mut index = self.lock();
        let (promise, holds) = promise(&index, digest, size);
        if index.stored + index.reserved + promise > self.max_total_bytes {
            return None;
        }
        Some(self.promised(&mut index, digest, promise, holds))
    }

    /// Promises `size` bytes to the blob `digest`, first evicting the least recently used
    /// blobs that are not in `kept` (`None`: all are kept) and not being read, each removed
    /// with `remove` (its file) before it is forgotten. Refused, evicting nothing, when they
    /// cannot free enough.
    pub(super) fn reserve_evicting(
        self: &Arc<Self>,
        digest: &Digest,
        size: u64,
        kept: Option<&HashSet<Digest>>,
        mut remove: impl FnMut(&Digest) -> Result<(), BlobError>,
    ) -> Result<Reservation, BlobError> {
        let mut index = self.lock();
        let (promise, holds) = promise(&index, digest, size);
        let mut over = (index.stored + index.reserved + promise).saturating_sub(self.max_total_bytes);
        let mut candidates: Vec<(u64, Digest, u64)> = index
            .blobs
            .iter()
            .filter(|(d, e)| *d != digest && e.readers == 0 && kept.is_some_and(|k| !k.contains(*d)))
            .map(|(d, e)| (e.used, *d, e.size))
            .collect();
        let evictable: u64 = candidates.iter().map(|(_, _, size)| size).sum();
        if evictable < over {
            let held = index.stored + index.reserved - evictable;
            return Err(BlobError::StoreFull { size: promise, held, limit: self.max_total_bytes });
        }
        candidates.sort_unstable();
        for (_, victim, victim_size) in candidates {
            if over == 0 {
                break;
            }
            remove(&victim)?;
            index.remove(&victim);
            over = over.saturating_sub(victim_size);
            tracing::info!(digest = %victim, size = victim_size, "evicted the least recently used blob");
        }
        Ok(self.promised(&mut index, digest, promise, holds))
    }

    fn promised(
        self: &Arc<Self>,
        index: &mut Index,
        digest: &Digest,
        bytes: u64,
        holds: bool,
    ) -> Reservation {
        index.reserved += bytes;
        if holds && let Some(entry) = index.blobs.get_mut(digest) {
            entry.readers += 1;
        }
        Reservation { space: self.clone(), digest: *digest, bytes, holds, done: false }
    }
}

/// The bytes a write of `size` to `digest` needs beyond what it replaces, and whether it
/// replaces a stored blob (held meanwhile, so no eviction takes it under the write).
fn promise(index: &Index, digest: &Digest, size: u64) -> (u64, bool) {
    match index.blobs.get(digest) {
        Some(entry) => (size.saturating_sub(entry.size), true),
        None => (size, false),
    }
}

/// A read in progress (see [`Space::start_read`]).
pub(super) struct Reading {
    space: Arc<Space>,
    digest: Digest,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut index = self.space.lock();
        let used = index.tick();
        if let Some(entry) = index.blobs.get_mut(&self.digest) {
            entry.readers = entry.readers.saturating_sub(1);
            entry.used = used;
        }
    }
}

/// Bytes promised to a write in progress: counted against the cap until the blob is stored
/// ([`Reservation::stored`]) or the write is abandoned (dropped).
pub(super) struct Reservation {
    space: Arc<Space>,
    digest: Digest,
    bytes: u64,
    /// Whether it holds the stored blob it replaces.
    holds: bool,
    done: bool,
}

impl Reservation {
    /// The blob is stored under its hash with `size` bytes: it counts as stored and used now.
    pub(super) fn stored(mut self, size: u64) {
        let mut index = self.space.lock();
        self.release(&mut index);
        let used = index.tick();
        let readers = index.blobs.get(&self.digest).map_or(0, |entry| entry.readers);
        if let Some(old) = index.blobs.insert(self.digest, Entry { size, used, readers }) {
            index.stored -= old.size;
        }
        index.stored += size;
        self.done = true;
    }

    fn release(&self, index: &mut Index) {
        index.reserved -= self.bytes;
        if self.holds
            && let Some(entry) = index.blobs.get_mut(&self.digest)
        {
            entry.readers = entry.readers.saturating_sub(1);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.release(&mut self.space.lock());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fs::{self, File};
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use super::super::{BlobError, BlobStore, StoreError};
    use crate::crypto::Digest;

    /// Every test blob's size, and the cap: four of them.
    const BLOB: usize = 100;
    const CAP: u64 = 4 * BLOB as u64;

    fn blob(n: u8) -> Vec<u8> {
        vec![n; BLOB]
    }

    /// A store of at most four blobs in `dir`, keeping what the returned set holds (which the
    /// test changes as it goes).
    fn pinned_store(dir: &Path) -> (BlobStore, Arc<Mutex<HashSet<Digest>>>) {
        let pinned = Arc::new(Mutex::new(HashSet::new()));
        let shared = pinned.clone();
        let keep = move || -> Result<HashSet<Digest>, StoreError> { Ok(shared.lock().unwrap().clone()) };
        (BlobStore::open(dir, 1024, CAP).unwrap().keeping(Arc::new(keep)), pinned)
    }

    /// Bytes of blob files on disk (the files themselves, not the index).
    fn on_disk(dir: &Path) -> u64 {
        let shards = fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name() != "tmp");
        shards
            .flat_map(|shard| fs::read_dir(shard.path()).unwrap().flatten())
            .map(|f| f.metadata().unwrap().len())
            .sum()
    }

    fn temp_files(dir: &Path) -> usize {
        fs::read_dir(dir.join("tmp")).unwrap().count()
    }

    #[test]
    fn a_flood_beyond_the_cap_evicts_the_least_recently_used_blobs_and_never_a_pinned_one() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pinned) = pinned_store(dir.path());
        let published = store.put(&blob(0)).unwrap();
        pinned.lock().unwrap().insert(published);
        let [a, b, c] = [1, 2, 3].map(|n| store.put(&blob(n)).unwrap());
        store.get(&a).unwrap().expect("a is read: now the most recently used");

        // The oldest unpinned go first: b, then c, then a (read after them), then the flood.
        let mut flood = vec![store.put(&blob(10)).unwrap()];
        assert!(!store.has(&b) && store.has(&c) && store.has(&a), "after one: b evicted");
        flood.push(store.put(&blob(11)).unwrap());
        assert!(!store.has(&c) && store.has(&a), "after two: c evicted, a (read later) kept");
        for n in 12..40 {
            flood.push(store.put(&blob(n)).unwrap());
            assert_eq!(store.stored_bytes(), CAP);
            assert!(store.has(&published));
        }
        for (i, digest) in flood.iter().enumerate() {
            assert_eq!(store.has(digest), i >= flood.len() - 3, "only the 3 newest of the flood stay");
        }
        assert!(!store.has(&c) && !store.has(&a));
        assert_eq!(store.get(&published).unwrap(), Some(blob(0)), "the pinned blob outlived the flood");
        assert_eq!(store.stored_bytes(), CAP);
        assert_eq!(on_disk(dir.path()), CAP, "evicted files are gone from disk");
    }

    #[test]
    fn a_new_blob_is_refused_when_everything_it_could_evict_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pinned) = pinned_store(dir.path());
        let kept: Vec<Digest> = (0..4).map(|n| store.put(&blob(n)).unwrap()).collect();
        pinned.lock().unwrap().extend(kept.iter().copied());

        let refused = store.put(&blob(9)).unwrap_err();
        assert!(matches!(refused, BlobError::StoreFull { size: 100, held: CAP, limit: CAP }), "{refused:?}");
        assert!(refused.to_string().contains("full"), "{refused}");
        let streamed = store.writer(Digest::of(&blob(9)), BLOB as u64);
        assert!(matches!(streamed, Err(BlobError::StoreFull { .. })), "refused before any byte");
        assert_eq!(temp_files(dir.path()), 0);
        assert_eq!(store.list().unwrap().len(), 4, "nothing was evicted");
        assert_eq!(on_disk(dir.path()), CAP);

        store.put(&blob(0)).expect("storing a pinned blob again needs no room");
        pinned.lock().unwrap().remove(&kept[2]);
        store.put(&blob(9)).expect("room made by evicting the one unpinned blob");
        assert!(!store.has(&kept[2]) && store.has(&kept[0]) && store.has(&kept[3]));
    }

    #[test]
    fn when_the_pins_cannot_be_read_nothing_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let failing = || -> Result<HashSet<Digest>, StoreError> { Err(StoreError::Closed) };
        let store = BlobStore::open(dir.path(), 1024, CAP).unwrap().keeping(Arc::new(failing));
        let held: Vec<Digest> = (0..4).map(|n| store.put(&blob(n)).unwrap()).collect();
        assert!(matches!(store.put(&blob(9)), Err(BlobError::StoreFull { .. })));
        assert!(held.iter().all(|digest| store.has(digest)));
    }

    #[test]
    fn a_blob_being_read_or_received_is_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _pinned) = pinned_store(dir.path());
        let [oldest, second] = [0, 1].map(|n| store.put(&blob(n)).unwrap());
        let reading = store.space.start_read(&oldest).expect("stored");
        // A transfer in progress holds its declared size against the cap.
        let incoming = blob(5);
        let mut writer = store.writer(Digest::of(&incoming), BLOB as u64).unwrap();
        writer.write(&incoming[..10]).unwrap();
        store.put(&blob(2)).unwrap();
        store.put(&blob(3)).unwrap();
        assert!(store.has(&oldest), "being read: passed over");
        assert!(!store.has(&second), "the least recently used blob not being read went instead");

        writer.write(&incoming[10..]).unwrap();
        writer.finish().unwrap();
        assert_eq!(store.stored_bytes(), CAP);
        drop(reading);
        store.put(&blob(4)).unwrap();
        assert!(!store.has(&blob_digest(2)), "the read counted as a use: blob 2 was older");
        assert!(store.has(&oldest));

        let abandoned = store.writer(Digest::of(&blob(6)), BLOB as u64).unwrap();
        assert_eq!(store.stored_bytes(), CAP - BLOB as u64, "its declared size made room before any byte");
        drop(abandoned);
        assert_eq!(temp_files(dir.path()), 0);
        assert_eq!(store.space.lock().reserved, 0, "its room given back");
        store.put(&blob(7)).unwrap();
        assert_eq!(store.list().unwrap().len(), 4, "the room was free: nothing evicted");
    }

    fn blob_digest(n: u8) -> Digest {
        Digest::of(&blob(n))
    }

    #[test]
    fn the_order_of_use_and_the_cap_hold_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = {
            let (store, _) = pinned_store(dir.path());
            [1, 2, 3].map(|n| store.put(&blob(n)).unwrap())
        };
        let start = SystemTime::now() - Duration::from_secs(3600);
        for (i, digest) in [a, b, c].iter().enumerate() {
            let file = File::options().write(true).open(blob_path(dir.path(), digest)).unwrap();
            file.set_modified(start + Duration::from_secs(i as u64)).unwrap();
        }
        {
            let (store, _) = pinned_store(dir.path());
            store.get(&a).unwrap().expect("a read: its file's time renewed");
        }
        let (store, _) = pinned_store(dir.path());
        assert_eq!(store.stored_bytes(), 3 * BLOB as u64, "counted from the files");
        store.put(&blob(4)).unwrap();
        store.put(&blob(5)).unwrap();
        assert!(!store.has(&b) && store.has(&c) && store.has(&a), "b was the least recently used");

        // A lower cap than the files hold: the next write brings the store under it, the
        // oldest first (c, an hour old; the others were used within the same few ms, an order
        // the file system's clock need not tell apart).
        drop(store);
        let store = BlobStore::open(dir.path(), 1024, 2 * BLOB as u64).unwrap();
        assert_eq!(store.stored_bytes(), CAP);
        store.put(&blob(6)).unwrap();
        assert_eq!((store.stored_bytes(), on_disk(dir.path())), (2 * BLOB as u64, 2 * BLOB as u64));
        assert!(store.has(&blob_digest(6)) && !store.has(&c));
    }

    fn blob_path(dir: &Path, digest: &Digest) -> std::path::PathBuf {
        let hex = digest.to_string();
        dir.join(&hex[..2]).join(hex)
    }

    #[test]
    fn concurrent_floods_stay_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let (store, pinned) = pinned_store(dir.path());
        let published = store.put(&blob(255)).unwrap();
        pinned.lock().unwrap().insert(published);
        std::thread::scope(|scope| {
            for thread in 0..4u8 {
                let store = store.clone();
                scope.spawn(move || {
                    for n in 0..50u8 {
                        let bytes = [vec![thread, n], blob(n)[2..].to_vec()].concat();
                        match store.put(&bytes) {
                            Ok(_) | Err(BlobError::StoreFull { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                        assert!(store.stored_bytes() <= CAP);
                        if n % 3 == 0 {
                            assert!(store.get(&published).unwrap().is_some());
                        }
                    }
                });
            }
        });
        assert!(store.has(&published));
        assert_eq!(on_disk(dir.path()), store.stored_bytes());
        assert!(store.stored_bytes() <= CAP);
        assert_eq!(store.space.lock().reserved, 0);
    }
}
