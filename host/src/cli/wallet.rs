//! `cue wallet`: balances, history, transfers, mints, and moving signed events in and out.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::LedgerContext;
use crate::api::ApiClient;
use crate::clock::now_ms;
use crate::crypto::{Digest, PeerId};
use crate::node::{BalanceView, EntryView};
use crate::protocol::{Event, PaymentReference, Validity};
use crate::store::{Admission, Draft, LedgerStore, LogReader, Pending};

/// `cue wallet` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WalletCommand {
    /// Show an account's balance (default: this agent's).
    Balance(BalanceArgs),
    /// Show the ledger entries an account signed or received, newest first.
    History(HistoryArgs),
    /// Pay tokens from this agent's account.
    Transfer(TransferArgs),
    /// Create tokens (this agent must be the network's mint authority).
    Mint(MintArgs),
    /// Write one stored signed event, byte for byte, to a file.
    Export(ExportArgs),
    /// Verify a signed event file and apply it to the local ledger.
    Import(ImportArgs),
    /// Replay the local log (every ledger entry re-verified, in log order, from the genesis) and
    /// check that it gives exactly the stored balances; exits 1 when it does not.
    Verify(VerifyArgs),
}

/// Options of `cue wallet verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Print `{"entries": N, "supply": N, "balances_total": N, "sound": bool, "mismatches": [..]}`.
    #[arg(long)]
    pub json: bool,
}

/// Options of `cue wallet balance`.
#[derive(Debug, clap::Args)]
pub struct BalanceArgs {
    /// Peer id (or hex public key) of the account [default: this agent].
    pub peer: Option<String>,
    /// Print `{"peer_id": ..., "balance": N}`.
    #[arg(long)]
    pub json: bool,
}

/// Options of `cue wallet history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Peer id (or hex public key) of the account [default: this agent].
    pub peer: Option<String>,
    /// Most entries to show (at most 10,000 when a node answers).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only entries from before this log position (the next page: the last entry's
    /// `log_position`).
    #[arg(long)]
    pub before: Option<i64>,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Options of `cue wallet transfer`.
#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// The payee's peer id (or hex public key).
    pub peer: String,
    /// Tokens to pay (a whole number > 0).
    pub amount: u64,
    /// What the transfer pays for: `contract:<hash>` or `receipt:<hash>`.
    #[arg(long, value_name = "KIND:HASH")]
    pub reference: Option<String>,
    /// Make this many transfers of `amount`, printing each once it is durable.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// How long the signed event stays acceptable to other nodes, in seconds (at most a day).
    #[arg(long, default_value_t = 3600)]
    pub lifetime_secs: u64,
    /// Print one JSON object per transfer.
    #[arg(long)]
    pub json: bool,
}

