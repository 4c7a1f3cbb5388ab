//! Validation of `[store]`: which backend, and for PostgreSQL where its URL comes from.

use super::errors::KeyLines;
use super::{ConfigError, StoreConfig};

impl StoreConfig {
    /// Checks what the types cannot: a PostgreSQL backend has a URL source, a URL in the
    /// file parses and carries no password (secrets live in the environment), and `url` is
    /// not set for SQLite, where it would be silently ignored.
    pub(crate) fn validate(&self, lines: &KeyLines<'_>) -> Result<(), ConfigError> {
        let url_in_file = lines.line_of("store", "url").is_some();
        if !self
            .schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(lines.error(
                "store",
                "schema",
                format!(
                    "'{}' is not a plain schema name: use only letters, digits and '_'",
                    self.schema
                ),
            ));
        }
        match self.backend.as_str() {
            "postgres" if !self.url.is_empty() => {
                let parsed: tokio_postgres::Config = self.url.parse().map_err(|e| {
                    lines.error(
                        "store",
                        "url",
                        format!("not a PostgreSQL connection URL: {e}"),
                    )
                })?;
                if url_in_file && parsed.get_password().is_some() {
                    return Err(lines.error(
                        "store",
                        "url",
                        format!(
                            "contains a password, and secrets never live in this file: put \
                             the whole URL in the environment variable {} (store.url_env) \
                             and remove store.url",
                            self.url_env
                        ),
                    ));
                }
            }
            "postgres" if self.url_env.trim().is_empty() => {
                return Err(lines.error(
                    "store",
                    "url_env",
                    "is empty: with backend = \"postgres\", set store.url or name the \
                     environment variable holding the URL"
                        .into(),
                ));
            }
            "sqlite" if !self.url.is_empty() => {
                return Err(lines.error(
                    "store",
                    "url",
                    "is only used with backend = \"postgres\" (this store is SQLite, at \
                     store.path)"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn error(text: &str) -> String {
        crate::config::parse_for_test(text).expect_err("invalid")
    }

    #[test]
    fn a_postgres_url_is_accepted_without_a_password() {
        let config = Config::parse(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://dreamos@db/swarm\"\n",
            Path::new("dreamos.toml"),
        )
        .expect("valid");
        assert_eq!(config.store.url, "postgres://dreamos@db/swarm");
    }

    #[test]
    fn store_errors_name_the_file_line_and_key() {
        let text = "[runtime]\ndata_dir = \"d\"\n\n[store]\nbackend = \"postgres\"\nurl = \"postgres://app:s3cret@db/swarm\"\n";
        let e = error(text);
        assert!(
            e.starts_with("dreamos.toml:6: store.url: contains a password"),
            "{e}"
        );
        assert!(
            e.contains("DREAMOS_DATABASE_URL") && !e.contains("s3cret"),
            "{e}"
        );

        let e = error("[store]\nbackend = \"postgres\"\nurl = \"postgres://db:port/x\"\n");
        assert!(
            e.starts_with("dreamos.toml:3: store.url: not a PostgreSQL connection URL"),
            "{e}"
        );

        let e = error("[store]\nurl = \"postgres://db/x\"\n");
        assert!(
            e.starts_with("dreamos.toml:2: store.url: is only used with backend = \"postgres\""),
            "{e}"
        );

        let e = error("[store]\nschema = \"a-b\"\n");
        assert!(
            e.starts_with("dreamos.toml:2: store.schema: 'a-b' is not a plain schema name"),
            "{e}"
        );
        let e = error("[store]\nbackend = \"postgres\"\nurl_env = \"\"\n");
        assert!(
            e.starts_with("dreamos.toml:3: store.url_env: is empty"),
            "{e}"
        );
    }

    #[test]
    fn a_url_with_a_password_may_come_from_the_environment() {
        let vars = [
            ("DREAMOS_STORE_BACKEND".to_string(), "postgres".to_string()),
            (
                "DREAMOS_STORE_URL".to_string(),
                "postgres://app:s3cret@db/swarm".to_string(),
            ),
        ];
        let config =
            Config::parse_with_env("", Path::new("dreamos.toml"), vars.into_iter()).expect("valid");
        assert_eq!(config.store.backend, "postgres");
    }
}
