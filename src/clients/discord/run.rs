//! `/run SCRIPT [args]`: runs a script found on `runtime.script_paths` as `dreamos run`
//! would (same sandbox, limits and grants), in a child process so a runaway script cannot
//! take the daemon with it, and returns its output and exit status.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::builtins::Runtime;
use super::reply::Reply;

/// A `/run` that has not finished by then is killed (Discord's follow-up tokens last 15 min).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The script `name` names inside one of `script_paths`, or why it is refused. Only plain
/// names (no `/`, no `..`) are accepted, and the resolved file must stay inside its directory.
pub fn find(config: &crate::config::Config, name: &str) -> Result<PathBuf, String> {
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains("..")
        && !Path::new(name).is_absolute();
    if !plain {
        return Err(format!(
            "/run: '{name}' is not a script name; only scripts on runtime.script_paths may run (give the name, e.g. 'report' or 'report.lua')"
        ));
    }
    let file = if name.ends_with(".lua") {
        name.to_string()
    } else {
        format!("{name}.lua")
    };
    for dir in &config.runtime.script_paths {
        let dir = config.resolve(dir);
        let candidate = dir.join(&file);
        let (Ok(dir), Ok(real)) = (dir.canonicalize(), candidate.canonicalize()) else {
            continue;
        };
        // A symlink pointing out of the directory does not count as inside it.
        if real.starts_with(&dir) && real.is_file() {
            return Ok(real);
        }
    }
    Err(format!("/run: no script '{file}' on runtime.script_paths"))
}

pub async fn run(rt: &Runtime, name: &str, args: &str) -> Result<Reply, String> {
    let script = find(&rt.config, name)?;
    let exe =
        std::env::current_exe().map_err(|e| format!("/run: cannot find dreamos itself: {e}"))?;
    let mut cmd = tokio::process::Command::new(exe);
    if let Some(source) = &rt.config.source {
        cmd.arg("--config").arg(source);
    }
    cmd.arg("run").arg(&script).args(args.split_whitespace());
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            format!(
                "/run {name}: still running after {}s; stopped",
                RUN_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("/run {name}: cannot start: {e}"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        text.push_str(&format!("\n[stderr]\n{stderr}"));
    }
    let status = match output.status.code() {
        Some(0) => "ok".to_string(),
        Some(code) => format!("exit {code}"),
        None => "killed".to_string(),
    };
    Ok(Reply::text(format!(
        "`{name}` ({status})\n{}",
        text.trim_end()
    )))
}
