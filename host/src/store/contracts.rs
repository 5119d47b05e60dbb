//! Compute contracts in the event log: the protocol events of each job (requests, accepts,
//! rejects, receipts, attestations), stored whole and linked, and one row per contract saying
//! where it stands.

use rusqlite::{OptionalExtension as _, Row, Transaction, params};

use super::{StoreError, digest_from_blob, key_from_blob};
use crate::crypto::{Digest, PublicKey};
use crate::protocol::{ComputeAccept, ComputeRequest, EventBody, JobId, Signed};

/// A signed protocol event to keep in the log (not a ledger entry: no balances move).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolEvent {
    /// The canonical bytes.
    pub bytes: Vec<u8>,
    /// Their hash.
    pub hash: Digest,
    /// The kind tag.
    pub kind: &'static str,
    /// The signer.
    pub signer: PublicKey,
    /// Signing time and expiry, ms since the epoch.
    pub timestamp_ms: u64,
    /// See `timestamp_ms`.
    pub expires_ms: u64,
    /// The envelope's nonce.
    pub nonce: [u8; 16],
    /// The job it belongs to.
    pub job: Option<JobId>,
    /// Hashes it refers to, with the relation (`request`, `contract`, `receipt`).
    pub links: Vec<(Digest, &'static str)>,
}

impl ProtocolEvent {
    /// The log entry for `signed`, belonging to `job`, linking to `links`.
    pub fn of<T: EventBody>(
        signed: &Signed<T>,
        job: Option<JobId>,
        links: Vec<(Digest, &'static str)>,
    ) -> Self {
        let header = signed.header();
        ProtocolEvent {
            bytes: signed.bytes().to_vec(),
            hash: signed.hash(),
            kind: header.kind.tag(),
            signer: header.signer,
            timestamp_ms: header.timestamp_ms,
            expires_ms: header.expires_ms,
            nonce: header.nonce,
            job,
            links,
        }
    }
}

/// Which side of a contract this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// It asked and pays.
    Consumer,
    /// It runs and is paid.
    Provider,
}

/// Where a contract stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContractState {
    /// Accepted; the job has not delivered yet.
    Accepted,
    /// A receipt was delivered; payment is due.
    Delivered,
    /// Paid (and for the provider: the payment checked).
    Paid,
    /// The run never delivered (provider died, stalled, or was restarted mid-job).
    Failed,
    /// The consumer did not pay by the deadline.
    Defaulted,
    /// The receipt disagreed with the majority of replicas; not paid.
    Invalid,
}

impl ContractState {
    const ALL: [ContractState; 6] = [
        ContractState::Accepted,
        ContractState::Delivered,
        ContractState::Paid,
        ContractState::Failed,
        ContractState::Defaulted,
        ContractState::Invalid,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            ContractState::Accepted => "accepted",
            ContractState::Delivered => "delivered",
            ContractState::Paid => "paid",
            ContractState::Failed => "failed",
            ContractState::Defaulted => "defaulted",
            ContractState::Invalid => "invalid",
        }
    }

    fn parse(name: &str) -> Result<ContractState, StoreError> {
        ContractState::ALL
            .into_iter()
            .find(|state| state.name() == name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown contract state {name:?}")))
    }
}

/// One contract, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractRow {
    /// The contract id: hash of the `COMPUTE_ACCEPT`.
    pub contract: Digest,
    /// The job.
    pub job: JobId,
    /// This node's side.
    pub role: Role,
    /// The other party.
    pub peer: PublicKey,
    /// Where it stands.
    pub state: ContractState,
    /// Hash of the request.
    pub request: Digest,
    /// Hash of the receipt, once delivered.
    pub receipt: Option<Digest>,
    /// Hash of the payment, once paid.
    pub payment: Option<Digest>,
    /// The consumer's offer (the most it pays).
    pub offer: u64,
    /// What the receipt makes due.
    pub price: Option<u64>,
    /// Payment deadline, ms since the epoch.
    pub pay_by_ms: u64,
    /// When this node recorded the contract.
    pub created_ms: u64,
    /// When its state last changed.
    pub updated_ms: u64,
    /// A human note on the last change (failure message, why invalid, ...).
    pub detail: Option<String>,
}

