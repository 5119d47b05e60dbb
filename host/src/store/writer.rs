//! The single writer: a thread that owns the write connection and the ledger state, fed by a
//! bounded queue, committing commands in groups.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Transaction, params};

use super::contracts::{ContractRow, ProtocolEvent, upsert_contract};
use super::{StoreError, SubmitError, digest_from_blob, key_from_blob, now_ms, schema, stored_genesis};
use crate::crypto::{Digest, Keypair, PublicKey};
use crate::ledger::{Account, Applied, EquivocationProof, Genesis, Ledger, LedgerError};
use crate::protocol::{
    DEFAULT_NONCE_CAPACITY, Event, Mint, PaymentReference, SeenNonces, Transfer, Validity, Verified,
};

/// Commands waiting for the writer; when full, [`LedgerStore`] calls block until there is room
/// (back-pressure on whoever produces events faster than the disk takes them).
pub const QUEUE_CAPACITY: usize = 4096;
/// Most commands committed in one transaction (one fsync).
pub const MAX_BATCH: usize = 1024;
/// How far ahead of its chain an entry submitted with
/// [`submit_in_order`](LedgerStore::submit_in_order) may be and still wait for its
/// predecessors (further: refused as out of order at once).
pub const REORDER_WINDOW: u64 = 256;
/// Most entries waiting in the writer for their predecessors; beyond, an early entry is
/// refused as out of order at once.
pub const MAX_HELD: usize = 1024;

/// How an event is being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A new event arriving now (from a peer, a file, the API): it must be unexpired, not from
    /// the future, and its nonce unseen.
    Fresh {
        /// The receiver's clock, ms since the epoch.
        now_ms: u64,
    },
    /// An old entry of a chain being caught up on (sync, restore from backup): only the
    /// signature and the ledger rules apply; replays are still caught by the chain.
    Historical,
}

/// A ledger entry for the writer to complete (chain position) and sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draft {
    /// Mint `amount` to `to` (the signer must be the mint authority).
    Mint {
        /// The credited account.
        to: PublicKey,
        /// Tokens created.
        amount: u64,
    },
    /// Pay `amount` to `to`.
    Transfer {
        /// The payee.
        to: PublicKey,
        /// Tokens paid.
        amount: u64,
        /// What it pays for.
        reference: Option<PaymentReference>,
    },
}

/// An event that is now durably in the log and applied to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The event.
    pub event: Event,
    /// Its position in this node's log.
    pub log_position: i64,
}

/// The answer to a command, available once its batch is committed: [`wait`](Pending::wait)
/// from a thread, [`done`](Pending::done) from async code.
#[must_use = "the command's outcome is only known by waiting for it"]
pub struct Pending<T> {
    reply: tokio::sync::oneshot::Receiver<Result<T, SubmitError>>,
}

impl<T> Pending<T> {
    /// Blocks until the batch holding the command is committed (or refused). Not for async
    /// code (it would stall a runtime thread): use [`done`](Pending::done) there.
    pub fn wait(self) -> Result<T, SubmitError> {
        self.reply.blocking_recv().unwrap_or(Err(SubmitError::Store(StoreError::Closed)))
    }

    /// Resolves when the batch holding the command is committed (or refused).
    pub async fn done(self) -> Result<T, SubmitError> {
        self.reply.await.unwrap_or(Err(SubmitError::Store(StoreError::Closed)))
    }
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, SubmitError>>;

enum Command {
    Submit {
        /// Boxed, like the proof: events are large, and the queue holds thousands of commands.
        event: Box<Verified>,
        admission: Admission,
        /// Stored in the same transaction only if the event is accepted.
        then: Box<Records>,
        /// How long an entry ahead of its chain may wait in the writer for its predecessors.
        wait: Option<std::time::Duration>,
        reply: Reply<Accepted>,
    },
    Author {
        signer: Arc<Keypair>,
        draft: Draft,
        validity: Validity,
        /// What to store in the same transaction once the entry is admitted, given it.
        then: Option<AuthorRecords>,
        reply: Reply<Accepted>,
    },
    Proof {
        proof: Box<EquivocationProof>,
        reply: Reply<bool>,
    },
    Records {
        records: Box<Records>,
        reply: Reply<()>,
    },
}

/// What an authored entry is stored with, made once the entry is signed (its hash known).
pub type AuthorRecords = Box<dyn FnOnce(&Event) -> Records + Send>;

/// Protocol events and contract rows that go with a ledger entry (see
/// [`LedgerStore::submit_with`]).
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// Protocol events for the log.
    pub events: Vec<ProtocolEvent>,
    /// Contract rows to insert or update.
    pub rows: Vec<ContractRow>,
    /// Verdicts this node owes an attestation for (canonical `OUTCOME_ATTESTATION` bodies),
    /// kept until they are signed in a set.
    pub owe: Vec<Vec<u8>>,
    /// Owed attestations (their ids) that an event of `events` now signs: deleted.
    pub attested: Vec<i64>,
}

