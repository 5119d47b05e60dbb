//! A real headless Chromium driven through chromedriver (WebDriver, fantoccini), for the
//! dashboard's tests. Debian's `chromium` and `chromium-driver` packages: `cargo xtask test`
//! installs them when missing. Every wait is bounded; the driver (and with it the browser) is
//! killed when the [`Browser`] is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The longest any wait for the page lasts.
pub const PAGE_WAIT: Duration = Duration::from_secs(60);

/// A browser session; its driver process is killed when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The browser's profile, removed at the end.
    _profile: tempfile::TempDir,
    /// Where screenshots go: `$CUE_SCREENSHOTS` (e.g. `docs/dashboard` to update the committed
    /// ones), else a temp dir.
    shots: PathBuf,
    _shots_dir: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session, 1280×900.
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Its own process group, with the browser it starts: killed together (`Drop`).
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver: install Debian's chromium and chromium-driver (`cargo xtask test` does)");
        let profile = tempfile::tempdir().expect("a profile dir");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session through chromedriver: {e}"),
            }
        };
        let (shots, shots_dir) = match std::env::var_os("CUE_SCREENSHOTS") {
            Some(dir) => (PathBuf::from(dir), None),
            None => {
                let dir = tempfile::tempdir().expect("a screenshot dir");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        std::fs::create_dir_all(&shots).expect("the screenshot dir");
        Browser { client, driver, _profile: profile, shots, _shots_dir: shots_dir }
    }

    /// Goes to `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    /// The text of the element `#id` once `ready(text)` holds (at most [`PAGE_WAIT`]).
    pub async fn wait_text(&self, id: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        match self.text_within(id, PAGE_WAIT, &ready).await {
            Ok(text) => text,
            Err(last) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("#{id}: {what}; last seen {last:?}; page:\n{page}")
            }
        }
    }

    /// Like [`Browser::wait_text`], reloading the page every few seconds (for a view that shows
    /// what it found when it opened, like the Market).
    pub async fn reload_until(&self, id: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        while started.elapsed() < PAGE_WAIT {
            if let Ok(text) = self.text_within(id, Duration::from_secs(5), &ready).await {
                return text;
            }
            self.client.refresh().await.unwrap_or_else(|e| panic!("reload: {e}"));
        }
        self.wait_text(id, what, ready).await
    }

    /// The text of `#id` once `ready` holds within `limit`; else the last text seen.
    async fn text_within(
        &self,
        id: &str,
        limit: Duration,
        ready: &impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let started = Instant::now();
        let mut last = String::from("(no such element)");
        while started.elapsed() < limit {
            if let Ok(element) = self.client.find(Locator::Id(id)).await
                && let Ok(text) = element.text().await
            {
                if ready(&text) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Err(last)
    }

    /// Clicks `#id` (waiting for it to exist).
    pub async fn click(&self, id: &str) {
        self.wait_text(id, "to exist", |_| true).await;
        self.client
            .find(Locator::Id(id))
            .await
            .expect("the element")
            .click()
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    /// Replaces the value of the field `#id` with `text`.
    pub async fn type_into(&self, id: &str, text: &str) {
        self.wait_text(id, "to exist", |_| true).await;
        let field = self.client.find(Locator::Id(id)).await.expect("the field");
        field.clear().await.unwrap_or_else(|e| panic!("clear #{id}: {e}"));
        field.send_keys(text).await.unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    }

    /// Runs `script` (an async function body given `done`) in the page; answers what it passes.
    pub async fn run_async(&self, script: &str) -> Value {
        self.client.execute_async(script, vec![]).await.unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Saves a screenshot of the page as `<name>.png` (a real PNG, checked).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}: not a PNG of a page");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("the screenshot saved");
    }

    /// Ends the session (the browser quits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Kills the driver's process group: the driver and the browser it started, even when a
    /// test failed before [`Browser::close`].
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.wait();
    }
}
