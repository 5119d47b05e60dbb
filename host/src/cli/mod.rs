//! The `cue` command line: argument types and one file per subcommand. Commands are thin:
//! they parse options, call one library function and print.

mod benchmark;
mod build;
mod context;
mod debug;
mod fetch;
mod id;
mod inspect;
mod jobs;
mod network;
mod new;
mod node;
mod policy;
mod providers;
mod publish;
mod run;
mod status;
mod submit;
mod ui;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::datadir::DataDir;
use context::LedgerContext;

/// Cue: a peer-to-peer market for verifiable WebAssembly compute.
#[derive(Debug, Parser)]
#[command(name = "cue", version, about, propagate_version = true)]
pub struct Cli {
    /// Where this node keeps its keys, stores and caches [default: the platform data dir]
    #[arg(long, global = true, env = "CUE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The network's genesis file (needed the first time a data dir's ledger is used)
    #[arg(long, global = true, env = "CUE_GENESIS", value_name = "FILE")]
    pub genesis: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a component locally: verify, meter and limit it, call one export, print the result.
    Run(run::RunArgs),
    /// Show a component's sha256, size, WIT world and the policy's verdict on its imports.
    Inspect(inspect::InspectArgs),
    /// Create a job crate that uses the guest SDK: an example job and a test.
    New(new::NewArgs),
    /// Build a job crate into a component (release, wasm32-wasip2); print its path, size,
    /// sha256 and WIT.
    Build(build::BuildArgs),
    /// Print this agent's peer id and public key (creating the key on first use).
    Id(id::IdArgs),
    /// Measure this machine (fuel per second, cores, memory), sign its resource manifest with
    /// the agent's key and store it as `<data-dir>/manifest.cbor`.
    Benchmark(benchmark::BenchmarkArgs),
    /// Run a node of the network until Ctrl-C: discovery, publishing, (with --provide) selling
    /// compute; other commands talk to it through its local API.
    Node(node::NodeArgs),
    /// Show the running node: peer id, addresses, peers, manifest, refused input by kind.
    Status(status::StatusArgs),
    /// Print the running node's dashboard address (its token in the fragment); `--open` opens it.
    Ui(ui::UiArgs),
    /// Discover providers through the running node; show their measured manifests, latency,
    /// reputation and score, best first.
    Providers(providers::ProvidersArgs),
    /// Publish a component through the running node: verify it, sign its manifest (name,
    /// version, sha256, size, WIT world), keep it and announce it.
    #[command(disable_version_flag = true)]
    Publish(publish::PublishArgs),
    /// Resolve a component reference (name@semver-req, sha256:hex, or a file) and fetch its
    /// bytes from a peer that has them, through the running node.
    Fetch(fetch::FetchArgs),
    /// Run a job on the network through the running node: discover, negotiate, stream, check
    /// the signed receipt, pay, attest.
    Submit(submit::SubmitArgs),
    /// The contracts this node is a party to, most recently changed first.
    Jobs(jobs::JobsArgs),
    /// One job: its contracts, events, receipts and payments.
    Job(jobs::JobArgs),
    /// Create a network (its genesis file).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Balances, history, transfers and mints on the local ledger.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// Tools for testing the network (a hostile peer).
    #[command(subcommand, hide = true)]
    Debug(debug::DebugCommand),
}

impl Cli {
    /// The log filter when `RUST_LOG` is not set: a node reports what it does (info), other
    /// commands only warnings.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Node(_) => "warn,cue_host=info,libp2p_kad=error",
            _ => "warn",
        }
    }
}

/// Runs the parsed command line; `Ok` carries the exit code (a failed job is not an error
/// of the command).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = DataDir::resolve(cli.data_dir);
    let ledger = LedgerContext::new(data_dir.clone(), cli.genesis);
    match cli.command {
        Command::Run(args) => run::run(args, &data_dir),
        Command::Inspect(args) => inspect::run(args),
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Id(args) => id::run(args, &ledger),
        Command::Benchmark(args) => benchmark::run(args, &ledger, &data_dir),
        Command::Node(args) => node::run(args, &ledger, &data_dir),
        Command::Status(args) => status::run(args, &data_dir),
        Command::Ui(args) => ui::run(args, &data_dir),
        Command::Providers(args) => providers::run(args, &data_dir),
        Command::Publish(args) => publish::run(args, &data_dir),
        Command::Fetch(args) => fetch::run(args, &data_dir),
        Command::Submit(args) => submit::run(args, &data_dir),
        Command::Jobs(args) => jobs::list(args, &data_dir),
        Command::Job(args) => jobs::show(args, &data_dir),
        Command::Network(command) => network::run(command, &ledger),
        Command::Wallet(command) => wallet::run(command, &ledger),
        Command::Debug(command) => debug::run(command, &ledger),
    }
}
