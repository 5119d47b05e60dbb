//! The writer thread: it owns the write connection and the ledger state, takes commands from
//! the bounded queue, and commits them in groups (one transaction, one sync, up to
//! [`MAX_BATCH`] commands), answering each once its group is durable.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, RwLock};

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use super::command::{Accepted, Admission, Command, Draft, Records, Reply};
use super::contracts::upsert_contract;
use super::prune::{Pruned, prune};
use super::{StoreError, SubmitError, digest_from_blob, key_from_blob, stored_genesis};
use crate::clock::now_ms;
use crate::crypto::{Digest, Keypair, PublicKey};
use crate::ledger::{Account, Applied, EquivocationProof, Genesis, Ledger, LedgerError, LockChange};
use crate::protocol::{Event, Lock, Mint, PaymentReference, Release, Transfer, Validity, Verified};

/// Most commands committed in one transaction (one fsync).
pub const MAX_BATCH: usize = 1024;
/// How far ahead of its chain an entry submitted with `LedgerStore::submit_in_order` may be
/// and still wait for its predecessors (further: refused as out of order at once).
pub const REORDER_WINDOW: u64 = 256;
/// Most entries waiting in the writer for their predecessors; beyond, an early entry is
/// refused as out of order at once.
pub const MAX_HELD: usize = 1024;

pub(super) fn init_genesis(conn: &mut Connection, given: Option<Genesis>) -> Result<Genesis, StoreError> {
    match (stored_genesis(conn)?, given) {
        (Some(stored), Some(given)) if stored.id() != given.id() => {
            Err(StoreError::GenesisMismatch { stored: stored.id(), given: given.id() })
        }
        (Some(stored), _) => Ok(stored),
        (None, None) => Err(StoreError::NoGenesis),
        (None, Some(genesis)) => {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('genesis', ?1)",
                [genesis.to_toml().map_err(StoreError::InvalidGenesis)?.as_bytes()],
            )?;
            for (key, amount) in &genesis.allocations {
                tx.execute(
                    "INSERT INTO accounts (key, balance) VALUES (?1, ?2)",
                    params![key.as_bytes(), *amount as i64],
                )?;
            }
            tx.commit()?;
            Ok(genesis)
        }
    }
}

/// The accounts `ledger` has flagged for equivocation.
pub(super) fn flagged_accounts(ledger: &Ledger) -> HashSet<PublicKey> {
    ledger.accounts().filter(|(_, account)| account.flagged).map(|(key, _)| *key).collect()
}

/// Rebuilds the in-memory ledger (balances and flags from `accounts`, chains from `events`)
/// from the database. Ledger entries need no nonce window: a replayed entry holds a chain
/// position already taken, and is refused as a duplicate.
pub(super) fn load_state(conn: &Connection, genesis: &Genesis) -> Result<Ledger, StoreError> {
    let mut accounts: HashMap<PublicKey, Account> = HashMap::new();
    let mut stmt = conn.prepare("SELECT key, balance, flagged FROM accounts")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let account = accounts.entry(key_from_blob(row.get(0)?)?).or_default();
        account.balance = row.get::<_, i64>(1)? as u64;
        account.flagged = row.get(2)?;
    }
    let mut stmt =
        conn.prepare("SELECT signer, seq, hash FROM events WHERE seq IS NOT NULL ORDER BY signer, seq")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let chain = &mut accounts.entry(key_from_blob(row.get(0)?)?).or_default().chain;
        if row.get::<_, i64>(1)? != chain.len() as i64 {
            return Err(StoreError::Corrupt("a ledger chain has a gap".into()));
        }
        chain.push(digest_from_blob(row.get(2)?)?);
    }
    let locks = super::locks::load(conn)?;
    let ledger =
        Ledger::restore(genesis.clone(), accounts, locks).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(ledger)
}

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    genesis: Genesis,
    /// The ledger as of the last commit plus the current batch.
    ledger: Ledger,
    /// The store's count of commands waiting, decremented as they are taken.
    queued: Arc<AtomicUsize>,
    /// Entries ahead of their chain waiting for their predecessors, by (signer, position).
    held: HashMap<(PublicKey, u64), Vec<Held>>,
    /// The flagged accounts as `LedgerStore::is_flagged` answers them: set again after a
    /// commit (or a reload) changes how many there are.
    flagged: Arc<RwLock<HashSet<PublicKey>>>,
}

