//! What the REPL evaluates against: the [`Evaluator`] trait, and [`LocalEvaluator`], which
//! owns a sandboxed Lua state in this process.
//!
//! The frontends (terminal and piped) only ever talk to the trait, so `repl --attach` can
//! plug in an evaluator that forwards chunks to the daemon's control API and gets the same
//! [`Outcome`]s back: rendered text, not Lua values, crosses the boundary.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua, MultiValue, Value};

use super::complete;
use crate::config::Config;
use crate::runtime::driver::{error_message, flush_stdout, lua_error, Metered};
use crate::runtime::{self, Meter, ScriptError, StateOptions};

/// The chunk name of typed input, so errors read `stdin:1: message`.
pub const STDIN_CHUNK: &str = "=stdin";

/// One piece of source to run.
pub struct Chunk<'a> {
    /// Lua source; any bytes (Lua strings are not UTF-8).
    pub source: &'a [u8],
    /// The chunk name as Lua takes it: [`STDIN_CHUNK`] or `@path` for `.load`.
    pub name: &'a str,
    pub mode: Mode,
}

/// How to treat a chunk that is not a complete statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Typed at the prompt with more input to come: try it as an expression first (so
    /// `1+1` prints 2), and answer [`Outcome::Incomplete`] for an unfinished chunk.
    Prompt,
    /// The last typed chunk (end of input): an expression first, but unfinished is an error.
    Final,
    /// A whole file (`.load`): run as is.
    Script,
}

/// What running a chunk came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The chunk is unfinished; read another line, append it and evaluate again.
    Incomplete,
    /// It ran; one rendered text per result (bytes: results may hold any bytes).
    Values(Vec<Vec<u8>>),
    /// A compile or runtime error, already formatted (`stdin:1: message` + traceback).
    Failed(String),
    /// The chunk called `os.exit(code)`: the session ends with that status.
    Exit(i32),
}

/// Tab-completion answer: replace `line[start..pos]` with one of `candidates`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Completion {
    pub start: usize,
    pub candidates: Vec<String>,
}

/// A place to run REPL input. Methods take `&mut self` because a frontend does one thing
/// at a time: completion is only asked while no chunk runs.
pub trait Evaluator {
    /// Compiles and runs `chunk`. Dropping the returned future must cancel the chunk
    /// (that is how Ctrl-C stops an async wait); a remote evaluator sends a cancel request.
    fn eval(&mut self, chunk: Chunk<'_>) -> impl Future<Output = Outcome>;

    /// Candidates for the word that ends at byte `pos` of `line`.
    fn complete(&mut self, line: &str, pos: usize) -> impl Future<Output = Completion>;

    /// Global names bound to preloaded modules, for `.help`.
    fn preloaded(&self) -> Vec<String>;

    /// Waits for background work the session started (`dreamos.spawn` tasks); called when
    /// piped input ends, so a script fed through stdin finishes what it began.
    fn settle(&mut self) -> impl Future<Output = ()>;
}

/// An evaluator over a Lua state of its own, created like any script's state.
pub struct LocalEvaluator {
    lua: Lua,
    /// `dreamos.inspect`'s `inspect` function; `None` if the module failed to load, in
    /// which case results print with `tostring`.
    inspect: Option<Function>,
    /// Shared with the instruction hook: reset per chunk, read by `Metered`.
    meter: Rc<Meter>,
    /// (global name, module name) for every module preloaded as a global.
    preloaded: Vec<(String, String)>,
}

impl LocalEvaluator {
    /// A state named `(repl)` (so `[sandbox.scripts."(repl)"]` can configure it), with the
    /// extra grants from `--allow` and `interrupt` as the Ctrl-C flag its hook checks.
    pub fn new(
        config: Arc<Config>,
        allow: Vec<String>,
        interrupt: Arc<AtomicBool>,
    ) -> Result<LocalEvaluator, ScriptError> {
        let opts = StateOptions {
            interrupt: Some(interrupt),
            extra_allow: allow,
            // A session has no wall-clock limit: it lives as long as the user types, and
            // Ctrl-C stops a statement that runs too long.
            timeout: Some(Duration::ZERO),
            ..StateOptions::new("(repl)")
        };
        let lua = runtime::new_state(config, opts)?;
        let meter = runtime::host(&lua)
            .map_err(|e| ScriptError::setup(e.to_string()))?
            .meter
            .clone();
        let preloaded = preload_modules(&lua);
        let inspect = require(&lua, "dreamos.inspect")
            .and_then(|m| match m {
                Value::Table(t) => t.get::<Function>("inspect"),
                other => Err(mlua::Error::runtime(format!(
                    "dreamos.inspect returned a {}",
                    other.type_name()
                ))),
            })
            .map_err(|e| tracing::debug!("repl: results print with tostring: {e}"))
            .ok();
        Ok(LocalEvaluator {
            lua,
            inspect,
            meter,
            preloaded,
        })
    }

