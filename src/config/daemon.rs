//! Validation of `[daemon]`'s node identity: `node` and `lease`.

use std::time::Duration;

use super::errors::KeyLines;
use super::ConfigError;
use crate::agents::DaemonConfig;

/// Shortest lease: renewals every third of it must fit several database round trips.
const MIN_LEASE: Duration = Duration::from_secs(1);
/// Longest lease: a dead node's agents wait this long for another node.
const MAX_LEASE: Duration = Duration::from_secs(3600);

impl DaemonConfig {
    pub(crate) fn validate(&self, lines: &KeyLines<'_>) -> Result<(), ConfigError> {
        let plain = self
            .node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if self.node.len() > 100 || !plain {
            return Err(lines.error(
                "daemon",
                "node",
                format!(
                    "'{}' is not a node name: use letters, digits, '_', '-', '.' and ':' \
                     (at most 100), or leave it out for <host>-<pid>",
                    self.node
                ),
            ));
        }
        if !(MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            return Err(lines.error(
                "daemon",
                "lease",
                format!(
                    "{} is out of range: a lease is between 1s and 1h (default \"10s\")",
                    crate::units::format_duration(self.lease)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::parse_for_test as parse;

    #[test]
    fn node_and_lease_default_to_host_pid_and_ten_seconds() {
        let config = parse("").expect("valid");
        assert_eq!(config.daemon.lease, Duration::from_secs(10));
        let name = config.daemon.node_name();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        let config = parse("[daemon]\nnode = \"eu-1\"\nlease = \"30s\"\n").expect("valid");
        assert_eq!(config.daemon.node_name(), "eu-1");
        assert_eq!(config.daemon.lease, Duration::from_secs(30));
    }

    #[test]
    fn bad_node_names_and_leases_name_the_line_and_key() {
        let e = parse("[daemon]\nport = 1\nnode = \"a b\"\n").expect_err("invalid");
        assert!(
            e.starts_with("dreamos.toml:3: daemon.node: 'a b' is not a node name"),
            "{e}"
        );
        let e = parse("[daemon]\nlease = \"500ms\"\n").expect_err("invalid");
        assert!(
            e.starts_with("dreamos.toml:2: daemon.lease: 500ms is out of range"),
            "{e}"
        );
        let e = parse("[daemon]\nlease = \"2h\"\n").expect_err("invalid");
        assert!(e.contains("between 1s and 1h"), "{e}");
    }
}
