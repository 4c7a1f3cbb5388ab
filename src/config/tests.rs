use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("dreamos.toml"))
}

fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into_iter()
}

#[test]
fn empty_file_gives_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.sandbox.memory_limit, 256 * 1024 * 1024);
    assert_eq!(c.log.keep, 5);
    assert_eq!(c.runtime.data_dir, PathBuf::from("data"));
}

#[test]
fn the_shipped_file_parses_and_equals_the_defaults() {
    let text = include_str!("../../dreamos.toml");
    let shipped = parse(text).unwrap();
    let defaults = Config::default();
    assert_eq!(
        format!("{:?}", shipped.sandbox),
        format!("{:?}", defaults.sandbox)
    );
    assert_eq!(format!("{:?}", shipped.log), format!("{:?}", defaults.log));
    assert_eq!(
        format!("{:?}", shipped.runtime),
        format!("{:?}", defaults.runtime)
    );
    assert_eq!(
        format!("{:?}", shipped.store),
        format!("{:?}", defaults.store)
    );
    assert_eq!(
        format!("{:?}", shipped.repl),
        format!("{:?}", defaults.repl)
    );
    assert_eq!(shipped.social, defaults.social);
    assert_eq!(shipped.llm, defaults.llm);
}

#[test]
fn units_are_read_as_people_write_them() {
    let c = parse("[sandbox]\nmemory_limit = \"64MiB\"\ntimeout = \"1h30m\"\n").unwrap();
    assert_eq!(c.sandbox.memory_limit, 64 * 1024 * 1024);
    assert_eq!(c.sandbox.timeout, Duration::from_secs(5400));
    let c = parse("[sandbox]\ntimeout = 2.5\n").unwrap();
    assert_eq!(c.sandbox.timeout, Duration::from_millis(2500));
}

#[test]
fn unknown_key_names_file_line_section_and_near_miss() {
    let err = parse("[log]\nlevel = \"info\"\n\n[sandbox]\nmemory_limt = 5\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "dreamos.toml:5: unknown key 'memory_limt' in [sandbox] (did you mean 'memory_limit'?)"
    );
}

#[test]
fn unknown_section_is_named() {
    let err = parse("[sandbx]\n").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "dreamos.toml:1: unknown key 'sandbx' at the top level (did you mean 'sandbox'?)"
        ),
        "{err}"
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let err = parse("[log]\nkeep = \"five\"\n").unwrap_err().to_string();
    assert!(
        err.starts_with("dreamos.toml:2: log.keep: invalid type"),
        "{err}"
    );
    let err = parse("[sandbox]\nmemory_limit = true\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dreamos.toml:2: sandbox.memory_limit:"),
        "{err}"
    );
    assert!(err.contains("\"64MiB\""), "{err}");
}

#[test]
fn malformed_toml_names_the_line() {
    let err = parse("[log]\nlevel = \n").unwrap_err().to_string();
    assert!(err.starts_with("dreamos.toml:2:"), "{err}");
}

#[test]
fn bad_grant_is_refused_at_load() {
    let err = parse("[sandbox]\nallow = [\"disk:/\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sandbox.allow"), "{err}");
    assert!(err.contains("disk:/"), "{err}");
}

#[test]
fn env_overrides_replace_file_values() {
    let c = Config::parse_with_env(
        "[log]\nkeep = 3\n",
        Path::new("dreamos.toml"),
        env(&[
            ("DREAMOS_LOG_KEEP", "9"),
            ("DREAMOS_SANDBOX_MEMORY_LIMIT", "128MiB"),
            ("DREAMOS_HTTP_USER_AGENT", "5"),
            ("DREAMOS_CONFIG", "ignored.toml"),
            ("DREAMOS_TEST_POSTGRES_URL", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(c.log.keep, 9);
    assert_eq!(c.sandbox.memory_limit, 128 * 1024 * 1024);
    assert_eq!(c.http.user_agent, "5");
}

#[test]
fn env_override_with_unknown_key_names_the_variable() {
    let err = Config::parse_with_env(
        "",
        Path::new("dreamos.toml"),
        env(&[("DREAMOS_LOG_KEPP", "9")]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "environment: DREAMOS_LOG_KEPP: [log] has no key 'kepp' (did you mean DREAMOS_LOG_KEEP?)"
    );
}

#[test]
fn per_script_overrides_apply_to_that_script_only() {
    let c = parse(
        "[sandbox]\nallow = [\"fs:data/\"]\n[sandbox.scripts.\"examples/http.lua\"]\nallow = [\"net:*\"]\nmemory_limit = \"8MiB\"\n",
    )
    .unwrap();
    let l = c.limits_for(Some("./examples/http.lua"));
    assert_eq!(l.allow, vec!["fs:data/".to_string(), "net:*".to_string()]);
    assert_eq!(l.memory_limit, 8 * 1024 * 1024);
    let other = c.limits_for(Some("examples/hello.lua"));
    assert_eq!(other.allow, vec!["fs:data/".to_string()]);
}
