//! `dreamos.llm` through the real binary: each test writes a `dreamos.toml` whose `[llm]`
//! points at a fake OpenAI-compatible server (tests/fakes/llm.rs), runs a script with
//! `dreamos run`, and checks what the script printed and what the server received.

mod fakes;

use std::path::Path;
use std::process::{Command, Output};

use fakes::llm::{FakeLlm, STREAM_PAUSE};
use serde_json::json;

/// Runs `script` (as `script.lua`) with `[llm] base_url = base_url` plus `llm_keys`.
fn run(base_url: &str, llm_keys: &str, script: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!("[llm]\nbase_url = \"{base_url}\"\n{llm_keys}\n");
    std::fs::write(dir.path().join("dreamos.toml"), config).expect("write config");
    std::fs::write(dir.path().join("script.lua"), script).expect("write script");
    dreamos(dir.path())
        .args(["run", "script.lua"])
        .envs(env.iter().copied())
        .output()
        .expect("run dreamos")
}

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamos"));
    cmd.current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

/// stdout of a run that must succeed.
fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dreamos run failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HEAD: &str = "local llm = require(\"dreamos.llm\")\n";

#[test]
fn chat_returns_the_answer_and_sends_an_openai_request() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}local r = assert(llm.chat{{
  messages = {{ {{role = 'system', content = 'Be brief.'}}, {{role = 'user', content = 'Hi there'}} }},
  temperature = 0.2, max_tokens = 50, seed = 7, stop = {{'END'}},
}})
print(r.content)
print(r.role, r.finish_reason, r.model, #r.tool_calls, r.reasoning)
print(r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens)
print(table.concat(assert(llm.models()), ','))
"
    );
    let out = run(&fake.base_url(), "model = \"llama3.1\"", &script, &[]);
    assert_eq!(
        ok(&out),
        "You said: Hi there\nassistant\tstop\tllama3.1\t0\tnil\n9\t4\t13\nllama3.1,qwen3,tools\n"
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let chat = &reqs[0];
    assert_eq!(
        (chat.method.as_str(), chat.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        chat.header("authorization"),
        None,
        "no key configured, none sent"
    );
    assert_eq!(
        chat.body,
        json!({
            "model": "llama3.1", "stream": false, "temperature": 0.2, "max_tokens": 50,
            "seed": 7, "stop": ["END"],
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        })
    );
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path.as_str()),
        ("GET", "/v1/models")
    );
}

#[test]
fn the_key_comes_from_the_named_environment_variable_as_a_bearer_token() {
    let fake = FakeLlm::with_key("sk-test-123");
    let keys = "model = \"llama3.1\"\napi_key_env = \"LLM_TEST_KEY\"";
    let script = format!(
        "{HEAD}local r, err = llm.chat{{messages = {{{{role = 'user', content = 'Hi'}}}}}}
print(r and r.content, err and err.kind, err and err.message)
"
    );
    let out = run(
        &fake.base_url(),
        keys,
        &script,
        &[("LLM_TEST_KEY", "sk-test-123")],
    );
    assert_eq!(ok(&out), "You said: Hi\tnil\tnil\n");
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some("Bearer sk-test-123")
    );

    let out = run(
        &fake.base_url(),
        keys,
        &script,
        &[("LLM_TEST_KEY", "wrong")],
    );
    let url = format!("{}/chat/completions", fake.base_url());
    assert_eq!(
        ok(&out),
        format!("nil\tauth\tInvalid API Key (401 from {url} for model 'llama3.1')\n")
    );

    let out = run(&fake.base_url(), keys, &script, &[]);
    let stdout = ok(&out);
    assert!(
        stdout.starts_with("nil\tauth\tllm.api_key_env names the environment variable LLM_TEST_KEY, which is not set"),
        "{stdout}"
    );
    assert_eq!(fake.requests().len(), 2, "nothing sent without the key");
}

#[test]
fn streaming_hands_over_deltas_as_they_arrive_and_returns_the_whole() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}local time = require('dreamos.time')
local pieces, first_at = {{}}, nil
local r = assert(llm.chat{{
  model = 'qwen3', messages = {{ {{role = 'user', content = 'Hi there'}} }},
  stream = function(text)
    pieces[#pieces + 1] = text
    first_at = first_at or time.monotonic()
  end,
}})
local ended = time.monotonic()
print(table.concat(pieces, '|'))
print(r.content == table.concat(pieces), r.content, r.role, r.finish_reason, r.model)
print(r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens)
print('first piece early:', ended - first_at >= {pause})
local t = assert(llm.chat{{model = 'thinker', messages = {{ {{role = 'user', content = 'Why?'}} }}, stream = function() end}})
print(t.reasoning, t.content)
",
        pause = STREAM_PAUSE.as_secs_f64() * 0.75
    );
    let out = run(&fake.base_url(), "", &script, &[]);
    assert_eq!(
        ok(&out),
        "You| sa|id: H|i there\ntrue\tYou said: Hi there\tassistant\tstop\tqwen3\n9\t4\t13\n\
         first piece early:\ttrue\nLet me think.\tYou said: Why?\n"
    );
    let body = &fake.requests()[0].body;
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["model"], json!("qwen3"));
}

