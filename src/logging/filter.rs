//! Level filters as users write them: `"info"`, `"warn,dreamos=debug"`.
//!
//! Parsed by hand into a [`Targets`] rather than with `EnvFilter`: it costs microseconds
//! at startup (no regex), and it refuses what `Targets` itself would quietly accept — a
//! bare word like `"inf"` there means "target `inf` at TRACE, everything else off".

use tracing_subscriber::filter::{LevelFilter, Targets};

/// Parses comma-separated directives: a bare level sets the default, `target=level` sets
/// the level for a target and its children (`dreamos` covers `dreamos::bus`). Without a
/// bare level only the named targets are logged, as with `RUST_LOG`.
pub fn parse_filter(spec: &str) -> Result<Targets, String> {
    let mut targets = Targets::new();
    let mut any = false;
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        targets = match directive.split_once('=') {
            Some((target, level)) => {
                let target = target.trim();
                if target.is_empty() {
                    return Err(help(spec, directive));
                }
                targets.with_target(target, parse_level(spec, level.trim())?)
            }
            None => targets.with_default(parse_level(spec, directive)?),
        };
    }
    if any {
        Ok(targets)
    } else {
        Err(help(spec, spec))
    }
}

fn parse_level(spec: &str, word: &str) -> Result<LevelFilter, String> {
    match word.to_ascii_lowercase().as_str() {
        "trace" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "error" => Ok(LevelFilter::ERROR),
        "off" => Ok(LevelFilter::OFF),
        _ => Err(help(spec, word)),
    }
}

fn help(spec: &str, bad: &str) -> String {
    format!(
        "invalid log filter '{spec}' (at '{bad}'): use a level (trace, debug, info, warn, \
         error, off) and/or target=level, comma-separated, e.g. \"warn,dreamos=debug\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn default_and_per_target_levels() {
        let f = parse_filter(" warn , dreamos=debug,dreamos::bus=OFF").expect("parses");
        assert!(f.would_enable("serenity", &Level::WARN));
        assert!(!f.would_enable("serenity", &Level::INFO));
        assert!(f.would_enable("dreamos::script", &Level::DEBUG));
        assert!(!f.would_enable("dreamos::bus", &Level::ERROR));
    }

    #[test]
    fn only_named_targets_without_a_default() {
        let f = parse_filter("dreamos=info").expect("parses");
        assert!(f.would_enable("dreamos", &Level::INFO));
        assert!(!f.would_enable("other", &Level::ERROR));
    }

    #[test]
    fn typos_are_refused_with_the_accepted_forms() {
        for bad in ["inf", "dreamos=loud", "=info", "", " , "] {
            let err = parse_filter(bad).expect_err(bad);
            assert!(
                err.contains("use a level (trace, debug, info, warn, error, off)"),
                "{err}"
            );
        }
        assert!(parse_filter("inf")
            .expect_err("typo")
            .starts_with("invalid log filter 'inf'"));
    }
}
