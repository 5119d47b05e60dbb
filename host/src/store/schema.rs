//! The SQLite schema and its migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only; never edit one that
/// has shipped.
const MIGRATIONS: &[&str] = &[r#"
-- Facts about this database: the genesis it belongs to.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- Every signed event this node accepted, whole, in acceptance order (id).
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    hash         BLOB    NOT NULL UNIQUE,  -- SHA-256 of bytes
    kind         TEXT    NOT NULL,         -- domain tag, e.g. cue/token-transfer
    signer       BLOB    NOT NULL,         -- 32-byte ed25519 key
    seq          INTEGER,                  -- position in the signer's ledger chain
    counterparty BLOB,                     -- credited account of a mint/transfer
    amount       INTEGER,
    timestamp_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    nonce        BLOB    NOT NULL,
    received_ms  INTEGER NOT NULL,
    bytes        BLOB    NOT NULL          -- canonical encoding, re-verifiable by anyone
) STRICT;
CREATE UNIQUE INDEX events_by_chain ON events (signer, seq) WHERE seq IS NOT NULL;
CREATE INDEX events_by_signer ON events (signer, id);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE INDEX events_by_counterparty ON events (counterparty, id) WHERE counterparty IS NOT NULL;
CREATE INDEX events_by_expiry ON events (expires_ms);

-- The hashes an event links to: its chain predecessor, the contract or receipt it pays for.
CREATE TABLE event_links (
    target   BLOB    NOT NULL,
    relation TEXT    NOT NULL,  -- prev | contract | receipt
    event_id INTEGER NOT NULL REFERENCES events (id),
    PRIMARY KEY (target, relation, event_id)
) STRICT, WITHOUT ROWID;

-- Materialised balances, updated in the same transaction as the events that change them.
CREATE TABLE accounts (
    key     BLOB    PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    flagged INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Equivocation proofs, kept for gossip.
CREATE TABLE equivocations (
    account     BLOB    NOT NULL,
    seq         INTEGER NOT NULL,
    proof       BLOB    NOT NULL,
    detected_ms INTEGER NOT NULL,
    PRIMARY KEY (account, seq)
) STRICT;
"#];

/// Brings the schema up to date, refusing a database written by a newer build.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len() as u32;
    if version > known {
        return Err(StoreError::SchemaTooNew { found: version, known });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Opens a connection with the settings every connection uses.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}