impl Records {
    /// Only contract rows.
    pub fn rows(rows: Vec<ContractRow>) -> Records {
        Records { rows, ..Records::default() }
    }
}

/// The event log and ledger of one node.
///
/// Shutdown: dropping the `LedgerStore` closes the queue; the writer commits what it already
/// received, answers it, and exits; `drop` waits for it. Every [`Pending`] answered `Ok` before
/// that is durable (WAL, `synchronous = FULL`).
pub struct LedgerStore {
    genesis: Genesis,
    queue: Option<SyncSender<Command>>,
    /// Commands sent and not yet taken by the writer (at most [`QUEUE_CAPACITY`] wait).
    queued: Arc<AtomicUsize>,
    /// Idle read connections, reused by [`reader`](LedgerStore::reader).
    readers: super::reader::ReaderPool,
    writer: Option<JoinHandle<()>>,
    /// The accounts flagged for equivocation as of the last commit (see [`Writer::flagged`]).
    flagged: Arc<RwLock<HashSet<PublicKey>>>,
}

impl LedgerStore {
    /// Opens (creating if needed) the database at `path` for `genesis`. Without a genesis the
    /// database must already have one; with one, it must be the same.
    pub fn open(path: &Path, genesis: Option<Genesis>) -> Result<LedgerStore, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                what: format!("cannot create {}", parent.display()),
                source,
            })?;
        }
        // The WAL-gathering VFS needs `synchronous=FULL`, set below (see `walbuf`).
        let mut conn = match super::walbuf::register() {
            Ok(()) => Connection::open_with_flags_and_vfs(path, OpenFlags::default(), super::walbuf::NAME)?,
            Err(e) => {
                tracing::warn!("the ledger writes its log without gathering WAL writes: {e}");
                Connection::open(path)?
            }
        };
        schema::configure(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn, schema::LEDGER)?;
        let genesis = init_genesis(&mut conn, genesis)?;
        let state = load_state(&conn, &genesis)?;
        let (queue, commands) = sync_channel(QUEUE_CAPACITY);
        let queued = Arc::new(AtomicUsize::new(0));
        let flagged = Arc::new(RwLock::new(flagged_accounts(&state.0)));
        let writer = Writer {
            conn,
            genesis: genesis.clone(),
            ledger: state.0,
            nonces: state.1,
            queued: queued.clone(),
            held: HashMap::new(),
            flagged: flagged.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("cue-ledger-writer".into())
            .spawn(move || writer.run(commands))
            .map_err(|source| StoreError::Io { what: "cannot start the writer thread".into(), source })?;
        Ok(LedgerStore {
            genesis,
            queue: Some(queue),
            queued,
            readers: super::reader::ReaderPool::new(path),
            writer: Some(writer),
            flagged,
        })
    }

    /// Whether `account` is flagged for equivocation, as of the last commit: from memory, so
    /// answering a request costs no read of the database.
    pub fn is_flagged(&self, account: &PublicKey) -> bool {
        self.flagged.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(account)
    }

    /// The network's genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// A read connection: an idle one from the pool, else a new one. It goes back to the pool
    /// when dropped (at most [`MAX_IDLE_READERS`](super::MAX_IDLE_READERS) are kept).
    pub fn reader(&self) -> Result<super::PooledReader<'_>, StoreError> {
        self.readers.get()
    }

    /// Queues a verified event for admission, ledger rules and storage.
    pub fn submit(&self, event: Verified, admission: Admission) -> Result<Pending<Accepted>, StoreError> {
        self.submit_with(event, admission, Records::default())
    }

    /// Like [`submit`](LedgerStore::submit), and when the event is accepted, `then` is stored
    /// in the same transaction (a payment with the contract it settles); when it is refused,
    /// nothing of `then` is.
    pub fn submit_with(
        &self,
        event: Verified,
        admission: Admission,
        then: Records,
    ) -> Result<Pending<Accepted>, StoreError> {
        self.send(|reply| Command::Submit {
            event: Box::new(event),
            admission,
            then: Box::new(then),
            wait: None,
            reply,
        })
    }

    /// Like [`submit_with`](LedgerStore::submit_with), for an entry that may arrive ahead of
    /// its signer's earlier ones (concurrent payments travel on separate streams): when it is
    /// at most [`REORDER_WINDOW`] positions ahead, the writer holds it (at most [`MAX_HELD`]
    /// are held) and admits it in the same transaction as the entry before it, or answers
    /// [`LedgerError::OutOfOrder`] once `wait` has passed.
    pub fn submit_in_order(
        &self,
        event: Verified,
        admission: Admission,
        then: Records,
        wait: std::time::Duration,
    ) -> Result<Pending<Accepted>, StoreError> {
        self.send(|reply| Command::Submit {
            event: Box::new(event),
            admission,
            then: Box::new(then),
            wait: Some(wait),
            reply,
        })
    }

    /// Queues an entry to be completed with the signer's next chain position, signed with
    /// `signer`, applied and stored.
    pub fn author(
        &self,
        signer: Arc<Keypair>,
        draft: Draft,
        validity: Validity,
    ) -> Result<Pending<Accepted>, StoreError> {
        self.send(|reply| Command::Author { signer, draft, validity, then: None, reply })
    }

    /// Like [`author`](LedgerStore::author), and when the entry is admitted, what `then` makes
    /// of it is stored in the same transaction (a payment with the receipt and the paid
    /// contract: one commit); when it is refused, nothing is.
    pub fn author_with(
        &self,
        signer: Arc<Keypair>,
        draft: Draft,
        validity: Validity,
        then: impl FnOnce(&Event) -> Records + Send + 'static,
    ) -> Result<Pending<Accepted>, StoreError> {
        self.send(|reply| Command::Author { signer, draft, validity, then: Some(Box::new(then)), reply })
    }

    /// Records an equivocation proof received from elsewhere: flags the account, keeps the
    /// proof. Answers whether the account was newly flagged.
    pub fn record_proof(&self, proof: EquivocationProof) -> Result<Pending<bool>, StoreError> {
        self.send(|reply| Command::Proof { proof: Box::new(proof), reply })
    }

    /// Queues events, contract rows and owed attestations to be stored together (in one
    /// transaction: all or none).
    pub fn store(&self, records: Records) -> Result<Pending<()>, StoreError> {
        self.send(|reply| Command::Records { records: Box::new(records), reply })
    }

    fn send<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<Pending<T>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        self.queued.fetch_add(1, Ordering::SeqCst);
        if queue.send(command(reply)).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Closed);
        }
        Ok(Pending { reply: answer })
    }

    /// Whether the queue has room now, so queueing a command will not block: async callers
    /// queue directly when it has, and from a blocking thread when it has not (another caller
    /// may take the room in between; then the wait is for the writer to take one command).
    pub fn has_room(&self) -> bool {
        self.queued.load(Ordering::SeqCst) < QUEUE_CAPACITY
    }
}

