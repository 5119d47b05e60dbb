//! Read-only queries on their own connection: balances, history, stored events, proofs.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

use super::contracts::{CONTRACT_COLUMNS, ContractRow, ContractState, Role, contract_from_row};
use super::{StoreError, digest_from_blob, key_from_blob, schema, stored_genesis};
use crate::crypto::{Digest, PublicKey};
use crate::ledger::{Genesis, OpenLock};
use crate::protocol::{ComputeRequest, JobId, Signed};

/// One ledger entry as a wallet shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Position in this node's log (acceptance order).
    pub log_position: i64,
    /// The event's hash.
    pub hash: Digest,
    /// Domain tag of the event.
    pub kind: String,
    /// The signer (payer or mint authority).
    pub signer: PublicKey,
    /// Position in the signer's chain (`None`: a release, which is no chain entry).
    pub seq: Option<u64>,
    /// The credited account.
    pub to: PublicKey,
    /// Tokens moved.
    pub amount: u64,
    /// Signing time, ms since the epoch.
    pub timestamp_ms: u64,
}

/// A read connection to a store; one per thread.
pub struct LogReader {
    conn: Connection,
}

/// Idle read connections kept per store; more are closed when returned.
pub const MAX_IDLE_READERS: usize = 8;

/// Read connections to one database, reused: opening one costs a file open and a schema read
/// on first use, which the node's hot paths (a contract's checks, each payment) would otherwise
/// pay every time.
pub(super) struct ReaderPool {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<LogReader>>,
}

impl ReaderPool {
    pub(super) fn new(path: &Path) -> ReaderPool {
        ReaderPool { path: path.to_path_buf(), idle: std::sync::Mutex::new(Vec::new()) }
    }

    pub(super) fn get(&self) -> Result<PooledReader<'_>, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let reader = match idle {
            Some(reader) => reader,
            None => LogReader::open(&self.path)?,
        };
        Ok(PooledReader { pool: self, reader: Some(reader) })
    }
}

/// A [`LogReader`] borrowed from its store's pool; it goes back when dropped.
pub struct PooledReader<'a> {
    pool: &'a ReaderPool,
    reader: Option<LogReader>,
}

impl std::ops::Deref for PooledReader<'_> {
    type Target = LogReader;

    fn deref(&self) -> &LogReader {
        self.reader.as_ref().expect("invariant: the reader is present until drop")
    }
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        let Some(reader) = self.reader.take() else { return };
        // A reader left inside a transaction (an error mid-read) is closed, not reused.
        if !reader.conn.is_autocommit() {
            return;
        }
        if let Ok(mut idle) = self.pool.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(reader);
        }
    }
}

