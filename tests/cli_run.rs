//! `dreamos run`, `dreamos check`, configuration errors and the sandbox, driven through
//! the real binary the way a user runs it. Each test works in its own temporary directory.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("dreamos").expect("binary built");
    cmd.current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

fn run_code(code: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    dreamos(dir.path())
        .args(["run", "-e", code])
        .output()
        .expect("run")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn runs_a_file_with_arguments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("args.lua"),
        "print(arg[0], arg[1], arg[2], #arg)",
    )
    .unwrap();
    let out = dreamos(dir.path())
        .args(["run", "args.lua", "one", "--two"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "args.lua\tone\t--two\t2\n");
}

#[test]
fn finds_scripts_by_name_on_the_script_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/report.lua"), "print('report ran')").unwrap();
    let out = dreamos(dir.path())
        .args(["run", "report"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "report ran\n", "{}", stderr(&out));
}

#[test]
fn eval_runs_code_and_returns_zero() {
    let out = run_code("print(1 + 1)");
    assert!(out.status.success());
    assert_eq!(stdout(&out), "2\n");
}

#[test]
fn runtime_error_shows_file_line_and_traceback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.lua"),
        "local function inner()\n  error('went wrong')\nend\ninner()\n",
    )
    .unwrap();
    let out = dreamos(dir.path())
        .args(["run", "bad.lua"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: bad.lua:2: went wrong\nstack traceback:"),
        "{err}"
    );
    assert!(err.contains("bad.lua:4: in main chunk"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn misuse_of_a_module_points_at_the_calling_line() {
    let out = run_code("local json = require('dreamos.json')\njson.encode({}, {indent = 2})");
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "error: (command line):2: json.encode: unknown option 'indent' (valid options: pretty)"
        ),
        "{err}"
    );
}

#[test]
fn error_inside_a_coroutine_is_reported_with_its_line() {
    let out = run_code("local co = coroutine.wrap(function()\n  error('in coroutine')\nend)\nco()");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("(command line):2: in coroutine"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn os_exit_sets_the_exit_status() {
    assert_eq!(run_code("os.exit(7)").status.code(), Some(7));
    assert_eq!(run_code("os.exit(true)").status.code(), Some(0));
    assert_eq!(run_code("os.exit(false)").status.code(), Some(1));
}

#[test]
fn missing_script_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dreamos(dir.path())
        .args(["run", "nope.lua"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: nope.lua: no such script (looked at the path and on runtime.script_paths)\n"
    );
}

#[test]
fn check_reports_syntax_errors_without_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.lua"), "os.exit(9)").unwrap();
    std::fs::write(dir.path().join("broken.lua"), "local x = \nprint(\n").unwrap();
    let out = dreamos(dir.path())
        .args(["check", "good.lua"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "good.lua: ok\n");
    let out = dreamos(dir.path())
        .args(["check", "good.lua", "broken.lua"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("broken.lua:3:"), "{err}");
    assert!(err.contains("1 of 2 file(s) have errors"), "{err}");
}

#[test]
fn non_utf8_output_passes_through_unchanged() {
    let out = run_code("io.write('\\255\\254ok')");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"\xff\xfeok");
}

#[test]
fn unsupported_url_scheme_is_refused() {
    let out = run_code("require('dreamos.http').get('file:///etc/passwd')");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("http.get: unsupported scheme 'file'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn huge_json_input_is_an_error_not_a_crash() {
    let out = run_code("require('dreamos.json').decode(string.rep('[', 10000000))");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("json.decode: invalid JSON: recursion limit exceeded"),
        "{}",
        stderr(&out)
    );
}

mod config {
    use super::*;

    #[test]
    fn malformed_toml_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dreamos.toml"), "[log]\nlevel = \"info\n").unwrap();
        let out = dreamos(dir.path())
            .args(["run", "-e", "print(1)"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).starts_with("error: dreamos.toml:2:"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn unknown_key_suggests_the_intended_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("custom.toml"),
            "[sandbox]\ntimeot = \"5s\"\n",
        )
        .unwrap();
        let out = dreamos(dir.path())
            .args(["--config", "custom.toml", "run", "-e", "print(1)"])
            .output()
            .unwrap();
        assert_eq!(
            stderr(&out),
            "error: custom.toml:2: unknown key 'timeot' in [sandbox] (did you mean 'timeout'?)\n"
        );
    }

    #[test]
    fn dreamos_config_variable_and_env_overrides_apply() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alt.toml"), "[log]\nkeep = 3\n").unwrap();
        let out = dreamos(dir.path())
            .env("DREAMOS_CONFIG", "alt.toml")
            .env("DREAMOS_SANDBOX_MEMORY_LIMIT", "32MiB")
            .args([
                "run",
                "-e",
                "local c = require('dreamos').config print(c.log.keep, c.sandbox.memory_limit)",
            ])
            .output()
            .unwrap();
        assert_eq!(stdout(&out), "3\t32MiB\n", "{}", stderr(&out));
    }

    #[test]
    fn bad_env_override_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dreamos(dir.path())
            .env("DREAMOS_LOG_KEEP", "many")
            .args(["run", "-e", "print(1)"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("DREAMOS_LOG_KEEP"),
            "{}",
            stderr(&out)
        );
    }
}

mod sandbox {
    use super::*;

    #[test]
    fn an_endless_loop_hits_the_instruction_limit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dreamos(dir.path())
            .env("DREAMOS_SANDBOX_INSTRUCTION_LIMIT", "1000000")
            .args(["run", "-e", "while true do end"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("instruction limit of 1000000 exceeded without suspending (sandbox.instruction_limit)"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn pcall_cannot_swallow_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dreamos(dir.path())
            .env("DREAMOS_SANDBOX_INSTRUCTION_LIMIT", "1000000")
            .args([
                "run",
                "-e",
                "while true do pcall(function() while true do end end) end",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("instruction limit"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_memory_bomb_hits_the_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dreamos(dir.path())
            .args([
                "run",
                "--memory",
                "16MiB",
                "-e",
                "local t = {} while true do t[#t+1] = string.rep('x', 4096) .. #t end",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("memory limit of 16 MiB exceeded (sandbox.memory_limit)"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn runaway_recursion_is_a_stack_overflow() {
        let out = run_code("local function r() return 1 + r() end\nr()");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("stack overflow (runaway recursion?)"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_sleeping_script_hits_the_wall_clock_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dreamos(dir.path())
            .args([
                "run",
                "--timeout",
                "200ms",
                "-e",
                "require('dreamos.time').sleep(60)",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("wall-clock timeout of 200ms exceeded (sandbox.timeout)"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_denied_call_names_the_missing_grant() {
        let out = run_code("require('dreamos.exec').run{cmd = 'true'}");
        assert!(
            stderr(&out).contains("starting processes denied: add \"exec\""),
            "{}",
            stderr(&out)
        );
        let out = run_code("require('dreamos.fs').read('/etc/hostname')");
        assert!(
            stderr(&out).contains("add \"fs:/etc/\""),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn per_script_overrides_grant_only_that_script() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dreamos.toml"),
            "[sandbox.scripts.\"trusted.lua\"]\nallow = [\"exec\"]\n",
        )
        .unwrap();
        let code = "print(require('dreamos.exec').run{cmd = 'echo', args = {'hi'}}.stdout)";
        std::fs::write(dir.path().join("trusted.lua"), code).unwrap();
        std::fs::write(dir.path().join("other.lua"), code).unwrap();
        let out = dreamos(dir.path())
            .args(["run", "trusted.lua"])
            .output()
            .unwrap();
        assert_eq!(stdout(&out), "hi\n\n", "{}", stderr(&out));
        let out = dreamos(dir.path())
            .args(["run", "other.lua"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("[sandbox.scripts.\"other.lua\"]"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn init_writes_luarc_and_stubs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dreamos(dir.path()).args(["init"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let luarc = std::fs::read_to_string(dir.path().join(".luarc.json")).unwrap();
    assert!(luarc.contains(".dreamos/meta"));
    let stub = std::fs::read_to_string(dir.path().join(".dreamos/meta/json.lua")).unwrap();
    assert!(stub.starts_with("---@meta"));
}

#[test]
fn log_lines_land_in_the_json_file_with_the_script_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.lua"),
        "require('dreamos.log').info('report sent', {items = 3})",
    )
    .unwrap();
    let out = dreamos(dir.path())
        .args(["run", "job.lua"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("logs/dreamos.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(record["message"], "report sent");
    assert_eq!(record["script"], "job.lua");
    assert_eq!(record["items"], 3);
    assert_eq!(record["level"], "INFO");
}

#[test]
fn require_finds_user_modules_on_the_script_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts/lib")).unwrap();
    std::fs::write(
        dir.path().join("scripts/lib/greet.lua"),
        "local M = {}\nfunction M.hi(n) return 'hi ' .. n end\nfunction M.bad() error('bad module call') end\nreturn M\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("main.lua"),
        "local greet = require('lib.greet')\nprint(greet.hi('ada'))\ngreet.bad()\n",
    )
    .unwrap();
    let out = dreamos(dir.path())
        .args(["run", "main.lua"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "hi ada\n");
    assert!(
        stderr(&out).contains("scripts/lib/greet.lua:3: bad module call"),
        "{}",
        stderr(&out)
    );
    let out = run_code("require('no.such.module')");
    assert!(
        stderr(&out).contains("module 'no.such.module' not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_syntax_error_stops_run_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.lua"), "print('a')\nlocal = 5\n").unwrap();
    let out = dreamos(dir.path())
        .args(["run", "broken.lua"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "nothing ran");
    assert!(
        stderr(&out).starts_with("error: broken.lua:2:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn misuse_of_an_async_function_points_at_the_script_line() {
    let out = run_code("local kv = require('dreamos.kv')\nkv.set('k', nil)");
    assert!(
        stderr(&out).starts_with("error: (command line):2: kv.set: value is nil"),
        "{}",
        stderr(&out)
    );
}

/// `dreamos config | head -0`: a reader that went away ends a printing command quietly (as
/// SIGPIPE ends `cat`), instead of a Rust panic about failed printing.
#[test]
fn a_closed_stdout_pipe_ends_a_printing_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .current_dir(dir.path())
        .env_remove("DREAMOS_CONFIG")
        .arg("config")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("dreamos config");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
}