impl Drop for LedgerStore {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            // A panicked writer has already failed every pending command; nothing to add.
            let _ = writer.join();
        }
    }
}

fn init_genesis(conn: &mut Connection, given: Option<Genesis>) -> Result<Genesis, StoreError> {
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
fn flagged_accounts(ledger: &Ledger) -> HashSet<PublicKey> {
    ledger.accounts().filter(|(_, account)| account.flagged).map(|(key, _)| *key).collect()
}

/// Rebuilds the in-memory ledger (balances and flags from `accounts`, chains from `events`) and
/// the live nonces from the database.
fn load_state(conn: &Connection, genesis: &Genesis) -> Result<(Ledger, SeenNonces), StoreError> {
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
    let ledger =
        Ledger::restore(genesis.clone(), accounts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut nonces = SeenNonces::new(DEFAULT_NONCE_CAPACITY);
    let mut stmt = conn.prepare(
        "SELECT bytes FROM events WHERE expires_ms > ?1 AND kind IN ('cue/token-mint', 'cue/token-transfer')",
    )?;
    let mut rows = stmt.query([now_ms() as i64])?;
    while let Some(row) = rows.next()? {
        let event = Event::decode(row.get_ref(0)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))?)
            .map_err(|e| StoreError::Corrupt(format!("stored event: {e}")))?;
        nonces.record(event.header());
    }
    Ok((ledger, nonces))
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    genesis: Genesis,
    /// The ledger as of the last commit plus the current batch.
    ledger: Ledger,
    /// Live nonces as of the last commit plus the current batch.
    nonces: SeenNonces,
    /// The store's count of commands waiting, decremented as they are taken.
    queued: Arc<AtomicUsize>,
    /// Entries ahead of their chain waiting for their predecessors, by (signer, position).
    held: HashMap<(PublicKey, u64), Vec<Held>>,
    /// The flagged accounts as [`LedgerStore::is_flagged`] answers them: set again after a
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
}

