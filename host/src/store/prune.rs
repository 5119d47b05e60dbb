//! Pruning the event log, run by the writer thread like any other command (one transaction,
//! within one batch), so it never races a commit.
//!
//! What goes (a [`PruneRule`] gives the clock, the retention and the cap):
//! - a **job's records** — its protocol events (requests, accepts, rejects, receipts) and its
//!   contract rows, together — once none of its contracts is live (accepted or delivered) and
//!   nothing of it changed for the retention (default [`LOG_RETENTION`], 30 days). A job that
//!   was only rejected (a provider's reject, a consumer's unanswered request) is such a job;
//! - an **attestation** (`cue/outcome-attestation(s)`, this node's sets and gossiped ones)
//!   received longer ago than the retention, unless it names a live contract of this node;
//! - beyond [`MAX_PROTOCOL_EVENTS`] protocol events, the oldest of the above whatever their
//!   age: first records that are no contract's (rejected jobs, attestations), then ended
//!   contracts' jobs — so a flood of rejects does not push out the history of real contracts.
//!
//! What never goes: ledger entries (mints and transfers: the chains need every one), the
//! equivocation proofs and the owed attestations (tables of their own), anything of a job
//! with a live contract, and any event not yet expired (a request's nonce must outlive it:
//! the provider's replay window is restored from the log). A pruned job is gone: `cue job
//! <id>` answers not found.
//!
//! Each command deletes at most [`PRUNE_BATCH`] events and looks at most at `SCAN_LIMIT` rows
//! of the age index (`events_unchained_by_age`), so the writer is held for tens of
//! milliseconds, not for a scan of the log; it answers [`Pruned::more`] when more may be
//! left, and the caller sends another.

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::{Transaction, params};

use super::StoreError;

/// How long ended contracts, rejects and attestations are kept after their last change.
pub const LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most protocol events (every logged event but ledger entries) kept whatever their age.
pub const MAX_PROTOCOL_EVENTS: u64 = 1_000_000;
/// Most events one prune command deletes (a job's events are deleted together, so it may
/// finish a little past this).
pub const PRUNE_BATCH: u64 = 1024;
/// Most rows of the age index one prune command looks at (those kept are stepped over).
const SCAN_LIMIT: u32 = 4 * PRUNE_BATCH as u32;
/// The oldest protocol events received before `?1`, at most `?2`: walks `events_unchained_by_age`.
/// A `TOKEN_RELEASE` has no chain position but is a ledger entry: never a candidate.
const CANDIDATES: &str = "SELECT id, job FROM events WHERE seq IS NULL AND received_ms < ?1
                          AND kind <> 'cue/token-release'
                          ORDER BY received_ms, id LIMIT ?2";
/// Deletes the links of event `?1`: finds them by `event_links_by_event`.
const DELETE_LINKS: &str = "DELETE FROM event_links WHERE event_id = ?1 AND relation <> 'prev'";

/// What a prune keeps, as of when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneRule {
    /// The pruner's clock, ms since the epoch (given, so that tests need not wait a month).
    pub now_ms: u64,
    /// Records unchanged for this long go.
    pub retention_ms: u64,
    /// Protocol events kept at most; beyond, the oldest that may go do, whatever their age.
    pub max_protocol_events: u64,
}

impl PruneRule {
    /// The default rule ([`LOG_RETENTION`], [`MAX_PROTOCOL_EVENTS`]) at `now_ms`.
    pub fn at(now_ms: u64) -> PruneRule {
        PruneRule {
            now_ms,
            retention_ms: LOG_RETENTION.as_millis() as u64,
            max_protocol_events: MAX_PROTOCOL_EVENTS,
        }
    }
}

/// What one prune command deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted (with their links).
    pub events: u64,
    /// Contract rows deleted.
    pub contracts: u64,
    /// Whether more may be prunable now (the command stopped at its batch or scan limit).
    pub more: bool,
}

/// Which records a sweep may delete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Only those of no contract: rejected jobs, attestations.
    Loose,
    /// Also ended contracts' jobs.
    Any,
}