/// A submitted entry with its answer; held (in [`Writer::held`]) while it is ahead of its
/// chain, until the entry before it is admitted or `until` passes.
struct Held {
    event: Box<Verified>,
    admission: Admission,
    then: Box<Records>,
    reply: Reply<Accepted>,
    /// Until when it may wait; `None`: it may not.
    until: Option<std::time::Instant>,
}

/// A command processed inside the batch's transaction, waiting for the commit to answer.
enum Answer {
    /// The outcome is boxed: an accepted event is large, and a batch holds many answers.
    Event(Reply<Accepted>, Box<Result<Accepted, SubmitError>>),
    Proof(Reply<bool>, Result<bool, SubmitError>),
    Unit(Reply<()>, Result<(), SubmitError>),
    Pruned(Reply<Pruned>, Result<Pruned, SubmitError>),
}

impl Writer {
    /// The writer of `conn`, starting from `ledger` (as [`load_state`] read it); `queued` and `flagged` are shared with the store's handle.
    pub(super) fn new(
        conn: Connection,
        genesis: Genesis,
        ledger: Ledger,
        queued: Arc<AtomicUsize>,
        flagged: Arc<RwLock<HashSet<PublicKey>>>,
    ) -> Writer {
        Writer { conn, genesis, ledger, queued, held: HashMap::new(), flagged }
    }