impl Writer {
    fn run(mut self, commands: Receiver<Command>) {
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
            Some(_) => load_state(&self.conn, &self.genesis).map(|(ledger, nonces)| {
                self.ledger = ledger;
                self.nonces = nonces;
            }),
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
        let mut chains = Chains { ledger: &mut self.ledger, nonces: &mut self.nonces, held: &mut self.held };
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
                        let accepted = admit(
                            &tx,
                            chains.ledger,
                            chains.nonces,
                            &event,
                            Admission::Historical,
                            received,
                        )?;
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
    nonces: &'a mut SeenNonces,
    held: &'a mut HashMap<(PublicKey, u64), Vec<Held>>,
}

impl Chains<'_> {
    /// A submitted entry: admitted with its records and answered, then the held entries it
    /// lets in; or, when it is a little ahead of its chain and may wait (`until`) while there
    /// is room, held.
    fn submit(&mut self, tx: &Transaction<'_>, submitted: Held, answers: &mut Vec<Answer>, received: u64) {
        let signer = submitted.event.event().signer();
        let seq = submitted.event.event().entry().link.seq;
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
        let accepted = admit(tx, self.ledger, self.nonces, &submitted.event, admission, received)?;
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
    })
}

/// Admission checks, ledger rules, then the rows: event, links, balances.
fn admit(
    tx: &Transaction<'_>,
    ledger: &mut Ledger,
    nonces: &mut SeenNonces,
    verified: &Verified,
    admission: Admission,
    received_ms: u64,
) -> Result<Accepted, SubmitError> {
    let event = verified.event();
    if let Admission::Fresh { now_ms } = admission {
        event.verify_fresh(now_ms, nonces)?;
    }
    let applied = match ledger.apply(verified) {
        Ok(applied) => applied,
        Err(LedgerError::Equivocation { existing, .. }) => {
            return Err(convict(tx, ledger, event, existing, received_ms));
        }
        Err(e) => return Err(e.into()),
    };
    nonces.record(event.header());
    let log_position = insert_event(tx, event, &applied, received_ms).map_err(SubmitError::Store)?;
    Ok(Accepted { event: verified.event().clone(), log_position })
}

