//! `cue ui`: the running node's dashboard address, its token in the fragment; `--open` opens it
//! in the desktop's browser.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::api::ApiClient;
use crate::datadir::DataDir;

/// Options of `cue ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Also open the address in the desktop's browser (`xdg-open`, `open` on macOS)
    #[arg(long)]
    open: bool,
}

/// Prints `dashboard: http://127.0.0.1:PORT/#token=…` for the node of `data_dir` (which must
/// answer), and opens it when asked.
pub fn run(args: UiArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(5))?;
    api.get("/v1/status")?;
    let url = api.dashboard_url();
    println!("dashboard: {url}");
    if args.open {
        let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        let status = std::process::Command::new(opener).arg(&url).status().with_context(|| {
            format!("cannot run `{opener}` to open the dashboard; open the address above")
        })?;
        anyhow::ensure!(status.success(), "`{opener}` failed ({status}); open the address above");
    }
    Ok(ExitCode::SUCCESS)
}