    /// The session's state, for hosts that add to it (`repl --attach` in the daemon gives
    /// it the supervisor and captures `print`).
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    /// Compiles `chunk`; `Err(None)` means "incomplete, read more".
    fn compile(&self, chunk: &Chunk<'_>) -> Result<Function, Option<String>> {
        let load = |src: &[u8]| {
            self.lua
                .load(src)
                .set_name(chunk.name)
                .set_mode(mlua::chunk::ChunkMode::Text)
                .into_function()
        };
        // As lua.c does: an expression is a chunk that compiles after `return`.
        let as_expression = match chunk.mode {
            Mode::Script => None,
            Mode::Prompt | Mode::Final => {
                let mut expr = b"return ".to_vec();
                expr.extend_from_slice(chunk.source);
                match load(&expr) {
                    Ok(f) => return Ok(f),
                    Err(e) => Some(e),
                }
            }
        };
        let as_statement = match load(chunk.source) {
            Ok(f) => return Ok(f),
            Err(e) => e,
        };
        // Unfinished either way (`function f()`, but also `1 +` or `{`): read more. Unlike
        // lua.c this lets a table constructor or an expression span lines.
        let expr_incomplete = as_expression.as_ref().is_some_and(is_incomplete);
        if chunk.mode == Mode::Prompt && (expr_incomplete || is_incomplete(&as_statement)) {
            return Err(None);
        }
        let shown = match as_expression {
            Some(e) if expr_incomplete && !is_incomplete(&as_statement) => e,
            _ => as_statement,
        };
        Err(Some(error_message(&self.lua, &shown)))
    }

    /// Runs `func` as a metered coroutine, so async functions work and the hook sees
    /// Ctrl-C. Unlike `driver::run_function` it does not wait for spawned tasks: they keep
    /// running between prompts.
    async fn run(&self, func: Function) -> Outcome {
        let thread = match self.lua.create_thread(func) {
            Ok(t) => t,
            Err(e) => return failure(&self.lua, e, None),
        };
        let fut = match thread.clone().into_async::<MultiValue>(()) {
            Ok(f) => f,
            Err(e) => return failure(&self.lua, e, None),
        };
        let result = Metered::new(self.meter.clone(), fut).await;
        flush_stdout();
        match result {
            Ok(values) => self.render(values),
            // Ctrl-C: where it stopped is enough; the traceback is noise.
            Err(e) if self.meter.interrupted() => failure(&self.lua, e, None),
            Err(e) => failure(&self.lua, e, Some(&thread)),
        }
    }

    /// Renders each result with `dreamos.inspect`.
    fn render(&self, values: MultiValue) -> Outcome {
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            // Rendering runs Lua (`__tostring`), under the same budget a statement has.
            self.meter.used.set(0);
            let text = match &self.inspect {
                Some(inspect) => inspect.call::<mlua::LuaString>(value),
                None => self
                    .lua
                    .coerce_string(value)
                    .and_then(|s| s.ok_or_else(|| mlua::Error::runtime("result has no text form"))),
            };
            match text {
                Ok(s) => out.push(s.as_bytes().to_vec()),
                Err(e) => return failure(&self.lua, e, None),
            }
        }
        Outcome::Values(out)
    }
}

impl Evaluator for LocalEvaluator {
    async fn eval(&mut self, chunk: Chunk<'_>) -> Outcome {
        match self.compile(&chunk) {
            Ok(func) => self.run(func).await,
            Err(None) => Outcome::Incomplete,
            Err(Some(message)) => Outcome::Failed(message),
        }
    }

    async fn complete(&mut self, line: &str, pos: usize) -> Completion {
        complete::complete(&self.lua, line, pos)
    }