/// Prunes by `rule` in `tx` (see the module docs).
pub(super) fn prune(tx: &Transaction<'_>, rule: &PruneRule) -> Result<Pruned, StoreError> {
    let now = i64::try_from(rule.now_ms).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(i64::try_from(rule.retention_ms).unwrap_or(i64::MAX));
    let mut sweep = Sweep { tx, now, pruned: Pruned::default() };
    let mut budget = PRUNE_BATCH;
    sweep.pruned.more |= sweep.run(cutoff, Scope::Any, &mut budget)?;
    let count: i64 = tx.query_row(
        "SELECT COUNT(*) FROM events WHERE seq IS NULL AND kind <> 'cue/token-release'",
        [],
        |row| row.get(0),
    )?;
    let mut excess = (count as u64).saturating_sub(rule.max_protocol_events);
    for scope in [Scope::Loose, Scope::Any] {
        let mut allowed = excess.min(budget);
        let before = sweep.pruned.events;
        let unfinished = sweep.run(i64::MAX, scope, &mut allowed)?;
        let deleted = sweep.pruned.events - before;
        excess = excess.saturating_sub(deleted);
        budget = budget.saturating_sub(deleted);
        sweep.pruned.more |= unfinished && excess > 0;
    }
    Ok(sweep.pruned)
}

/// A candidate for pruning: an event's id and its job, if it has one.
type Candidate = (i64, Option<Vec<u8>>);

/// One prune command's deletions.
struct Sweep<'a, 'c> {
    tx: &'a Transaction<'c>,
    now: i64,
    pruned: Pruned,
}

impl Sweep<'_, '_> {
    /// Deletes what `scope` allows among the protocol events received before `before`, oldest
    /// first, until `allowed` events are deleted; answers whether it stopped with candidates
    /// left (its allowance spent, or the scan limit reached).
    fn run(&mut self, before: i64, scope: Scope, allowed: &mut u64) -> Result<bool, StoreError> {
        if *allowed == 0 {
            return Ok(true);
        }
        let candidates = self.candidates(before)?;
        let scanned_all = candidates.len() < SCAN_LIMIT as usize;
        let mut seen_jobs = HashSet::new();
        for (id, job) in candidates {
            if *allowed == 0 {
                return Ok(true);
            }
            let deleted = match job {
                Some(job) if seen_jobs.insert(job.clone()) => self.job(&job, before, scope)?,
                Some(_) => 0,
                None => self.loose(id)?,
            };
            *allowed = allowed.saturating_sub(deleted);
        }
        Ok(!scanned_all)
    }

    /// The oldest protocol events received before `before`: (id, job).
    fn candidates(&self, before: i64) -> Result<Vec<Candidate>, StoreError> {
        let mut stmt = self.tx.prepare_cached(CANDIDATES)?;
        let rows = stmt.query_map(params![before, SCAN_LIMIT], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a job's events and contracts if all may go; answers the events deleted.
    fn job(&mut self, job: &[u8], before: i64, scope: Scope) -> Result<u64, StoreError> {
        let kept: bool = self
            .tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM contracts WHERE job = ?1
                            AND (?3 OR state IN ('accepted', 'delivered') OR updated_ms >= ?2))
                 OR EXISTS (SELECT 1 FROM events WHERE job = ?1 AND (received_ms >= ?2 OR expires_ms > ?4))",
            )?
            .query_row(params![job, before, scope == Scope::Loose, self.now], |row| row.get(0))?;
        if kept {
            return Ok(0);
        }
        self.tx
            .prepare_cached(
                "DELETE FROM event_links WHERE relation <> 'prev'
                 AND event_id IN (SELECT id FROM events WHERE job = ?1 AND seq IS NULL)",
            )?
            .execute([job])?;
        let events =
            self.tx.prepare_cached("DELETE FROM events WHERE job = ?1 AND seq IS NULL")?.execute([job])?;
        let contracts = self.tx.prepare_cached("DELETE FROM contracts WHERE job = ?1")?.execute([job])?;
        self.pruned.events += events as u64;
        self.pruned.contracts += contracts as u64;
        Ok(events as u64)
    }

