//! `dreamos.fs`: `read`, `write`, `append`, `exists`, `list`, `mkdir` — only inside directories
//! granted with `fs:<dir>`.
//!
//! A path outside every grant raises (it is a configuration problem, not a condition to
//! handle); a missing file or a full disk returns `nil, err`. `write` goes through a
//! temporary file and a rename, so a crash never leaves half a file under the real name.

use std::path::PathBuf;

use mlua::{Lua, Table, Value};

use super::support::{fail, misuse, required_str};
use crate::runtime::host;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set(
        "read",
        lua.create_async_function(|lua, path: Value| async move {
            let path = granted(&lua, "fs.read", &path)?;
            match tokio::fs::read(&path).await {
                Ok(bytes) => Ok(mlua::MultiValue::from_iter([Value::String(
                    lua.create_string(bytes)?,
                )])),
                Err(e) => fail(
                    &lua,
                    io_kind(&e),
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        })?,
    )?;
    m.set(
        "write",
        lua.create_async_function(|lua, (path, data): (Value, mlua::LuaString)| async move {
            let path = granted(&lua, "fs.write", &path)?;
            let bytes = data.as_bytes().to_vec();
            match write_atomic(path.clone(), bytes).await {
                Ok(()) => Ok(mlua::MultiValue::from_iter([Value::Boolean(true)])),
                Err(e) => fail(
                    &lua,
                    io_kind(&e),
                    format!("cannot write {}: {e}", path.display()),
                ),
            }
        })?,
    )?;
    m.set(
        "append",
        lua.create_async_function(|lua, (path, data): (Value, mlua::LuaString)| async move {
            use tokio::io::AsyncWriteExt;
            let path = granted(&lua, "fs.append", &path)?;
            let bytes = data.as_bytes().to_vec();
            let result = async {
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await?;
                f.write_all(&bytes).await?;
                f.flush().await
            }
            .await;
            match result {
                Ok(()) => Ok(mlua::MultiValue::from_iter([Value::Boolean(true)])),
                Err(e) => fail(
                    &lua,
                    io_kind(&e),
                    format!("cannot append to {}: {e}", path.display()),
                ),
            }
        })?,
    )?;
    m.set(
        "exists",
        lua.create_async_function(|lua, path: Value| async move {
            let path = granted(&lua, "fs.exists", &path)?;
            Ok(tokio::fs::try_exists(&path).await.unwrap_or(false))
        })?,
    )?;
    m.set(
        "list",
        lua.create_async_function(|lua, path: Value| async move {
            let path = granted(&lua, "fs.list", &path)?;
            match list(&path).await {
                Ok(names) => {
                    let t = lua.create_sequence_from(names)?;
                    Ok(mlua::MultiValue::from_iter([Value::Table(t)]))
                }
                Err(e) => fail(
                    &lua,
                    io_kind(&e),
                    format!("cannot list {}: {e}", path.display()),
                ),
            }
        })?,
    )?;
    m.set(
        "mkdir",
        lua.create_async_function(|lua, path: Value| async move {
            let path = granted(&lua, "fs.mkdir", &path)?;
            match tokio::fs::create_dir_all(&path).await {
                Ok(()) => Ok(mlua::MultiValue::from_iter([Value::Boolean(true)])),
                Err(e) => fail(
                    &lua,
                    io_kind(&e),
                    format!("cannot create {}: {e}", path.display()),
                ),
            }
        })?,
    )?;
    Ok(m)
}

fn granted(lua: &Lua, func: &str, path: &Value) -> mlua::Result<PathBuf> {
    let path = required_str(lua, func, "path", path)?;
    host(lua)?
        .grants
        .check_fs(&path)
        .map_err(|m| misuse(lua, format!("{func}: {m}")))
}

async fn list(path: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut dir = tokio::fs::read_dir(path).await?;
    let mut names = Vec::new();
    while let Some(entry) = dir.next_entry().await? {
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Writes to `path.tmp.<pid>` in the same directory, syncs, then renames over `path`.
pub async fn write_atomic(path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    })
    .await
    .map_err(std::io::Error::other)?
}

fn io_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not_found",
        std::io::ErrorKind::PermissionDenied => "permission",
        std::io::ErrorKind::AlreadyExists => "exists",
        _ => "io",
    }
}