    pub(super) fn run(mut self, commands: Receiver<Command>) {
        loop {
            self.expire_held();
            let first = match self.held.values().flatten().filter_map(|held| held.until).min() {
                None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(until) => {
                    commands.recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
                }
            };
            let first = match first {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.queued.fetch_sub(batch.len(), Ordering::SeqCst);
            if let Err(e) = self.commit_batch(batch) {
                tracing::error!(error = %e, "ledger writer stopped: cannot reload its state");
                return;
            }
        }
    }

    /// Processes a batch in one transaction and answers every command after the commit. On a
    /// database error nothing of the batch is kept, the in-memory state is reloaded from the
    /// database and every command that had passed is answered with the error; if even reloading
    /// fails the writer stops (and later commands get [`StoreError::Closed`]).
    fn commit_batch(&mut self, batch: Vec<Command>) -> Result<(), StoreError> {
        let mut answers = Vec::with_capacity(batch.len());
        let failure = self.process(batch, &mut answers).err().map(|e| e.to_string());
        let reloaded = match failure {
            None => Ok(()),
            Some(_) => load_state(&self.conn, &self.genesis).map(|ledger| self.ledger = ledger),
        };
        let mut flagged = self.flagged.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if flagged.len() != self.ledger.flagged_count() {
            *flagged = flagged_accounts(&self.ledger);
        }
        drop(flagged);
        for answer in answers {
            answer.send(failure.as_deref());
        }
        reloaded
    }

    fn process(&mut self, batch: Vec<Command>, answers: &mut Vec<Answer>) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let received = now_ms();
        let mut chains = Chains { ledger: &mut self.ledger, held: &mut self.held };
        let mut commands = batch.into_iter();
        while let Some(command) = commands.next() {
            // A command answers itself and, when it moves a chain, the held entries it lets in.
            let first = answers.len();
            match command {
                Command::Submit { event, admission, then, wait, reply } => {
                    let until = wait.map(|wait| std::time::Instant::now() + wait);
                    chains.submit(&tx, Held { event, admission, then, reply, until }, answers, received);
                }
                Command::Author { signer, draft, validity, then, reply } => {
                    let result = author(chains.ledger, &signer, draft, validity).and_then(|event| {
                        let accepted = admit(&tx, chains.ledger, &event, Admission::Historical, received)?;
                        if let Some(then) = then {
                            store_records(&tx, &then(&accepted.event), received)
                                .map_err(SubmitError::Store)?;
                        }
                        Ok(accepted)
                    });
                    let admitted = result.is_ok();
                    answers.push(Answer::Event(reply, Box::new(result)));
                    if admitted {
                        chains.admit_held_after(&tx, signer.public(), answers, received);
                    }
                }
                Command::Proof { proof, reply } => {
                    let result = record_proof(&tx, chains.ledger, &proof, received);
                    answers.push(Answer::Proof(reply, result));
                }
                Command::Records { records, reply } => {
                    // A failure is a database error: it fails the whole batch (all or none).
                    let result = store_records(&tx, &records, received).map_err(SubmitError::Store);
                    answers.push(Answer::Unit(reply, result));
                }
                Command::Prune { rule, reply } => {
                    // Like records: a failure is a database error, failing the whole batch.
                    answers.push(Answer::Pruned(reply, prune(&tx, &rule).map_err(SubmitError::Store)));
                }
            }
            if let Some(e) = answers[first..].iter().find_map(Answer::database_failure) {
                // The rest of the batch is not processed; its commands get the same failure.
                answers.extend(commands.map(|command| command.unprocessed(&e)));
                return Err(StoreError::BatchFailed(e));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Refuses the held entries whose wait is over (their predecessors never came).
    fn expire_held(&mut self) {
        let now = std::time::Instant::now();
        let ledger = &self.ledger;
        self.held.retain(|(signer, seq), waiting| {
            let (late, still): (Vec<Held>, Vec<Held>) =
                std::mem::take(waiting).into_iter().partition(|held| held.until.is_some_and(|u| u <= now));
            for held in late {
                let expected = ledger.next_link(signer).seq;
                let refused = SubmitError::Ledger(LedgerError::OutOfOrder { expected, found: *seq });
                let _ = held.reply.send(Err(refused));
            }
            *waiting = still;
            !waiting.is_empty()
        });
    }
}

/// The writer's in-memory state a batch changes (borrowed apart from its connection).
struct Chains<'a> {
    ledger: &'a mut Ledger,
    held: &'a mut HashMap<(PublicKey, u64), Vec<Held>>,
}

impl Chains<'_> {
    /// A submitted entry: admitted with its records and answered, then the held entries it
    /// lets in; or, when it is a little ahead of its chain and may wait (`until`) while there
    /// is room, held.
    fn submit(&mut self, tx: &Transaction<'_>, submitted: Held, answers: &mut Vec<Answer>, received: u64) {
        let signer = submitted.event.event().signer();
        // A release is never held (it is no chain entry, so never out of order).
        let seq = submitted.event.event().seq().unwrap_or(0);
        let result = self.admit_with_records(tx, &submitted, submitted.admission, received);
        let hold = match &result {
            Err(SubmitError::Ledger(LedgerError::OutOfOrder { expected, found })) => {
                submitted.until.is_some()
                    && found > expected
                    && found - expected <= REORDER_WINDOW
                    && self.held.values().map(Vec::len).sum::<usize>() < MAX_HELD
            }
            _ => false,
        };
        if hold {
            self.held.entry((signer, seq)).or_default().push(submitted);
            return;
        }
        let admitted = result.is_ok();
        answers.push(Answer::Event(submitted.reply, Box::new(result)));
        if admitted {
            self.admit_held_after(tx, signer, answers, received);
        }
    }

    /// After an entry of `signer` was admitted: admits the held entries that now follow it,
    /// in chain order, in the same transaction. Several held for one position (the same
    /// payment told twice, or a fork) are tried in arrival order: after the first is admitted
    /// the others are answered as the ledger rules say (duplicate, equivocation).
    fn admit_held_after(
        &mut self,
        tx: &Transaction<'_>,
        signer: PublicKey,
        answers: &mut Vec<Answer>,
        received: u64,
    ) {
        loop {
            let next = self.ledger.next_link(&signer).seq;
            let Some(waiting) = self.held.remove(&(signer, next)) else { return };
            let mut admitted = false;
            for held in waiting {
                // Fresh entries are judged (expiry, clock skew) by the clock of their admission.
                let admission = match held.admission {
                    Admission::Fresh { .. } => Admission::Fresh { now_ms: received },
                    historical => historical,
                };
                let result = self.admit_with_records(tx, &held, admission, received);
                admitted |= result.is_ok();
                answers.push(Answer::Event(held.reply, Box::new(result)));
            }
            if !admitted {
                return;
            }
        }
    }

    /// Admits a submitted entry and, if it is accepted, stores its records.
    fn admit_with_records(
        &mut self,
        tx: &Transaction<'_>,
        submitted: &Held,
        admission: Admission,
        received: u64,
    ) -> Result<Accepted, SubmitError> {
        let accepted = admit(tx, self.ledger, &submitted.event, admission, received)?;
        store_records(tx, &submitted.then, received).map_err(SubmitError::Store)?;
        Ok(accepted)
    }
}

impl Command {
    /// The answer for a command of a failed batch that was never processed.
    fn unprocessed(self, failure: &str) -> Answer {
        let failed = || SubmitError::Store(StoreError::BatchFailed(failure.into()));
        match self {
            Command::Submit { reply, .. } | Command::Author { reply, .. } => {
                Answer::Event(reply, Box::new(Err(failed())))
            }
            Command::Proof { reply, .. } => Answer::Proof(reply, Err(failed())),
            Command::Records { reply, .. } => Answer::Unit(reply, Err(failed())),
            Command::Prune { reply, .. } => Answer::Pruned(reply, Err(failed())),
        }
    }
}

impl Answer {
    /// The message of a database error inside a command: it fails the whole batch.
    fn database_failure(&self) -> Option<String> {
        let error = match self {
            Answer::Event(_, result) => result.as_ref().as_ref().err(),
            Answer::Proof(_, result) => result.as_ref().err(),
            Answer::Unit(_, result) => result.as_ref().err(),
            Answer::Pruned(_, result) => result.as_ref().err(),
        };
        match error {
            Some(SubmitError::Store(e)) => Some(e.to_string()),
            _ => None,
        }
    }

