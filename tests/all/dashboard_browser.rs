//! The dashboard in a real headless Chromium against real `cue node` processes on 127.0.0.1:
//! the origin's story (node A benchmarks and becomes a provider from its page; node B's page
//! submits a job and shows its result, receipt and cost; both balances change on both pages),
//! bad arguments shown next to their field, a missing or wrong token, another origin refused;
//! and a screenshot of each view (`CUE_SCREENSHOTS=docs/dashboard` writes the committed ones).

use crate::browser::Browser;
use crate::contracts::{balance, genesis_for, publish, wait_for_providers};
use crate::support::{Cue, NodeProcess};

/// `n` as the page writes it (`en-US` thousands separators).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The API's base address of a dashboard address.
fn base(dashboard: &str) -> String {
    dashboard.split("/#").next().expect("an address").to_owned()
}

/// Blocking work (the `cue` CLI) inside the async test.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// A's page: becomes a provider through the Provide view.
async fn become_provider(browser: &Browser, a: &NodeProcess, screenshot: Option<&str>) {
    browser.open(&format!("{}/#/provide", base(&a.dashboard))).await;
    browser.wait_text("become-provider", "the button", |t| t.contains("Benchmark & become provider")).await;
    browser.type_into("policy-price_per_mfuel", "1").await;
    browser.click("become-provider").await;
    browser.wait_text("provide-ok", "providing", |t| t.contains("Providing")).await;
    let fuel = browser.wait_text("manifest-fuel", "the measured speed", |t| !t.is_empty()).await;
    assert!(fuel.replace(',', "").parse::<u64>().is_ok_and(|f| f > 0), "{fuel}");
    if let Some(name) = screenshot {
        browser.screenshot(name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_from_its_page_runs_a_job_submitted_from_another_page_and_both_pages_show_it() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let a = NodeProcess::start(&["--genesis", &genesis]);
    let b = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &a.listen[0]]);
    let browser = Browser::start().await;

    // No token, then a wrong one: the page says what to do instead of failing silently.
    browser.open(&format!("{}/", base(&a.dashboard))).await;
    browser
        .wait_text("notice", "the missing token", |t| t.contains("no token") && t.contains("cue ui"))
        .await;
    browser.open(&format!("{}/#token={}", base(&a.dashboard), "0".repeat(64))).await;
    browser.wait_text("notice", "the wrong token", |t| t.contains("refused the page's token")).await;

    browser.open(&a.dashboard).await;
    browser.wait_text("peer-id", "A's peer id", |t| t == a.peer_id).await;
    become_provider(&browser, &a, Some("provide")).await;
    blocking(|| publish(&a, "fib", "fib"));
    blocking(|| wait_for_providers(&b, 1));
    browser.open(&format!("{}/#/log", base(&a.dashboard))).await;
    browser.wait_text("log-lines", "the start in the log", |t| t.contains("providing started")).await;
    browser.screenshot("log").await;

    // B's page: the market, then the job through the form generated from fib's WIT.
    browser.open(&b.dashboard).await;
    browser.wait_text("peer-id", "B's peer id", |t| t == b.peer_id).await;
    browser.screenshot("overview").await;
    let before = blocking(|| balance(&b, &b.peer_id));
    browser.open(&format!("{}/#/market", base(&b.dashboard))).await;
    let a_tail = &a.peer_id[a.peer_id.len() - 6..];
    browser
        .reload_until("view", "A in the market and fib published", |t| {
            t.contains("fib") && t.contains(a_tail)
        })
        .await;
    browser.screenshot("market").await;

    browser.open(&format!("{}/#/submit", base(&b.dashboard))).await;
    browser.type_into("js-args", "[5, 10").await;
    browser.click("submit-job").await;
    browser.wait_text("js-args-error", "bad JSON next to the field", |t| t.contains("not JSON")).await;
    browser.click("mode-component").await;
    browser.wait_text("export", "fib's export", |t| t.contains("fib(n: u32) -> u64")).await;
    browser.type_into("param-n", "-3").await;
    browser.click("submit-job").await;
    browser
        .wait_text("param-n-error", "a bad u32 next to the field", |t| t.contains("u32 goes from 0"))
        .await;
    browser.type_into("param-n", "20").await;
    browser.click("submit-job").await;
    browser.wait_text("result-value", "the result", |t| t == "6765").await;
    let receipt = browser.wait_text("result-receipt", "the receipt", |t| t.len() == 64).await;
    let cost = browser.wait_text("result-cost", "the cost", |t| t.ends_with("CUE")).await;
    browser.screenshot("submit-component").await;
    let cost: u64 = cost.trim_end_matches(" CUE").replace(',', "").parse().expect("a cost");
    assert!(cost > 0 && !receipt.is_empty());

    // Both balances moved, on both pages (B's header follows the live feed).
    let after = blocking(|| balance(&b, &b.peer_id));
    assert_eq!(after, before - cost);
    browser
        .wait_text("summary-balance", "B's new balance, live", |t| t == format!("{} CUE", grouped(after)))
        .await;
    browser.open(&format!("{}/#/jobs", base(&b.dashboard))).await;
    browser.wait_text("view", "the paid contract", |t| t.contains("paid")).await;
    browser.screenshot("jobs").await;
    browser
        .client
        .find(fantoccini::Locator::Css("table.contracts tbody a"))
        .await
        .expect("a job link")
        .click()
        .await
        .expect("clicked");
    browser.wait_text("view", "the job's events", |t| t.contains("cue/compute-request")).await;
    browser.screenshot("job").await;
    browser.open(&format!("{}/#/wallet", base(&a.dashboard))).await;
    browser.wait_text("wallet-balance", "A paid", |t| t == format!("{} CUE", grouped(cost))).await;
    browser.screenshot("wallet").await;

    // B pays A 5 through its Wallet form; A's page sees it arrive.
    browser.open(&format!("{}/#/wallet", base(&b.dashboard))).await;
    browser.type_into("transfer-to", &a.peer_id).await;
    browser.type_into("transfer-amount", "5").await;
    browser.click("transfer-submit").await;
    browser.wait_text("transfer-outcome", "the signed transfer", |t| t.contains("signed")).await;
    browser.open(&format!("{}/#/wallet", base(&a.dashboard))).await;
    browser
        .wait_text("wallet-balance", "A paid and given 5", |t| t == format!("{} CUE", grouped(cost + 5)))
        .await;

    // Another origin (B's page) cannot call A's API, even knowing A's token; A's own page can.
    let token = a.dashboard.split("#token=").nth(1).expect("a token").to_owned();
    let probe = format!(
        "const done = arguments[arguments.length - 1];\
         fetch('{}/v1/status', {{headers: {{Authorization: 'Bearer {token}'}}}})\
           .then(r => done('status ' + r.status), e => done('refused: ' + e.message));",
        base(&a.dashboard)
    );
    let from_a = browser.run_async(&probe).await;
    assert_eq!(from_a, "status 200", "A's own page");
    browser.open(&format!("{}/#/overview", base(&b.dashboard))).await;
    let from_b = browser.run_async(&probe).await;
    assert!(from_b.as_str().is_some_and(|s| s.starts_with("refused")), "{from_b}");
    // A page outside any dashboard (no CSP of ours: origin `null`) is refused by A itself.
    browser.open("data:text/html,<title>elsewhere</title>").await;
    let from_elsewhere = browser.run_async(&probe).await;
    assert!(from_elsewhere.as_str().is_some_and(|s| s.starts_with("refused")), "{from_elsewhere}");
    browser.close().await;
}

