//! The SQLite schemas and their migrations, tracked in each file's `PRAGMA user_version`: the
//! ledger database and the registry database.

use rusqlite::Connection;

use super::StoreError;

/// The ledger database (tied to one genesis). Migration `i` takes the schema from version `i` to
/// `i + 1`. Append only; never edit one that has shipped.
pub(super) const LEDGER: &[&str] = &[
    r#"
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
"#,
    r#"
-- Compute contracts (issue 6): protocol events carry the job they belong to.
ALTER TABLE events ADD COLUMN job BLOB;
CREATE INDEX events_by_job ON events (job, id) WHERE job IS NOT NULL;

-- Each contract this node is a party to, and where it stands.
CREATE TABLE contracts (
    contract   BLOB    PRIMARY KEY,   -- hash of the COMPUTE_ACCEPT
    job        BLOB    NOT NULL,
    role       TEXT    NOT NULL,      -- consumer | provider
    peer       BLOB    NOT NULL,      -- the other party's key
    state      TEXT    NOT NULL,      -- accepted | delivered | paid | failed | defaulted | invalid
    request    BLOB    NOT NULL,      -- hash of the COMPUTE_REQUEST
    receipt    BLOB,                  -- hash of the RECEIPT
    payment    BLOB,                  -- hash of the TOKEN_TRANSFER
    offer      INTEGER NOT NULL,
    price      INTEGER,               -- what the receipt makes due
    pay_by_ms  INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    detail     TEXT
) STRICT;
CREATE INDEX contracts_by_state ON contracts (state, updated_ms);
CREATE INDEX contracts_by_job ON contracts (job);
CREATE INDEX contracts_by_update ON contracts (updated_ms);
"#,
    r#"
-- A payment names the receipt it pays for: the provider finds the contract by it.
CREATE INDEX contracts_by_receipt ON contracts (receipt) WHERE receipt IS NOT NULL;
"#,
    r#"
-- No query reads events by signer alone (chains go by events_by_chain) or by kind alone
-- (live entries by expiry): two index pages less for every commit to write.
DROP INDEX events_by_signer;
DROP INDEX events_by_kind;
"#,
    r#"
-- Verdicts this node has reached and not yet signed: each is stored with the contract's end,
-- signed with others in one `cue/outcome-attestations` set, and deleted in that set's commit.
CREATE TABLE owed_attestations (
    id   INTEGER PRIMARY KEY,
    body BLOB NOT NULL   -- canonical OUTCOME_ATTESTATION body
) STRICT;
"#,
    r#"
-- Pruning (prune.rs): protocol events (not ledger entries: those have a chain position) oldest
-- first, which a ledger entry does not write; and the links of one event. The second is whole,
-- not partial: deleting an event makes SQLite look up its links by `event_id` for the foreign
-- key, and without an index it scans event_links for each (27 s for 4,096 events in a log of
-- 200,000; 0.14 s with it). A chained entry writes its `prev` link to it: no difference
-- measured (prune.rs, `measure_the_link_index_on_authored_transfers`).
CREATE INDEX events_unchained_by_age ON events (received_ms, id) WHERE seq IS NULL;
CREATE INDEX event_links_by_event ON event_links (event_id);
"#,
    r#"
-- The escrow (docs/ledger.md): locks not yet released, updated in the same transaction as
-- the TOKEN_LOCK that opens one and the TOKEN_RELEASE that ends it. A node rebuilds its open
-- locks from here at start; the supply is the balances plus these.
CREATE TABLE locks (
    hash   BLOB    PRIMARY KEY,   -- hash of the TOKEN_LOCK
    payer  BLOB    NOT NULL,      -- the consumer, its signer
    payee  BLOB    NOT NULL,      -- the provider
    amount INTEGER NOT NULL CHECK (amount > 0),
    job    BLOB    NOT NULL
) STRICT;
CREATE INDEX locks_by_payer ON locks (payer);
CREATE INDEX locks_by_job ON locks (job);
"#,
];

/// The registry database (component manifests, pinned names, known peers), separate from the
/// ledger's because it needs no genesis. Append only, like [`LEDGER`].
pub(super) const REGISTRY: &[&str] = &[
    r#"
-- Every component manifest this node accepted, whole.
CREATE TABLE components (
    hash        BLOB    PRIMARY KEY,        -- SHA-256 of bytes: the event's id
    name        TEXT    NOT NULL REFERENCES names (name),
    version     TEXT    NOT NULL,           -- semver, without build metadata
    sha256      BLOB    NOT NULL,           -- the component's bytes
    size        INTEGER NOT NULL,
    publisher   BLOB    NOT NULL,           -- 32-byte ed25519 key, the signer
    bytes       BLOB    NOT NULL,           -- canonical encoding, re-verifiable by anyone
    received_ms INTEGER NOT NULL,
    UNIQUE (name, version)
) STRICT;
CREATE INDEX components_by_sha256 ON components (sha256);
CREATE INDEX components_by_publisher ON components (publisher);

-- Who owns each name: the publisher of the first manifest accepted for it (trust on first use).
CREATE TABLE names (
    name          TEXT    PRIMARY KEY,
    owner         BLOB    NOT NULL,
    first_seen_ms INTEGER NOT NULL
) STRICT;

-- Providers seen on the network, so a restarted node can dial them again.
CREATE TABLE peers (
    key          BLOB    PRIMARY KEY,       -- 32-byte ed25519 key
    manifest     BLOB,                      -- their latest signed resource manifest
    addresses    TEXT    NOT NULL,          -- JSON array of multiaddr strings
    last_seen_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX peers_by_last_seen ON peers (last_seen_ms);
"#,
    r#"
-- The registry's caps (registry_cap.rs): when each name was last used (learnt or resolved),
-- so that at a cap the least recently used names are forgotten first.
ALTER TABLE names ADD COLUMN last_used_ms INTEGER NOT NULL DEFAULT 0;
UPDATE names SET last_used_ms = first_seen_ms;
CREATE INDEX names_by_last_use ON names (last_used_ms, name);
"#,
];

/// Brings a database up to date with `migrations`, refusing one written by a newer build.
pub(super) fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = migrations.len() as u32;
    if version > known {
        return Err(StoreError::SchemaTooNew { found: version, known });
    }
    for (index, migration) in migrations.iter().enumerate().skip(version as usize) {
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