#[test]
fn tool_calls_are_merged_by_index_and_can_be_sent_back() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}local function show(r)
  print(r.finish_reason, #r.tool_calls)
  for _, c in ipairs(r.tool_calls) do
    print(c.id, c.type, c.name, c.arguments, c.args.city or c.args.zone)
  end
end
local tools = {{ {{type = 'function', ['function'] = {{name = 'weather', parameters = {{type = 'object', properties = {{}}}}}}}} }}
local msgs = {{ {{role = 'user', content = 'Weather in Paris?'}} }}
local streamed = assert(llm.chat{{model = 'tools', messages = msgs, tools = tools, stream = function() end}})
show(streamed)
local whole = assert(llm.chat{{model = 'tools', messages = msgs, tools = tools}})
show(whole)
msgs[2] = {{role = 'assistant', content = '', tool_calls = whole.tool_calls}}
msgs[3] = {{role = 'tool', tool_call_id = 'call_1', content = '18 C'}}
print(assert(llm.chat{{model = 'llama3.1', messages = msgs}}).content)
"
    );
    let out = run(&fake.base_url(), "", &script, &[]);
    let calls = "call_1\tfunction\tweather\t{\"city\":\"Paris\",\"unit\":\"C\"}\tParis\n\
                 call_2\tfunction\ttime\t{\"zone\":\"Europe/Paris\"}\tEurope/Paris\n";
    assert_eq!(
        ok(&out),
        format!("tool_calls\t2\n{calls}tool_calls\t2\n{calls}You said: Weather in Paris?\n")
    );
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].body["tools"],
        json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}])
    );
    // The result's flat tool calls went back in the wire shape.
    assert_eq!(
        reqs[2].body["messages"][1]["tool_calls"][0],
        json!({"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"C\"}"}})
    );
    assert_eq!(reqs[2].body["messages"][2]["tool_call_id"], json!("call_1"));
}

/// Prints `kind|status|retry_after|message` of a failed call.
const SHOW_ERR: &str = "local function fails(opts)
  local r, err = llm.chat(opts)
  assert(r == nil, 'expected a failure')
  print(err.kind, err.status, err.retry_after, err.message)
  assert(tostring(err) == err.kind .. ': ' .. err.message)
end
";

#[test]
fn an_unknown_model_is_not_found_and_named() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}{SHOW_ERR}fails{{model = 'missing', messages = {{ {{role = 'user', content = 'Hi'}} }}}}\n"
    );
    let out = run(&fake.base_url(), "", &script, &[]);
    let url = format!("{}/chat/completions", fake.base_url());
    assert_eq!(
        ok(&out),
        format!(
            "not_found\t404\tnil\tmodel \"missing\" not found, try pulling it first \
             (404 from {url} for model 'missing')\n"
        )
    );
    assert_eq!(fake.requests().len(), 1, "a 404 is not retried");
}

#[test]
fn a_model_still_loading_is_retried_until_it_answers() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}print(assert(llm.chat{{model = 'loading', messages = {{ {{role = 'user', content = 'Hi'}} }}}}).content)\n"
    );
    let out = run(&fake.base_url(), "", &script, &[]);
    assert_eq!(ok(&out), "You said: Hi\n");
    assert_eq!(fake.requests().len(), 2, "one 503, one answer");
}

#[test]
fn rate_limits_are_retried_then_reported_with_retry_after() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}{SHOW_ERR}fails{{model = 'busy', messages = {{ {{role = 'user', content = 'Hi'}} }}}}\n"
    );
    let out = run(&fake.base_url(), "retries = 1", &script, &[]);
    let url = format!("{}/chat/completions", fake.base_url());
    assert_eq!(
        ok(&out),
        format!(
            "rate_limited\t429\t1.0\tRate limit reached for requests (429 from {url} for model \
             'busy'); retry after 1s (gave up after 2 attempts)\n"
        )
    );
    assert_eq!(fake.requests().len(), 2, "retries = 1: two attempts");
}

