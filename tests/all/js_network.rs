//! JavaScript jobs and offer-derived fuel budgets on the network, between `cue node`
//! processes on 127.0.0.1: the origin's job — `(a, b) => a * b` on `[5, 10]` for an offer of
//! 15, with no `--max-fuel` — submitted as text, run by a provider that had nothing installed
//! for it (it fetches the runtime the consumer published), paid from the offer; JavaScript
//! errors typed; bad arguments refused before anything is paid; the same job through the
//! local API; and a fuel budget derived from the offer at each provider's price, one budget for
//! all replicas.

use std::time::Duration;

use cue_host::api::ApiClient;
use cue_host::datadir::DataDir;
use cue_host::local::js::{RUNTIME_NAME, RUNTIME_VERSION};

use crate::contracts::{balance, genesis_for, publish, submit, wait_for_providers};
use crate::support::{Cue, NodeProcess, stderr};

/// A provider at the prices of docs/jobs.md's example: base fee 10, 2 per million fuel.
fn origin_provider(genesis: &str, boot: Option<&str>) -> NodeProcess {
    let mut args = vec!["--provide", "--genesis", genesis, "--price-per-mfuel", "2", "--base-fee", "10"];
    if let Some(boot) = boot {
        args.extend(["--bootstrap", boot]);
    }
    NodeProcess::start(&args)
}

