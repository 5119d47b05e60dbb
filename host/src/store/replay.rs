//! Replaying the log: every stored ledger entry, re-verified (signature, shape) and applied in
//! log order to a fresh ledger built from the stored genesis, and the balances that gives
//! compared with the balances the store materialised as it went (`cue wallet verify`; the crash
//! tests and `cargo xtask chaos` run it on every node).

use std::collections::BTreeMap;

use super::reader::LogReader;
use super::{StoreError, key_from_blob};
use crate::crypto::PublicKey;
use crate::ledger::Ledger;
use crate::protocol::Event;

/// What a replay of a node's log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Ledger entries (mints, transfers, locks and releases) replayed.
    pub entries: u64,
    /// Tokens in existence by the replay: the genesis allocations plus every mint.
    pub supply: u64,
    /// The sum of the materialised balances and open locks (equal to `supply` in a sound
    /// store).
    pub materialised_total: u64,
    /// Open locks that differ between the store and the replay (in one and not the other, or
    /// of another amount). 0 in a sound store.
    pub lock_mismatches: u64,
    /// Accounts whose materialised balance differs from the replay's: (account, materialised,
    /// replayed). Empty in a sound store.
    pub mismatches: Vec<(PublicKey, u64, u64)>,
}

impl Replay {
    /// Whether the materialised balances are exactly the replay's, and add up to the supply.
    pub fn is_sound(&self) -> bool {
        self.mismatches.is_empty() && self.lock_mismatches == 0 && self.materialised_total == self.supply
    }
}

impl LogReader {
    /// Replays every stored ledger entry in log order through a fresh [`Ledger`] (signatures
    /// and ledger rules checked again) and compares the result with the materialised balances.
    /// An entry that no longer verifies or applies is [`StoreError::Corrupt`].
    pub fn replay(&self) -> Result<Replay, StoreError> {
        let mut ledger = Ledger::new(self.genesis()?).map_err(StoreError::InvalidGenesis)?;
        let mut entries = 0u64;
        self.for_each_ledger_entry(|bytes| {
            let event = Event::decode(bytes)
                .and_then(Event::verify)
                .map_err(|e| StoreError::Corrupt(format!("a stored entry does not verify: {e}")))?;
            ledger
                .apply(&event)
                .map_err(|e| StoreError::Corrupt(format!("a stored entry does not apply on replay: {e}")))?;
            entries += 1;
            Ok(())
        })?;
        let replayed: BTreeMap<[u8; 32], u64> =
            ledger.accounts().map(|(key, account)| (*key.as_bytes(), account.balance)).collect();
        let stored = self.balances()?;
        let stored_locks = self.stored_locks()?;
        let materialised_total =
            stored.iter().map(|(_, balance)| balance).sum::<u64>() + stored_locks.values().sum::<u64>();
        let replayed_locks: BTreeMap<[u8; 32], u64> =
            ledger.locks().map(|(hash, lock)| (hash.0, lock.amount)).collect();
        let lock_mismatches =
            replayed_locks.iter().filter(|(hash, amount)| stored_locks.get(*hash) != Some(*amount)).count()
                + stored_locks.keys().filter(|hash| !replayed_locks.contains_key(*hash)).count();
        let mut mismatches = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, balance) in &stored {
            seen.insert(*key.as_bytes());
            let expected = replayed.get(key.as_bytes()).copied().unwrap_or(0);
            if expected != *balance {
                mismatches.push((*key, *balance, expected));
            }
        }
        for (key, balance) in replayed.iter().filter(|(key, b)| !seen.contains(*key) && **b != 0) {
            mismatches.push((key_from_blob(key.to_vec())?, 0, *balance));
        }
        let lock_mismatches = lock_mismatches as u64;
        Ok(Replay { entries, supply: ledger.supply(), materialised_total, lock_mismatches, mismatches })
    }

    /// The open locks the store materialised: hash → amount.
    fn stored_locks(&self) -> Result<BTreeMap<[u8; 32], u64>, StoreError> {
        let mut stmt = self.connection().prepare("SELECT hash, amount FROM locks")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)))?;
        rows.map(|row| {
            let (hash, amount) = row?;
            let hash =
                hash.try_into().map_err(|_| StoreError::Corrupt("a lock hash is not 32 bytes".into()))?;
            Ok((hash, amount as u64))
        })
        .collect()
    }

    /// Calls `visit` with every stored ledger entry's bytes (the chained events and the
    /// releases, which have no chain position), in log order.
    fn for_each_ledger_entry(
        &self,
        mut visit: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.connection().prepare(
            "SELECT bytes FROM events WHERE seq IS NOT NULL OR kind = 'cue/token-release' ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            visit(row.get_ref(0)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use crate::clock::now_ms;
    use crate::crypto::Keypair;
    use crate::ledger::Genesis;
    use crate::protocol::Validity;
    use crate::store::{Draft, LedgerStore, LogReader};

    #[test]
    fn a_replay_equals_the_stored_balances_and_catches_one_changed_behind_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let key = Arc::new(Keypair::from_seed([1; 32]));
        let payee = Keypair::from_seed([2; 32]).public();
        let genesis = Genesis {
            network_id: "replay".into(),
            mint_authority: key.public(),
            allocations: BTreeMap::from([(key.public(), 1_000)]),
        };
        let store = LedgerStore::open(&path, Some(genesis)).unwrap();
        let drafts = [
            Draft::Mint { to: payee, amount: 50 },
            Draft::Transfer { to: payee, amount: 7, reference: None },
            Draft::Transfer { to: payee, amount: 3, reference: None },
        ];
        for draft in drafts {
            store.author(key.clone(), draft, Validity::starting(now_ms(), 60_000)).unwrap().wait().unwrap();
        }
        drop(store);
        let replay = LogReader::open(&path).unwrap().replay().unwrap();
        assert_eq!((replay.entries, replay.supply, replay.materialised_total), (3, 1_050, 1_050));
        assert!(replay.is_sound(), "{replay:?}");

        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE key = ?1", [payee.as_bytes()]).unwrap();
        drop(conn);
        let replay = LogReader::open(&path).unwrap().replay().unwrap();
        assert!(!replay.is_sound());
        assert_eq!(replay.mismatches, vec![(payee, 61, 60)]);
        assert_eq!(replay.materialised_total, 1_051);
    }
}