    /// Answers the command; a batch `failure` turns a success into that failure.
    fn send(self, failure: Option<&str>) {
        // A caller that stopped waiting has dropped its receiver; nobody is left to tell.
        match self {
            Answer::Event(reply, result) => drop(reply.send(unless_failed(*result, failure))),
            Answer::Proof(reply, result) => drop(reply.send(unless_failed(result, failure))),
            Answer::Unit(reply, result) => drop(reply.send(unless_failed(result, failure))),
            Answer::Pruned(reply, result) => drop(reply.send(unless_failed(result, failure))),
        }
    }
}

fn unless_failed<T>(result: Result<T, SubmitError>, failure: Option<&str>) -> Result<T, SubmitError> {
    match (result, failure) {
        (Ok(_), Some(message)) => Err(SubmitError::Store(StoreError::BatchFailed(message.into()))),
        (result, _) => result,
    }
}

fn store_records(tx: &Transaction<'_>, records: &Records, received_ms: u64) -> Result<(), StoreError> {
    for event in &records.events {
        super::contracts::insert_event(tx, event, received_ms)?;
    }
    for row in &records.rows {
        upsert_contract(tx, row)?;
    }
    for body in &records.owe {
        tx.prepare_cached("INSERT INTO owed_attestations (body) VALUES (?1)")?.execute([body])?;
    }
    for id in &records.attested {
        tx.prepare_cached("DELETE FROM owed_attestations WHERE id = ?1")?.execute([id])?;
    }
    Ok(())
}

/// Completes and signs a draft at the signer's next chain position.
fn author(
    ledger: &Ledger,
    signer: &Keypair,
    draft: Draft,
    validity: Validity,
) -> Result<Verified, SubmitError> {
    let genesis = ledger.genesis_id();
    let link = ledger.next_link(&signer.public());
    Ok(match draft {
        Draft::Mint { to, amount } => {
            Verified::sign_mint(signer, Mint { genesis, link, to, amount }, validity)?
        }
        Draft::Transfer { to, amount, reference } => {
            Verified::sign_transfer(signer, Transfer { genesis, link, to, amount, reference }, validity)?
        }
        Draft::Lock { to, amount, job } => {
            Verified::sign_lock(signer, Lock { genesis, link, to, amount, job }, validity)?
        }
        Draft::Release { lock, paid, receipt, evidence } => {
            let body = Release { genesis, lock, paid, receipt, evidence };
            Verified::sign_release(signer, body, validity)?
        }
    })
}

/// Admission checks, ledger rules, then the rows: event, links, balances.
fn admit(
    tx: &Transaction<'_>,
    ledger: &mut Ledger,
    verified: &Verified,
    admission: Admission,
    received_ms: u64,
) -> Result<Accepted, SubmitError> {
    let event = verified.event();
    if let Admission::Fresh { now_ms } = admission {
        event.verify_live(now_ms)?;
    }
    let applied = match ledger.apply(verified) {
        Ok(applied) => applied,
        Err(LedgerError::Equivocation { existing, .. }) => {
            return Err(convict(tx, ledger, event, existing, received_ms));
        }
        Err(e) => return Err(e.into()),
    };
    let log_position = insert_event(tx, event, &applied, received_ms).map_err(SubmitError::Store)?;
    let (to, amount) = moved(event, &applied);
    Ok(Accepted { event: verified.event().clone(), log_position, to, amount })
}

/// Who an applied entry credits and with how much: its payee and amount, or for a release
/// the lock's payee and what it was paid.
fn moved(event: &Event, applied: &Applied) -> (PublicKey, u64) {
    match (&applied.lock, event.entry()) {
        (Some(LockChange::Released { payee, paid, .. }), _) => (*payee, *paid),
        (_, Some(entry)) => (entry.to, entry.amount),
        (_, None) => (event.signer(), 0),
    }
}

fn insert_event(
    tx: &Transaction<'_>,
    event: &Event,
    applied: &Applied,
    received_ms: u64,
) -> Result<i64, StoreError> {
    let header = event.header();
    let (to, amount) = moved(event, applied);
    tx.prepare_cached(
        "INSERT INTO events (hash, kind, signer, seq, counterparty, amount, timestamp_ms,
                             expires_ms, nonce, received_ms, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        &applied.hash.0,
        header.kind.tag(),
        header.signer.as_bytes(),
        event.seq().map(|seq| seq as i64),
        to.as_bytes(),
        amount as i64,
        header.timestamp_ms as i64,
        header.expires_ms as i64,
        &header.nonce,
        received_ms as i64,
        event.bytes(),
    ])?;
    let id = tx.last_insert_rowid();
    let prev = event.entry().and_then(|entry| entry.link.prev);
    let mut links: Vec<(&str, Digest)> = prev.map(|p| ("prev", p)).into_iter().collect();
    match event {
        Event::Transfer(t) => match t.body().reference {
            Some(PaymentReference::Contract(d)) => links.push(("contract", d)),
            Some(PaymentReference::Receipt(d)) => links.push(("receipt", d)),
            _ => {}
        },
        Event::Release(r) => {
            links.push(("lock", r.body().lock));
            links.extend(r.body().receipt.map(|d| ("receipt", d)));
        }
        _ => {}
    }
    if let Some(change) = &applied.lock {
        super::locks::write(tx, change)?;
    }
    let mut link =
        tx.prepare_cached("INSERT INTO event_links (target, relation, event_id) VALUES (?1, ?2, ?3)")?;
    for (relation, target) in links {
        link.execute(params![&target.0, relation, id])?;
    }
    let mut account = tx.prepare_cached(
        "INSERT INTO accounts (key, balance) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET balance = excluded.balance",
    )?;
    for (key, balance) in &applied.balances {
        account.execute(params![key.as_bytes(), *balance as i64])?;
    }
    Ok(id)
}

