//! The `locks` table: the escrow's open locks, written in the transaction of the entry that
//! opens or ends one, and read back at start to rebuild the in-memory ledger.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

use super::{StoreError, digest_from_blob, key_from_blob};
use crate::crypto::Digest;
use crate::ledger::{LockChange, OpenLock};
use crate::protocol::JobId;

/// Every open lock, by the hash of its `TOKEN_LOCK`.
pub(super) fn load(conn: &Connection) -> Result<HashMap<Digest, OpenLock>, StoreError> {
    let mut locks = HashMap::new();
    let mut stmt = conn.prepare("SELECT hash, payer, payee, amount, job FROM locks")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let job: Vec<u8> = row.get(4)?;
        let job =
            JobId(job.try_into().map_err(|_| StoreError::Corrupt("a lock's job is not 16 bytes".into()))?);
        let lock = OpenLock {
            payer: key_from_blob(row.get(1)?)?,
            payee: key_from_blob(row.get(2)?)?,
            amount: row.get::<_, i64>(3)? as u64,
            job,
        };
        locks.insert(digest_from_blob(row.get(0)?)?, lock);
    }
    Ok(locks)
}

/// Records what an applied entry did to the escrow: a lock opened, or one ended.
pub(super) fn write(tx: &Transaction<'_>, change: &LockChange) -> Result<(), StoreError> {
    match change {
        LockChange::Opened(hash, lock) => {
            tx.prepare_cached(
                "INSERT INTO locks (hash, payer, payee, amount, job) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &hash.0,
                lock.payer.as_bytes(),
                lock.payee.as_bytes(),
                lock.amount as i64,
                &lock.job.0
            ])?;
        }
        LockChange::Released { lock, .. } => {
            tx.prepare_cached("DELETE FROM locks WHERE hash = ?1")?.execute([&lock.0])?;
        }
    }
    Ok(())
}