impl ContractRow {
    /// A contract just made: `role` is this node's side; the other party is the request's
    /// signer (for a provider) or the provider it names (for a consumer).
    pub fn accepted(
        role: Role,
        request: &Signed<ComputeRequest>,
        accept: &Signed<ComputeAccept>,
    ) -> ContractRow {
        let now = crate::clock::now_ms();
        let body = request.body();
        ContractRow {
            contract: accept.hash(),
            job: body.job_id,
            role,
            peer: match role {
                Role::Provider => request.header().signer,
                Role::Consumer => body.provider,
            },
            state: ContractState::Accepted,
            request: request.hash(),
            receipt: None,
            payment: None,
            offer: body.offer,
            price: None,
            pay_by_ms: accept.body().pay_by_ms,
            created_ms: now,
            updated_ms: now,
            detail: None,
        }
    }

    /// The same contract, delivered: the receipt, the price it makes due, and the failure
    /// message when the run failed.
    pub fn delivered(&self, receipt: Digest, price: u64, detail: Option<String>) -> ContractRow {
        ContractRow {
            state: ContractState::Delivered,
            receipt: Some(receipt),
            price: Some(price),
            detail,
            updated_ms: crate::clock::now_ms(),
            ..self.clone()
        }
    }

    /// The same contract, paid by `payment` (the transfer's hash).
    pub fn paid(&self, payment: Digest) -> ContractRow {
        ContractRow {
            state: ContractState::Paid,
            payment: Some(payment),
            updated_ms: crate::clock::now_ms(),
            ..self.clone()
        }
    }

    /// The same contract, with `detail` saying how it stands.
    pub fn with_detail(self, detail: impl Into<String>) -> ContractRow {
        ContractRow { detail: Some(detail.into()), ..self }
    }

    /// The same contract, ended in `state` (failed, defaulted, invalid) for the reason `why`.
    pub fn ended(&self, state: ContractState, why: impl Into<String>) -> ContractRow {
        ContractRow { state, detail: Some(why.into()), updated_ms: crate::clock::now_ms(), ..self.clone() }
    }
}

pub(super) fn insert_event(
    tx: &Transaction<'_>,
    event: &ProtocolEvent,
    received_ms: u64,
) -> Result<(), StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events
            (hash, kind, signer, timestamp_ms, expires_ms, nonce, received_ms, bytes, job)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            event.hash.0,
            event.kind,
            event.signer.as_bytes(),
            event.timestamp_ms as i64,
            event.expires_ms as i64,
            event.nonce,
            received_ms as i64,
            event.bytes,
            event.job.map(|job| job.0.to_vec()),
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    let id = tx.last_insert_rowid();
    for (target, relation) in &event.links {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO event_links (target, relation, event_id) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![target.0, relation, id])?;
    }
    Ok(())
}

pub(super) fn upsert_contract(tx: &Transaction<'_>, row: &ContractRow) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO contracts (contract, job, role, peer, state, request, receipt, payment, offer, price,
                                pay_by_ms, created_ms, updated_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (contract) DO UPDATE SET state = ?5, receipt = ?7, payment = ?8, price = ?10,
                                              updated_ms = ?13, detail = ?14",
    )?
    .execute(params![
        row.contract.0,
        row.job.0.to_vec(),
        match row.role {
            Role::Consumer => "consumer",
            Role::Provider => "provider",
        },
        row.peer.as_bytes(),
        row.state.name(),
        row.request.0,
        row.receipt.map(|d| d.0),
        row.payment.map(|d| d.0),
        row.offer as i64,
        row.price.map(|p| p as i64),
        row.pay_by_ms as i64,
        row.created_ms as i64,
        row.updated_ms as i64,
        row.detail,
    ])?;
    Ok(())
}

pub(super) const CONTRACT_COLUMNS: &str =
    "contract, job, role, peer, state, request, receipt, payment, offer, price,
     pay_by_ms, created_ms, updated_ms, detail";

pub(super) fn contract_from_row(row: &Row<'_>) -> Result<ContractRow, StoreError> {
    let digest = |i| -> Result<Digest, StoreError> { digest_from_blob(row.get(i)?) };
    let optional = |i| -> Result<Option<Digest>, StoreError> {
        row.get::<_, Option<Vec<u8>>>(i)?.map(digest_from_blob).transpose()
    };
    let job: Vec<u8> = row.get(1)?;
    Ok(ContractRow {
        contract: digest(0)?,
        job: JobId(job.try_into().map_err(|_| StoreError::Corrupt("a job id is not 16 bytes".into()))?),
        role: match row.get_ref(2)?.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))? {
            "consumer" => Role::Consumer,
            _ => Role::Provider,
        },
        peer: key_from_blob(row.get(3)?)?,
        state: ContractState::parse(
            row.get_ref(4)?.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )?,
        request: digest(5)?,
        receipt: optional(6)?,
        payment: optional(7)?,
        offer: row.get::<_, i64>(8)? as u64,
        price: row.get::<_, Option<i64>>(9)?.map(|p| p as u64),
        pay_by_ms: row.get::<_, i64>(10)? as u64,
        created_ms: row.get::<_, i64>(11)? as u64,
        updated_ms: row.get::<_, i64>(12)? as u64,
        detail: row.get(13)?,
    })
}

