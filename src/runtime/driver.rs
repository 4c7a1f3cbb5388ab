//! Runs chunks as coroutines on tokio and reports failures the way a user reads them:
//! `file:line: message`, then a Lua traceback.
//!
//! [`Metered`] wraps every future that resumes Lua: each poll is one resume, so it resets
//! the instruction budget (the budget is per resume) and, when the script suspends,
//! flushes C `stdout` so `print` output shows up while a script sleeps.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use mlua::{Function, Lua, MultiValue, Thread, Value};
use tokio::sync::Notify;

use super::sandbox::{timeout_message, ExitRequest, LimitExceeded, TRACEBACK_KEY};
use super::{host, loader, Meter};

/// Why a script did not finish normally.
#[derive(Debug)]
pub enum ScriptError {
    /// A Lua error: the message (with `file:line:`) and the traceback of the failed thread.
    Lua {
        message: String,
        traceback: Option<String>,
    },
    /// The script called `os.exit(code)`.
    Exit(i32),
    /// The state could not be set up (bad grant, unreadable file).
    Setup(String),
}

impl ScriptError {
    pub fn setup(message: impl Into<String>) -> ScriptError {
        ScriptError::Setup(message.into())
    }

    /// The exit status `dreamos run` should return.
    pub fn exit_code(&self) -> i32 {
        match self {
            ScriptError::Exit(code) => *code,
            _ => 1,
        }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::Lua {
                message,
                traceback: Some(tb),
            } => write!(f, "{message}\n{tb}"),
            ScriptError::Lua { message, .. } => f.write_str(message),
            ScriptError::Exit(code) => write!(f, "script exited with status {code}"),
            ScriptError::Setup(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ScriptError {}

/// Counts running `dreamos.spawn` tasks so `run` can wait for them to finish, and keeps
/// the background tasks of a state (spawned tasks, subscriptions) so that whoever ends the
/// state early (an agent stopping) can end them too: they hold the state, and would keep
/// running, and keep it in memory, after the agent stopped.
#[derive(Default)]
pub struct SpawnTracker {
    running: std::cell::Cell<usize>,
    idle: Notify,
    background: std::cell::RefCell<Vec<Background>>,
}

/// A background task and what else ends it (a subscription also unsubscribes, which its
/// task would have done had it ended by itself).
struct Background {
    task: tokio::task::AbortHandle,
    on_abort: Option<Box<dyn FnOnce()>>,
}

/// Held by a running task; dropping it marks the task finished.
pub struct Running(Rc<SpawnTracker>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.finished();
    }
}

impl SpawnTracker {
    /// Counts a task as running until the returned guard is dropped.
    pub fn start(self: &Rc<Self>) -> Running {
        self.running.set(self.running.get() + 1);
        Running(self.clone())
    }

    /// Remembers a background task of this state, to be ended by [`abort_all`].
    ///
    /// [`abort_all`]: SpawnTracker::abort_all
    pub fn keep<T>(&self, task: &tokio::task::JoinHandle<T>) {
        self.keep_with(task, None);
    }

    /// Like [`keep`](SpawnTracker::keep), with something more to do when it is aborted.
    pub fn keep_with<T>(
        &self,
        task: &tokio::task::JoinHandle<T>,
        on_abort: Option<Box<dyn FnOnce()>>,
    ) {
        let mut background = self.background.borrow_mut();
        background.retain(|b| !b.task.is_finished());
        background.push(Background {
            task: task.abort_handle(),
            on_abort,
        });
    }

    /// Ends every background task still running (the state's owner is done with it).
    pub fn abort_all(&self) {
        for b in self.background.take() {
            b.task.abort();
            if let Some(f) = b.on_abort {
                f();
            }
        }
    }

    fn finished(&self) {
        self.running.set(self.running.get().saturating_sub(1));
        if self.running.get() == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once no spawned task is running.
    pub async fn wait_idle(&self) {
        while self.running.get() > 0 {
            let notified = self.idle.notified();
            if self.running.get() == 0 {
                break;
            }
            notified.await;
        }
    }
}

/// A future that resumes Lua, metered: see the module docs.
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Rc<Meter>,
}

impl<F: Future> Metered<F> {
    pub fn new(meter: Rc<Meter>, inner: F) -> Self {
        Metered {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.meter.used.set(0);
        let out = self.inner.as_mut().poll(cx);
        if out.is_pending() {
            flush_stdout();
        }
        out
    }
}

/// Flushes C stdio's `stdout`, which `print` and `io.write` write through.
pub fn flush_stdout() {
    // SAFETY: fflush(NULL) flushes every output stream; it takes no pointers of ours.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// Runs a script file with `arg` set to `args` (and `arg[0]` to the path), waits for tasks
/// it spawned, and enforces the wall-clock timeout.
pub async fn run_file(lua: &Lua, path: &Path, args: &[String]) -> Result<(), ScriptError> {
    let func = loader::load_text_file(lua, path).map_err(|e| lua_error(lua, e, None))?;
    set_arg(lua, &path.display().to_string(), args)?;
    run_function(lua, func, args).await.map(|_| ())
}

/// Runs source text under `chunk_name` (`=(command line)`, `@file.lua`) and returns its
/// results.
pub async fn run_chunk(
    lua: &Lua,
    source: &[u8],
    chunk_name: &str,
    args: &[String],
) -> Result<MultiValue, ScriptError> {
    let func = lua
        .load(source)
        .set_name(chunk_name)
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .map_err(|e| lua_error(lua, e, None))?;
    set_arg(lua, chunk_name.trim_start_matches(['=', '@']), args)?;
    run_function(lua, func, args).await
}

/// Resumes `func` as a coroutine to completion, then waits for spawned tasks.
pub async fn run_function(
    lua: &Lua,
    func: Function,
    args: &[String],
) -> Result<MultiValue, ScriptError> {
    let (meter, spawned) = {
        let h = host(lua).map_err(|e| ScriptError::setup(e.to_string()))?;
        (h.meter.clone(), h.spawned.clone())
    };
    let timeout = meter.timeout;
    if !timeout.is_zero() && meter.deadline.get().is_none() {
        meter.deadline.set(Some(Instant::now() + timeout));
    }
    let work = async {
        let thread = lua
            .create_thread(func)
            .map_err(|e| lua_error(lua, e, None))?;
        let args: Vec<Value> = args
            .iter()
            .map(|a| lua.create_string(a).map(Value::String))
            .collect::<mlua::Result<_>>()
            .map_err(|e| lua_error(lua, e, None))?;
        let fut = thread
            .clone()
            .into_async::<MultiValue>(MultiValue::from_iter(args))
            .map_err(|e| lua_error(lua, e, None))?;
        let out = Metered::new(meter.clone(), fut).await;
        // The last message of a recv loop in the main chunk is settled now, not left to
        // come back after its visibility timeout.
        let failure = out.as_ref().err().map(|e| error_message(lua, e));
        crate::lua::bus::settle_thread(lua, &thread, failure.as_deref()).await;
        let out = out.map_err(|e| lua_error(lua, e, Some(&thread)))?;
        spawned.wait_idle().await;
        Ok(out)
    };
    let out = match meter.deadline.get() {
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(out) => out,
            Err(_) => Err(ScriptError::Lua {
                message: timeout_message(&meter),
                traceback: None,
            }),
        },
        None => work.await,
    };
    flush_stdout();
    out
}

fn set_arg(lua: &Lua, script: &str, args: &[String]) -> Result<(), ScriptError> {
    let set = || -> mlua::Result<()> {
        let t = lua.create_table()?;
        t.raw_set(0, script)?;
        for (i, a) in args.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(a)?)?;
        }
        lua.globals().set("arg", t)
    };
    set().map_err(|e| lua_error(lua, e, None))
}

/// Converts an mlua error into a [`ScriptError`], with the traceback of `thread` when the
/// error killed it (its stack is kept for inspection after the error).
pub fn lua_error(lua: &Lua, err: mlua::Error, thread: Option<&Thread>) -> ScriptError {
    if let Some(ExitRequest(code)) = find::<ExitRequest>(&err) {
        return ScriptError::Exit(*code);
    }
    let message = error_message(lua, &err);
    // mlua appends the failed thread's traceback to some messages; keep one copy.
    if let Some((message, tb)) = message.split_once("\nstack traceback:") {
        let hint = if message.contains("stack overflow") {
            " (runaway recursion?)"
        } else {
            ""
        };
        return ScriptError::Lua {
            message: format!("{message}{hint}"),
            traceback: Some(format!("stack traceback:{tb}")),
        };
    }
    let traceback = thread.and_then(|t| traceback_of(lua, t));
    ScriptError::Lua { message, traceback }
}

/// The innermost meaningful message: what the user did wrong, without mlua's wrapping.
pub fn error_message(lua: &Lua, err: &mlua::Error) -> String {
    if let Some(LimitExceeded(msg)) = find::<LimitExceeded>(err) {
        return msg.clone();
    }
    match err {
        mlua::Error::CallbackError { cause, .. } => error_message(lua, cause),
        mlua::Error::WithContext { context, cause } => {
            format!("{context}: {}", error_message(lua, cause))
        }
        mlua::Error::RuntimeError(msg) => msg.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(_) => {
            let limit = host(lua).map(|h| h.limits.memory_limit).unwrap_or(0);
            format!(
                "memory limit of {} exceeded (sandbox.memory_limit)",
                crate::units::format_bytes(limit)
            )
        }
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// Sandbox stops and `os.exit`: errors a script may not catch.
pub fn is_fatal(err: &mlua::Error) -> bool {
    find::<LimitExceeded>(err).is_some() || find::<ExitRequest>(err).is_some()
}

fn find<T: std::error::Error + 'static>(err: &mlua::Error) -> Option<&T> {
    match err {
        mlua::Error::CallbackError { cause, .. } => find(cause),
        mlua::Error::WithContext { cause, .. } => find(cause),
        mlua::Error::ExternalError(e) => e.downcast_ref::<T>(),
        _ => None,
    }
}

/// `debug.traceback(thread)` of a failed coroutine. The memory limit is lifted for the
/// call, because a script stopped by that limit still deserves its traceback.
fn traceback_of(lua: &Lua, thread: &Thread) -> Option<String> {
    let f: Function = lua.named_registry_value(TRACEBACK_KEY).ok()?;
    let previous = lua.set_memory_limit(0).ok();
    let tb = f.call::<String>((thread.clone(), Value::Nil, 0)).ok();
    if let Some(limit) = previous {
        let _ = lua.set_memory_limit(limit);
    }
    tb.map(|t| t.trim_start_matches('\n').to_string())
        .filter(|t| t.lines().count() > 1)
}
