//! The ledger state machine: accounts, their chains, and the rules an entry must pass.

use std::collections::HashMap;

use super::escrow::{OpenLock, Released};
use super::{EquivocationProof, Genesis, LedgerError, MAX_SUPPLY};
use crate::crypto::{Digest, PublicKey};
use crate::protocol::{ChainLink, Event, Release, Signed, Verified};

/// One account as the ledger sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Spendable tokens: genesis allocation + credits - debits.
    pub balance: u64,
    /// Hashes of the account's own entries, index = sequence number.
    pub chain: Vec<Digest>,
    /// Set once an equivocation by this account is known: its new entries are refused.
    pub flagged: bool,
}

impl Account {
    /// Where the account's next entry must go.
    pub fn next_link(&self) -> ChainLink {
        ChainLink { seq: self.chain.len() as u64, prev: self.chain.last().copied() }
    }
}

/// What applying one entry changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The entry's hash.
    pub hash: Digest,
    /// Accounts whose balance changed, with the new balance.
    pub balances: Vec<(PublicKey, u64)>,
    /// The lock this entry opened (a `TOKEN_LOCK`) or ended (a `TOKEN_RELEASE`).
    pub lock: Option<LockChange>,
}

/// How an entry changed the escrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockChange {
    /// A lock opened: its hash and what it holds.
    Opened(Digest, OpenLock),
    /// A lock ended: its hash, and what the release paid its payee.
    Released {
        /// The lock's hash.
        lock: Digest,
        /// Who was paid.
        payee: PublicKey,
        /// Tokens paid to the payee (the rest went back to the payer).
        paid: u64,
    },
}

/// Balances and chains of every account known to this node, and the rules that change them.
/// Pure: entries come in, verdicts come out; the store persists them.
#[derive(Clone, Debug)]
pub struct Ledger {
    genesis: Genesis,
    genesis_id: Digest,
    accounts: HashMap<PublicKey, Account>,
    /// Locks not yet released, by the hash of their `TOKEN_LOCK`.
    locks: HashMap<Digest, OpenLock>,
    /// The releases applied most recently (a replay is told from a second release).
    released: Released,
    supply: u64,
    /// Accounts flagged for equivocation.
    flagged: usize,
}

impl Ledger {
    /// The state at genesis.
    pub fn new(genesis: Genesis) -> Result<Ledger, LedgerError> {
        let supply = genesis.total_supply()?;
        let accounts = genesis
            .allocations
            .iter()
            .map(|(key, amount)| {
                let account = Account { balance: *amount, ..Account::default() };
                (*key, account)
            })
            .collect();
        let (locks, released) = (HashMap::new(), Released::default());
        Ok(Ledger { genesis_id: genesis.id(), genesis, accounts, locks, released, supply, flagged: 0 })
    }