impl LogReader {
    /// Opens the database at `path` read-only (it must exist).
    pub fn open(path: &Path) -> Result<LogReader, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        schema::configure(&conn)?;
        Ok(LogReader { conn })
    }

    /// The connection, for the queries of sibling modules (`replay`).
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The genesis this database belongs to.
    pub fn genesis(&self) -> Result<Genesis, StoreError> {
        stored_genesis(&self.conn)?.ok_or(StoreError::NoGenesis)
    }

    /// The committed balance of `account` (0 if it never held tokens).
    pub fn balance(&self, account: &PublicKey) -> Result<u64, StoreError> {
        let balance: Option<i64> = self
            .conn
            .query_row("SELECT balance FROM accounts WHERE key = ?1", [account.as_bytes()], |row| row.get(0))
            .optional()?;
        Ok(balance.unwrap_or(0) as u64)
    }

    /// Every account's committed balance.
    pub fn balances(&self) -> Result<Vec<(PublicKey, u64)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT key, balance FROM accounts ORDER BY key")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)))?;
        rows.map(|row| {
            let (key, balance) = row?;
            Ok((key_from_blob(key)?, balance as u64))
        })
        .collect()
    }

    /// Whether `account` is flagged for equivocation.
    pub fn is_flagged(&self, account: &PublicKey) -> Result<bool, StoreError> {
        let flagged: Option<bool> = self
            .conn
            .query_row("SELECT flagged FROM accounts WHERE key = ?1", [account.as_bytes()], |row| row.get(0))
            .optional()?;
        Ok(flagged.unwrap_or(false))
    }

    /// The latest `limit` ledger entries `account` signed or was credited by, newest first.
    pub fn history(&self, account: &PublicKey, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history_before(account, None, limit)
    }

    /// At most `limit` ledger entries `account` signed or was credited by, newest first, from
    /// before log position `before` (`None`: from the latest) — a page of
    /// [`history`](Self::history): the next page starts before the last entry's position.
    pub fn history_before(
        &self,
        account: &PublicKey,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, hash, kind, signer, seq, counterparty, amount, timestamp_ms FROM events
             WHERE id IN (SELECT id FROM events WHERE signer = ?1
                            AND (seq IS NOT NULL OR kind = 'cue/token-release')
                          UNION SELECT id FROM events WHERE counterparty = ?1)
               AND id < ?3
             ORDER BY id DESC LIMIT ?2",
        )?;
        let before = before.unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![account.as_bytes(), limit, before], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Vec<u8>>(3)?,
                row.get::<_, Option<i64>>(4)?,
                row.get::<_, Vec<u8>>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(7)?,
            ))
        })?;
        rows.map(|row| {
            let (id, hash, kind, signer, seq, to, amount, timestamp) = row?;
            Ok(HistoryEntry {
                log_position: id,
                hash: digest_from_blob(hash)?,
                kind,
                signer: key_from_blob(signer)?,
                seq: seq.map(|seq| seq as u64),
                to: key_from_blob(to)?,
                amount: amount as u64,
                timestamp_ms: timestamp as u64,
            })
        })
        .collect()
    }

    /// Whether the event with this hash is in the log.
    pub fn has_event(&self, hash: &Digest) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM events WHERE hash = ?1")?;
        Ok(stmt.exists([&hash.0])?)
    }

    /// The signer, nonce and expiry of the stored events of `kind` (a tag such as
    /// `cue/compute-request`) still live at `now_ms`, at most `limit`: what a restarted node's replay window starts from.
    pub fn live_nonces(
        &self,
        kind: &str,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<(PublicKey, [u8; 16], u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT signer, nonce, expires_ms FROM events WHERE kind = ?1 AND expires_ms > ?2 LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![kind, now_ms as i64, limit], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, i64>(2)?))
        })?;
        rows.map(|row| {
            let (signer, nonce, expires) = row?;
            let nonce = <[u8; 16]>::try_from(nonce)
                .map_err(|_| StoreError::Corrupt("a nonce is not 16 bytes".into()))?;
            Ok((key_from_blob(signer)?, nonce, expires as u64))
        })
        .collect()
    }

    /// The stored bytes of the event with this hash.
    pub fn event_bytes(&self, hash: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT bytes FROM events WHERE hash = ?1", [&hash.0], |row| row.get(0))
            .optional()?)
    }

    /// Whom a stored ledger entry credited, and with how much (a release: the lock's provider
    /// and what it was paid).
    pub fn credited(&self, hash: &Digest) -> Result<Option<(PublicKey, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT counterparty, amount FROM events WHERE hash = ?1 AND counterparty IS NOT NULL",
        )?;
        let row = stmt
            .query_row([&hash.0], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)))
            .optional()?;
        row.map(|(key, amount)| Ok((key_from_blob(key)?, amount as u64))).transpose()
    }

    /// What `payer` holds in open locks.
    pub fn locked_by(&self, payer: &PublicKey) -> Result<u64, StoreError> {
        let sum: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(SUM(amount), 0) FROM locks WHERE payer = ?1")?
            .query_row([payer.as_bytes()], |row| row.get(0))?;
        Ok(sum as u64)
    }

    /// An open lock (not yet released), by the hash of its `TOKEN_LOCK`.
    pub fn open_lock(&self, lock: &Digest) -> Result<Option<OpenLock>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT payer, payee, amount, job FROM locks WHERE hash = ?1")?;
        let row = stmt
            .query_row([&lock.0], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()?;
        row.map(|(payer, payee, amount, job)| open_lock(payer, payee, amount, job)).transpose()
    }

    /// The open locks `payer` set aside (at most `limit`), with their hashes and the time each
    /// was signed, oldest first.
    pub fn open_locks_of(
        &self,
        payer: &PublicKey,
        limit: u32,
    ) -> Result<Vec<(Digest, OpenLock, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.hash, l.payer, l.payee, l.amount, l.job, e.timestamp_ms
             FROM locks l JOIN events e ON e.hash = l.hash
             WHERE l.payer = ?1 ORDER BY e.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![payer.as_bytes(), limit], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Vec<u8>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (hash, payer, payee, amount, job, timestamp) = row?;
            Ok((digest_from_blob(hash)?, open_lock(payer, payee, amount, job)?, timestamp as u64))
        })
        .collect()
    }

    /// The open lock funding `job` for the provider `payee`, if any.
    pub fn open_lock_for(
        &self,
        job: &JobId,
        payee: &PublicKey,
    ) -> Result<Option<(Digest, OpenLock)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash, payer, amount FROM locks WHERE job = ?1 AND payee = ?2 LIMIT 1")?;
        let row = stmt
            .query_row(params![&job.0, payee.as_bytes()], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, i64>(2)?))
            })
            .optional()?;
        row.map(|(hash, payer, amount)| {
            let lock = open_lock(payer, payee.as_bytes().to_vec(), amount, job.0.to_vec())?;
            Ok((digest_from_blob(hash)?, lock))
        })
        .transpose()
    }

    /// Calls `visit` with every stored event's bytes, in log order (for replay and export).
    pub fn for_each_event(
        &self,
        mut visit: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("SELECT bytes FROM events ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            visit(row.get_ref(0)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))?)?;
        }
        Ok(())
    }

    /// Hashes of the events that link to `target` (as chain predecessor, contract or receipt),
    /// in log order: how a contract's payments are found.
    pub fn events_linking_to(&self, target: &Digest) -> Result<Vec<Digest>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.hash FROM event_links l JOIN events e ON e.id = l.event_id
             WHERE l.target = ?1 ORDER BY e.id",
        )?;
        let rows = stmt.query_map([&target.0], |row| row.get::<_, Vec<u8>>(0))?;
        rows.map(|row| digest_from_blob(row?)).collect()
    }

    /// The bytes of `account`'s chain entries from sequence `from_seq` on, in chain order, at
    /// most `limit` of them: what a peer that missed entries asks for to catch up.
    pub fn chain_from(
        &self,
        account: &PublicKey,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT bytes FROM events WHERE signer = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![account.as_bytes(), from, limit], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One contract.
    pub fn contract(&self, id: &Digest) -> Result<Option<ContractRow>, StoreError> {
        super::contracts::contract(&self.conn, id)
    }

    /// The contract of this node's `role` whose receipt is `receipt`, if any.
    pub fn contract_with_receipt(
        &self,
        role: Role,
        receipt: &Digest,
    ) -> Result<Option<ContractRow>, StoreError> {
        let sql = format!("SELECT {CONTRACT_COLUMNS} FROM contracts WHERE receipt = ?1 AND role = ?2");
        Ok(self.contract_rows(&sql, params![receipt.0, role_name(role)])?.pop())
    }

    /// The latest `limit` contracts, most recently changed first.
    pub fn contracts(&self, limit: u32) -> Result<Vec<ContractRow>, StoreError> {
        self.contracts_from(0, limit)
    }

    /// At most `limit` contracts, most recently changed first, skipping the first `offset` — a
    /// page of [`contracts`](Self::contracts) (a contract that changes between two pages moves
    /// to the front: read the pages of a quiet node, or expect one seen twice or missed).
    pub fn contracts_from(&self, offset: u32, limit: u32) -> Result<Vec<ContractRow>, StoreError> {
        let sql = format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts ORDER BY updated_ms DESC, contract LIMIT ?1 OFFSET ?2"
        );
        self.contract_rows(&sql, params![limit, offset])
    }

    /// Contracts of this node's `role` in `state`, oldest change first (at most `limit`).
    pub fn contracts_in(
        &self,
        role: Role,
        state: ContractState,
        limit: u32,
    ) -> Result<Vec<ContractRow>, StoreError> {
        let sql = format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE role = ?1 AND state = ?2 ORDER BY updated_ms LIMIT ?3"
        );
        self.contract_rows(&sql, params![role_name(role), state.name(), limit])
    }

    /// Every contract of a job (one per provider tried or replica).
    pub fn contracts_of_job(&self, job: &JobId) -> Result<Vec<ContractRow>, StoreError> {
        let sql =
            format!("SELECT {CONTRACT_COLUMNS} FROM contracts WHERE job = ?1 ORDER BY created_ms, contract");
        self.contract_rows(&sql, params![job.0.to_vec()])
    }

    fn contract_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<ContractRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |row| Ok(contract_from_row(row)))?;
        rows.map(|row| row?).collect()
    }

    /// The components (SHA-256) named by the requests of the contracts still accepted or
    /// delivered, of either role: what the blob store and the registry must keep.
    pub fn live_components(&self) -> Result<HashSet<Digest>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.bytes FROM contracts c JOIN events e ON e.hash = c.request
             WHERE c.state IN ('accepted', 'delivered')",
        )?;
        let mut rows = stmt.query([])?;
        let mut live = HashSet::new();
        while let Some(row) = rows.next()? {
            let bytes = row.get_ref(0)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let request = Signed::<ComputeRequest>::decode(bytes)
                .map_err(|e| StoreError::Corrupt(format!("a stored request: {e}")))?;
            live.insert(request.body().component);
        }
        Ok(live)
    }

    /// Every protocol event of a job, in log order: (kind, hash, bytes) — its own, and the
    /// attestation sets (this node's and gossiped ones) that name one of its contracts.
    pub fn job_events(&self, job: &JobId) -> Result<Vec<(String, Digest, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, hash, bytes FROM events WHERE job = ?1 OR id IN ( \
                SELECT l.event_id FROM contracts c JOIN event_links l \
                    ON l.target = c.contract AND l.relation = 'contract' \
                JOIN events e ON e.id = l.event_id AND e.kind = 'cue/outcome-attestations' \
                WHERE c.job = ?1) \
             ORDER BY id",
        )?;
        let rows = stmt.query_map([job.0.to_vec()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, Vec<u8>>(2)?))
        })?;
        rows.map(|row| {
            let (kind, hash, bytes) = row?;
            Ok((kind, digest_from_blob(hash)?, bytes))
        })
        .collect()
    }

    /// The oldest verdicts this node still owes an attestation for: (id, canonical body), at
    /// most `limit`.
    pub fn owed_attestations(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, body FROM owed_attestations ORDER BY id LIMIT ?1")?;
        let rows = stmt.query_map([limit], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every stored equivocation proof (encoded), for gossip.
    pub fn equivocation_proofs(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt =
            self.conn.prepare("SELECT proof FROM equivocations ORDER BY detected_ms, account, seq")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// An open lock from its columns.
fn open_lock(payer: Vec<u8>, payee: Vec<u8>, amount: i64, job: Vec<u8>) -> Result<OpenLock, StoreError> {
    let job = job.try_into().map_err(|_| StoreError::Corrupt("a lock's job is not 16 bytes".into()))?;
    Ok(OpenLock {
        payer: key_from_blob(payer)?,
        payee: key_from_blob(payee)?,
        amount: amount as u64,
        job: JobId(job),
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Consumer => "consumer",
        Role::Provider => "provider",
    }
}
