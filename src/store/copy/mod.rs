//! `dreamos store copy`: moves an embedded SQLite store into an empty PostgreSQL database,
//! history included, so a deployment can grow to several nodes.
//!
//! Both stores are opened the usual way first, which migrates each to the newest schema
//! this build knows. Then everything is checked before anything is written ([`plan`]):
//! every SQLite table and column has a PostgreSQL twin of a type its values fit, and
//! neither side has a migration the other lacks. The copy itself is ONE PostgreSQL
//! transaction: the target tables are locked, must be empty, are filled by binary `COPY`
//! from one SQLite read snapshot ([`read`]), get their id sequences set past the copied ids
//! (so new rows get new ids), and have their row counts checked against what was read. Any
//! failure rolls the whole transaction back and leaves the target as it was.
//!
//! Tables are found in the databases, not listed here, so a table a later migration adds
//! is copied without changes to this module.

mod plan;
mod read;
mod values;

use std::path::Path;
use std::pin::pin;

use anyhow::{anyhow, bail, Context as _};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::postgres::describe;
use super::{open_sqlite, PgOptions, PgStore};
use plan::{quote, PgColumn, PgSide, Plan};

/// How long the copy waits for a lock on a target table (a node using the database)
/// before giving up.
const LOCK_TIMEOUT: &str = "10s";

/// What a copy did.
#[derive(Debug)]
pub struct CopyReport {
    /// The schema version both stores are at.
    pub version: i64,
    /// Rows copied, per table, in the order written.
    pub tables: Vec<(String, u64)>,
    /// SQLite tables left out, and why.
    pub skipped: Vec<(String, &'static str)>,
    /// Id sequences set: (sequence, the last id it counts as handed out).
    pub sequences: Vec<(String, i64)>,
}

/// Copies the SQLite store at `from` into the PostgreSQL database at `url` (in `schema`,
/// if given). On error nothing was copied; the error says why.
pub async fn sqlite_to_postgres(
    from: &Path,
    url: &str,
    schema: Option<String>,
) -> anyhow::Result<CopyReport> {
    if !from.is_file() {
        bail!("there is no SQLite database at {}", from.display());
    }
    // Opening migrates: both sides are at this build's newest schema from here on.
    let sqlite = open_sqlite(from)
        .await
        .with_context(|| format!("cannot open the SQLite store {}", from.display()))?;
    drop(sqlite);
    let options = PgOptions {
        schema,
        max_connections: Some(2),
    };
    let pg = PgStore::open_with(url, options)
        .await
        .context("cannot open the PostgreSQL store")?;
    copy_into(&pg, from).await
}

/// Copies the (migrated) SQLite database at `from` into `pg`: the checks, then one
/// transaction.
async fn copy_into(pg: &PgStore, from: &Path) -> anyhow::Result<CopyReport> {
    let path = from.to_path_buf();
    let (conn, sqlite_side) = tokio::task::spawn_blocking(move || {
        let conn = read::open(&path)?;
        let side = plan::read_sqlite(&conn)
            .map_err(|e| format!("cannot read the tables of {}: {e}", path.display()))?;
        let twice = read::runs_held_twice(&conn)
            .map_err(|e| format!("cannot read the schedule runs of {}: {e}", path.display()))?;
        if !twice.is_empty() {
            return Err(format!(
                "PostgreSQL keeps one run per schedule fire time, and {} has more:\n  {}\n\
                 mark all but one of each interrupted in SQLite (UPDATE schedule_runs SET \
                 outcome = 'interrupted' WHERE id IN (...)) and copy again",
                path.display(),
                twice.join("\n  ")
            ));
        }
        Ok::<_, String>((conn, side))
    })
    .await
    .map_err(|e| anyhow!("reading the SQLite schema stopped: {e}"))?
    .map_err(|e| anyhow!(e))?;

    let mut db = pg.pool().get().await?;
    let pg_side = read_postgres(&mut db).await?;
    let plan = plan::plan(&sqlite_side, &pg_side).map_err(|problems| {
        anyhow!(
            "the SQLite store does not fit the PostgreSQL schema:\n  {}",
            problems.join("\n  ")
        )
    })?;
    let version = pg.schema_version().await?;

    db.begin().await?;
    let result = copy(&mut db, conn, &plan).await;
    match result {
        Ok((tables, sequences)) => {
            db.finish(Ok(())).await?;
            Ok(CopyReport {
                version,
                tables,
                skipped: plan.skipped,
                sequences,
            })
        }
        Err(e) => {
            // The connection is discarded after this either way (it is marked as inside a
            // transaction), and the server rolls back whatever the ROLLBACK did not.
            let _ = db.batch("roll back", "ROLLBACK").await;
            Err(e)
        }
    }
}

type Conn = super::postgres::pool::Conn;

/// The PostgreSQL tables, columns, foreign keys and migrations in the store's schema.
async fn read_postgres(db: &mut Conn) -> anyhow::Result<PgSide> {
    let mut side = PgSide::default();
    let rows = db
        .query(
            "store copy: read the columns",
            "SELECT c.relname::text, a.attname::text, a.atttypid,
                    format_type(a.atttypid, a.atttypmod),
                    a.attnotnull AND NOT a.atthasdef AND a.attidentity = '',
                    a.attgenerated <> ''
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
               AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY c.relname, a.attnum",
            &[],
        )
        .await?;
    for row in rows {
        let table: String = row.get(0);
        side.tables.entry(table).or_default().push(PgColumn {
            name: row.get(1),
            ty: Type::from_oid(row.get(2)),
            type_name: row.get(3),
            required: row.get(4),
            generated: row.get(5),
        });
    }
    let rows = db
        .query(
            "store copy: read the foreign keys",
            "SELECT src.relname::text, dst.relname::text
             FROM pg_constraint k
             JOIN pg_class src ON src.oid = k.conrelid
             JOIN pg_class dst ON dst.oid = k.confrelid
             JOIN pg_namespace n ON n.oid = src.relnamespace
             WHERE k.contype = 'f' AND n.nspname = current_schema()",
            &[],
        )
        .await?;
    side.references = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let rows = db
        .query(
            "store copy: read schema_version",
            "SELECT version FROM schema_version",
            &[],
        )
        .await?;
    side.versions = rows.iter().map(|r| r.get(0)).collect();
    Ok(side)
}

type Copied = (Vec<(String, u64)>, Vec<(String, i64)>);

/// The copy inside the caller's transaction: lock, check empty, fill, set sequences,
/// verify.
async fn copy(db: &mut Conn, sqlite: rusqlite::Connection, plan: &Plan) -> anyhow::Result<Copied> {
    if plan.tables.is_empty() {
        return Ok(Default::default());
    }
    let names: Vec<String> = plan.tables.iter().map(|t| quote(&t.name)).collect();
    db.batch(
        "store copy: lock the target tables",
        &format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
             LOCK TABLE {} IN EXCLUSIVE MODE",
            names.join(", ")
        ),
    )
    .await
    .context("cannot lock the PostgreSQL tables (is a node using this database?)")?;

