//! What `store copy` will do, worked out before anything is written: the SQLite tables and
//! their columns, each table's PostgreSQL twin with its column types, and every reason the
//! copy cannot go ahead (reported together, so one run shows all of them).
//!
//! Nothing here names a domain table except [`SQLITE_ONLY`]: tables are found in the
//! databases, so a migration added later is copied without touching this file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::Connection;
use tokio_postgres::types::Type;

use super::values;

/// SQLite tables with no PostgreSQL twin on purpose, and what takes their place there.
/// Skipped when PostgreSQL has no table of that name (and copied like any other if it has).
const SQLITE_ONLY: &[(&str, &str)] = &[
    (
        "bus_sequence",
        "message ids come from the sequence bus_message_ids, set past the copied ids",
    ),
    (
        "schedule_changes",
        "a change counter for a running scheduler, which PostgreSQL keeps its own way",
    ),
];

/// The SQLite table whose single `next_id` is the next bus message id (ids of pruned
/// messages are never handed out again), and the column it numbers.
const BUS_SEQUENCE: (&str, &str, &str) = ("bus_sequence", "bus_messages", "id");

/// One table to copy.
#[derive(Debug, Clone)]
pub(super) struct TablePlan {
    pub name: String,
    /// The SQLite columns, all of which PostgreSQL has.
    pub columns: Vec<String>,
    /// Each column's PostgreSQL type, which its values are converted to.
    pub types: Vec<Type>,
    /// SQLite's primary key columns: rows are read in this order (ids ascending) and named
    /// by them in errors.
    pub key: Vec<String>,
    /// PostgreSQL's migrations put rows here (a counter's one row): they are replaced by
    /// the SQLite rows instead of counting as existing data.
    pub seeded: bool,
    /// Ids SQLite has handed out already for a column (AUTOINCREMENT's `sqlite_sequence`,
    /// the bus's own sequence table), beyond the highest id still stored: PostgreSQL's
    /// sequence continues after these too.
    pub id_floors: Vec<(String, i64)>,
}

/// The whole copy, in the order tables are written (referenced tables first).
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub tables: Vec<TablePlan>,
    /// SQLite tables not copied, with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// A SQLite table as `PRAGMA table_info` describes it.
#[derive(Debug)]
pub(super) struct SqliteTable {
    pub name: String,
    pub columns: Vec<String>,
    pub key: Vec<String>,
}

/// What the SQLite side holds: its tables and migrations, and id floors.
#[derive(Debug)]
pub(super) struct SqliteSide {
    pub tables: Vec<SqliteTable>,
    pub versions: BTreeSet<i64>,
    /// (table, column) → highest id handed out.
    pub floors: HashMap<(String, String), i64>,
}

pub(super) fn read_sqlite(conn: &Connection) -> rusqlite::Result<SqliteSide> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_version'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    let mut floors = HashMap::new();
    for name in names {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(&name)))?;
        let info: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))?
            .collect::<Result<_, _>>()?;
        let mut key: Vec<(i64, String)> = info
            .iter()
            .filter(|c| c.2 > 0)
            .map(|c| (c.2, c.0.clone()))
            .collect();
        key.sort();
        // An INTEGER PRIMARY KEY is the rowid: AUTOINCREMENT keeps its high-water mark in
        // sqlite_sequence.
        if let [(_, pk)] = key.as_slice() {
            if info
                .iter()
                .any(|c| &c.0 == pk && c.1.eq_ignore_ascii_case("INTEGER"))
            {
                if let Some(seq) = sqlite_sequence(conn, &name)? {
                    floors.insert((name.clone(), pk.clone()), seq);
                }
            }
        }
        tables.push(SqliteTable {
            columns: info.into_iter().map(|c| c.0).collect(),
            key: key.into_iter().map(|k| k.1).collect(),
            name,
        });
    }
    let (sequence, table, column) = BUS_SEQUENCE;
    if tables.iter().any(|t| t.name == sequence) {
        let next: Option<i64> =
            conn.query_row(&format!("SELECT MAX(next_id) FROM {sequence}"), [], |r| {
                r.get(0)
            })?;
        if let Some(next) = next {
            let floor = floors.entry((table.into(), column.into())).or_insert(0);
            *floor = (*floor).max(next - 1);
        }
    }
    let versions = conn
        .prepare("SELECT version FROM schema_version")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(SqliteSide {
        tables,
        versions,
        floors,
    })
}

fn sqlite_sequence(conn: &Connection, table: &str) -> rusqlite::Result<Option<i64>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = ?1",
        [table],
        |r| r.get(0),
    )
    .optional()
}

/// A PostgreSQL column as the catalog describes it.
#[derive(Debug, Clone)]
pub(super) struct PgColumn {
    pub name: String,
    pub ty: Option<Type>,
    pub type_name: String,
    /// NOT NULL without a default or identity: a row must bring a value.
    pub required: bool,
    /// A generated column, which takes no value.
    pub generated: bool,
}

/// What the PostgreSQL side holds.
#[derive(Debug, Default)]
pub(super) struct PgSide {
    pub tables: BTreeMap<String, Vec<PgColumn>>,
    /// (referencing table, referenced table), from foreign keys.
    pub references: Vec<(String, String)>,
    pub versions: BTreeSet<i64>,
}

