//! The API as a client meets it: a real node, the real server on 127.0.0.1, requests through
//! ureq (and one through a bare socket), every route walked from the router's own list.

use std::time::Duration;

use serde_json::Value;

use super::server::{Method, route_list};
use super::{ApiClient, ApiConfig, ApiServer, serve};
use crate::datadir::DataDir;
use crate::node::{Node, NodeConfig};
use crate::sandbox::SandboxConfig;

/// A node with its API, in a temp data dir of its own.
struct TestApi {
    /// The data dir's home; removed at the end.
    _dir: tempfile::TempDir,
    /// The data dir.
    data_dir: DataDir,
    /// The node behind the API.
    node: Node,
    /// The API server.
    server: ApiServer,
}

/// What came back: the status and the JSON body (`Null` when there is none).
#[derive(Debug)]
struct Answer {
    /// The HTTP status.
    status: u16,
    /// The body, as JSON.
    body: Value,
}

impl Answer {
    /// The `kind` of an `{"error": ..}` body.
    fn kind(&self) -> &str {
        self.body["error"]["kind"].as_str().unwrap_or("")
    }

    /// The `message` of an `{"error": ..}` body.
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl TestApi {
    /// Starts a node and its API answering also to `hosts`; `token_file`, if given, is what
    /// `api.token` holds before the API starts.
    async fn start(hosts: &[&str], token_file: Option<&[u8]>) -> TestApi {
        let dir = tempfile::tempdir().expect("a temp dir");
        let data_dir = DataDir::resolve(Some(dir.path().to_path_buf()));
        if let Some(contents) = token_file {
            let path = data_dir.api_token_path();
            std::fs::write(&path, contents).expect("a token file");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                // Private, as a token file should be: only its contents can be wrong.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            }
        }
        let mut config = NodeConfig::loopback(data_dir.clone(), vec![]);
        config.sandbox =
            SandboxConfig { max_concurrent_jobs: 1, max_memory_bytes: 16 << 20, ..config.sandbox };
        let node = Node::start(config).await.expect("a node");
        let api = ApiConfig {
            listen: "127.0.0.1:0".parse().expect("an address"),
            hosts: hosts.iter().map(|h| h.parse().expect("a host name")).collect(),
        };
        let server = serve(node.handle(), &api, &data_dir).await.expect("the API");
        TestApi { _dir: dir, data_dir, node, server }
    }

    fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// The token in `api.token`, as the `cue` commands read it.
    fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.api_token_path()).expect("the token file").trim().to_owned()
    }

    /// `Authorization: Bearer <the token>`.
    fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }

    /// Sends `method path` with `headers` (a `Host` among them replaces ureq's) and an empty
    /// JSON object as the body of a POST.
    async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let url = format!("http://{}{path}", self.server.addr());
        let headers: Vec<(String, String)> =
            headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let response = match method {
                Method::Get => headers.iter().fold(agent.get(&url), |r, (n, v)| r.header(n, v)).call(),
                Method::Post => headers
                    .iter()
                    .fold(agent.post(&url), |r, (n, v)| r.header(n, v))
                    .send_json(serde_json::json!({})),
            };
            let mut response = response.expect("an answer");
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string().expect("a body");
            Answer { status, body: serde_json::from_str(&body).unwrap_or(Value::Null) }
        })
        .await
        .expect("the request task")
    }

    async fn stop(self) {
        self.server.stop().await;
        self.node.shutdown().await;
    }
}