    fn preloaded(&self) -> Vec<String> {
        self.preloaded
            .iter()
            .map(|(global, module)| format!("{global} ({module})"))
            .collect()
    }

    async fn settle(&mut self) {
        let spawned = match runtime::host(&self.lua) {
            Ok(h) => h.spawned.clone(),
            Err(_) => return,
        };
        spawned.wait_idle().await;
        flush_stdout();
    }
}

fn is_incomplete(err: &mlua::Error) -> bool {
    matches!(
        err,
        mlua::Error::SyntaxError {
            incomplete_input: true,
            ..
        }
    )
}

fn failure(lua: &Lua, err: mlua::Error, thread: Option<&mlua::Thread>) -> Outcome {
    match lua_error(lua, err, thread) {
        ScriptError::Exit(code) => Outcome::Exit(code),
        other => Outcome::Failed(other.to_string()),
    }
}

fn require(lua: &Lua, name: &str) -> mlua::Result<Value> {
    lua.globals().get::<Function>("require")?.call(name)
}

/// Binds every Rust-backed module to a global (`dreamos.json` as `json`, `dreamos` as
/// `dreamos`), skipping any that fail to load, e.g. for want of a grant.
fn preload_modules(lua: &Lua) -> Vec<(String, String)> {
    let mut bound = Vec::new();
    for (module, _) in crate::lua::MODULES {
        let global = module.rsplit('.').next().unwrap_or(module);
        match require(lua, module).and_then(|m| lua.globals().set(global, m)) {
            Ok(()) => bound.push((global.to_string(), module.to_string())),
            Err(e) => tracing::debug!("repl: {module} not preloaded: {e}"),
        }
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluator() -> LocalEvaluator {
        LocalEvaluator::new(Arc::new(Config::default()), Vec::new(), Arc::default()).expect("state")
    }

    fn eval(ev: &mut LocalEvaluator, src: &str, mode: Mode) -> Outcome {
        let chunk = Chunk {
            source: src.as_bytes(),
            name: STDIN_CHUNK,
            mode,
        };
        runtime::block_on(ev.eval(chunk)).expect("runtime")
    }

    fn text(values: &[&str]) -> Outcome {
        Outcome::Values(values.iter().map(|v| v.as_bytes().to_vec()).collect())
    }

    #[test]
    fn expressions_statements_and_errors() {
        let mut ev = evaluator();
        assert_eq!(eval(&mut ev, "1+1", Mode::Prompt), text(&["2"]));
        assert_eq!(eval(&mut ev, "x = 5", Mode::Prompt), text(&[]));
        assert_eq!(
            eval(&mut ev, "x*2, 'a'", Mode::Prompt),
            text(&["10", "\"a\""])
        );
        assert_eq!(
            eval(&mut ev, "function f()", Mode::Prompt),
            Outcome::Incomplete
        );
        assert_eq!(eval(&mut ev, "1 +", Mode::Prompt), Outcome::Incomplete);
        assert_eq!(eval(&mut ev, "1 +\n2", Mode::Prompt), text(&["3"]));
        let Outcome::Failed(msg) = eval(&mut ev, "1 +", Mode::Final) else {
            panic!("an unfinished expression at the end is an error");
        };
        assert!(msg.contains("near <eof>"), "{msg}");
        let Outcome::Failed(msg) = eval(&mut ev, "function f()", Mode::Final) else {
            panic!("an unfinished final chunk is an error");
        };
        assert!(msg.starts_with("stdin:1:"), "{msg}");
        let Outcome::Failed(msg) = eval(&mut ev, "error('boom')", Mode::Prompt) else {
            panic!("error() fails");
        };
        assert!(msg.starts_with("stdin:1: boom"), "{msg}");
        assert_eq!(eval(&mut ev, "os.exit(3)", Mode::Prompt), Outcome::Exit(3));
    }

    #[test]
    fn modules_are_globals_and_async_works() {
        let mut ev = evaluator();
        assert_eq!(
            eval(&mut ev, "type(json.encode)", Mode::Prompt),
            text(&["\"function\""])
        );
        assert_eq!(eval(&mut ev, "time.sleep(0.01)", Mode::Prompt), text(&[]));
        assert!(ev.preloaded().iter().any(|m| m == "json (dreamos.json)"));
    }
}
