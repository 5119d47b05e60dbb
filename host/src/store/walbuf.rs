//! A SQLite VFS that gathers the writes of a write-ahead log and issues them as one.
//!
//! SQLite appends a transaction to its WAL as one write per frame header (24 bytes) and one per
//! page: a ledger commit of ~27 pages is ~55 `pwrite` calls, each a system call and a partial
//! page of the file cache, and the `fsync` after many small writes takes longer than after one
//! large write (docs/PERFORMANCE.md). This VFS forwards everything to the default one
//! (`unix`) except the writes to a WAL file, which it keeps in memory while each continues
//! the last, and writes at once — with a single `pwrite` — before any other operation on that
//! file: the commit's sync, a read, a truncation, a size query, a close. What SQLite asks of a
//! file is thus what the disk has by the time it could observe or depend on it.
//!
//! That holds because of one condition: **the connection commits with `synchronous=FULL`**, so
//! every commit syncs the WAL before SQLite publishes it to other connections (in the
//! shared-memory index). With a weaker setting, frames of a commit could still be in this
//! buffer when a reader looks for them. The ledger writer is the only user, and it sets FULL.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name the VFS is registered under, to open a connection with.
pub(super) const NAME: &str = "cue-walbuf";
const NAME_C: &CStr = c"cue-walbuf";

/// A WAL write run larger than this is written out before it grows further.
const MAX_PENDING: usize = 4 << 20;
/// Most bytes given to the default VFS in one write: it writes at most 128 KiB − 1 per call
/// (and reports a write of a multiple of 128 KiB as a full disk).
const MAX_WRITE: usize = 124 << 10;

/// Registers the VFS once per process (not as the default); `Err` says why it cannot be.
pub(super) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: `sqlite3_vfs_find` returns the default VFS, which lives for the process;
            // the VFS built from it is leaked, so it outlives every connection that uses it.
            unsafe {
                let base = ffi::sqlite3_vfs_find(std::ptr::null());
                if base.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                let size = usize::try_from((*base).szOsFile).map_err(|e| e.to_string())?;
                let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
                    szOsFile: c_int::try_from(REAL_AT + size).map_err(|e| e.to_string())?,
                    pNext: std::ptr::null_mut(),
                    zName: NAME_C.as_ptr(),
                    pAppData: base.cast(),
                    xOpen: Some(open),
                    ..*base
                }));
                match ffi::sqlite3_vfs_register(vfs, 0) {
                    ffi::SQLITE_OK => Ok(()),
                    code => Err(format!("cannot register the SQLite VFS {NAME}: code {code}")),
                }
            }
        })
        .clone()
}

/// A WAL file: SQLite's file header, then what this VFS keeps, then (at [`REAL_AT`]) the
/// default VFS's own file. Other files are opened as the default VFS's files directly.
#[repr(C)]
struct WalFile {
    header: ffi::sqlite3_file,
    pending: Vec<u8>,
    /// File offset of `pending[0]`.
    at: i64,
}

/// Where the default VFS's file starts in a [`WalFile`]'s allocation (16-byte aligned).
const REAL_AT: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes this VFS, and a `file` of its `szOsFile` bytes; `pAppData` is the
    // default VFS (see `register`).
    unsafe {
        let base = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        let Some(base_open) = (*base).xOpen else { return ffi::SQLITE_ERROR };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return base_open(base, name, file, flags, out_flags);
        }
        let real = file.cast::<u8>().add(REAL_AT).cast::<ffi::sqlite3_file>();
        let code = base_open(base, name, real, flags, out_flags);
        let header = ffi::sqlite3_file {
            pMethods: if (*real).pMethods.is_null() { std::ptr::null() } else { &WAL_METHODS },
        };
        file.cast::<WalFile>().write(WalFile { header, pending: Vec::new(), at: 0 });
        code
    }
}

/// The default VFS's file inside a [`WalFile`].
///
/// # Safety
/// `file` must be a [`WalFile`] opened by [`open`].
unsafe fn real(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    unsafe { file.cast::<u8>().add(REAL_AT).cast() }
}

/// The default VFS's methods for `file`.
///
/// # Safety
/// As [`real`]; the real file is open (its methods are set).
unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    unsafe { &*(*real(file)).pMethods }
}