#[test]
fn timeouts_connect_failures_and_garbage_have_their_kinds() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}{SHOW_ERR}local msgs = {{ {{role = 'user', content = 'Hi'}} }}
fails{{model = 'silent', messages = msgs, timeout = '300ms'}}
fails{{model = 'silent', messages = msgs, timeout = 0.3, stream = function() end}}
fails{{model = 'garbled', messages = msgs}}
fails{{model = 'garbled', messages = msgs, stream = function() error('no text expected') end}}
"
    );
    let out = run(&fake.base_url(), "", &script, &[]);
    let url = format!("{}/chat/completions", fake.base_url());
    let lines: Vec<String> = ok(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let silent = format!("timeout\tnil\tnil\tno answer from {url} for model 'silent' within 300ms");
    assert_eq!(lines[0], silent);
    assert_eq!(lines[1], silent);
    assert!(
        lines[2].starts_with(&format!(
            "protocol\tnil\tnil\t{url} for model 'garbled' answered with invalid JSON"
        )),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!(
            "protocol\tnil\tnil\t{url} for model 'garbled' sent an event that is not JSON"
        )),
        "{}",
        lines[3]
    );
    assert_eq!(fake.requests().len(), 4, "timeouts are not retried");

    // Nothing listens on a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let base = format!("http://127.0.0.1:{closed}/v1");
    let script = format!("{HEAD}{SHOW_ERR}fails{{model = 'm', messages = {{ {{role = 'user', content = 'Hi'}} }}}}\n");
    let stdout = ok(&run(&base, "retries = 0", &script, &[]));
    assert!(
        stdout.starts_with(&format!(
            "connect\tnil\tnil\tcannot reach {base}/chat/completions for model 'm': "
        )),
        "{stdout}"
    );
}

#[test]
fn misuse_raises_naming_the_line_and_the_fix() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}local function why(opts)
  local ok, err = pcall(llm.chat, opts)
  assert(not ok)
  print(err)
end
why{{messages = {{}}}}
why{{model = 'm'}}
why{{model = 'm', messages = {{ {{content = 'Hi'}} }}}}
why{{model = 'm', messages = {{ {{role = 'user', contnet = 'Hi'}} }}}}
why{{model = 'm', messages = {{ {{role = 'user', content = 'Hi'}} }}, stream = true}}
why{{messages = {{ {{role = 'user', content = 'Hi'}} }}}}
print(select(2, pcall(llm.models, 'fast')))
llm.chat{{model = 'm', messages = {{ {{role = 'user', content = 'Hi'}} }}, temprature = 1}}
"
    );
    let out = run(&fake.base_url(), "", &script, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = [
        "script.lua:3: llm.chat: model is required (pass model = \"llama3.1\", or set a default with model = \"...\" in [llm] of dreamos.toml)",
        "script.lua:3: llm.chat: messages is required: a list such as {{role = \"user\", content = \"Hello\"}}",
        "script.lua:3: llm.chat: messages[1].role is required (\"system\", \"user\", \"assistant\" or \"tool\")",
        "script.lua:3: llm.chat: messages[1]: unknown option 'contnet' (did you mean 'content'?)",
        "script.lua:3: llm.chat: stream must be a function called with each piece of text, got boolean",
        "script.lua:3: llm.chat: model is required (pass model = \"llama3.1\", or set a default with model = \"...\" in [llm] of dreamos.toml)",
        "script.lua:13: llm.models: expected nothing or a table {timeout = ...}, got a string",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stderr}");
    assert!(
        stderr.contains(
            "script.lua:14: llm.chat: unknown option 'temprature' (did you mean 'temperature'?)"
        ),
        "{stderr}"
    );
    assert!(fake.requests().is_empty(), "misuse sends nothing");
}

#[test]
fn empty_messages_are_refused_when_a_default_model_exists() {
    let fake = FakeLlm::start();
    let script = format!("{HEAD}llm.chat{{messages = {{}}}}\n");
    let out = run(&fake.base_url(), "model = \"llama3.1\"", &script, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("script.lua:2: llm.chat: messages is empty: give at least one {role = \"user\", content = \"...\"}"),
        "{stderr}"
    );
}

#[test]
fn chat_works_inside_coroutines_the_script_creates() {
    let fake = FakeLlm::start();
    let script = format!(
        "{HEAD}local gen = coroutine.wrap(function()
  for _, q in ipairs({{'one', 'two'}}) do
    local r = assert(llm.chat{{messages = {{ {{role = 'user', content = q}} }}}})
    coroutine.yield(r.content)
  end
  return 'end'
end)
print(gen(), gen(), gen())
local co = coroutine.create(function()
  local seen = {{}}
  local r = assert(llm.chat{{messages = {{ {{role = 'user', content = 'three'}} }}, stream = function(t) seen[#seen + 1] = t end}})
  coroutine.yield(#seen)
  return r.content
end)
print(coroutine.resume(co))
print(coroutine.resume(co))
"
    );
    let out = run(&fake.base_url(), "model = \"llama3.1\"", &script, &[]);
    assert_eq!(
        ok(&out),
        "You said: one\tYou said: two\tend\ntrue\t4\ntrue\tYou said: three\n"
    );
}
