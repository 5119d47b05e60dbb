//! `cue node`: run a node (and its local API) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::LedgerContext;
use super::policy::PolicyArgs;
use crate::api::{ApiConfig, HostName};
use crate::benchmark::Plan;
use crate::datadir::DataDir;
use crate::net::Multiaddr;
use crate::node::{CrashPoint, FaultInjection, Node, NodeConfig, ProviderSettings};
use crate::sandbox::{SandboxConfig, parse_bytes, parse_duration};

/// Options of `cue node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address to listen on (repeatable)
    #[arg(long, value_name = "MULTIADDR", default_values_t = default_listen())]
    listen: Vec<Multiaddr>,
    /// Peer to join the network through, e.g. /ip4/10.0.0.2/tcp/7411/p2p/12D3Koo... (repeatable)
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<Multiaddr>,
    /// Sell compute: measure this machine, sign and announce a resource manifest
    #[arg(long)]
    provide: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    /// How long peers may believe the manifest (re-signed at half of it), e.g. 1h
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    valid_for: Duration,
    /// Rounds of the reference workload per benchmark run (34 fuel each)
    #[arg(long, value_name = "N", default_value_t = Plan::default().rounds, hide = true)]
    benchmark_rounds: u32,
    /// The lowest consumer reputation this provider serves (0 to 1)
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    min_reputation: f64,
    /// How long after a job's time limit its consumer may pay before it is recorded as a default
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pay_grace: Duration,
    /// Run only components published by this key (repeatable) [default: any verified component]
    #[arg(long, value_name = "PEER")]
    allow_publisher: Vec<crate::crypto::PeerId>,
    /// FOR TESTING ONLY: make this provider misbehave on purpose (e.g. overstate-fuel), so
    /// that consumers can be seen catching it
    #[arg(long, value_name = "FAULT")]
    fault_injection: Option<FaultInjection>,
    /// FOR TESTING ONLY: abort the process at this point of a contract (crash tests)
    #[arg(long, value_name = "POINT", hide = true)]
    crash_at: Option<CrashPoint>,
    /// The most bytes of components kept (beyond, the least recently used that no live
    /// contract needs and this node did not publish are evicted), e.g. 4GiB
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "4GiB")]
    max_blob_store: u64,
    /// Where the local control API listens (loopback only; port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    api: SocketAddr,
    /// Another name the local API answers to (repeatable), e.g. a name in /etc/hosts for
    /// 127.0.0.1; besides localhost, 127.0.0.1 and [::1], requests naming any other Host or
    /// coming from any other web origin are refused
    #[arg(long, value_name = "NAME")]
    api_host: Vec<HostName>,
}

fn default_listen() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/7411", "/ip4/0.0.0.0/udp/7411/quic-v1"]
        .iter()
        .filter_map(|addr| addr.parse().ok())
        .collect()
}

/// Starts the node and its API, prints where they listen, and runs until asked to stop.
pub fn run(args: NodeArgs, ledger: &LedgerContext, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args, ledger, data_dir))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: NodeArgs, ledger: &LedgerContext, data_dir: &DataDir) -> anyhow::Result<()> {
    let provide = args.provide.then(|| ProviderSettings {
        policy: args.policy.policy(),
        plan: Plan { rounds: args.benchmark_rounds, ..Plan::default() },
        manifest_lifetime: args.valid_for,
        min_reputation: args.min_reputation,
        fault: args.fault_injection,
        pay_grace: args.pay_grace,
        allowed_publishers: args.allow_publisher.clone(),
    });
    let config = NodeConfig {
        data_dir: data_dir.clone(),
        listen: args.listen,
        bootstrap: args.bootstrap,
        provide,
        sandbox: SandboxConfig::default(),
        genesis: ledger.genesis()?,
        max_blob_store_bytes: args.max_blob_store,
        crash_at: args.crash_at,
    };
    let node = Node::start(config).await?;
    let api_config = ApiConfig { listen: args.api, hosts: args.api_host };
    let api = crate::api::serve(node.handle(), &api_config, data_dir).await?;
    println!("peer id: {}", node.peer_id());
    for addr in node.listen_addrs() {
        println!("listening on {addr}");
    }
    println!("api: {}", api.addr());
    println!("dashboard: {}", api.dashboard_url());
    if let Some(manifest) = node.handle().manifest() {
        println!("providing: {} fuel/s, manifest {}", manifest.body().fuel_per_second, manifest.hash());
    }
    println!("ready");
    stop_signal().await;
    eprintln!("stopping");
    api.stop().await;
    node.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