/// Options of `cue wallet mint`.
#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// The credited peer id (or hex public key).
    pub peer: String,
    /// Tokens to create (a whole number > 0).
    pub amount: u64,
    /// Print a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `cue wallet export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Hash of the event (as printed by transfer, mint and history).
    pub hash: String,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Options of `cue wallet import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A file holding one signed event (canonical CBOR, as written by export).
    pub file: PathBuf,
    /// Accept an expired entry of a chain being caught up on (signature and ledger rules still
    /// apply; a replay is still refused by the chain).
    #[arg(long)]
    pub historical: bool,
    /// Print a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs a wallet subcommand: through the running node's API when a node runs on this data
/// dir (so entries are gossiped and the node's ledger stays the only writer), else against the
/// local ledger. Either way the command gets the same typed views and prints them one way.
pub fn run(command: WalletCommand, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let wallet = match running_node(ctx) {
        Some(api) => Wallet::Node(api),
        None => Wallet::Local,
    };
    match command {
        WalletCommand::Balance(args) => print_balance(&wallet.balance(args.peer.as_deref(), ctx)?, args.json),
        WalletCommand::History(args) => print_entries(&wallet.history(&args, ctx)?, args.json),
        WalletCommand::Transfer(args) => wallet.transfer(&args, ctx)?,
        WalletCommand::Mint(args) => print_entry(&wallet.mint(&args, ctx)?, args.json),
        // Reading the log is safe beside a running node (WAL readers do not block it).
        WalletCommand::Export(args) => export(args, ctx)?,
        WalletCommand::Import(args) => print_entry(&wallet.import(&args, ctx)?, args.json),
        WalletCommand::Verify(args) => return verify(&args, ctx),
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the wallet's commands go.
enum Wallet {
    /// The node running on this data dir, through its API.
    Node(ApiClient),
    /// The data dir's ledger, opened here (no node runs).
    Local,
}

/// The API of the node running on this data dir, if one answers.
fn running_node(ctx: &LedgerContext) -> Option<ApiClient> {
    let api = ApiClient::discover(ctx.data_dir(), Duration::from_secs(60)).ok()?;
    if api.is_alive() {
        Some(api)
    } else {
        eprintln!("warning: the node recorded in the data dir does not answer; using the local ledger");
        None
    }
}

/// Most transfers of one `--count` run in flight at once (bounds memory; keeps group commit fed).
const MAX_IN_FLIGHT: usize = 256;

impl Wallet {
    fn balance(&self, peer: Option<&str>, ctx: &LedgerContext) -> anyhow::Result<BalanceView> {
        if let Wallet::Node(api) = self {
            return Ok(api.balance(peer)?);
        }
        let peer = account(peer, ctx)?;
        let store = ctx.open_ledger()?;
        let reader = store.reader()?;
        let key = peer.public_key();
        Ok(BalanceView {
            peer_id: peer.to_string(),
            balance: reader.balance(&key)?,
            flagged: reader.is_flagged(&key)?,
            locked: reader.locked_by(&key)?,
        })
    }

    fn history(&self, args: &HistoryArgs, ctx: &LedgerContext) -> anyhow::Result<Vec<EntryView>> {
        let peer = args.peer.as_deref();
        if let Wallet::Node(api) = self {
            return Ok(api.history(peer, args.before, args.limit)?);
        }
        let peer = account(peer, ctx)?;
        let entries =
            ctx.open_ledger()?.reader()?.history_before(&peer.public_key(), args.before, args.limit)?;
        Ok(entries.iter().map(EntryView::of_history).collect())
    }

    /// Makes `--count` transfers, printing each once it is durable.
    fn transfer(&self, args: &TransferArgs, ctx: &LedgerContext) -> anyhow::Result<()> {
        if let Wallet::Node(api) = self {
            for _ in 0..args.count {
                let entry = api.transfer(&args.peer, args.amount, args.reference.as_deref());
                print_entry(&entry.context("transfer refused")?, args.json);
            }
            return Ok(());
        }
        let to = args.peer.parse::<PeerId>()?.public_key();
        let reference = args
            .reference
            .as_deref()
            .map(str::parse::<PaymentReference>)
            .transpose()
            .context("--reference")?;
        let signer = Arc::new(ctx.keypair()?);
        let store = ctx.open_ledger()?;
        let draft = Draft::Transfer { to, amount: args.amount, reference };
        let mut in_flight = VecDeque::new();
        let done = |pending: Pending<_>| -> anyhow::Result<()> {
            print_entry(&EntryView::of(&pending.wait().context("transfer refused")?), args.json);
            Ok(())
        };
        for _ in 0..args.count {
            let validity = Validity::starting(now_ms(), args.lifetime_secs.saturating_mul(1000));
            in_flight.push_back(store.author(signer.clone(), draft.clone(), validity)?);
            if in_flight.len() >= MAX_IN_FLIGHT
                && let Some(pending) = in_flight.pop_front()
            {
                done(pending)?;
            }
        }
        in_flight.into_iter().try_for_each(done)
    }

    fn mint(&self, args: &MintArgs, ctx: &LedgerContext) -> anyhow::Result<EntryView> {
        if let Wallet::Node(api) = self {
            return api.mint(&args.peer, args.amount).context("mint refused");
        }
        let to = args.peer.parse::<PeerId>()?.public_key();
        let store = ctx.open_ledger()?;
        let validity = Validity::starting(now_ms(), 3_600_000);
        let pending =
            store.author(Arc::new(ctx.keypair()?), Draft::Mint { to, amount: args.amount }, validity)?;
        Ok(EntryView::of(&pending.wait().context("mint refused")?))
    }

    fn import(&self, args: &ImportArgs, ctx: &LedgerContext) -> anyhow::Result<EntryView> {
        let bytes =
            std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
        let refused = || format!("event in {} refused", args.file.display());
        if let Wallet::Node(api) = self {
            return api.import(&bytes, args.historical).with_context(refused);
        }
        let event = Event::decode(&bytes).and_then(Event::verify).with_context(refused)?;
        let store: LedgerStore = ctx.open_ledger()?;
        let admission =
            if args.historical { Admission::Historical } else { Admission::Fresh { now_ms: now_ms() } };
        Ok(EntryView::of(&store.submit(event, admission)?.wait().with_context(refused)?))
    }
}

fn account(peer: Option<&str>, ctx: &LedgerContext) -> anyhow::Result<PeerId> {
    match peer {
        Some(peer) => Ok(peer.parse()?),
        None => Ok(ctx.keypair()?.peer_id()),
    }
}

/// `balance`: the number, and what is locked when anything is (a warning when the account is
/// flagged); `--json`: `{"peer_id": .., "balance": N, "locked": N}`.
fn print_balance(view: &BalanceView, json: bool) {
    if json {
        let view =
            serde_json::json!({"peer_id": view.peer_id, "balance": view.balance, "locked": view.locked});
        println!("{view}");
        return;
    }
    if view.locked > 0 {
        println!("{} ({} more locked in open offers)", view.balance, view.locked);
    } else {
        println!("{}", view.balance);
    }
    if view.flagged {
        eprintln!("warning: {} is flagged for equivocation", view.peer_id);
    }
}

/// `history`: one line per entry; `--json`: an array of entries.
fn print_entries(entries: &[EntryView], json: bool) {
    if json {
        println!("{}", serde_json::to_string(entries).unwrap_or_default());
        return;
    }
    for e in entries {
        println!(
            "#{:<6} {:<18} {} seq {} -> {} {:>12}  {}",
            e.log_position,
            e.kind,
            e.from,
            seq_text(e.seq),
            e.to,
            e.amount,
            e.hash
        );
    }
}

/// One stored entry (transfer, mint, import); `--json`: one object.
fn print_entry(e: &EntryView, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        println!("{} {} seq {}: {} to {} ({})", e.kind, e.from, seq_text(e.seq), e.amount, e.to, e.hash);
    }
}

/// A chain position, or `-` for a release (no chain entry).
fn seq_text(seq: Option<u64>) -> String {
    seq.map_or_else(|| "-".to_owned(), |seq| seq.to_string())
}

fn export(args: ExportArgs, ctx: &LedgerContext) -> anyhow::Result<()> {
    let hash = Digest::from_hex(&args.hash).context("the hash must be 64 hex characters")?;
    let reader = LogReader::open(&ctx.ledger_path())?;
    let bytes = reader.event_bytes(&hash)?.with_context(|| format!("no event {hash} in the local log"))?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{} bytes written to {}", bytes.len(), args.out.display());
    Ok(())
}

/// `verify`: replays the local log (safe beside a running node) and prints what it found.
fn verify(args: &VerifyArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let replay = LogReader::open(&ctx.ledger_path())?.replay()?;
    let mismatches: Vec<serde_json::Value> = replay
        .mismatches
        .iter()
        .map(|(key, stored, replayed)| {
            serde_json::json!({"peer_id": key.peer_id().to_string(), "stored": stored, "replayed": replayed})
        })
        .collect();
    if args.json {
        let report = serde_json::json!({
            "entries": replay.entries,
            "supply": replay.supply,
            "balances_total": replay.materialised_total,
            "sound": replay.is_sound(),
            "mismatches": mismatches,
        });
        println!("{report}");
    } else {
        println!(
            "{} entries replayed · supply {} · stored balances add up to {} · {}",
            replay.entries,
            replay.supply,
            replay.materialised_total,
            if replay.is_sound() { "the stored balances equal the replay" } else { "MISMATCH" }
        );
        for m in &mismatches {
            println!("  {} stored {} replayed {}", m["peer_id"], m["stored"], m["replayed"]);
        }
    }
    Ok(if replay.is_sound() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