fn insert_event(
    tx: &Transaction<'_>,
    event: &Event,
    applied: &Applied,
    received_ms: u64,
) -> Result<i64, StoreError> {
    let header = event.header();
    let entry = event.entry();
    tx.prepare_cached(
        "INSERT INTO events (hash, kind, signer, seq, counterparty, amount, timestamp_ms,
                             expires_ms, nonce, received_ms, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        &applied.hash.0,
        header.kind.tag(),
        header.signer.as_bytes(),
        entry.link.seq as i64,
        entry.to.as_bytes(),
        entry.amount as i64,
        header.timestamp_ms as i64,
        header.expires_ms as i64,
        &header.nonce,
        received_ms as i64,
        event.bytes(),
    ])?;
    let id = tx.last_insert_rowid();
    let mut links: Vec<(&str, Digest)> = entry.link.prev.map(|p| ("prev", p)).into_iter().collect();
    if let Event::Transfer(t) = event {
        match t.body().reference {
            Some(PaymentReference::Contract(d)) => links.push(("contract", d)),
            Some(PaymentReference::Receipt(d)) => links.push(("receipt", d)),
            _ => {}
        }
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
        seq: event.entry().link.seq,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::protocol::{ChainLink, Signed};

    fn genesis(network_id: &str, key: &Keypair) -> Genesis {
        Genesis {
            network_id: network_id.into(),
            mint_authority: key.public(),
            allocations: BTreeMap::from([(key.public(), 1_000)]),
        }
    }

    #[test]
    fn state_survives_reopening_and_the_genesis_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let key = Arc::new(Keypair::from_seed([1; 32]));
        let payee = Keypair::from_seed([2; 32]).public();
        assert!(matches!(LedgerStore::open(&path, None), Err(StoreError::NoGenesis)));
        let store = LedgerStore::open(&path, Some(genesis("a", &key))).unwrap();
        let pending: Vec<_> = (0..100)
            .map(|_| {
                let draft = Draft::Transfer { to: payee, amount: 3, reference: None };
                store.author(key.clone(), draft, Validity::starting(now_ms(), 60_000)).unwrap()
            })
            .collect();
        for (seq, p) in pending.into_iter().enumerate() {
            assert_eq!(p.wait().unwrap().event.entry().link.seq, seq as u64);
        }
        drop(store);

        let store = LedgerStore::open(&path, None).unwrap();
        let reader = store.reader().unwrap();
        assert_eq!(reader.balance(&payee).unwrap(), 300);
        assert_eq!(reader.balance(&key.public()).unwrap(), 700);
        let draft = Draft::Transfer { to: payee, amount: 1, reference: None };
        let next = store.author(key.clone(), draft, Validity::starting(now_ms(), 60_000)).unwrap();
        assert_eq!(next.wait().unwrap().event.entry().link.seq, 100);
        drop(reader);
        drop(store);

        let other = LedgerStore::open(&path, Some(genesis("b", &key)));
        assert!(matches!(other, Err(StoreError::GenesisMismatch { .. })));
    }

    #[test]
    fn an_equivocation_is_kept_as_a_proof_that_other_stores_accept() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::from_seed([1; 32]);
        let payee = Keypair::from_seed([2; 32]).public();
        let a = LedgerStore::open(&dir.path().join("a.sqlite3"), Some(genesis("n", &key))).unwrap();
        let b = LedgerStore::open(&dir.path().join("b.sqlite3"), Some(genesis("n", &key))).unwrap();
        let fork = |amount| {
            let body = Transfer {
                genesis: a.genesis().id(),
                link: ChainLink::FIRST,
                to: payee,
                amount,
                reference: None,
            };
            let event =
                Event::Transfer(Signed::sign(&key, body, Validity::starting(now_ms(), 60_000)).unwrap());
            event.verify().unwrap()
        };
        let fresh = Admission::Fresh { now_ms: now_ms() };
        a.submit(fork(10), fresh).unwrap().wait().unwrap();
        assert!(!a.is_flagged(&key.public()));
        let refused = a.submit(fork(20), fresh).unwrap().wait();
        assert!(matches!(refused, Err(SubmitError::Ledger(LedgerError::Equivocation { seq: 0, .. }))));
        let proofs = a.reader().unwrap().equivocation_proofs().unwrap();
        assert_eq!(proofs.len(), 1);
        assert!(a.reader().unwrap().is_flagged(&key.public()).unwrap());

        // Gossip: another node checks the proof on its own and flags the account too.
        let proof = EquivocationProof::decode(&proofs[0]).unwrap();
        assert!(b.record_proof(proof).unwrap().wait().unwrap());
        assert!(b.reader().unwrap().is_flagged(&key.public()).unwrap());
        let late = b.submit(fork(5), fresh).unwrap().wait();
        assert!(matches!(late, Err(SubmitError::Ledger(LedgerError::AccountFlagged(_)))));
        // The in-memory answer (what reputation reads) follows each commit, and a restart.
        assert!(a.is_flagged(&key.public()) && b.is_flagged(&key.public()));
        assert!(!a.is_flagged(&payee));
        drop(a);
        let a = LedgerStore::open(&dir.path().join("a.sqlite3"), None).unwrap();
        assert!(a.is_flagged(&key.public()));
    }

    /// A chain of `count` transfers authored on a store of its own, as verified entries.
    fn chain(key: &Arc<Keypair>, genesis: &Genesis, count: usize) -> Vec<Verified> {
        let dir = tempfile::tempdir().unwrap();
        let author = LedgerStore::open(&dir.path().join("author.sqlite3"), Some(genesis.clone())).unwrap();
        let payee = Keypair::from_seed([2; 32]).public();
        let pending: Vec<_> = (0..count)
            .map(|_| {
                let draft = Draft::Transfer { to: payee, amount: 1, reference: None };
                author.author(key.clone(), draft, Validity::starting(now_ms(), 60_000)).unwrap()
            })
            .collect();
        pending.into_iter().map(|p| p.wait().unwrap().event.verify().unwrap()).collect()
    }

    #[test]
    fn entries_ahead_of_their_chain_wait_in_the_writer_and_land_after_their_predecessor() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(Keypair::from_seed([1; 32]));
        let genesis = genesis("n", &key);
        let entries = chain(&key, &genesis, 6);
        let store = LedgerStore::open(&dir.path().join("b.sqlite3"), Some(genesis)).unwrap();
        let fresh = Admission::Fresh { now_ms: now_ms() };
        let wait = std::time::Duration::from_secs(10);
        // Last first: seq 3, 2 and 1 are held until seq 0 comes, then all land in order.
        let started = std::time::Instant::now();
        let pending: Vec<_> = entries[..4]
            .iter()
            .rev()
            .map(|e| store.submit_in_order(e.clone(), fresh, Records::default(), wait).unwrap())
            .collect();
        let seqs: Vec<u64> =
            pending.into_iter().map(|p| p.wait().expect("admitted").event.entry().link.seq).collect();
        assert_eq!(seqs, vec![3, 2, 1, 0]);
        assert!(started.elapsed() < wait, "admitted with their predecessor, not after the wait");
        let payee = Keypair::from_seed([2; 32]).public();
        assert_eq!(store.reader().unwrap().balance(&payee).unwrap(), 4);

        // The same early payment told twice (on its stream, then by `Pay`): both wait, one is
        // stored, the other is answered as already known (its nonce is a replay).
        let twice: Vec<_> = (0..2)
            .map(|_| store.submit_in_order(entries[5].clone(), fresh, Records::default(), wait).unwrap())
            .collect();
        store.submit(entries[4].clone(), fresh).unwrap().wait().unwrap();
        let answers: Vec<_> = twice.into_iter().map(Pending::wait).collect();
        assert_eq!(answers[0].as_ref().map(|a| a.event.entry().link.seq).ok(), Some(5));
        let known = matches!(
            answers[1],
            Err(SubmitError::Event(crate::protocol::EventError::Replay)
                | SubmitError::Ledger(LedgerError::Duplicate { .. }))
        );
        assert!(known, "{answers:?}");
        assert_eq!(store.reader().unwrap().balance(&payee).unwrap(), 6);
    }

    #[test]
    fn an_early_entry_whose_predecessor_never_comes_is_refused_after_its_wait() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(Keypair::from_seed([1; 32]));
        let genesis = genesis("n", &key);
        let entries = chain(&key, &genesis, REORDER_WINDOW as usize + 2);
        let store = LedgerStore::open(&dir.path().join("b.sqlite3"), Some(genesis)).unwrap();
        let fresh = Admission::Fresh { now_ms: now_ms() };
        let wait = std::time::Duration::from_millis(300);
        let started = std::time::Instant::now();
        let early = store.submit_in_order(entries[1].clone(), fresh, Records::default(), wait).unwrap();
        let refused = early.wait();
        assert!(
            matches!(refused, Err(SubmitError::Ledger(LedgerError::OutOfOrder { expected: 0, found: 1 }))),
            "{refused:?}"
        );
        assert!(started.elapsed() >= wait, "held for its wait first");
        // Too far ahead: refused at once, without waiting.
        let started = std::time::Instant::now();
        let far = entries[REORDER_WINDOW as usize + 1].clone();
        let refused = store.submit_in_order(far, fresh, Records::default(), wait).unwrap().wait();
        assert!(matches!(refused, Err(SubmitError::Ledger(LedgerError::OutOfOrder { .. }))), "{refused:?}");
        assert!(started.elapsed() < wait, "not held");
        // Nothing of that was stored, and the chain goes on from where it was.
        let first = store.submit_in_order(entries[0].clone(), fresh, Records::default(), wait).unwrap();
        assert_eq!(first.wait().unwrap().event.entry().link.seq, 0);
        let second = store.submit(entries[1].clone(), fresh).unwrap();
        assert_eq!(second.wait().unwrap().event.entry().link.seq, 1);
    }
}
