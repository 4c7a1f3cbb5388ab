//! A throwaway PostgreSQL cluster for tests when `DREAMOS_TEST_POSTGRES_URL` is not set:
//! `initdb` and `pg_ctl` start a private server on a Unix socket in a temp directory,
//! stopped and removed when the process exits (as root, run as the `postgres` account). Self-contained (std and libc only), so the
//! in-crate store tests (`store::testing`) and the multi-process tests
//! (`tests/support/nodes.rs`, which includes this file by path) share it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The throwaway cluster's directory and the command that stops it, run at exit.
struct Cluster {
    base: PathBuf,
    stop: std::sync::Mutex<std::process::Command>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// A cluster's directory in the temp directory: this prefix and the test process's id.
const PREFIX: &str = "dreamos-pg-";

/// Throwaway cluster directories in the temp directory, with the process that made each.
fn leftovers() -> Vec<(PathBuf, i32)> {
    std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.strip_prefix(PREFIX)?.parse().ok()?;
            Some((e.path(), pid))
        })
        .collect()
}

/// Starts a private PostgreSQL cluster on a Unix socket in a temp directory.
pub fn start() -> Result<String, String> {
    // PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres`
    // account (Debian's package creates it), through runuser.
    let owner = if is_root() {
        Some(postgres_account().ok_or(
            "no DREAMOS_TEST_POSTGRES_URL, and as root the throwaway cluster needs a `postgres` account",
        )?)
    } else {
        None
    };
    let command = |program: &str| -> std::process::Command {
        let program = find(program);
        match owner {
            Some(_) => {
                let mut cmd = std::process::Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
            None => std::process::Command::new(program),
        }
    };
    let run = |cmd: &mut std::process::Command| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("no DREAMOS_TEST_POSTGRES_URL, and cannot run {cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "no DREAMOS_TEST_POSTGRES_URL, and {cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    // Clusters of test processes that were killed (their exit hook never ran).
    for (dir, pid) in leftovers() {
        // SAFETY: kill with signal 0 only asks whether the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = command("pg_ctl")
                .args(["-m", "immediate", "-D"])
                .arg(dir.join("data"))
                .arg("stop")
                .output();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let base = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
    let data = base.join("data");
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let started = (|| {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))
                .map_err(|e| format!("{}: {e}", base.display()))?;
        }
        run(command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data))?;
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off -c max_connections=200",
            base.display()
        );
        run(command("pg_ctl")
            .args(["-w", "-l"])
            .arg(base.join("log"))
            .args(["-o", &options, "-D"])
            .arg(&data)
            .arg("start"))
    })();
    if let Err(why) = started {
        let _ = std::fs::remove_dir_all(&base);
        return Err(why);
    }
    let stop = {
        let mut cmd = command("pg_ctl");
        cmd.args(["-m", "immediate", "-D"]).arg(&data).arg("stop");
        cmd
    };
    let _ = CLUSTER.set(Cluster {
        base: base.clone(),
        stop: std::sync::Mutex::new(stop),
    });
    extern "C" fn stop_cluster() {
        if let Some(cluster) = CLUSTER.get() {
            if let Ok(mut stop) = cluster.stop.lock() {
                let _ = stop.output();
            }
            let _ = std::fs::remove_dir_all(&cluster.base);
        }
    }
    // SAFETY: registers a plain function without arguments to run at process exit.
    unsafe {
        libc::atexit(stop_cluster);
    }
    Ok(format!(
        "host={} user=postgres dbname=postgres",
        base.display()
    ))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the `postgres` account, if there is one.
fn postgres_account() -> Option<(u32, u32)> {
    // SAFETY: getpwnam gets a NUL-terminated name and returns null or a pointer to a
    // static record, read at once (the tests call this once, under a OnceLock).
    unsafe {
        let pw = libc::getpwnam(c"postgres".as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// `program` on PATH, else in the newest of Debian's /usr/lib/postgresql/VERSION/bin
/// (where the postgresql package puts initdb and pg_ctl, off PATH).
fn find(program: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if on_path {
        return PathBuf::from(program);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin").join(program)))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map_or_else(|| PathBuf::from(program), |(_, p)| p)
}
