//! `dreamos.exec`: `run{cmd, args?, stdin?, cwd?, env?, timeout?}` starts a process without a
//! shell and returns `{status, stdout, stderr}`. Needs the `exec` grant.
//!
//! Failing to start the program or running past `timeout` returns `nil, err`; a non-zero
//! exit is a normal result (`status ~= 0`), as with any shell.

use std::process::Stdio;

use mlua::{Lua, Table, Value};
use tokio::io::AsyncWriteExt;

use super::support::{check_options, duration, fail, misuse, required_str};
use crate::runtime::host;

const OPTIONS: &[&str] = &["cmd", "args", "stdin", "cwd", "env", "timeout"];

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("run", lua.create_async_function(run)?)?;
    Ok(m)
}

async fn run(lua: Lua, opts: Value) -> mlua::Result<mlua::MultiValue> {
    let Value::Table(opts) = opts else {
        return Err(misuse(
            &lua,
            "exec.run: expected a table {cmd = ..., args = {...}}",
        ));
    };
    check_options(&lua, "exec.run", &opts, OPTIONS)?;
    host(&lua)?
        .grants
        .check_exec()
        .map_err(|m| misuse(&lua, format!("exec.run: {m}")))?;
    let cmd = required_str(&lua, "exec.run", "cmd", &opts.get("cmd")?)?;
    let args: Vec<String> = opts.get::<Option<Vec<String>>>("args")?.unwrap_or_default();
    let mut command = tokio::process::Command::new(&cmd);
    command
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = opts.get::<Option<String>>("cwd")? {
        command.current_dir(cwd);
    }
    if let Some(env) = opts.get::<Option<Table>>("env")? {
        for pair in env.pairs::<String, String>() {
            let (k, v) = pair?;
            command.env(k, v);
        }
    }
    let stdin: Option<mlua::LuaString> = opts.get("stdin")?;
    let timeout = match opts.get::<Value>("timeout")? {
        Value::Nil => None,
        v => Some(duration(&lua, "exec.run", "timeout", &v)?),
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return fail(&lua, "spawn", format!("cannot start '{cmd}': {e}")),
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = input.as_bytes().to_vec();
        tokio::task::spawn_local(async move {
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let output = child.wait_with_output();
    let output = match timeout {
        Some(t) => match tokio::time::timeout(t, output).await {
            Ok(o) => o,
            Err(_) => {
                return fail(
                    &lua,
                    "timeout",
                    format!("'{cmd}' ran past {}", crate::units::format_duration(t)),
                )
            }
        },
        None => output.await,
    };
    let output = match output {
        Ok(o) => o,
        Err(e) => return fail(&lua, "io", format!("'{cmd}': {e}")),
    };
    let t = lua.create_table()?;
    t.set("status", output.status.code().unwrap_or(-1))?;
    t.set("stdout", lua.create_string(&output.stdout)?)?;
    t.set("stderr", lua.create_string(&output.stderr)?)?;
    Ok(mlua::MultiValue::from_iter([Value::Table(t)]))
}