    /// Deletes an event of no job (an attestation) unless it is unexpired or names a live
    /// contract; answers the events deleted.
    fn loose(&mut self, id: i64) -> Result<u64, StoreError> {
        let kept: bool = self
            .tx
            .prepare_cached(
                "SELECT expires_ms > ?2 OR EXISTS (
                 SELECT 1 FROM event_links l JOIN contracts c ON c.contract = l.target
                 WHERE l.event_id = ?1 AND l.relation <> 'prev' AND c.state IN ('accepted', 'delivered'))
             FROM events WHERE id = ?1",
            )?
            .query_row(params![id, self.now], |row| row.get(0))?;
        if kept {
            return Ok(0);
        }
        self.tx.prepare_cached(DELETE_LINKS)?.execute([id])?;
        let events =
            self.tx.prepare_cached("DELETE FROM events WHERE id = ?1 AND seq IS NULL")?.execute([id])?;
        self.pruned.events += events as u64;
        Ok(events as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::now_ms;
    use crate::crypto::{Digest, Keypair};
    use crate::ledger::{EquivocationProof, Genesis};
    use crate::protocol::{
        ChainLink, ComputeRequest, Event, JobId, JobInput, PaymentReference, Signed, Transfer, Validity,
    };
    use crate::store::{
        Admission, ContractRow, ContractState, Draft, LedgerStore, ProtocolEvent, Records, Role,
    };

    const DAY_MS: u64 = 24 * 3600 * 1000;

    struct Log {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        store: LedgerStore,
        key: Arc<Keypair>,
        genesis: Genesis,
    }

    fn log() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3");
        let key = Arc::new(Keypair::from_seed([1; 32]));
        let forker = Keypair::from_seed([3; 32]);
        let genesis = Genesis {
            network_id: "prune".into(),
            mint_authority: key.public(),
            allocations: [(key.public(), 1_000_000), (forker.public(), 10)].into_iter().collect(),
        };
        let store = LedgerStore::open(&path, Some(genesis.clone())).unwrap();
        Log { _dir: dir, path, store, key, genesis }
    }

    impl Log {
        fn store(&self, records: Records) {
            self.store.store(records).unwrap().wait().unwrap();
        }

        fn prune(&self, rule: PruneRule) -> Pruned {
            self.store.prune(rule).unwrap().wait().unwrap()
        }

