//! `dreamos repl`, driven as a user would: interactive features through a pseudo-terminal
//! (rexpect), scripted use through piped stdin.
//!
//! Every session runs in a fresh temporary directory with `HOME` pointing into it, so the
//! history file and logs land there. Expectations wait (up to [`TIMEOUT_MS`]) for output;
//! no test sleeps.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use rexpect::process::wait::WaitStatus;
use rexpect::session::{spawn_with_options, Options, PtySession};
use tempfile::TempDir;

/// Generous, because a loaded CI machine may compile and run other tests meanwhile.
const TIMEOUT_MS: u64 = 30_000;

/// A `dreamos` command with a clean environment rooted at `dir`.
fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamos"));
    cmd.arg("repl")
        .current_dir(dir)
        .env("HOME", dir)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env_remove("DREAMOS_CONFIG");
    cmd
}

/// An interactive session in a pseudo-terminal, waiting at its first prompt.
fn start(dir: &Path) -> PtySession {
    let options = Options {
        timeout_ms: Some(TIMEOUT_MS),
        strip_ansi_escape_codes: true,
    };
    let mut s = spawn_with_options(dreamos(dir), options).expect("spawn dreamos repl");
    s.exp_string("Ctrl-D to exit").expect("banner");
    prompt(&mut s);
    s
}

/// Waits for a fresh `> ` prompt: at the start of a line and the last thing printed (the
/// editor redraws `> text` while typing, which must not count).
fn prompt(s: &mut PtySession) {
    if let Err(e) = s.exp_regex(r"(^|[\r\n])> \r?$") {
        panic!("expected the prompt: {e}");
    }
}

/// Waits for the `>> ` prompt of an unfinished chunk.
fn continuation(s: &mut PtySession) {
    if let Err(e) = s.exp_regex(r"(^|[\r\n])>> \r?$") {
        panic!("expected the continuation prompt: {e}");
    }
}

/// Types `line` and Enter.
fn type_line(s: &mut PtySession, line: &str) {
    s.send(line).expect("type");
    s.send("\r").expect("enter");
    s.flush().expect("flush");
}

/// Types `line`, expects `output` on a line of its own, then the next prompt.
fn eval(s: &mut PtySession, line: &str, output: &str) {
    type_line(s, line);
    expect_line(s, output);
    prompt(s);
}

