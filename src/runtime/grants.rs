//! Capabilities a script holds: `fs:<dir>`, `net:<host>`, `exec`, `env:<VAR>`.
//!
//! A denied call is an error that names the missing grant and where to add it, so the fix
//! is one line of configuration rather than a search through the docs.

use std::path::{Component, Path, PathBuf};

/// One capability, parsed from the configuration's `allow` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Read and write under this directory (absolute, normalised).
    Fs(PathBuf),
    /// Connect to this host: exact (`api.x.com`, `127.0.0.1:8080`), a domain (`*.x.com`) or `*`.
    Net(String),
    /// Start processes.
    Exec,
    /// Read this environment variable even though the configuration names it as a secret.
    Env(String),
}

impl Grant {
    /// Parses `fs:data/`, `net:api.x.com`, `exec`, `env:TOKEN`. Paths stay relative here;
    /// [`Grants::new`] resolves them.
    pub fn parse(text: &str) -> Result<Grant, String> {
        let bad = || {
            format!(
                "invalid grant '{text}': use \"fs:<dir>\", \"net:<host>\", \"net:*\", \"exec\" or \"env:<VAR>\""
            )
        };
        match text.split_once(':') {
            None if text == "exec" => Ok(Grant::Exec),
            Some(("fs", dir)) if !dir.is_empty() => Ok(Grant::Fs(PathBuf::from(dir))),
            Some(("net", host)) if !host.is_empty() && !host.contains('/') => {
                Ok(Grant::Net(host.to_ascii_lowercase()))
            }
            Some(("env", var)) if !var.is_empty() => Ok(Grant::Env(var.to_string())),
            _ => Err(bad()),
        }
    }
}

/// The grants of one script, with filesystem paths resolved.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    grants: Vec<Grant>,
    /// Shown in denials so the user knows which table to edit.
    script: String,
}

impl Grants {
    /// Parses `allow`, resolving relative `fs:` paths against `base`.
    pub fn new(allow: &[String], base: &Path, script: &str) -> Result<Grants, String> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let grants = allow
            .iter()
            .map(|text| {
                Ok(match Grant::parse(text)? {
                    Grant::Fs(dir) => Grant::Fs(normalize(&cwd.join(base).join(dir))),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Grants {
            grants,
            script: script.to_string(),
        })
    }

    /// Resolves `path` (relative to the working directory) and checks that a `fs:` grant
    /// covers it. Symlinks in the existing part of the path are followed first, so a link
    /// cannot lead out of a granted directory.
    pub fn check_fs(&self, path: &str) -> Result<PathBuf, String> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let full = resolve_links(&normalize(&cwd.join(path)));
        let allowed = self.grants.iter().any(|g| match g {
            Grant::Fs(dir) => full.starts_with(resolve_links(dir)),
            _ => false,
        });
        if allowed {
            Ok(full)
        } else {
            let parent = Path::new(path)
                .parent()
                .map(|p| p.display().to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| ".".into());
            Err(format!(
                "access to '{path}' denied: no fs grant covers it (add \"fs:{parent}/\" to {})",
                self.where_to_add()
            ))
        }
    }

    /// Checks that `host` (with optional `port`) is covered by a `net:` grant.
    pub fn check_net(&self, host: &str, port: Option<u16>) -> Result<(), String> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let with_port = port.map(|p| format!("{host}:{p}"));
        let allowed = self.grants.iter().any(|g| match g {
            Grant::Net(pattern) => {
                pattern == "*"
                    || *pattern == host
                    || Some(pattern) == with_port.as_ref()
                    || pattern
                        .strip_prefix("*.")
                        .is_some_and(|domain| host.ends_with(&format!(".{domain}")))
            }
            _ => false,
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "network access to '{host}' denied: add \"net:{host}\" to {}",
                self.where_to_add()
            ))
        }
    }

    /// Checks the `exec` grant.
    pub fn check_exec(&self) -> Result<(), String> {
        if self.grants.contains(&Grant::Exec) {
            Ok(())
        } else {
            Err(format!(
                "starting processes denied: add \"exec\" to {}",
                self.where_to_add()
            ))
        }
    }

    /// Whether an `env:<var>` grant exists.
    pub fn has_env(&self, var: &str) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g, Grant::Env(v) if v == var))
    }

    fn where_to_add(&self) -> String {
        if self.script.is_empty() || self.script.starts_with('=') {
            "sandbox.allow in dreamos.toml".to_string()
        } else {
            format!(
                "sandbox.allow, or allow in [sandbox.scripts.\"{}\"], in dreamos.toml",
                self.script
            )
        }
    }
}

/// Removes `.` and resolves `..` lexically, so `data/../etc` cannot pass a prefix check.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Canonicalises the longest existing ancestor of `path` and appends the rest.
fn resolve_links(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
    let mut resolved = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(allow: &[&str]) -> Grants {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Grants::new(&allow, Path::new("."), "job.lua").unwrap()
    }

    #[test]
    fn parse_accepts_the_documented_forms() {
        assert_eq!(Grant::parse("exec").unwrap(), Grant::Exec);
        assert_eq!(
            Grant::parse("net:API.x.com").unwrap(),
            Grant::Net("api.x.com".into())
        );
        assert!(Grant::parse("disk:/").unwrap_err().contains("\"fs:<dir>\""));
        assert!(Grant::parse("fs:").is_err());
    }

    #[test]
    fn fs_grants_stop_dot_dot_escapes() {
        let g = grants(&["fs:data/"]);
        assert!(g.check_fs("data/x.txt").is_ok());
        let err = g.check_fs("data/../secret.txt").unwrap_err();
        assert!(err.contains("'data/../secret.txt' denied"), "{err}");
        assert!(err.contains("[sandbox.scripts.\"job.lua\"]"), "{err}");
    }

    #[test]
    fn net_grants_match_hosts_domains_and_ports() {
        let g = grants(&["net:api.x.com", "net:*.example.org", "net:127.0.0.1:8080"]);
        assert!(g.check_net("api.x.com", Some(443)).is_ok());
        assert!(g.check_net("a.example.org", None).is_ok());
        assert!(g.check_net("example.org.evil.com", None).is_err());
        assert!(g.check_net("127.0.0.1", Some(8080)).is_ok());
        assert!(g.check_net("127.0.0.1", Some(9090)).is_err());
        assert!(grants(&["net:*"]).check_net("anything", None).is_ok());
    }

    #[test]
    fn exec_needs_its_grant() {
        assert!(grants(&[]).check_exec().unwrap_err().contains("\"exec\""));
        assert!(grants(&["exec"]).check_exec().is_ok());
    }
}
