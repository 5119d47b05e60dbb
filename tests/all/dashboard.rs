//! The dashboard's server side on real `cue node` processes: the address `cue node` and `cue ui`
//! print, the files served with their Content-Security-Policy to this API's hosts only, the
//! live feed (SSE) behind the token, and providing started and stopped through the API without
//! a restart. The page itself is tested in a real browser in `dashboard_browser`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cue_host::api::{ApiClient, CONTENT_SECURITY_POLICY};
use cue_host::datadir::DataDir;
use serde_json::json;

use crate::contracts::{genesis_for, wait_for_providers};
use crate::support::{Cue, NodeProcess, stderr, stdout};

/// The API's address and token from a dashboard address.
fn split(dashboard: &str) -> (String, String) {
    let rest = dashboard.strip_prefix("http://").expect("an http address");
    let (addr, fragment) = rest.split_once("/#token=").expect("a token in the fragment");
    (addr.to_owned(), fragment.to_owned())
}

/// A raw HTTP/1.1 request to `addr` with `headers`; answers the status line, the head and the
/// first `limit` bytes of the body (enough for the files and the start of a stream).
fn request(addr: &str, path: &str, headers: &[(&str, &str)], limit: usize) -> (u16, String, String) {
    let mut socket = TcpStream::connect(addr).expect("connected");
    // Files end with the connection; a live feed does not: what came within 3 s is enough.
    socket.set_read_timeout(Some(Duration::from_secs(3))).expect("a timeout");
    let mut head = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).expect("sent");
    let mut reader = BufReader::new(socket);
    let mut answer_head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("a head line") == 0 || line == "\r\n" {
            break;
        }
        answer_head.push_str(&line);
    }
    let status = answer_head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let mut body = vec![0u8; limit];
    let mut read = 0;
    while read < limit {
        match reader.read(&mut body[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    (status, answer_head.to_ascii_lowercase(), String::from_utf8_lossy(&body[..read]).into_owned())
}

#[test]
fn cue_node_and_cue_ui_print_the_dashboard_whose_files_carry_a_strict_csp_and_only_to_this_api() {
    let node = NodeProcess::start(&[]);
    let (addr, token) = split(&node.dashboard);
    let on_disk = std::fs::read_to_string(node.cue.data_dir.path().join("api.token")).expect("the token");
    assert_eq!(token, on_disk.trim(), "the token of api.token, in the fragment");
    let ui = node.cue(&["ui"]);
    assert!(ui.status.success(), "{}", stderr(&ui));
    assert_eq!(stdout(&ui).trim(), format!("dashboard: {}", node.dashboard));

    // The page and its modules: no token needed, the CSP on each, never cached stale.
    for path in ["/", "/ui/app.js", "/ui/api.js", "/ui/submit.js", "/ui/app.css"] {
        let (status, head, body) = request(&addr, path, &[], 200_000);
        assert_eq!(status, 200, "{path}: {head}");
        assert!(
            head.contains(&format!("content-security-policy: {CONTENT_SECURITY_POLICY}")),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(
            !body.contains("http://") || path == "/ui/api.js" || path == "/ui/app.js",
            "{path} loads nothing from elsewhere"
        );
        assert!(!body.contains("https://"), "{path} loads nothing from elsewhere");
    }
    let (_, _, page) = request(&addr, "/", &[], 200_000);
    assert!(page.contains(r#"<script type="module" src="/ui/app.js">"#), "{page}");
    assert!(!page.contains("<script>") && !page.contains("style="), "no inline script or style: {page}");

    // DNS rebinding and other sites: refused for the files as for the API.
    let (status, _, body) = request(&addr, "/", &[("Host", "evil.example")], 4096);
    assert_eq!(status, 421, "{body}");
    let (status, _, body) = request(&addr, "/ui/app.js", &[("Origin", "http://evil.example")], 4096);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-origin"), "{body}");

    // The routes still need the token; the fragment is the page's to send as a bearer header.
    let (status, _, _) = request(&addr, "/v1/status", &[], 4096);
    assert_eq!(status, 401);
    let (status, _, _) = request(&addr, &format!("/v1/status?token={token}"), &[], 4096);
    assert_eq!(status, 401, "a token in a query string is not a token");
}

#[test]
fn the_live_feed_needs_the_token_and_sends_the_log_then_the_state_and_is_bounded() {
    let node = NodeProcess::start(&[]);
    let (addr, token) = split(&node.dashboard);
    let bearer = format!("Bearer {token}");
    let (status, _, _) = request(&addr, "/v1/events", &[], 4096);
    assert_eq!(status, 401);
    let (status, _, _) =
        request(&addr, "/v1/events", &[("Authorization", &bearer), ("Origin", "http://evil.example")], 4096);
    assert_eq!(status, 403);

    let (status, head, body) = request(&addr, "/v1/events", &[("Authorization", &bearer)], 64 * 1024);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(body.contains("event: log\ndata: {"), "the log kept so far comes first: {body}");
    assert!(body.contains("node started"), "{body}");
    let state = body.split("event: state\ndata: ").nth(1).expect("the state after the log");
    let state: serde_json::Value = serde_json::from_str(state.lines().next().unwrap()).expect("JSON");
    assert_eq!((state["peers"].as_u64(), state["providing"].is_null()), (Some(0), true), "{state}");

    // At most MAX_EVENT_STREAMS feeds at once: one more is told the API is busy.
    let open: Vec<TcpStream> = (0..cue_host::api::MAX_EVENT_STREAMS)
        .map(|_| {
            let mut socket = TcpStream::connect(&addr).expect("connected");
            let head = format!("GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {bearer}\r\n\r\n");
            socket.write_all(head.as_bytes()).expect("sent");
            let mut first = [0u8; 12];
            socket.read_exact(&mut first).expect("an answer");
            assert_eq!(&first, b"HTTP/1.1 200");
            socket
        })
        .collect();
    let (status, _, body) = request(&addr, "/v1/events", &[("Authorization", &bearer)], 4096);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    drop(open);
    let started = Instant::now();
    loop {
        let (status, _, _) = request(&addr, "/v1/events", &[("Authorization", &bearer)], 16);
        if status == 200 {
            break;
        }
        // A closed feed is noticed at its next write: at the latest its keep-alive.
        let limit = cue_host::api::KEEP_ALIVE + Duration::from_secs(15);
        assert!(started.elapsed() < limit, "closed feeds give their places back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn providing_starts_and_stops_through_the_api_without_restarting_the_node() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let provider = NodeProcess::start(&["--genesis", &genesis]);
    let consumer =
        NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &provider.listen[0]]);
    let api = ApiClient::discover(
        &DataDir::resolve(Some(provider.cue.data_dir.path().to_path_buf())),
        Duration::from_secs(60),
    )
    .expect("the provider's API");
    assert_eq!(api.get("/v1/status").expect("status")["providing"], false);

    let mut progress = Vec::new();
    let policy =
        json!({"price_per_mfuel": 7, "base_fee": 2, "max_concurrent_jobs": 2, "min_reputation": 0.0});
    let done = api
        .post_stream("/v1/provide", &policy, |line| {
            progress.push(line["progress"]["done"].as_u64().unwrap_or(0))
        })
        .expect("providing started");
    assert!(
        progress.len() >= 2 && progress.windows(2).all(|w| w[0] <= w[1]),
        "runs reported in order: {progress:?}"
    );
    assert!(done["manifest"]["fuel_per_second"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(done["manifest"]["policy"]["price_per_mfuel"], 7, "{done}");
    assert!(done["expires_ms"].as_u64().unwrap() > 0 && done["hash"].as_str().unwrap().len() == 64, "{done}");
    let found = wait_for_providers(&consumer, 1);
    assert_eq!(found[0]["peer_id"], provider.peer_id, "{found}");
    assert_eq!(found[0]["manifest"]["policy"]["base_fee"], 2, "{found}");
    crate::contracts::publish(&provider, "fib", "fib");
    let (code, fib) =
        crate::contracts::submit(&consumer, &["fib@^1", "fib(20)", "--pay", "1000", "--max-fuel", "1000000"]);
    assert_eq!(
        (code, fib["result"].as_u64()),
        (0, Some(6765)),
        "a job runs on the provider started through the API: {fib}"
    );

    let stopped = api.post_json("/v1/provide/stop", &json!({})).expect("stopped");
    assert_eq!(stopped["was_providing"], true);
    assert_eq!(api.get("/v1/status").expect("status")["providing"], false);
    let refused = consumer.cue(&["submit", "fib@^1", "fib(20)", "--pay", "1000", "--max-fuel", "1000000"]);
    assert!(!refused.status.success(), "a stopped provider takes no new job: {}", stdout(&refused));
    assert!(stderr(&refused).contains("no provider"), "{}", stderr(&refused));

    // Started again with another price, still the same process.
    let again =
        api.post_stream("/v1/provide", &json!({"price_per_mfuel": 9}), |_| {}).expect("started again");
    assert_eq!(again["manifest"]["policy"]["price_per_mfuel"], 9, "{again}");
    assert_eq!(api.get("/v1/status").expect("status")["manifest"]["policy"]["price_per_mfuel"], 9);
}