#[test]
fn the_origins_job_runs_on_a_provider_that_had_nothing_installed_for_an_offer_of_15() {
    let consumer_cue = Cue::with_warm_js_cache();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let provider = origin_provider(&genesis, None);
    let boot = provider.listen[0].clone();
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 1);
    let me = consumer.peer_id.clone();
    let before = (balance(&consumer, &me), balance(&consumer, &provider.peer_id));

    // As typed in the origin: code, JSON arguments, an offer of 15 — no fuel budget.
    let (code, job) = submit(
        &consumer,
        &["--js", "(a, b) => a * b", "--args", "[5, 10]", "--pay", "15", "--timeout", "20s"],
    );
    assert_eq!(code, 0, "{job}");
    assert_eq!((job["result"].as_u64(), job["json_text"].as_str()), (Some(50), Some("50")), "{job}");
    assert!(job["error"].is_null(), "{job}");
    let fuel = job["fuel"].as_u64().unwrap();
    let cost = job["cost"].as_u64().unwrap();
    assert_eq!(cost, 10 + (fuel * 2).div_ceil(1_000_000), "paid what the receipt makes due: {job}");
    assert!(cost <= 15, "within the offer: {job}");
    assert_eq!(job["provider"], provider.peer_id.as_str());

    // The provider ran the runtime the consumer published as js@<version>, fetched by hash.
    let fetched =
        provider.cue.json(&["fetch", &format!("sha256:{}", job["component"].as_str().unwrap()), "--json"]);
    assert_eq!(fetched["source"], "local", "the provider keeps the runtime it fetched: {fetched}");
    assert_eq!(fetched["name"], RUNTIME_NAME, "{fetched}");
    assert_eq!(fetched["version"], RUNTIME_VERSION, "{fetched}");
    assert_eq!(fetched["publisher"], me.as_str(), "{fetched}");

    // A JavaScript error is a typed job error with its message and place; the work is paid.
    let (code, thrown) = submit(
        &consumer,
        &["--js", "(n) => {\n  throw new RangeError(`no ${n}`)\n}", "--args", "[7]", "--pay", "15"],
    );
    assert_eq!(code, 1, "{thrown}");
    assert_eq!(thrown["error"]["kind"], "thrown", "{thrown}");
    assert_eq!(thrown["error"]["message"], "RangeError: no 7", "{thrown}");
    assert_eq!(thrown["error"]["line"], 2, "{thrown}");
    assert!(thrown["result"].is_null() && thrown["cost"].as_u64().unwrap() > 10, "{thrown}");

    // Arguments that are not a JSON array are refused before any provider is asked.
    let output = consumer.cue(&["submit", "--js", "(a) => a", "--args", "{\"a\": 1}", "--pay", "15"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("args must be a JSON array"), "{}", stderr(&output));

    // The job's console output comes back with its result (as the provider streamed it).
    let output = consumer.cue(&[
        "submit", "--js", "(xs) => { console.log('summing', xs.length); console.error('careful'); return xs.reduce((a, b) => a + b, 0) }",
        "--args", "[[1, 2, 3]]", "--pay", "15",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(crate::support::stdout(&output), "6\n");
    assert!(stderr(&output).contains("[guest info] summing 3"), "{}", stderr(&output));
    assert!(stderr(&output).contains("[guest error] careful"), "{}", stderr(&output));

    // The local API takes the same job, the arguments as JSON (what the dashboard sends).
    let api = ApiClient::discover(
        &DataDir::resolve(Some(consumer.cue.data_dir.path().to_path_buf())),
        Duration::from_secs(60),
    )
    .unwrap();
    let body = serde_json::json!({
        "js": "(xs) => xs.map((x) => x * 2)", "args": [[1, 2.5, -3]], "offer": 15,
        "max_memory_bytes": 64u64 << 20, "timeout_ms": 20_000,
    });
    let report = api.post_stream("/v1/submit", &body, |_| {}).unwrap();
    assert_eq!(report["result"], serde_json::json!([2, 5, -6]), "{report}");
    // What the four contracts say was paid: the three reported costs and the logging job's.
    let contracts = consumer.cue.json(&["jobs", "--json", "--limit", "10"]);
    let prices: Vec<u64> =
        contracts.as_array().unwrap().iter().map(|c| c["price"].as_u64().unwrap()).collect();
    for reported in [cost, thrown["cost"].as_u64().unwrap(), report["cost"].as_u64().unwrap()] {
        assert!(prices.contains(&reported), "{reported} among {prices:?}");
    }
    let paid: u64 = prices.iter().sum();

    // `cue jobs` reads page by page: two pages are the whole list, in order.
    let jobs = |args: &[&str]| consumer.cue.json(&[&["jobs", "--json"], args].concat());
    let whole = jobs(&["--limit", "10"]);
    assert_eq!(whole.as_array().unwrap().len(), 4, "{whole}");
    let (first, rest) = (jobs(&["--limit", "2"]), jobs(&["--limit", "2", "--offset", "2"]));
    assert_eq!(
        [first.as_array().unwrap().clone(), rest.as_array().unwrap().clone()].concat(),
        *whole.as_array().unwrap()
    );

    // Every cost left the consumer and reached the provider, on the consumer's ledger.
    let settled = std::time::Instant::now();
    loop {
        let after = (balance(&consumer, &me), balance(&consumer, &provider.peer_id));
        if after == (before.0 - paid, before.1 + paid) {
            break;
        }
        assert!(settled.elapsed() < Duration::from_secs(20), "balances {before:?} → {after:?}, paid {paid}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_offer_without_a_fuel_budget_buys_each_providers_fuel_and_replicas_share_the_least() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let node = |price: &str, boot: Option<&str>| {
        let mut args =
            vec!["--provide", "--genesis", &genesis, "--price-per-mfuel", price, "--base-fee", "5"];
        if let Some(boot) = boot {
            args.extend(["--bootstrap", boot]);
        }
        NodeProcess::start(&args)
    };
    let cheap = node("1000", None);
    let boot = cheap.listen[0].clone();
    let dear = node("2000", Some(&boot));
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 2);
    publish(&cheap, "fib", "fib");
    publish(&cheap, "spin", "hostile-infinite-loop");

    // The example: `--pay 1000` alone used to need a worst case of 10^10 fuel.
    let (code, fib) =
        submit(&consumer, &["fib@^1", "fib(30)", "--pay", "1000", "--provider", &cheap.peer_id]);
    assert_eq!((code, fib["result"].as_u64()), (0, Some(832040)), "{fib}");

    // A job that never ends stops at exactly the fuel the offer buys there: (1005 − 5) × 10^6 /
    // 1000, and costs the whole offer.
    let (code, spin) = submit(&consumer, &["spin@1", "run()", "--pay", "1005", "--provider", &cheap.peer_id]);
    assert_eq!((code, spin["error"]["kind"].as_str()), (1, Some("out-of-fuel")), "{spin}");
    assert_eq!((spin["fuel"].as_u64(), spin["cost"].as_u64()), (Some(1_000_000), Some(1005)), "{spin}");
    let (_, spin) = submit(&consumer, &["spin@1", "run()", "--pay", "1005", "--provider", &dear.peer_id]);
    assert_eq!(spin["fuel"].as_u64(), Some(500_000), "half the fuel at twice the price: {spin}");

    // Two replicas run with one budget, the least either offer buys (500,000): they agree on
    // the outcome and the fuel, and each is paid its own price for it.
    let (code, both) = submit(&consumer, &["spin@1", "run()", "--pay", "1005", "--replicas", "2"]);
    assert_eq!((code, both["error"]["kind"].as_str()), (1, Some("out-of-fuel")), "{both}");
    assert_eq!(both["fuel"].as_u64(), Some(500_000), "{both}");
    let completed: Vec<u64> = both["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "completed")
        .map(|a| a["paid"].as_u64().unwrap())
        .collect();
    assert_eq!(completed.len(), 2, "both replicas delivered and agreed: {both}");
    assert_eq!(both["cost"].as_u64(), Some(505 + 1005), "{both}");

    // An offer that does not pass a provider's base fee buys nothing there, and says so.
    let output = consumer.cue(&["submit", "fib@^1", "fib(3)", "--pay", "5"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("offer 5 buys no fuel: its base fee is 5"), "{}", stderr(&output));
}