/// A concrete path for a route (`{job}` filled in with a well-formed job id).
fn concrete(path: &str) -> String {
    path.replace("{job}", &"ab".repeat(32))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_request_without_the_token_or_with_a_wrong_one() {
    let api = TestApi::start(&[], None).await;
    let token = api.token();
    let wrong_same_length = format!("Bearer {}", "0".repeat(token.len()));
    let wrong_shorter = format!("Bearer {}", &token[..token.len() - 1]);
    let routes = route_list();
    assert!(routes.len() >= 12, "the router's list: {routes:?}");
    for route in routes {
        let path = concrete(route.path);
        let refusals = [
            api.call(route.method, &path, &[]).await,
            api.call(route.method, &path, &[("Authorization", &wrong_same_length)]).await,
            api.call(route.method, &path, &[("Authorization", &wrong_shorter)]).await,
            api.call(route.method, &path, &[("Authorization", &token)]).await,
        ];
        for answer in refusals {
            assert_eq!((answer.status, answer.kind()), (401, "unauthorized"), "{route:?}: {answer:?}");
            assert!(answer.message().contains("api.token"), "{route:?}: {answer:?}");
        }
    }
    let status = api.call(Method::Get, "/v1/status", &[("Authorization", &api.bearer())]).await;
    assert_eq!(status.status, 200, "the right token is let in: {status:?}");
    assert_eq!(status.body["peer_id"], api.node.peer_id().to_string());
    api.stop().await;
}

#[test]
fn every_route_of_the_router_is_in_the_module_docs_table() {
    let docs = include_str!("mod.rs");
    for route in route_list() {
        let method = match route.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let row = format!("//! | {method} | `{}", route.path);
        assert!(docs.contains(&row), "api/mod.rs documents no {method} {}", route.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_guarded_like_a_route_and_then_not_found() {
    let api = TestApi::start(&[], None).await;
    let stranger = api.call(Method::Get, "/v1/nothing-here", &[]).await;
    assert_eq!((stranger.status, stranger.kind()), (401, "unauthorized"), "{stranger:?}");
    let foreign = api.call(Method::Post, "/v1/nothing-here", &[("Host", "evil.example")]).await;
    assert_eq!((foreign.status, foreign.kind()), (421, "misdirected"), "{foreign:?}");
    let missing = api.call(Method::Get, "/v1/nothing-here", &[("Authorization", &api.bearer())]).await;
    assert_eq!((missing.status, missing.kind()), (404, "not-found"), "{missing:?}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_misdirected_even_with_the_token_and_a_configured_one_is_served() {
    let api = TestApi::start(&["cue.test"], None).await;
    let bearer = api.bearer();
    let port = api.port();
    for host in
        ["evil.example", &format!("evil.example:{port}"), &format!("localhost:{}", port + 1), "cue.test.evil"]
    {
        let answer = api.call(Method::Get, "/v1/status", &[("Host", host), ("Authorization", &bearer)]).await;
        assert_eq!((answer.status, answer.kind()), (421, "misdirected"), "{host}: {answer:?}");
        assert!(answer.message().contains(host) && answer.message().contains("--api-host"), "{answer:?}");
    }
    for host in ["cue.test", &format!("CUE.test:{port}"), "localhost", &format!("[::1]:{port}")] {
        let answer = api.call(Method::Get, "/v1/status", &[("Host", host), ("Authorization", &bearer)]).await;
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_host_header_is_misdirected() {
    use std::io::{Read as _, Write as _};
    let api = TestApi::start(&[], None).await;
    let (addr, bearer) = (api.server.addr(), api.bearer());
    let head = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).expect("connected");
        let request = format!("GET /v1/status HTTP/1.0\r\nAuthorization: {bearer}\r\n\r\n");
        socket.write_all(request.as_bytes()).expect("sent");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).expect("an answer");
        answer
    })
    .await
    .expect("the request task");
    assert!(head.starts_with("HTTP/1.0 421") || head.starts_with("HTTP/1.1 421"), "{head}");
    assert!(head.contains("no Host header"), "{head}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_is_refused_and_the_api_own_origin_is_let_through() {
    let api = TestApi::start(&["cue.test"], None).await;
    let (bearer, port) = (api.bearer(), api.port());
    let transfer = "/v1/wallet/transfer";
    for origin in
        ["https://evil.example", "http://evil.example", &format!("http://localhost:{}", port + 1), "null"]
    {
        let answer =
            api.call(Method::Post, transfer, &[("Origin", origin), ("Authorization", &bearer)]).await;
        assert_eq!((answer.status, answer.kind()), (403, "cross-origin"), "{origin}: {answer:?}");
        assert!(answer.message().contains(origin), "{answer:?}");
    }
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://cue.test:{port}"),
    ] {
        // Past the guard, the route itself answers: the body is no transfer.
        let answer =
            api.call(Method::Post, transfer, &[("Origin", &origin), ("Authorization", &bearer)]).await;
        assert_eq!(answer.status, 422, "{origin}: {answer:?}");
        let status =
            api.call(Method::Get, "/v1/status", &[("Origin", &origin), ("Authorization", &bearer)]).await;
        assert_eq!(status.status, 200, "{origin}: {status:?}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cue_commands_client_passes_every_check() {
    let api = TestApi::start(&[], None).await;
    let data_dir = api.data_dir.clone();
    let status = tokio::task::spawn_blocking(move || {
        ApiClient::discover(&data_dir, Duration::from_secs(30)).expect("the node").get("/v1/status")
    })
    .await
    .expect("the request task")
    .expect("the status");
    assert_eq!(status["peer_id"], api.node.peer_id().to_string());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_token_file_is_replaced_before_serving_and_never_accepted() {
    let api = TestApi::start(&[], Some(b"abc\n")).await;
    let token = api.token();
    assert_eq!(token.len(), 64, "a fresh token: {token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(api.data_dir.api_token_path()).expect("the file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let old = api.call(Method::Get, "/v1/status", &[("Authorization", "Bearer abc")]).await;
    assert_eq!(old.status, 401, "{old:?}");
    let new = api.call(Method::Get, "/v1/status", &[("Authorization", &api.bearer())]).await;
    assert_eq!(new.status, 200, "{new:?}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_file_is_served_without_the_token_with_its_csp_and_to_this_api_hosts_only() {
    let api = TestApi::start(&[], None).await;
    let addr = api.server.addr();
    let paths: Vec<&str> = super::dashboard::paths().collect();
    assert!(paths.contains(&"/") && paths.len() >= 10, "{paths:?}");
    let answers = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        paths
            .into_iter()
            .map(|path| {
                let url = format!("http://{addr}{path}");
                let mut page = agent.get(&url).call().expect("an answer");
                let csp = page
                    .headers()
                    .get("content-security-policy")
                    .map(|v| v.to_str().unwrap_or("").to_owned());
                let kind = page.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
                let body = page.body_mut().read_to_string().expect("a body");
                let foreign = agent.get(&url).header("Host", "evil.example").call().expect("an answer");
                let elsewhere =
                    agent.get(&url).header("Origin", "http://evil.example").call().expect("an answer");
                (
                    path,
                    page.status().as_u16(),
                    csp,
                    kind,
                    body.len(),
                    foreign.status().as_u16(),
                    elsewhere.status().as_u16(),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("the requests");
    for (path, status, csp, kind, size, foreign, elsewhere) in answers {
        assert_eq!(status, 200, "{path}");
        assert_eq!(csp.as_deref(), Some(super::CONTENT_SECURITY_POLICY), "{path}");
        assert!(kind.is_some_and(|k| k.starts_with("text/")), "{path}");
        assert!(size > 100, "{path}: {size} bytes");
        assert_eq!((foreign, elsewhere), (421, 403), "{path}");
    }
    api.stop().await;
}