/// The origin's own job, written as JavaScript text, from the page's defaults: the provider had
/// nothing installed for it (it fetches the runtime B's node publishes) and its fuel is what the
/// offer buys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_form_runs_a_times_b_with_5_and_10_for_15_and_shows_50() {
    let consumer_cue = Cue::with_warm_js_cache();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let a = NodeProcess::start(&["--genesis", &genesis]);
    let b = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &a.listen[0]]);
    let browser = Browser::start().await;
    browser.open(&a.dashboard).await;
    browser.wait_text("peer-id", "A's peer id", |t| t == a.peer_id).await;
    become_provider(&browser, &a, None).await;
    blocking(|| wait_for_providers(&b, 1));
    let before = blocking(|| balance(&b, &b.peer_id));
    browser.open(&b.dashboard).await;
    browser.wait_text("peer-id", "B's peer id", |t| t == b.peer_id).await;
    browser.open(&format!("{}/#/submit", base(&b.dashboard))).await;
    // The origin's defaults: (a, b) => a * b, [5, 10], 15; time for A to compile the runtime.
    assert_eq!(browser.wait_text("js-code", "the default code", |t| !t.is_empty()).await, "(a, b) => a * b");
    browser.type_into("timeout", "20").await;
    browser.click("submit-job").await;
    browser.wait_text("result-value", "the origin's 50", |t| t == "50").await;
    browser.wait_text("result-receipt", "the receipt", |t| t.len() == 64).await;
    let cost = browser.wait_text("result-cost", "the cost", |t| t.ends_with("CUE")).await;
    browser.screenshot("submit").await;
    let cost: u64 = cost.trim_end_matches(" CUE").replace(',', "").parse().expect("a cost");
    assert!(cost <= 15, "never more than the offer: {cost}");
    let after = blocking(|| balance(&b, &b.peer_id));
    assert_eq!(after, before - cost);
    browser
        .wait_text("summary-balance", "B's new balance, live", |t| t == format!("{} CUE", grouped(after)))
        .await;
    browser.open(&format!("{}/#/wallet", base(&a.dashboard))).await;
    browser.wait_text("wallet-balance", "A paid", |t| t == format!("{} CUE", grouped(cost))).await;

    // A function that logs: its console.log comes back with the result.
    browser.open(&format!("{}/#/submit", base(&b.dashboard))).await;
    browser.type_into("js-code", "(a, b) => { console.log(`adding ${a} and ${b}`); return a + b }").await;
    browser.click("submit-job").await;
    browser.wait_text("result-value", "5 + 10", |t| t == "15").await;
    browser.wait_text("result-log", "the function's log", |t| t.contains("adding 5 and 10")).await;
    browser.close().await;
}
