//! `cue wallet`: balances, history, transfers, mints, and moving signed events in and out.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::LedgerContext;
use super::context::now_ms;
use crate::api::{ApiClient, encode_query};
use crate::crypto::{Digest, PeerId};
use crate::protocol::{Event, PaymentReference, Validity};
use crate::store::{Accepted, Admission, Draft, HistoryEntry, LogReader};

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
    /// Most entries to show.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
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
/// local ledger.
pub fn run(command: WalletCommand, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    if let Some(api) = running_node(ctx) {
        return through_node(command, &api, ctx);
    }
    match command {
        WalletCommand::Balance(args) => balance(args, ctx),
        WalletCommand::History(args) => history(args, ctx),
        WalletCommand::Transfer(args) => transfer(args, ctx),
        WalletCommand::Mint(args) => mint(args, ctx),
        WalletCommand::Export(args) => export(args, ctx),
        WalletCommand::Import(args) => import(args, ctx),
    }
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

fn through_node(command: WalletCommand, api: &ApiClient, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let peer_query = |peer: &Option<String>| peer.as_deref().map(|p| format!("peer={}&", encode_query(p)));
    match command {
        WalletCommand::Balance(args) => {
            let path = format!("/v1/wallet/balance?{}", peer_query(&args.peer).unwrap_or_default());
            let answer = api.get(&path)?;
            if args.json {
                println!("{}", json!({"peer_id": answer["peer_id"], "balance": answer["balance"]}));
            } else {
                println!("{}", answer["balance"]);
                if answer["flagged"] == true {
                    eprintln!("warning: {} is flagged for equivocation", answer["peer_id"]);
                }
            }
        }
        WalletCommand::History(args) => {
            let peer = peer_query(&args.peer).unwrap_or_default();
            let answer = api.get(&format!("/v1/wallet/history?{peer}limit={}", args.limit))?;
            print_entries(answer.as_array().map(Vec::as_slice).unwrap_or_default(), args.json);
        }
        WalletCommand::Transfer(args) => {
            let body = json!({"to": args.peer, "amount": args.amount, "reference": args.reference});
            for _ in 0..args.count {
                print_entry(
                    &api.post_json("/v1/wallet/transfer", &body).context("transfer refused")?,
                    args.json,
                );
            }
        }
        WalletCommand::Mint(args) => {
            let body = json!({"to": args.peer, "amount": args.amount});
            print_entry(&api.post_json("/v1/wallet/mint", &body).context("mint refused")?, args.json);
        }
        WalletCommand::Import(args) => {
            let bytes =
                std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
            let path = format!("/v1/wallet/import?historical={}", args.historical);
            let entry = api
                .post_bytes(&path, &bytes)
                .with_context(|| format!("event in {} refused", args.file.display()))?;
            print_entry(&entry, args.json);
        }
        // Reading the log is safe beside a running node (WAL readers do not block it).
        WalletCommand::Export(args) => return export(args, ctx),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entries(entries: &[serde_json::Value], json: bool) {
    if json {
        println!("{}", serde_json::Value::Array(entries.to_vec()));
        return;
    }
    for e in entries {
        println!(
            "#{:<6} {:<18} {} seq {} -> {} {:>12}  {}",
            e["log_position"],
            e["kind"].as_str().unwrap_or("?"),
            e["from"].as_str().unwrap_or("?"),
            e["seq"],
            e["to"].as_str().unwrap_or("?"),
            e["amount"],
            e["hash"].as_str().unwrap_or("?")
        );
    }
}

fn print_entry(e: &serde_json::Value, json: bool) {
    if json {
        println!("{e}");
    } else {
        println!(
            "{} {} seq {}: {} to {} ({})",
            e["kind"].as_str().unwrap_or("?"),
            e["from"].as_str().unwrap_or("?"),
            e["seq"],
            e["amount"],
            e["to"].as_str().unwrap_or("?"),
            e["hash"].as_str().unwrap_or("?")
        );
    }
}

fn account(peer: Option<&str>, ctx: &LedgerContext) -> anyhow::Result<PeerId> {
    match peer {
        Some(peer) => Ok(peer.parse()?),
        None => Ok(ctx.keypair()?.peer_id()),
    }
}

fn balance(args: BalanceArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let peer = account(args.peer.as_deref(), ctx)?;
    let store = ctx.open_ledger()?;
    let reader = store.reader()?;
    let balance = reader.balance(&peer.public_key())?;
    let flagged = reader.is_flagged(&peer.public_key())?;
    if args.json {
        let json = BalanceJson { peer_id: peer.to_string(), balance };
        println!("{}", serde_json::to_string(&json)?);
    } else {
        println!("{balance}");
        if flagged {
            eprintln!("warning: {peer} is flagged for equivocation");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `balance --json`, fields in the documented order.
#[derive(serde::Serialize)]
struct BalanceJson {
    peer_id: String,
    balance: u64,
}

fn history(args: HistoryArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let peer = account(args.peer.as_deref(), ctx)?;
    let store = ctx.open_ledger()?;
    let entries = store.reader()?.history(&peer.public_key(), args.limit)?;
    if args.json {
        let entries: Vec<_> = entries.iter().map(history_json).collect();
        println!("{}", serde_json::Value::Array(entries));
    } else {
        for e in &entries {
            println!(
                "#{:<6} {:<18} {} seq {} -> {} {:>12}  {}",
                e.log_position,
                e.kind,
                e.signer.peer_id(),
                e.seq,
                e.to.peer_id(),
                e.amount,
                e.hash
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn history_json(e: &HistoryEntry) -> serde_json::Value {
    serde_json::json!({
        "log_position": e.log_position,
        "hash": e.hash.to_string(),
        "kind": e.kind,
        "from": e.signer.peer_id().to_string(),
        "seq": e.seq,
        "to": e.to.peer_id().to_string(),
        "amount": e.amount,
        "timestamp_ms": e.timestamp_ms,
    })
}

fn accepted_json(accepted: &Accepted) -> serde_json::Value {
    let event = &accepted.event;
    let entry = event.entry();
    serde_json::json!({
        "hash": event.hash().to_string(),
        "kind": event.header().kind.tag(),
        "from": event.signer().peer_id().to_string(),
        "seq": entry.link.seq,
        "to": entry.to.peer_id().to_string(),
        "amount": entry.amount,
        "log_position": accepted.log_position,
    })
}

fn print_accepted(accepted: &Accepted, json: bool) {
    if json {
        println!("{}", accepted_json(accepted));
    } else {
        let entry = accepted.event.entry();
        println!(
            "{} {} seq {}: {} to {} ({})",
            accepted.event.header().kind,
            accepted.event.signer().peer_id(),
            entry.link.seq,
            entry.amount,
            entry.to.peer_id(),
            accepted.event.hash()
        );
    }
}

fn parse_reference(text: &str) -> anyhow::Result<PaymentReference> {
    let (kind, hash) =
        text.split_once(':').context("--reference: expected contract:<hash> or receipt:<hash>")?;
    let hash = Digest::from_hex(hash).context("--reference: the hash must be 64 hex characters")?;
    match kind {
        "contract" => Ok(PaymentReference::Contract(hash)),
        "receipt" => Ok(PaymentReference::Receipt(hash)),
        other => bail!("--reference: unknown kind {other:?} (contract or receipt)"),
    }
}

/// Most transfers of one `--count` run in flight at once (bounds memory; keeps group commit fed).
const MAX_IN_FLIGHT: usize = 256;

fn transfer(args: TransferArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let to = args.peer.parse::<PeerId>()?.public_key();
    let reference = args.reference.as_deref().map(parse_reference).transpose()?;
    let signer = Arc::new(ctx.keypair()?);
    let store = ctx.open_ledger()?;
    let draft = Draft::Transfer { to, amount: args.amount, reference };
    let mut in_flight = VecDeque::new();
    for _ in 0..args.count {
        let validity = Validity::starting(now_ms(), args.lifetime_secs.saturating_mul(1000));
        in_flight.push_back(store.author(signer.clone(), draft, validity)?);
        if in_flight.len() >= MAX_IN_FLIGHT
            && let Some(pending) = in_flight.pop_front()
        {
            print_accepted(&pending.wait().context("transfer refused")?, args.json);
        }
    }
    for pending in in_flight {
        print_accepted(&pending.wait().context("transfer refused")?, args.json);
    }
    Ok(ExitCode::SUCCESS)
}

fn mint(args: MintArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let to = args.peer.parse::<PeerId>()?.public_key();
    let signer = Arc::new(ctx.keypair()?);
    let store = ctx.open_ledger()?;
    let validity = Validity::starting(now_ms(), 3_600_000);
    let accepted = store
        .author(signer, Draft::Mint { to, amount: args.amount }, validity)?
        .wait()
        .context("mint refused")?;
    print_accepted(&accepted, args.json);
    Ok(ExitCode::SUCCESS)
}

fn export(args: ExportArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let hash = Digest::from_hex(&args.hash).context("the hash must be 64 hex characters")?;
    let reader = LogReader::open(&ctx.ledger_path())?;
    let bytes = reader.event_bytes(&hash)?.with_context(|| format!("no event {hash} in the local log"))?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{} bytes written to {}", bytes.len(), args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn import(args: ImportArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let refused = || format!("event in {} refused", args.file.display());
    let event = Event::decode(&bytes).and_then(Event::verify).with_context(refused)?;
    let store = ctx.open_ledger()?;
    let admission =
        if args.historical { Admission::Historical } else { Admission::Fresh { now_ms: now_ms() } };
    let accepted = store.submit(event, admission)?.wait().with_context(refused)?;
    print_accepted(&accepted, args.json);
    Ok(ExitCode::SUCCESS)
}
