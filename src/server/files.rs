//! The daemon's files in the data directory, shared by `dreamos serve` (writes them) and the
//! CLI (reads them):
//! - `daemon.lock`: held with `flock` while a daemon runs, so a second `serve` on the same
//!   data directory refuses instead of fighting over the agents and the database. The lock
//!   goes away with the process, even after `kill -9`: no stale lock to clean up.
//! - `daemon.token`: the control API's bearer token, mode 0600 (only this user can steer).
//! - `daemon.json`: where the daemon listens and its pid, so `port = 0` works and the CLI
//!   can tell "no daemon" from "daemon unreachable".

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const LOCK_FILE: &str = "daemon.lock";
pub const TOKEN_FILE: &str = "daemon.token";
pub const INFO_FILE: &str = "daemon.json";

/// Holds the data directory's lock until dropped.
pub struct DaemonLock {
    _file: File,
}

impl DaemonLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DaemonLock> {
        crate::private_fs::create_dir_all(data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            )
        })?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own; no pointers involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            anyhow::bail!(
                "another dreamos serve{who} is already running with data directory {}; \
                 stop it first (dreamos agent list shows what it runs), or give this one \
                 another [runtime] data_dir",
                data_dir.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(DaemonLock { _file: file })
    }
}

/// What `daemon.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// `127.0.0.1:7878`
    pub addr: String,
    pub pid: u32,
}

/// A fresh random token (128 bits from the kernel), written with mode 0600.
pub fn write_token(data_dir: &Path) -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("cannot read random bytes for the control token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = data_dir.join(TOKEN_FILE);
    // Removed first so an old file with looser permissions is not reused.
    let _ = std::fs::remove_file(&path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(token.as_bytes())?;
    Ok(token)
}

pub fn write_info(data_dir: &Path, info: &DaemonInfo) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(INFO_FILE);
    let write = || -> std::io::Result<()> {
        let mut file = crate::private_fs::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(&serde_json::to_vec_pretty(info)?)
    };
    write().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The dashboard's address for a person on this machine: a daemon listening on every
/// interface (`0.0.0.0`, `::`) is reached at the loopback address.
pub fn dashboard_url(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let local = if a.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            format!("http://{local}:{}/", a.port())
        }
        _ => format!("http://{addr}/"),
    }
}

/// Removes `daemon.json` on a clean exit, so the CLI says "no daemon" rather than
/// "unreachable".
pub fn remove_info(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(INFO_FILE));
}

/// Where to reach the daemon of `data_dir`, and its token; a clear error when none runs.
pub fn find_daemon(data_dir: &Path) -> anyhow::Result<(DaemonInfo, String)> {
    let info_path = data_dir.join(INFO_FILE);
    let text = match std::fs::read_to_string(&info_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no dreamos daemon is running for data directory {} (start one with `dreamos serve`)",
            data_dir.display()
        ),
        Err(e) => anyhow::bail!("cannot read {}: {e}", info_path.display()),
    };
    let info: DaemonInfo = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not readable: {e}", info_path.display()))?;
    let token_path = data_dir.join(TOKEN_FILE);
    let token = std::fs::read_to_string(&token_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the control token {}: {e}",
            token_path.display()
        )
    })?;
    Ok((info, token.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_of_a_daemon_on_every_interface_is_on_loopback() {
        assert_eq!(dashboard_url("0.0.0.0:7878"), "http://127.0.0.1:7878/");
        assert_eq!(dashboard_url("[::]:7878"), "http://[::1]:7878/");
        assert_eq!(dashboard_url("127.0.0.1:9"), "http://127.0.0.1:9/");
    }
}