        /// A stand-in protocol event (the store keeps events whole without reading them).
        fn event(
            &self,
            kind: &'static str,
            job: Option<JobId>,
            links: Vec<(Digest, &'static str)>,
            tag: &str,
        ) -> ProtocolEvent {
            let now = now_ms();
            let bytes = format!("{kind} {tag}").into_bytes();
            ProtocolEvent {
                hash: Digest::of(&bytes),
                bytes,
                kind,
                signer: self.key.public(),
                timestamp_ms: now,
                expires_ms: now + 60_000,
                nonce: [0; 16],
                job,
                links,
            }
        }

        /// A contract of job `n` in `state` for `component`: a real request, stand-in accept
        /// and receipt, and its row; answers the contract id.
        fn contract(&self, n: u8, state: ContractState, component: &[u8]) -> Digest {
            let job = JobId([n; 16]);
            let body = ComputeRequest {
                job_id: job,
                provider: Keypair::from_seed([2; 32]).public(),
                genesis: self.genesis.id(),
                component: Digest::of(component),
                reference: None,
                input: JobInput::Inline("run()".into()),
                offer: 10,
                max_fuel: 10,
                max_memory_bytes: 1 << 20,
                max_execution_ms: 1_000,
            };
            let request = Signed::sign(&self.key, body, Validity::starting(now_ms(), 60_000)).unwrap();
            let request = ProtocolEvent::of(&request, Some(job), vec![]);
            let accept =
                self.event("cue/compute-accept", Some(job), vec![(request.hash, "request")], &n.to_string());
            let receipt =
                self.event("cue/receipt", Some(job), vec![(accept.hash, "contract")], &n.to_string());
            let now = now_ms();
            let row = ContractRow {
                contract: accept.hash,
                job,
                role: Role::Provider,
                peer: Keypair::from_seed([2; 32]).public(),
                state,
                request: request.hash,
                receipt: Some(receipt.hash),
                payment: None,
                offer: 10,
                price: Some(5),
                pay_by_ms: now,
                created_ms: now,
                updated_ms: now,
                detail: None,
            };
            let contract = accept.hash;
            self.store(Records {
                events: vec![request, accept, receipt],
                rows: vec![row],
                ..Records::default()
            });
            contract
        }

        fn reject(&self, n: u32, expires_ms: u64) -> Digest {
            let job = JobId([[n.to_be_bytes(), [0xee; 4]].concat(), vec![0; 8]].concat().try_into().unwrap());
            let mut reject = self.event(
                "cue/compute-reject",
                Some(job),
                vec![(Digest([9; 32]), "request")],
                &n.to_string(),
            );
            reject.expires_ms = expires_ms;
            let hash = reject.hash;
            self.store(Records { events: vec![reject], ..Records::default() });
            hash
        }

        /// A stand-in attestation set naming `contracts`, stored.
        fn attestations(&self, contracts: &[Digest], tag: &str) -> Digest {
            let links = contracts.iter().map(|contract| (*contract, "contract")).collect();
            let set = self.event("cue/outcome-attestations", None, links, tag);
            let hash = set.hash;
            self.store(Records { events: vec![set], ..Records::default() });
            hash
        }

        /// A transfer authored by the log's key: a ledger entry with its links.
        fn pay(&self, amount: u64, reference: Option<PaymentReference>) -> crate::store::Accepted {
            let draft = Draft::Transfer { to: Keypair::from_seed([2; 32]).public(), amount, reference };
            let validity = Validity::starting(now_ms(), 60_000);
            self.store.author(self.key.clone(), draft, validity).unwrap().wait().unwrap()
        }

        fn has(&self, hash: &Digest) -> bool {
            self.store.reader().unwrap().has_event(hash).unwrap()
        }

        fn job_gone(&self, n: u8) -> bool {
            let reader = self.store.reader().unwrap();
            let job = JobId([n; 16]);
            reader.contracts_of_job(&job).unwrap().is_empty() && reader.job_events(&job).unwrap().is_empty()
        }

        fn ledger_entries(&self) -> usize {
            let mut entries = 0;
            self.store
                .reader()
                .unwrap()
                .for_each_event(|bytes| {
                    entries += usize::from(Event::decode(bytes).is_ok());
                    Ok(())
                })
                .unwrap();
            entries
        }
    }

    fn month_later() -> PruneRule {
        PruneRule::at(now_ms() + 31 * DAY_MS)
    }

    /// Two transfers at the same chain position from one key: a proof for the log.
    fn equivocate(log: &Log) {
        let forker = Keypair::from_seed([3; 32]);
        let fork = |amount| {
            let body = Transfer {
                genesis: log.genesis.id(),
                link: ChainLink::FIRST,
                to: log.key.public(),
                amount,
                reference: None,
            };
            Event::Transfer(Signed::sign(&forker, body, Validity::starting(now_ms(), 60_000)).unwrap())
                .verify()
                .unwrap()
        };
        let fresh = Admission::Fresh { now_ms: now_ms() };
        log.store.submit(fork(1), fresh).unwrap().wait().unwrap();
        assert!(log.store.submit(fork(2), fresh).unwrap().wait().is_err(), "an equivocation");
        let proofs = log.store.reader().unwrap().equivocation_proofs().unwrap();
        EquivocationProof::decode(&proofs[0]).unwrap();
    }