    let mut occupied = Vec::new();
    for table in plan.tables.iter().filter(|t| !t.seeded) {
        let n = count(db, &table.name).await?;
        if n > 0 {
            occupied.push(format!("{} holds {n} row{}", table.name, plural(n)));
        }
    }
    if !occupied.is_empty() {
        bail!(
            "the PostgreSQL store already holds data ({}); store copy only fills an empty \
             store, so that nothing is overwritten or mixed",
            occupied.join(", ")
        );
    }

    let mut rows = read::spawn(sqlite, plan.tables.clone());
    let mut copied = Vec::new();
    for table in &plan.tables {
        if table.seeded {
            db.batch(
                "store copy: clear a migration's rows",
                &format!("DELETE FROM {}", quote(&table.name)),
            )
            .await?;
        }
        let read = copy_table(db, table, &mut rows)
            .await
            .with_context(|| format!("copying table {}", table.name))?;
        copied.push((table.name.clone(), read));
    }

    let mut sequences = Vec::new();
    for table in &plan.tables {
        sequences.extend(advance_sequences(db, table).await?);
    }

    for (table, read) in &copied {
        let n = count(db, table).await?;
        if u64::try_from(n).ok() != Some(*read) {
            bail!("table {table}: read {read} rows from SQLite but PostgreSQL holds {n}");
        }
    }
    Ok((copied, sequences))
}

/// Streams one table's rows into `COPY ... FROM STDIN BINARY`; returns how many were read.
async fn copy_table(
    db: &mut Conn,
    table: &plan::TablePlan,
    rows: &mut tokio::sync::mpsc::Receiver<Result<read::Chunk, String>>,
) -> anyhow::Result<u64> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN BINARY",
        quote(&table.name),
        columns.join(", ")
    );
    let pg_error = |e: tokio_postgres::Error| anyhow!("{}", describe(&e));
    let sink = db.client().copy_in(&sql).await.map_err(pg_error)?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &table.types));
    loop {
        match rows.recv().await {
            Some(Ok(read::Chunk::Rows(batch))) => {
                for row in &batch {
                    let values: Vec<&(dyn ToSql + Sync)> =
                        row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    writer.as_mut().write(&values).await.map_err(pg_error)?;
                }
            }
            Some(Ok(read::Chunk::End(read))) => {
                let written = writer.as_mut().finish().await.map_err(pg_error)?;
                if written != read {
                    bail!("read {read} rows from SQLite but PostgreSQL took {written}");
                }
                return Ok(read);
            }
            // Dropping the unfinished writer aborts the COPY.
            Some(Err(e)) => bail!(e),
            None => bail!("the SQLite reader stopped before the end of the table"),
        }
    }
}

/// Sets each id sequence of `table`'s columns to the highest id copied, or the highest
/// SQLite had handed out, whichever is more.
async fn advance_sequences(
    db: &mut Conn,
    table: &plan::TablePlan,
) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for (column, ty) in table.columns.iter().zip(&table.types) {
        if ![Type::INT8, Type::INT4, Type::INT2].contains(ty) {
            continue;
        }
        let sequence: Option<String> = db
            .query_one(
                "store copy: find the id sequence",
                "SELECT pg_get_serial_sequence($1, $2)",
                &[&quote(&table.name), column],
            )
            .await?
            .get(0);
        let Some(sequence) = sequence else { continue };
        let max: Option<i64> = db
            .query_one(
                "store copy: highest id",
                &format!(
                    "SELECT MAX({})::bigint FROM {}",
                    quote(column),
                    quote(&table.name)
                ),
                &[],
            )
            .await?
            .get(0);
        let floor = table
            .id_floors
            .iter()
            .find(|(c, _)| c == column)
            .map_or(0, |f| f.1);
        let last = max.unwrap_or(0).max(floor);
        if last < 1 {
            continue;
        }
        db.query_one(
            "store copy: set the id sequence",
            "SELECT setval($1::text::regclass, $2)",
            &[&sequence, &last],
        )
        .await?;
        out.push((sequence, last));
    }
    Ok(out)
}

async fn count(db: &mut Conn, table: &str) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "store copy: count rows",
            &format!("SELECT COUNT(*) FROM {}", quote(table)),
            &[],
        )
        .await?
        .get(0))
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests;
