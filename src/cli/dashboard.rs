//! `dreamos dashboard`: where the running daemon's dashboard is and the token to log in
//! with, and a browser opened on it when the machine has one (`xdg-open`, or `$BROWSER`).

use std::process::{Command, ExitCode, Stdio};

use crate::config::Config;
use crate::server::files;

pub fn run(config: &Config, no_open: bool) -> anyhow::Result<ExitCode> {
    let data_dir = config.resolve(&config.runtime.data_dir);
    let (info, token) = files::find_daemon(&data_dir)?;
    let url = files::dashboard_url(&info.addr);
    println!("dashboard: {url}");
    println!("token:     {token}");
    if no_open {
        return Ok(ExitCode::SUCCESS);
    }
    match open_browser(&url) {
        Some(how) => eprintln!("opened with {how}; paste the token into the login form"),
        None => {
            eprintln!("no browser found here (no $BROWSER, no xdg-open): open the address yourself")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts a browser without waiting for it; returns the program used.
fn open_browser(url: &str) -> Option<String> {
    let candidates = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .into_iter()
        .chain(["xdg-open".to_string()]);
    for program in candidates {
        let spawned = Command::new(&program)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return Some(program);
        }
    }
    None
}