/// Builds the proof from the stored entry and the new one, keeps it and flags the account.
/// Returns the error to answer with: the equivocation, or what stopped the proof being kept.
fn convict(
    tx: &Transaction<'_>,
    ledger: &mut Ledger,
    event: &Event,
    existing: Digest,
    received_ms: u64,
) -> SubmitError {
    let equivocation = LedgerError::Equivocation {
        account: event.signer().peer_id(),
        seq: event.seq().unwrap_or(0),
        existing,
    };
    let mut keep = || -> Result<(), SubmitError> {
        let bytes: Vec<u8> = tx
            .query_row("SELECT bytes FROM events WHERE hash = ?1", [&existing.0], |row| row.get(0))
            .optional()
            .map_err(StoreError::from)?
            .ok_or_else(|| StoreError::Corrupt(format!("chain entry {existing} is not in the log")))?;
        let first = Event::decode(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let proof = EquivocationProof::new(first, event.clone())?;
        record_proof(tx, ledger, &proof, received_ms)?;
        Ok(())
    };
    match keep() {
        Ok(()) => equivocation.into(),
        Err(e) => e,
    }
}

/// Keeps a proof and flags the account it convicts, in the database and in memory.
fn record_proof(
    tx: &Transaction<'_>,
    ledger: &mut Ledger,
    proof: &EquivocationProof,
    received_ms: u64,
) -> Result<bool, SubmitError> {
    let newly = ledger.flag(proof)?;
    let account = proof.account();
    let write = || -> Result<(), rusqlite::Error> {
        tx.execute(
            "INSERT OR IGNORE INTO equivocations (account, seq, proof, detected_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![account.as_bytes(), proof.seq() as i64, proof.encode(), received_ms as i64],
        )?;
        tx.execute(
            "INSERT INTO accounts (key, balance, flagged) VALUES (?1, ?2, 1)
             ON CONFLICT (key) DO UPDATE SET flagged = 1",
            params![account.as_bytes(), ledger.balance(&account) as i64],
        )?;
        Ok(())
    };
    write().map_err(|e| SubmitError::Store(e.into()))?;
    Ok(newly)
}
