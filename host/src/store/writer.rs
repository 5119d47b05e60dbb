//! The ledger store's handle: [`LedgerStore`] opens the database, starts the single writer
//! thread (`writer_thread.rs`) and queues commands on its bounded queue; reads go through a
//! pool of read connections.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use super::command::{Accepted, Admission, Command, Draft, Pending, Records, Reply};
use super::prune::{PruneRule, Pruned};
use super::writer_thread::{Writer, flagged_accounts, init_genesis, load_state};
use super::{StoreError, schema};
use crate::crypto::{Keypair, PublicKey};
use crate::ledger::{EquivocationProof, Genesis};
use crate::protocol::{Event, Validity, Verified};

/// Commands waiting for the writer; when full, [`LedgerStore`] calls block until there is room
/// (back-pressure on whoever produces events faster than the disk takes them).
pub const QUEUE_CAPACITY: usize = 4096;

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
        let flagged = Arc::new(RwLock::new(flagged_accounts(&state)));
        let writer = Writer::new(conn, genesis.clone(), state, queued.clone(), flagged.clone());
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
    /// at most [`REORDER_WINDOW`](super::REORDER_WINDOW) positions ahead, the writer holds it (at most [`MAX_HELD`](super::MAX_HELD)
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

    /// Queues a prune of the log by `rule` (see `prune`): committed like any other command,
    /// in a batch; answers what it deleted and whether more may be left.
    pub fn prune(&self, rule: PruneRule) -> Result<Pending<Pruned>, StoreError> {
        self.send(|reply| Command::Prune { rule, reply })
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::now_ms;
    use crate::ledger::LedgerError;
    use crate::protocol::{ChainLink, Signed, Transfer};
    use crate::store::{REORDER_WINDOW, SubmitError};

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
            assert_eq!(p.wait().unwrap().event.seq().unwrap(), seq as u64);
        }
        drop(store);

        let store = LedgerStore::open(&path, None).unwrap();
        let reader = store.reader().unwrap();
        assert_eq!(reader.balance(&payee).unwrap(), 300);
        assert_eq!(reader.balance(&key.public()).unwrap(), 700);
        let draft = Draft::Transfer { to: payee, amount: 1, reference: None };
        let next = store.author(key.clone(), draft, Validity::starting(now_ms(), 60_000)).unwrap();
        assert_eq!(next.wait().unwrap().event.seq().unwrap(), 100);
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
            pending.into_iter().map(|p| p.wait().expect("admitted").event.seq().unwrap()).collect();
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
        assert_eq!(answers[0].as_ref().map(|a| a.event.seq().unwrap()).ok(), Some(5));
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
        assert_eq!(first.wait().unwrap().event.seq().unwrap(), 0);
        let second = store.submit(entries[1].clone(), fresh).unwrap();
        assert_eq!(second.wait().unwrap().event.seq().unwrap(), 1);
    }
}