/// Waits for `text` as a whole line of output.
fn expect_line(s: &mut PtySession, text: &str) {
    let pattern = format!("(?m)^{}\r?$", regex_escape(text));
    if let Err(e) = s.exp_regex(&pattern) {
        panic!("expected the line {text:?}: {e}");
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ' ' || c == '_' || c == ':' || c == ',' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Ctrl-D, then the exit status.
fn exit_with_ctrl_d(mut s: PtySession) -> WaitStatus {
    s.send_control('d').expect("ctrl-d");
    s.exp_eof().expect("eof");
    s.process.wait().expect("wait")
}

fn exited_ok(status: WaitStatus) {
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "exit status: {status:?}"
    );
}

#[test]
fn expressions_statements_and_tables() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    eval(&mut s, "1+1", "2");
    type_line(&mut s, "x = 5");
    prompt(&mut s);
    eval(&mut s, "x*2", "10");
    type_line(&mut s, "{a = {b = 1}}");
    expect_line(&mut s, "  a = {");
    expect_line(&mut s, "    b = 1,");
    prompt(&mut s);
    type_line(&mut s, "t = {} t.self = t");
    prompt(&mut s);
    type_line(&mut s, "t");
    s.exp_regex(r"self = <cycle: table: 0x[0-9a-f]+>")
        .expect("cycle marker");
    prompt(&mut s);
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn multi_line_input_continues_on_a_second_prompt() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    type_line(&mut s, "function f()");
    continuation(&mut s);
    type_line(&mut s, "return 3");
    continuation(&mut s);
    type_line(&mut s, "end");
    prompt(&mut s);
    eval(&mut s, "f()", "3");
    // A pasted block runs line by line, as if typed.
    type_line(&mut s, "\x1b[200~a = 20\rb = a + 1\x1b[201~");
    prompt(&mut s);
    eval(&mut s, "a + b", "41");
    // Expressions and table constructors may span lines too.
    type_line(&mut s, "1 +");
    continuation(&mut s);
    eval(&mut s, "2", "3");
    type_line(&mut s, "{");
    continuation(&mut s);
    type_line(&mut s, "'x',");
    continuation(&mut s);
    type_line(&mut s, "}");
    expect_line(&mut s, r#"  "x","#);
    prompt(&mut s);
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn errors_show_the_line_and_keep_the_session() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    type_line(&mut s, "error('bo'..'om')");
    expect_line(&mut s, "stdin:1: boom");
    prompt(&mut s);
    type_line(&mut s, "for i = 1, 2 do");
    continuation(&mut s);
    type_line(&mut s, "x = = 1");
    s.exp_regex(r"stdin:2: unexpected symbol near '='")
        .expect("syntax error with its line");
    prompt(&mut s);
    eval(&mut s, "6*7", "42");
    // Bytes that are not UTF-8 cost their line, not the session.
    s.writer.write_all(b"\xff\xfe\r").expect("type bytes");
    s.flush().expect("flush");
    s.exp_string("not valid UTF-8")
        .expect("error for the bad line");
    prompt(&mut s);
    eval(&mut s, "1+1", "2");
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn tab_completes_globals_fields_and_methods() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    // `json.en` + Tab becomes `json.encode`; the call only works if it did.
    s.send("json.en\t").expect("tab");
    s.flush().expect("flush");
    s.exp_string("json.encode").expect("completed field");
    eval(&mut s, "({a = 1})", r#""{\"a\":1}""#);
    s.send("type(tim\t").expect("tab");
    s.flush().expect("flush");
    s.exp_string("type(time").expect("completed global");
    eval(&mut s, ")", r#""table""#);
    type_line(&mut s, "str = 'abc'");
    prompt(&mut s);
    s.send("str:up\t").expect("tab");
    s.flush().expect("flush");
    s.exp_string("str:upper").expect("completed method");
    eval(&mut s, "()", r#""ABC""#);
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn ctrl_c_cancels_a_busy_loop_and_keeps_the_session() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    // The marker is split so the echo of the typed line cannot match it.
    type_line(&mut s, "print('run'..'ning') while true do end");
    expect_line(&mut s, "running");
    s.send_control('c').expect("ctrl-c");
    expect_line(&mut s, "stdin:1: interrupted");
    prompt(&mut s);
    eval(&mut s, "1+1", "2");
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn ctrl_c_cancels_an_async_wait() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    type_line(&mut s, "print('wait'..'ing') time.sleep(100)");
    expect_line(&mut s, "waiting");
    s.send_control('c').expect("ctrl-c");
    expect_line(&mut s, "interrupted");
    prompt(&mut s);
    eval(&mut s, "1+1", "2");
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn ctrl_c_at_the_prompt_clears_the_line_and_the_unfinished_chunk() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    s.send("garbage here").expect("type");
    s.flush().expect("flush");
    s.exp_string("garbage here").expect("echo");
    s.send_control('c').expect("ctrl-c");
    prompt(&mut s);
    type_line(&mut s, "function g()");
    continuation(&mut s);
    s.send_control('c').expect("ctrl-c");
    prompt(&mut s);
    eval(&mut s, "1+1", "2");
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn history_is_saved_and_recalled_by_the_next_session() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    eval(&mut s, "6*7", "42");
    exited_ok(exit_with_ctrl_d(s));
    let saved = std::fs::read_to_string(dir.path().join(".dreamos_history")).expect("history");
    assert!(saved.contains("6*7"), "history file: {saved:?}");

    let mut s = start(dir.path());
    s.send("\x1b[A").expect("up");
    s.flush().expect("flush");
    s.exp_string("6*7").expect("recalled line");
    eval(&mut s, "", "42");
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn dot_commands_help_load_and_exit() {
    let dir = TempDir::new().expect("tempdir");
    std::fs::write(
        dir.path().join("lib.lua"),
        "function triple(x)\n  return 3 * x\nend\n",
    )
    .expect("write lib.lua");
    std::fs::write(dir.path().join("bad.lua"), "local x = 1\nerror('broken')\n")
        .expect("write bad.lua");
    let mut s = start(dir.path());
    type_line(&mut s, ".help");
    s.exp_string(".load FILE").expect("help lists .load");
    s.exp_string("json (dreamos.json)")
        .expect("help lists modules");
    prompt(&mut s);
    type_line(&mut s, ".load lib.lua");
    prompt(&mut s);
    eval(&mut s, "triple(14)", "42");
    type_line(&mut s, ".load bad.lua");
    expect_line(&mut s, "bad.lua:2: broken");
    prompt(&mut s);
    type_line(&mut s, ".exit");
    s.exp_eof().expect("eof");
    exited_ok(s.process.wait().expect("wait"));
}

#[test]
fn async_calls_and_spawned_tasks_work_at_the_prompt() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    type_line(&mut s, "time.sleep(0.05)");
    prompt(&mut s);
    eval(
        &mut s,
        "dreamos.spawn(function() time.sleep(0.01) return 7 end):join()",
        "7",
    );
    // A task left running keeps running while the REPL waits for input.
    type_line(
        &mut s,
        "dreamos.spawn(function() time.sleep(0.05) print('back'..'ground') end)",
    );
    // The statement returns its handle at once; the task prints after that.
    s.exp_string("TaskHandle").expect("the handle prints");
    s.exp_string("background")
        .expect("output of the task, printed at the prompt");
    exited_ok(exit_with_ctrl_d(s));
}

#[test]
fn os_exit_ends_the_session_with_its_status() {
    let dir = TempDir::new().expect("tempdir");
    let mut s = start(dir.path());
    type_line(&mut s, "os.exit(3)");
    s.exp_eof().expect("eof");
    let status = s.process.wait().expect("wait");
    assert!(matches!(status, WaitStatus::Exited(_, 3)), "{status:?}");
}

/// Runs `dreamos repl` with `input` on a pipe.
fn piped(input: &[u8]) -> Output {
    let dir = TempDir::new().expect("tempdir");
    let mut child = dreamos(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dreamos repl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn piped_input_prints_results_without_prompts() {
    let out = piped(b"print(1+1)\n");
    assert_eq!(text(&out.stdout), "2\n");
    assert!(out.status.success(), "{out:?}");

    let out = piped(b"x = 1\nx + 1\nfunction f()\n  return 3\nend\nf(), 'a'\n");
    assert_eq!(text(&out.stdout), "2\n3\t\"a\"\n");
    assert_eq!(text(&out.stderr), "");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn piped_errors_go_to_stderr_and_set_the_status() {
    let out = piped(b"error('boom')\nprint('still here')\n");
    assert_eq!(text(&out.stdout), "still here\n");
    assert!(text(&out.stderr).starts_with("stdin:1: boom"), "{out:?}");
    assert_eq!(out.status.code(), Some(1));

    let out = piped(b"function f(\n");
    assert!(text(&out.stderr).starts_with("stdin:1:"), "{out:?}");
    assert_eq!(out.status.code(), Some(1));

    let out = piped(b"print('a')\nos.exit(4)\nprint('b')\n");
    assert_eq!(text(&out.stdout), "a\n");
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn piped_non_utf8_input_is_an_error_not_a_panic() {
    let out = piped(b"\xff\xfe\n'\xc3\x28'\n");
    assert!(text(&out.stderr).starts_with("stdin:1:"), "{out:?}");
    assert!(!text(&out.stderr).contains("panicked"), "{out:?}");
    assert_eq!(out.stdout, b"\"\xc3\x28\"\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn piped_input_waits_for_spawned_tasks() {
    let out = piped(b"dreamos.spawn(function() time.sleep(0.05) print('late') end)\n");
    assert!(text(&out.stdout).ends_with("late\n"), "{out:?}");
    assert!(out.status.success(), "{out:?}");
}