    #[test]
    fn pruning_removes_old_rejects_ended_contracts_and_attestations_but_never_ledger_entries_or_live_contracts()
     {
        let log = log();
        let paid = log.contract(1, ContractState::Paid, b"paid component");
        log.contract(2, ContractState::Failed, b"failed component");
        let live = log.contract(3, ContractState::Delivered, b"live component");
        let rejected = log.reject(4, now_ms() + 60_000);
        let old_set = log.attestations(&[paid], "old");
        let live_set = log.attestations(&[paid, live], "live");
        log.store(Records { owe: vec![b"a verdict owed".to_vec()], ..Records::default() });
        let pay = log.pay(5, Some(PaymentReference::Contract(paid)));
        log.pay(1, None);
        equivocate(&log);
        let entries = log.ledger_entries();
        let balances = log.store.reader().unwrap().balances().unwrap();

        assert_eq!(log.prune(PruneRule::at(now_ms())), Pruned::default(), "within the retention");
        let pruned = log.prune(month_later());
        assert_eq!(pruned, Pruned { events: 3 + 3 + 1 + 1, contracts: 2, more: false });

        assert!(log.job_gone(1) && log.job_gone(2) && !log.has(&rejected) && !log.has(&old_set));
        let reader = log.store.reader().unwrap();
        assert_eq!(reader.contract(&live).unwrap().unwrap().state, ContractState::Delivered);
        let live_events: Vec<String> =
            reader.job_events(&JobId([3; 16])).unwrap().into_iter().map(|(kind, ..)| kind).collect();
        assert_eq!(
            live_events,
            ["cue/compute-request", "cue/compute-accept", "cue/receipt", "cue/outcome-attestations"]
        );
        assert!(log.has(&live_set), "it names a live contract");
        assert_eq!(reader.live_components().unwrap(), HashSet::from([Digest::of(b"live component")]));
        assert_eq!(log.ledger_entries(), entries, "every ledger entry kept");
        let linking = reader.events_linking_to(&paid).unwrap();
        assert_eq!(linking, [live_set, pay.event.hash()], "the payment's link kept (and the live set's)");
        assert_eq!(reader.balances().unwrap(), balances);
        assert_eq!(reader.owed_attestations(10).unwrap().len(), 1);
        assert_eq!(reader.equivocation_proofs().unwrap().len(), 1);
        drop(reader);
        assert_eq!(log.prune(month_later()), Pruned::default(), "nothing left to prune");

        let Log { store, path, .. } = log;
        drop(store);
        let store = LedgerStore::open(&path, None).expect("the chains load whole");
        assert_eq!(store.reader().unwrap().balances().unwrap(), balances);
    }

    #[test]
    fn beyond_the_event_cap_loose_records_go_before_contract_history_and_unexpired_events_stay() {
        let log = log();
        for n in 1..=3 {
            log.contract(n, ContractState::Paid, b"component");
        }
        let rejects: Vec<Digest> = (0..10).map(|n| log.reject(n, now_ms() + 60_000)).collect();
        let unexpired: Vec<Digest> = (10..12).map(|n| log.reject(n, now_ms() + 10 * DAY_MS)).collect();
        let rule = |max| PruneRule { max_protocol_events: max, ..PruneRule::at(now_ms() + 2 * DAY_MS) };

        assert_eq!(log.prune(rule(12)), Pruned { events: 9, contracts: 0, more: false });
        assert!(rejects[..9].iter().all(|r| !log.has(r)) && log.has(&rejects[9]), "the oldest rejects first");
        assert!((1..=3).all(|n| !log.job_gone(n)), "contract history untouched");

        assert_eq!(log.prune(rule(5)), Pruned { events: 1 + 3 + 3, contracts: 2, more: false });
        assert!(log.job_gone(1) && log.job_gone(2) && !log.job_gone(3), "then the oldest contracts");

        assert_eq!(log.prune(rule(0)), Pruned { events: 3, contracts: 1, more: false });
        assert!(unexpired.iter().all(|r| log.has(r)), "an unexpired event is never pruned");
    }