/// Works out the plan, or every reason there cannot be one.
pub(super) fn plan(sqlite: &SqliteSide, pg: &PgSide) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let missing: Vec<String> = sqlite
        .versions
        .difference(&pg.versions)
        .map(|v| v.to_string())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "the SQLite store has schema migrations that this dreamos has no PostgreSQL \
             version of: {} (PostgreSQL is at {}; SQLite at {}), so some of its data would \
             have nowhere to go",
            missing.join(", "),
            list(&pg.versions),
            list(&sqlite.versions)
        ));
    }
    let seeded = seeded_tables();
    let mut out = Plan::default();
    for table in &sqlite.tables {
        let Some(pg_columns) = pg.tables.get(&table.name) else {
            match SQLITE_ONLY.iter().find(|(name, _)| *name == table.name) {
                Some((_, why)) => out.skipped.push((table.name.clone(), why)),
                None => problems.push(format!(
                    "table {} exists in SQLite but not in PostgreSQL",
                    table.name
                )),
            }
            continue;
        };
        let mut types = Vec::new();
        for column in &table.columns {
            match pg_columns.iter().find(|c| &c.name == column) {
                None => problems.push(format!(
                    "column {}.{column} exists in SQLite but not in PostgreSQL",
                    table.name
                )),
                Some(c) if c.generated => problems.push(format!(
                    "column {}.{column} is generated in PostgreSQL and takes no value",
                    table.name
                )),
                Some(PgColumn { ty: Some(ty), .. }) if values::supported(ty) => {
                    types.push(ty.clone())
                }
                Some(c) => problems.push(format!(
                    "column {}.{column} has the PostgreSQL type {}, which store copy does \
                     not fill",
                    table.name, c.type_name
                )),
            }
        }
        for c in pg_columns {
            if c.required && !table.columns.contains(&c.name) {
                problems.push(format!(
                    "column {}.{} is NOT NULL without a default in PostgreSQL but SQLite has \
                     no such column",
                    table.name, c.name
                ));
            }
        }
        let id_floors = sqlite
            .floors
            .iter()
            .filter(|((t, _), _)| t == &table.name)
            .map(|((_, c), v)| (c.clone(), *v))
            .collect();
        out.tables.push(TablePlan {
            name: table.name.clone(),
            columns: table.columns.clone(),
            types,
            key: table.key.clone(),
            seeded: seeded.contains(table.name.as_str()),
            id_floors,
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Seeded tables go last: a trigger bumping a counter while other tables are copied
    // (schedules → schedule_changes) must not leave the counter off SQLite's value.
    let (seeded, plain): (Vec<_>, Vec<_>) = in_reference_order(out.tables, &pg.references)
        .into_iter()
        .partition(|t| t.seeded);
    out.tables = plain.into_iter().chain(seeded).collect();
    Ok(out)
}

/// Tables PostgreSQL's migrations insert rows into.
fn seeded_tables() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in crate::store::postgres::schema::MIGRATIONS {
        let sql = m.sql.to_ascii_lowercase();
        for part in sql.split("insert into").skip(1) {
            let name: String = part
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// Orders tables so that one referenced by a foreign key is written before the tables
/// referring to it (self-references are satisfied by id order within the table).
fn in_reference_order(tables: Vec<TablePlan>, references: &[(String, String)]) -> Vec<TablePlan> {
    let mut pending = tables;
    let mut out: Vec<TablePlan> = Vec::new();
    while !pending.is_empty() {
        let waiting_on = |t: &TablePlan| {
            references.iter().any(|(from, to)| {
                from == &t.name && to != &t.name && pending.iter().any(|p| &p.name == to)
            })
        };
        let (ready, rest): (Vec<_>, Vec<_>) = pending.iter().cloned().partition(|t| !waiting_on(t));
        if ready.is_empty() {
            // A cycle of references: written as listed; PostgreSQL says if a row breaks one.
            out.extend(rest);
            break;
        }
        out.extend(ready);
        pending = rest;
    }
    out
}

fn list(versions: &BTreeSet<i64>) -> String {
    let v: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    v.join(", ")
}

/// An identifier quoted for SQL (both dialects).
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, columns: &[&str]) -> SqliteTable {
        SqliteTable {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key: vec![columns[0].into()],
        }
    }

    fn column(name: &str, ty: Type, required: bool) -> PgColumn {
        PgColumn {
            name: name.into(),
            type_name: ty.name().into(),
            ty: Some(ty),
            required,
            generated: false,
        }
    }

    #[test]
    fn every_mismatch_is_named_at_once() {
        let sqlite = SqliteSide {
            tables: vec![
                table("tasks", &["id", "title", "extra"]),
                table("gone", &["id"]),
                table("bus_sequence", &["next_id"]),
            ],
            versions: [1, 2, 3].into(),
            floors: HashMap::new(),
        };
        let mut pg = PgSide {
            versions: [1, 2].into(),
            ..Default::default()
        };
        pg.tables.insert(
            "tasks".into(),
            vec![
                column("id", Type::INT8, true),
                column("title", Type::TEXT, true),
                column("owner", Type::TEXT, true),
            ],
        );
        let problems = plan(&sqlite, &pg).expect_err("mismatches");
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("no PostgreSQL version of: 3"));
        assert_eq!(
            problems[1],
            "column tasks.extra exists in SQLite but not in PostgreSQL"
        );
        assert!(problems[2].starts_with("column tasks.owner is NOT NULL"));
        assert_eq!(
            problems[3],
            "table gone exists in SQLite but not in PostgreSQL"
        );
    }

    #[test]
    fn referenced_tables_are_written_first() {
        let plans = ["social_metrics", "social_posts", "kv"].map(|name| TablePlan {
            name: name.into(),
            columns: vec![],
            types: vec![],
            key: vec![],
            seeded: false,
            id_floors: vec![],
        });
        let refs = [
            ("social_metrics".to_string(), "social_posts".to_string()),
            ("social_posts".to_string(), "social_posts".to_string()),
        ];
        let order: Vec<String> = in_reference_order(plans.to_vec(), &refs)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(order, ["social_posts", "kv", "social_metrics"]);
    }
}