    /// A state restored from storage (balances, chains, flags and open locks persisted
    /// earlier). The supply is what the balances and the open locks hold.
    pub fn restore(
        genesis: Genesis,
        accounts: HashMap<PublicKey, Account>,
        locks: HashMap<Digest, OpenLock>,
    ) -> Result<Ledger, LedgerError> {
        let supply = accounts
            .values()
            .map(|a| a.balance)
            .chain(locks.values().map(|l| l.amount))
            .try_fold(0u64, |sum, amount| sum.checked_add(amount))
            .filter(|s| *s <= MAX_SUPPLY)
            .ok_or(LedgerError::SupplyOverflow)?;
        let flagged = accounts.values().filter(|a| a.flagged).count();
        let released = Released::default();
        Ok(Ledger { genesis_id: genesis.id(), genesis, accounts, locks, released, supply, flagged })
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis id every entry must name.
    pub fn genesis_id(&self) -> Digest {
        self.genesis_id
    }

    /// Balance of an account (0 if unknown).
    pub fn balance(&self, account: &PublicKey) -> u64 {
        self.accounts.get(account).map_or(0, |a| a.balance)
    }

    /// Tokens in existence (in balances and in open locks).
    pub fn supply(&self) -> u64 {
        self.supply
    }

    /// An open lock.
    pub fn lock(&self, lock: &Digest) -> Option<&OpenLock> {
        self.locks.get(lock)
    }

    /// All open locks.
    pub fn locks(&self) -> impl Iterator<Item = (&Digest, &OpenLock)> {
        self.locks.iter()
    }

    /// Tokens an account has in open locks.
    pub fn locked(&self, account: &PublicKey) -> u64 {
        self.locks.values().filter(|l| l.payer == *account).map(|l| l.amount).sum()
    }

    /// The account, if it ever held tokens or signed an entry.
    pub fn account(&self, account: &PublicKey) -> Option<&Account> {
        self.accounts.get(account)
    }

    /// All known accounts.
    pub fn accounts(&self) -> impl Iterator<Item = (&PublicKey, &Account)> {
        self.accounts.iter()
    }

    /// Where `account`'s next entry goes.
    pub fn next_link(&self, account: &PublicKey) -> ChainLink {
        self.accounts.get(account).map_or(ChainLink::FIRST, Account::next_link)
    }

    /// Checks `entry` against the rules and, if it passes, applies it.
    ///
    /// Rules, in order: right network; signer not flagged; then, for a chain entry (mint,
    /// transfer, lock), the chain position (a known hash at that position is a
    /// [`Duplicate`](LedgerError::Duplicate), a different one an
    /// [`Equivocation`](LedgerError::Equivocation), a gap [`OutOfOrder`](LedgerError::OutOfOrder),
    /// a wrong previous hash [`BrokenChain`](LedgerError::BrokenChain)); amount > 0; then for a
    /// mint, signer is the authority and supply stays within [`MAX_SUPPLY`]; for a transfer or
    /// a lock, payee is not the payer and amount is within the payer's balance. A release must
    /// end an open lock as [`OpenLock::check`] allows. A refused entry changes nothing.
    pub fn apply(&mut self, verified: &Verified) -> Result<Applied, LedgerError> {
        let event = verified.event();
        let signer = event.signer();
        let hash = event.hash();
        if event.genesis() != self.genesis_id {
            return Err(LedgerError::WrongNetwork { expected: self.genesis_id, found: event.genesis() });
        }
        if self.accounts.get(&signer).is_some_and(|a| a.flagged) {
            return Err(LedgerError::AccountFlagged(signer.peer_id()));
        }
        let Some(entry) = event.entry() else {
            let Event::Release(release) = event else { unreachable!("only a release is no chain entry") };
            return self.release(release, hash);
        };
        let new_account = Account::default();
        check_link(self.accounts.get(&signer).unwrap_or(&new_account), entry.link, hash, signer)?;
        if entry.amount == 0 {
            return Err(LedgerError::ZeroAmount);
        }
        let (balances, lock) = match event {
            Event::Mint(_) => (self.mint(signer, entry.to, entry.amount)?, None),
            Event::Transfer(_) => (self.transfer(signer, entry.to, entry.amount)?, None),
            Event::Lock(lock) => {
                let open = OpenLock::of(lock);
                (self.debit(signer, entry.to, entry.amount)?, Some(LockChange::Opened(hash, open)))
            }
            Event::Release(_) => unreachable!("a release is no chain entry"),
        };
        if let Some(LockChange::Opened(hash, open)) = &lock {
            self.locks.insert(*hash, open.clone());
        }
        self.accounts.entry(signer).or_default().chain.push(hash);
        Ok(Applied { hash, balances, lock })
    }

    /// Ends an open lock: what the release pays goes to the payee, the rest back to the payer.
    fn release(&mut self, release: &Signed<Release>, hash: Digest) -> Result<Applied, LedgerError> {
        let lock_hash = release.body().lock;
        let Some(lock) = self.locks.get(&lock_hash) else {
            return Err(match self.released.get(&lock_hash) {
                Some(earlier) => LedgerError::AlreadyReleased { lock: lock_hash, same: earlier == hash },
                None => LedgerError::LockNotOpen(lock_hash),
            });
        };
        let paid = lock.check(release)?;
        let lock = self.locks.remove(&lock_hash).expect("checked above");
        // Both credits come out of the lock, which the supply already counts: no overflow.
        let payee = self.accounts.entry(lock.payee).or_default();
        payee.balance += paid;
        let mut balances = vec![(lock.payee, payee.balance)];
        if paid < lock.amount {
            let payer = self.accounts.entry(lock.payer).or_default();
            payer.balance += lock.amount - paid;
            balances.push((lock.payer, payer.balance));
        }
        self.released.insert(lock_hash, hash);
        let change = LockChange::Released { lock: lock_hash, payee: lock.payee, paid };
        Ok(Applied { hash, balances, lock: Some(change) })
    }

    fn mint(
        &mut self,
        signer: PublicKey,
        to: PublicKey,
        amount: u64,
    ) -> Result<Vec<(PublicKey, u64)>, LedgerError> {
        if signer != self.genesis.mint_authority {
            return Err(LedgerError::NotMintAuthority(signer.peer_id()));
        }
        let supply = self
            .supply
            .checked_add(amount)
            .filter(|s| *s <= MAX_SUPPLY)
            .ok_or(LedgerError::SupplyOverflow)?;
        // Every balance is at most the supply, so this cannot overflow once the supply fits.
        let payee = self.accounts.entry(to).or_default();
        payee.balance += amount;
        self.supply = supply;
        Ok(vec![(to, payee.balance)])
    }

    fn transfer(
        &mut self,
        signer: PublicKey,
        to: PublicKey,
        amount: u64,
    ) -> Result<Vec<(PublicKey, u64)>, LedgerError> {
        let mut balances = self.debit(signer, to, amount)?;
        // The payee's balance plus `amount` is at most the supply: no overflow.
        let payee = self.accounts.entry(to).or_default();
        payee.balance += amount;
        balances.push((to, payee.balance));
        Ok(balances)
    }

    /// Takes `amount` out of `signer`'s balance, for `to` (not the signer).
    fn debit(
        &mut self,
        signer: PublicKey,
        to: PublicKey,
        amount: u64,
    ) -> Result<Vec<(PublicKey, u64)>, LedgerError> {
        if signer == to {
            return Err(LedgerError::SelfTransfer);
        }
        let balance = self.balance(&signer);
        let remaining =
            balance.checked_sub(amount).ok_or(LedgerError::InsufficientBalance { balance, amount })?;
        self.accounts.entry(signer).or_default().balance = remaining;
        Ok(vec![(signer, remaining)])
    }

    /// Flags the account a valid proof convicts (for the proof's network only), so its later
    /// entries are refused. Returns whether it was newly flagged.
    pub fn flag(&mut self, proof: &EquivocationProof) -> Result<bool, LedgerError> {
        if proof.genesis() != self.genesis_id {
            return Err(LedgerError::WrongNetwork { expected: self.genesis_id, found: proof.genesis() });
        }
        let account = self.accounts.entry(proof.account()).or_default();
        let newly = !std::mem::replace(&mut account.flagged, true);
        self.flagged += usize::from(newly);
        Ok(newly)
    }

    /// How many accounts are flagged for equivocation.
    pub fn flagged_count(&self) -> usize {
        self.flagged
    }
}

fn check_link(
    account: &Account,
    link: ChainLink,
    hash: Digest,
    signer: PublicKey,
) -> Result<(), LedgerError> {
    let next = account.next_link();
    if link.seq < next.seq {
        let existing = account.chain[link.seq as usize];
        return Err(if existing == hash {
            LedgerError::Duplicate { seq: link.seq }
        } else {
            LedgerError::Equivocation { account: signer.peer_id(), seq: link.seq, existing }
        });
    }
    if link.seq > next.seq {
        return Err(LedgerError::OutOfOrder { expected: next.seq, found: link.seq });
    }
    if link.prev != next.prev {
        return Err(LedgerError::BrokenChain { seq: link.seq });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{Mint, Signed, Transfer, Validity};

    const NOW: u64 = 1_800_000_000_000;

    struct Fixture {
        authority: Keypair,
        alice: Keypair,
        bob: Keypair,
        ledger: Ledger,
    }

    fn fixture() -> Fixture {
        let (authority, alice, bob) =
            (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
        let genesis = Genesis {
            network_id: "test".into(),
            mint_authority: authority.public(),
            allocations: BTreeMap::from([(alice.public(), 100)]),
        };
        Fixture { ledger: Ledger::new(genesis).unwrap(), authority, alice, bob }
    }

    impl Fixture {
        fn pay(&self, from: &Keypair, to: &Keypair, amount: u64, link: ChainLink) -> Verified {
            let body = Transfer {
                genesis: self.ledger.genesis_id(),
                link,
                to: to.public(),
                amount,
                reference: None,
            };
            let signed = Signed::sign(from, body, Validity::starting(NOW, 60_000)).unwrap();
            Event::Transfer(signed).verify().unwrap()
        }

        fn next(&self, key: &Keypair) -> ChainLink {
            self.ledger.next_link(&key.public())
        }
    }

    #[test]
    fn transfers_move_tokens_and_refusals_change_nothing() {
        let mut f = fixture();
        let pay = f.pay(&f.alice, &f.bob, 60, f.next(&f.alice));
        f.ledger.apply(&pay).unwrap();
        assert_eq!(f.ledger.balance(&f.alice.public()), 40);
        assert_eq!(f.ledger.balance(&f.bob.public()), 60);
        let before = f.ledger.clone().accounts;

        let refusals = [
            (f.pay(&f.alice, &f.bob, 41, f.next(&f.alice)), "insufficient"),
            (f.pay(&f.alice, &f.bob, 0, f.next(&f.alice)), "zero"),
            (f.pay(&f.alice, &f.alice, 1, f.next(&f.alice)), "self"),
            (f.pay(&f.alice, &f.bob, 1, ChainLink { seq: 5, prev: f.next(&f.alice).prev }), "order"),
            (f.pay(&f.alice, &f.bob, 1, ChainLink { seq: 1, prev: Some(Digest([0; 32])) }), "chain"),
        ];
        for (entry, what) in refusals {
            let err = f.ledger.apply(&entry).unwrap_err();
            let expected = match what {
                "insufficient" => matches!(err, LedgerError::InsufficientBalance { balance: 40, amount: 41 }),
                "zero" => err == LedgerError::ZeroAmount,
                "self" => err == LedgerError::SelfTransfer,
                "order" => matches!(err, LedgerError::OutOfOrder { expected: 1, found: 5 }),
                _ => err == LedgerError::BrokenChain { seq: 1 },
            };
            assert!(expected, "{what}: {err:?}");
            assert_eq!(f.ledger.accounts, before, "{what} changed the state");
        }
        assert_eq!(f.ledger.apply(&pay), Err(LedgerError::Duplicate { seq: 0 }));
    }

    #[test]
    fn only_the_authority_mints_on_this_network() {
        let mut f = fixture();
        let mint = |key: &Keypair, genesis: Digest, link| {
            let body = Mint { genesis, link, to: f.bob.public(), amount: 5 };
            let signed = Signed::sign(key, body, Validity::starting(NOW, 60_000)).unwrap();
            Event::Mint(signed).verify().unwrap()
        };
        let by_alice = mint(&f.alice, f.ledger.genesis_id(), ChainLink::FIRST);
        assert!(matches!(f.ledger.apply(&by_alice), Err(LedgerError::NotMintAuthority(_))));
        let elsewhere = mint(&f.authority, Digest([9; 32]), ChainLink::FIRST);
        assert!(matches!(f.ledger.apply(&elsewhere), Err(LedgerError::WrongNetwork { .. })));
        let good = mint(&f.authority, f.ledger.genesis_id(), ChainLink::FIRST);
        f.ledger.apply(&good).unwrap();
        assert_eq!((f.ledger.balance(&f.bob.public()), f.ledger.supply()), (5, 105));
    }

    #[test]
    fn equivocation_is_proven_attributed_and_stops_the_account() {
        let mut f = fixture();
        let first = f.pay(&f.alice, &f.bob, 60, ChainLink::FIRST);
        f.ledger.apply(&first).unwrap();
        let second = f.pay(&f.alice, &f.authority, 60, ChainLink::FIRST);
        let existing = match f.ledger.apply(&second) {
            Err(LedgerError::Equivocation { seq: 0, existing, .. }) => existing,
            other => panic!("{other:?}"),
        };
        assert_eq!(existing, first.event().hash());

        let proof = EquivocationProof::new(first.event().clone(), second.event().clone()).unwrap();
        let decoded = EquivocationProof::decode(&proof.encode()).unwrap();
        assert_eq!((decoded.account(), decoded.seq()), (f.alice.public(), 0));
        assert!(f.ledger.flag(&decoded).unwrap());
        let later = f.pay(&f.alice, &f.bob, 1, f.next(&f.alice));
        assert!(matches!(f.ledger.apply(&later), Err(LedgerError::AccountFlagged(_))));

        // A proof cannot be made from one event, two accounts, or altered bytes.
        let same = EquivocationProof::new(first.event().clone(), first.event().clone());
        assert!(matches!(same, Err(LedgerError::InvalidProof(_))));
        let other = f.pay(&f.bob, &f.alice, 1, ChainLink::FIRST);
        let mixed = EquivocationProof::new(first.event().clone(), other.event().clone());
        assert!(matches!(mixed, Err(LedgerError::InvalidProof(_))));
        let mut bytes = proof.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(EquivocationProof::decode(&bytes), Err(LedgerError::InvalidProof(_))));
    }
}