    #[test]
    fn a_prune_command_deletes_a_bounded_batch_and_says_when_more_is_left() {
        let log = log();
        let now = now_ms();
        let total = 2 * PRUNE_BATCH as u32 + 100;
        let events = (0..total).map(|n| {
            let job = JobId([[n.to_be_bytes(), [0xee; 4]].concat(), vec![0; 8]].concat().try_into().unwrap());
            let mut reject = log.event("cue/compute-reject", Some(job), vec![], &n.to_string());
            reject.expires_ms = now;
            reject
        });
        log.store(Records { events: events.collect(), ..Records::default() });
        assert_eq!(log.prune(month_later()), Pruned { events: PRUNE_BATCH, contracts: 0, more: true });
        assert_eq!(log.prune(month_later()), Pruned { events: PRUNE_BATCH, contracts: 0, more: true });
        assert_eq!(log.prune(month_later()), Pruned { events: 100, contracts: 0, more: false });
        assert_eq!(log.prune(month_later()), Pruned::default());
    }

    #[test]
    fn the_scans_and_deletes_use_their_indexes() {
        let log = log();
        let conn = rusqlite::Connection::open(&log.path).unwrap();
        let plan = |sql: &str| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map(params![0, 0], |row| row.get::<_, String>(3)).unwrap();
            rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
        };
        let candidates = plan(CANDIDATES);
        assert!(
            candidates.contains("events_unchained_by_age") && !candidates.contains("TEMP B-TREE"),
            "{candidates}"
        );
        let links = plan(&DELETE_LINKS.replace("?1", "?1 AND ?2 = 0"));
        assert!(links.contains("event_links_by_event"), "{links}");
    }

    /// Measures one prune command on a log of 200,000 expired rejects (docs/PERFORMANCE.md):
    /// `cargo test -p cue-host --lib store::prune::tests::measure -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement"]
    fn measure_a_prune_command_on_a_log_of_200k_rejects() {
        let log = log();
        let now = now_ms();
        for chunk in 0..50u32 {
            let events: Vec<_> = (0..4000u32)
                .map(|i| {
                    let n = chunk * 4000 + i;
                    let job = JobId(
                        [[n.to_be_bytes(), [0xee; 4]].concat(), vec![0; 8]].concat().try_into().unwrap(),
                    );
                    let mut reject = log.event(
                        "cue/compute-reject",
                        Some(job),
                        vec![(Digest([9; 32]), "request")],
                        &n.to_string(),
                    );
                    reject.expires_ms = now;
                    reject
                })
                .collect();
            log.store(Records { events, ..Records::default() });
        }
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let pruned = log.prune(month_later());
            eprintln!("prune: {pruned:?} in {:?}", started.elapsed());
        }
        let started = std::time::Instant::now();
        let pruned = log.prune(PruneRule { max_protocol_events: u64::MAX, ..PruneRule::at(now_ms()) });
        eprintln!("nothing to prune (count only): {pruned:?} in {:?}", started.elapsed());
        let started = std::time::Instant::now();
        log.store(Records::default());
        eprintln!("an empty commit: {:?}", started.elapsed());
    }

    /// Measures what `event_links_by_event` costs a ledger commit (each chained entry writes
    /// its `prev` link to it): 20,000 authored transfers without and with it, interleaved.
    #[test]
    #[ignore = "a measurement"]
    fn measure_the_link_index_on_authored_transfers() {
        let run = |with_index: bool| {
            let log = log();
            if !with_index {
                let conn = rusqlite::Connection::open(&log.path).unwrap();
                conn.execute_batch("DROP INDEX event_links_by_event").unwrap();
            }
            let to = Keypair::from_seed([2; 32]).public();
            let started = std::time::Instant::now();
            let pending: Vec<_> = (0..20_000)
                .map(|_| {
                    let draft = Draft::Transfer { to, amount: 1, reference: None };
                    log.store.author(log.key.clone(), draft, Validity::starting(now_ms(), 600_000)).unwrap()
                })
                .collect();
            for p in pending {
                p.wait().unwrap();
            }
            started.elapsed()
        };
        let _ = run(true);
        for _ in 0..4 {
            let a = run(false);
            let b = run(true);
            eprintln!("20,000 authored transfers: without the index {a:?}, with {b:?}");
        }
    }
}