/// Reads one contract.
pub(super) fn contract(conn: &rusqlite::Connection, id: &Digest) -> Result<Option<ContractRow>, StoreError> {
    let sql = format!("SELECT {CONTRACT_COLUMNS} FROM contracts WHERE contract = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let row = stmt.query_row([id.0], |row| Ok(contract_from_row(row))).optional()?;
    row.transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::ledger::Genesis;
    use crate::protocol::{ComputeRequest, Validity};
    use crate::store::LedgerStore;

    #[test]
    fn contracts_and_their_events_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3");
        let (consumer, provider) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let genesis = Genesis {
            network_id: "t".into(),
            mint_authority: consumer.public(),
            allocations: Default::default(),
        };
        let job = JobId([9; 16]);
        let request = ComputeRequest {
            job_id: job,
            provider: provider.public(),
            genesis: genesis.id(),
            component: Digest([2; 32]),
            reference: None,
            input: crate::protocol::JobInput::Inline("fib(3)".into()),
            offer: 100,
            max_fuel: 1_000,
            max_memory_bytes: 1 << 20,
            max_execution_ms: 1_000,
        };
        let now = crate::clock::now_ms();
        let signed = Signed::sign(&consumer, request, Validity::starting(now, 60_000)).unwrap();
        let row = ContractRow {
            contract: Digest([5; 32]),
            job,
            role: Role::Consumer,
            peer: provider.public(),
            state: ContractState::Accepted,
            request: signed.hash(),
            receipt: None,
            payment: None,
            offer: 100,
            price: None,
            pay_by_ms: now + 60_000,
            created_ms: now,
            updated_ms: now,
            detail: None,
        };
        {
            let store = LedgerStore::open(&path, Some(genesis.clone())).unwrap();
            let event = ProtocolEvent::of(&signed, Some(job), vec![]);
            let events = |event| crate::store::Records { events: vec![event], ..Default::default() };
            store.store(events(event.clone())).unwrap().wait().unwrap();
            store.store(events(event)).unwrap().wait().unwrap();
            store.store(crate::store::Records::rows(vec![row.clone()])).unwrap().wait().unwrap();
            let delivered = ContractRow {
                state: ContractState::Delivered,
                receipt: Some(Digest([6; 32])),
                price: Some(42),
                updated_ms: now + 1,
                ..row.clone()
            };
            store.store(crate::store::Records::rows(vec![delivered])).unwrap().wait().unwrap();
        }
        let store = LedgerStore::open(&path, None).expect("reopens with protocol events in the log");
        let reader = store.reader().unwrap();
        let stored = reader.contract(&row.contract).unwrap().unwrap();
        assert_eq!(stored.state, ContractState::Delivered);
        assert_eq!((stored.receipt, stored.price), (Some(Digest([6; 32])), Some(42)));
        assert_eq!(stored.created_ms, now, "the creation time is kept");
        let events = reader.job_events(&job).unwrap();
        assert_eq!(events.len(), 1, "recording twice keeps one copy");
        assert_eq!(events[0].0, "cue/compute-request");
        assert_eq!(events[0].2, signed.bytes());
        assert_eq!(reader.contracts_of_job(&job).unwrap().len(), 1);
        assert_eq!(reader.contracts_in(Role::Consumer, ContractState::Delivered, 10).unwrap().len(), 1);
        assert!(reader.contracts_in(Role::Provider, ContractState::Delivered, 10).unwrap().is_empty());
        assert_eq!(reader.contracts(10).unwrap().len(), 1);
    }

    #[test]
    fn owed_attestations_outlive_a_restart_and_go_with_the_set_that_signs_them() {
        use crate::clock::now_ms;
        use crate::store::Records;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let genesis = Genesis {
            network_id: "t".into(),
            mint_authority: Keypair::from_seed([1; 32]).public(),
            allocations: Default::default(),
        };
        let store = LedgerStore::open(&path, Some(genesis.clone())).unwrap();
        let owe = |bodies: &[&[u8]]| Records {
            owe: bodies.iter().map(|b| b.to_vec()).collect(),
            ..Records::default()
        };
        store.store(owe(&[b"first", b"second"])).unwrap().wait().unwrap();
        store.store(owe(&[b"third"])).unwrap().wait().unwrap();
        drop(store);

        let store = LedgerStore::open(&path, None).unwrap();
        let owed = store.reader().unwrap().owed_attestations(2).unwrap();
        let bodies: Vec<&[u8]> = owed.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(bodies, [b"first".as_slice(), b"second"], "oldest first, at most the limit");
        let verdicts = crate::protocol::OutcomeAttestations {
            attestations: vec![crate::protocol::OutcomeAttestation {
                contract: Digest([3; 32]),
                subject: Keypair::from_seed([2; 32]).public(),
                verdict: crate::protocol::Verdict::Completed,
                evidence: Vec::new(),
            }],
        };
        let signed =
            Signed::sign(&Keypair::from_seed([1; 32]), verdicts, Validity::starting(now_ms(), 60_000));
        let set = ProtocolEvent::of(&signed.unwrap(), None, vec![(Digest([3; 32]), "contract")]);
        let ids = owed.iter().map(|(id, _)| *id).collect();
        store
            .store(Records { events: vec![set], attested: ids, ..Records::default() })
            .unwrap()
            .wait()
            .unwrap();
        let left = store.reader().unwrap().owed_attestations(10).unwrap();
        assert_eq!(left.iter().map(|(_, b)| b.as_slice()).collect::<Vec<_>>(), [b"third".as_slice()]);
    }

    #[test]
    fn records_go_with_a_payment_only_when_the_payment_is_accepted() {
        use crate::protocol::{ChainLink, Event, Transfer};
        use crate::store::{Admission, Records};
        let dir = tempfile::tempdir().unwrap();
        let (payer, payee) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let genesis = Genesis {
            network_id: "t".into(),
            mint_authority: payer.public(),
            allocations: [(payer.public(), 10)].into_iter().collect(),
        };
        let store = LedgerStore::open(&dir.path().join("l.sqlite3"), Some(genesis.clone())).unwrap();
        let now = crate::clock::now_ms();
        let transfer = |amount| {
            let body = Transfer {
                genesis: genesis.id(),
                link: ChainLink::FIRST,
                to: payee.public(),
                amount,
                reference: None,
            };
            Event::Transfer(Signed::sign(&payer, body, Validity::starting(now, 60_000)).unwrap())
                .verify()
                .unwrap()
        };
        let row = |contract: u8| ContractRow {
            contract: Digest([contract; 32]),
            job: JobId([contract; 16]),
            role: Role::Provider,
            peer: payer.public(),
            state: ContractState::Paid,
            request: Digest([0; 32]),
            receipt: Some(Digest([contract; 32])),
            payment: None,
            offer: 5,
            price: Some(5),
            pay_by_ms: now,
            created_ms: now,
            updated_ms: now,
            detail: None,
        };
        let fresh = Admission::Fresh { now_ms: now };
        let with = |contract| Records::rows(vec![row(contract)]);
        // More than the balance: refused, and its contract row is not stored either.
        assert!(store.submit_with(transfer(11), fresh, with(7)).unwrap().wait().is_err());
        assert!(store.reader().unwrap().contract(&Digest([7; 32])).unwrap().is_none());
        store.submit_with(transfer(5), fresh, with(8)).unwrap().wait().unwrap();
        let stored = store.reader().unwrap().contract(&Digest([8; 32])).unwrap().unwrap();
        assert_eq!(stored.state, ContractState::Paid);
        assert_eq!(store.reader().unwrap().balance(&payee.public()).unwrap(), 5);

        // Authored with its records: they name the signed entry and land in its commit; an
        // entry the ledger refuses (more than what is left) takes its records with it.
        let author = |amount, contract: u8| {
            let draft = crate::store::Draft::Transfer { to: payee.public(), amount, reference: None };
            let payer = std::sync::Arc::new(Keypair::from_seed([1; 32]));
            let unpaid = row(contract);
            store.author_with(payer, draft, Validity::starting(now, 60_000), move |event| Records {
                rows: vec![ContractRow { payment: Some(event.hash()), ..unpaid }],
                ..Records::default()
            })
        };
        assert!(author(6, 9).unwrap().wait().is_err());
        assert!(store.reader().unwrap().contract(&Digest([9; 32])).unwrap().is_none());
        let paid = author(5, 10).unwrap().wait().unwrap();
        let stored = store.reader().unwrap().contract(&Digest([10; 32])).unwrap().unwrap();
        assert_eq!(stored.payment, Some(paid.event.hash()));
        assert_eq!(paid.event.seq().unwrap(), 1);
        assert_eq!(store.reader().unwrap().balance(&payee.public()).unwrap(), 10);
    }
}