/// Writes what is pending, with one write. A failed write drops it (SQLite rolls the
/// transaction back on the error) and returns its code.
///
/// # Safety
/// As [`methods`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let wal = &mut *file.cast::<WalFile>();
        if wal.pending.is_empty() {
            return ffi::SQLITE_OK;
        }
        let Some(write) = methods(file).xWrite else { return ffi::SQLITE_IOERR_WRITE };
        let mut code = ffi::SQLITE_OK;
        let mut at = wal.at;
        for chunk in wal.pending.chunks(MAX_WRITE) {
            // `MAX_WRITE` fits a `c_int`.
            code = write(real(file), chunk.as_ptr().cast(), chunk.len() as c_int, at);
            if code != ffi::SQLITE_OK {
                break;
            }
            at += chunk.len() as i64;
        }
        wal.pending.clear();
        code
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite calls the methods of a file `open` set them on, with `amount` bytes at
    // `data`.
    unsafe {
        let wal = &mut *file.cast::<WalFile>();
        let Ok(len) = usize::try_from(amount) else { return ffi::SQLITE_IOERR_WRITE };
        let continues = offset == wal.at + wal.pending.len() as i64;
        if !wal.pending.is_empty() && (!continues || wal.pending.len() + len > MAX_PENDING) {
            let code = flush(file);
            if code != ffi::SQLITE_OK {
                return code;
            }
        }
        let wal = &mut *file.cast::<WalFile>();
        if wal.pending.is_empty() {
            wal.at = offset;
        }
        wal.pending.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as `write`; after this SQLite does not use the file again.
    unsafe {
        let flushed = flush(file);
        let closed = methods(file).xClose.map_or(ffi::SQLITE_OK, |close| close(real(file)));
        std::ptr::drop_in_place(&raw mut (*file.cast::<WalFile>()).pending);
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

/// Defines a method that writes what is pending and then forwards the call.
macro_rules! flush_then_forward {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: as `write`.
            unsafe {
                let code = flush(file);
                if code != ffi::SQLITE_OK {
                    return code;
                }
                match methods(file).$method {
                    Some(method) => method(real(file) $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

flush_then_forward!(read, xRead, (data: *mut c_void, amount: c_int, offset: i64), ffi::SQLITE_IOERR_READ);
flush_then_forward!(truncate, xTruncate, (size: i64), ffi::SQLITE_IOERR_TRUNCATE);
flush_then_forward!(sync, xSync, (flags: c_int), ffi::SQLITE_IOERR_FSYNC);
flush_then_forward!(file_size, xFileSize, (size: *mut i64), ffi::SQLITE_IOERR_FSTAT);
flush_then_forward!(lock, xLock, (level: c_int), ffi::SQLITE_IOERR_LOCK);
flush_then_forward!(unlock, xUnlock, (level: c_int), ffi::SQLITE_IOERR_UNLOCK);
flush_then_forward!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_IOERR_CHECKRESERVEDLOCK);
flush_then_forward!(file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);
flush_then_forward!(shm_map, xShmMap, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void), ffi::SQLITE_IOERR_SHMMAP);
flush_then_forward!(shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int), ffi::SQLITE_IOERR_SHMLOCK);
flush_then_forward!(shm_unmap, xShmUnmap, (delete: c_int), ffi::SQLITE_OK);
flush_then_forward!(fetch, xFetch, (offset: i64, amount: c_int, out: *mut *mut c_void), ffi::SQLITE_OK);
flush_then_forward!(unfetch, xUnfetch, (offset: i64, page: *mut c_void), ffi::SQLITE_OK);

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as `write`.
    unsafe { methods(file).xSectorSize.map_or(4096, |method| method(real(file))) }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as `write`.
    unsafe { methods(file).xDeviceCharacteristics.map_or(0, |method| method(real(file))) }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: as `write`.
    unsafe {
        let _ = flush(file);
        if let Some(method) = methods(file).xShmBarrier {
            method(real(file));
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags};

    use super::*;

    /// Every commit made through the VFS is seen by a connection of the default VFS at once,
    /// and the database reopens whole — across checkpoints, which restart the WAL at its start.
    #[test]
    fn commits_through_the_vfs_are_seen_by_other_connections_and_survive_a_reopen() {
        register().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), NAME).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "synchronous", "FULL").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 50).unwrap();
        writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)", []).unwrap();
        let reader = Connection::open(&path).unwrap();
        let mut written = 0i64;
        for round in 0..300i64 {
            let tx = writer.unchecked_transaction().unwrap();
            // Some transactions are larger than the default VFS writes at once (128 KiB).
            let rows = if round % 50 == 49 { 100 + round } else { 1 + round % 7 };
            for i in 0..rows {
                let v = vec![(round + i) as u8; 700 + (round as usize * 37) % 3000];
                tx.execute("INSERT INTO t (v) VALUES (?1)", [v]).unwrap();
                written += 1;
            }
            tx.commit().unwrap();
            let seen: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(seen, written, "after commit {round}");
        }
        let wal = std::fs::metadata(dir.path().join("db.sqlite-wal")).unwrap().len();
        assert!(wal > 0);
        drop(reader);
        drop(writer);
        let reopened = Connection::open(&path).unwrap();
        let (count, check): (i64, String) = reopened
            .query_row(
                "SELECT (SELECT count(*) FROM t), (SELECT integrity_check FROM pragma_integrity_check)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((count, check.as_str()), (written, "ok"));
    }
}
