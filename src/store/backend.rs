//! Choosing and opening a backend: [`StoreTarget`] says which database (from `[store]` in
//! `dreamos.toml`, or from a `--store sqlite:PATH|postgres:URL` argument) and [`AnyStore`]
//! is the opened store, handing out the traits domain code takes (`Arc<dyn BusStore>`, ...).
//!
//! Every command and the daemon open their store through [`crate::store::open_configured`],
//! which goes through here and hands out one [`SharedStore`].

use std::path::PathBuf;
use std::sync::Arc;

use super::{
    open_sqlite, BusStore, KvStore, PgStore, SharedStore, SqliteStore, StoreError, TaskStore,
};
use crate::config::Config;

/// Which database to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreTarget {
    Sqlite(PathBuf),
    /// The connection URL (with its password, if any: never print it, see
    /// [`StoreTarget::describe`]) and the schema to work in (`None`: the default).
    Postgres {
        url: String,
        schema: Option<String>,
    },
}

impl StoreTarget {
    /// Parses `sqlite:PATH`, `postgres:URL` (also `postgres://...` and `postgresql://...`
    /// as they are) or a plain path, which means SQLite.
    pub fn parse(arg: &str) -> Result<StoreTarget, String> {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            return Ok(StoreTarget::postgres(arg));
        }
        if let Some(url) = arg.strip_prefix("postgres:") {
            if url.is_empty() {
                return Err("postgres: needs a URL, e.g. postgres:postgres://user@host/db".into());
            }
            return Ok(StoreTarget::postgres(url));
        }
        let path = arg.strip_prefix("sqlite:").unwrap_or(arg);
        if path.is_empty() {
            return Err("sqlite: needs a path, e.g. sqlite:data/dreamos.db".into());
        }
        Ok(StoreTarget::Sqlite(PathBuf::from(path)))
    }

    /// PostgreSQL at `url`, default schema.
    pub fn postgres(url: &str) -> StoreTarget {
        StoreTarget::Postgres {
            url: url.to_string(),
            schema: None,
        }
    }

    /// The configured store: `[store] backend`, then `path` or `url` / the variable named
    /// by `url_env`. Errors name the key or the variable.
    pub fn from_config(config: &Config) -> Result<StoreTarget, String> {
        let store = &config.store;
        let schema = (!store.schema.is_empty()).then(|| store.schema.clone());
        match store.backend.as_str() {
            "postgres" if !store.url.is_empty() => Ok(StoreTarget::Postgres {
                url: store.url.clone(),
                schema,
            }),
            "postgres" => match std::env::var(&store.url_env) {
                Ok(url) if !url.trim().is_empty() => Ok(StoreTarget::Postgres { url, schema }),
                _ => Err(format!(
                    "store.backend is \"postgres\" but neither store.url is set nor the \
                     environment variable {} (named by store.url_env)",
                    store.url_env
                )),
            },
            _ => Ok(StoreTarget::Sqlite(config.resolve(&store.path))),
        }
    }

    /// Backend and database for messages: `sqlite data/dreamos.db`, `postgres
    /// postgres://app:***@db/swarm` (password masked).
    pub fn describe(&self) -> String {
        match self {
            StoreTarget::Sqlite(path) => format!("sqlite {}", path.display()),
            StoreTarget::Postgres { url, schema: None } => {
                format!("postgres {}", super::postgres::mask_url(url))
            }
            StoreTarget::Postgres {
                url,
                schema: Some(schema),
            } => format!(
                "postgres {} (schema {schema})",
                super::postgres::mask_url(url)
            ),
        }
    }

    /// Opens (creating and migrating as needed) the database.
    pub async fn open(&self) -> Result<AnyStore, StoreError> {
        Ok(match self {
            StoreTarget::Sqlite(path) => AnyStore::Sqlite(open_sqlite(path).await?),
            StoreTarget::Postgres { url, schema } => {
                let options = super::PgOptions {
                    schema: schema.clone(),
                    ..Default::default()
                };
                AnyStore::Postgres(Arc::new(PgStore::open_with(url, options).await?))
            }
        })
    }
}

/// An opened store of either backend.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

/// Tables whose rows `dreamos store status` counts: those both backends have.
pub const COUNTED_TABLES: &[&str] = super::postgres::schema::COUNTED_TABLES;

impl AnyStore {
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }

    /// The store as every service takes it.
    pub fn shared(&self) -> SharedStore {
        match self {
            AnyStore::Sqlite(s) => s.clone(),
            AnyStore::Postgres(s) => s.clone(),
        }
    }

    pub fn bus(&self) -> Arc<dyn BusStore> {
        self.shared()
    }

    pub fn tasks(&self) -> Arc<dyn TaskStore> {
        self.shared()
    }

    pub fn kv(&self) -> Arc<dyn KvStore> {
        self.shared()
    }

    /// The schema version the database is at, and the newest this build knows.
    pub async fn schema_version(&self) -> Result<(i64, i64), StoreError> {
        match self {
            AnyStore::Sqlite(s) => Ok((
                super::sqlite::schema_version(s).await?,
                super::sqlite::MIGRATIONS.last().map_or(0, |m| m.version),
            )),
            AnyStore::Postgres(s) => Ok((
                s.schema_version().await?,
                super::postgres::schema::MIGRATIONS
                    .last()
                    .map_or(0, |m| m.version),
            )),
        }
    }

    /// Migrations recorded at or after `since` (ms): what opening this store just applied.
    pub async fn applied_since(&self, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                s.read(move |conn| {
                    let mut stmt = conn
                        .prepare(
                            "SELECT version, name FROM schema_version WHERE applied_at >= ?1
                             ORDER BY version",
                        )
                        .map_err(StoreError::sql("read schema_version"))?;
                    let rows = stmt
                        .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))
                        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                        .map_err(StoreError::sql("read schema_version"));
                    rows
                })
                .await
            }
            AnyStore::Postgres(s) => s.applied_since(since).await,
        }
    }

    /// Rows in each of [`COUNTED_TABLES`].
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                s.read(|conn| {
                    let mut out = Vec::new();
                    for table in COUNTED_TABLES {
                        let n: i64 = conn
                            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                            .map_err(StoreError::sql("count rows"))?;
                        out.push((*table, n));
                    }
                    Ok(out)
                })
                .await
            }
            AnyStore::Postgres(s) => s.table_counts().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_arguments_name_their_backend() {
        assert_eq!(
            StoreTarget::parse("postgres:postgres://u@h/db"),
            Ok(StoreTarget::postgres("postgres://u@h/db"))
        );
        assert_eq!(
            StoreTarget::parse("postgresql://u@h/db"),
            Ok(StoreTarget::postgres("postgresql://u@h/db"))
        );
        assert_eq!(
            StoreTarget::parse("postgres:host=/tmp user=u"),
            Ok(StoreTarget::postgres("host=/tmp user=u"))
        );
        assert_eq!(
            StoreTarget::parse("sqlite:data/x.db"),
            Ok(StoreTarget::Sqlite("data/x.db".into()))
        );
        assert_eq!(
            StoreTarget::parse("data/x.db"),
            Ok(StoreTarget::Sqlite("data/x.db".into()))
        );
        assert!(StoreTarget::parse("postgres:").is_err());
        assert!(StoreTarget::parse("sqlite:").is_err());
        assert_eq!(
            StoreTarget::postgres("postgres://u:pw@h/db").describe(),
            "postgres postgres://u:***@h/db"
        );
    }
}
