//! [`LeaseStore`] on SQLite. One writer serializes every acquire, so a conditional upsert
//! per name is enough; the same statements run on PostgreSQL, where the row lock taken by
//! `ON CONFLICT DO UPDATE` gives the same guarantee across nodes.

use futures_util::future::BoxFuture;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{LeaseRecord, LeaseStore, Millis, NodeRecord, StoreError, FORGET_NODES_AFTER};

/// Migration 12.
pub(super) const SCHEMA: &str = "
CREATE TABLE leases (
    name     TEXT    PRIMARY KEY,
    node     TEXT    NOT NULL,
    until    INTEGER NOT NULL,
    acquired INTEGER NOT NULL
);
CREATE INDEX leases_by_node ON leases (node);
CREATE TABLE nodes (
    node      TEXT    PRIMARY KEY,
    addr      TEXT    NOT NULL,
    pid       INTEGER NOT NULL,
    started   INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
";

/// Migration 16: the leases each node is configured to take (newline-separated), so a
/// balancing node hands an agent only to a node that can run it.
pub(super) const NODE_UNITS: &str = "ALTER TABLE nodes ADD COLUMN units TEXT NOT NULL DEFAULT '';";

impl LeaseStore for SqliteStore {
    fn acquire_leases(
        &self,
        names: Vec<String>,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let mut stmt = txn
                .prepare_cached(
                    "INSERT INTO leases (name, node, until, acquired) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET
                         node = excluded.node,
                         until = excluded.until,
                         acquired = CASE WHEN leases.node = excluded.node
                                         THEN leases.acquired ELSE excluded.acquired END
                     WHERE leases.until <= ?4 OR leases.node = excluded.node
                     RETURNING name",
                )
                .map_err(StoreError::sql("leases: acquire"))?;
            let mut got = Vec::new();
            for name in names {
                let mut rows = stmt
                    .query(params![name, node, until, now])
                    .map_err(StoreError::sql("leases: acquire"))?;
                if rows
                    .next()
                    .map_err(StoreError::sql("leases: acquire"))?
                    .is_some()
                {
                    got.push(name);
                }
            }
            Ok(got)
        }))
    }

    fn renew_leases(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.write(move |txn| {
            txn.prepare_cached("UPDATE nodes SET last_seen = ?2 WHERE node = ?1")
                .and_then(|mut s| s.execute(params![node, now]))
                .map_err(StoreError::sql("leases: mark node seen"))?;
            let mut names = txn
                .prepare_cached("UPDATE leases SET until = ?2 WHERE node = ?1 RETURNING name")
                .and_then(|mut s| {
                    s.query_map(params![node, until], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(StoreError::sql("leases: renew"))?;
            names.sort();
            Ok(names)
        }))
    }

    fn release_leases(
        &self,
        node: String,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.write(move |txn| {
            let mut stmt = txn
                .prepare_cached("DELETE FROM leases WHERE node = ?1 AND name = ?2")
                .map_err(StoreError::sql("leases: release"))?;
            let mut released = 0;
            for name in names {
                released +=
                    stmt.execute(params![node, name])
                        .map_err(StoreError::sql("leases: release"))? as u64;
            }
            Ok(released)
        }))
    }

    fn hand_over_lease(
        &self,
        name: String,
        from: String,
        to: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "UPDATE leases SET node = ?3, acquired = ?4, until = ?5
                 WHERE name = ?1 AND node = ?2",
            )
            .and_then(|mut s| s.execute(params![name, from, to, now, until]))
            .map(|n| n == 1)
            .map_err(StoreError::sql("leases: hand over"))
        }))
    }

    fn leases(&self) -> BoxFuture<'_, Result<Vec<LeaseRecord>, StoreError>> {
        Box::pin(self.read(|conn| {
            conn.prepare_cached("SELECT name, node, until, acquired FROM leases ORDER BY name")
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok(LeaseRecord {
                            name: r.get(0)?,
                            node: r.get(1)?,
                            until: r.get(2)?,
                            acquired: r.get(3)?,
                        })
                    })?
                    .collect()
                })
                .map_err(StoreError::sql("leases: list"))
        }))
    }

    fn put_node(&self, n: NodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            txn.prepare_cached("DELETE FROM nodes WHERE last_seen < ?1")
                .and_then(|mut s| s.execute(params![n.last_seen - FORGET_NODES_AFTER]))
                .map_err(StoreError::sql("leases: forget old nodes"))?;
            txn.prepare_cached(
                "INSERT INTO nodes (node, addr, pid, started, last_seen, units)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (node) DO UPDATE SET addr = excluded.addr, pid = excluded.pid,
                     started = excluded.started, last_seen = excluded.last_seen,
                     units = excluded.units",
            )
            .and_then(|mut s| {
                let units = n.units.join("\n");
                s.execute(params![
                    n.node,
                    n.addr,
                    n.pid,
                    n.started,
                    n.last_seen,
                    units
                ])
            })
            .map_err(StoreError::sql("leases: record node"))?;
            Ok(())
        }))
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRecord>, StoreError>> {
        Box::pin(self.read(|conn| {
            conn.prepare_cached(
                "SELECT node, addr, pid, started, last_seen, units FROM nodes ORDER BY node",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(NodeRecord {
                        node: r.get(0)?,
                        addr: r.get(1)?,
                        pid: r.get(2)?,
                        started: r.get(3)?,
                        last_seen: r.get(4)?,
                        units: crate::store::lease_types::split_units(&r.get::<_, String>(5)?),
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("leases: list nodes"))
        }))
    }

    fn remove_node(&self, node: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            txn.prepare_cached("DELETE FROM nodes WHERE node = ?1")
                .and_then(|mut s| s.execute(params![node]))
                .map_err(StoreError::sql("leases: remove node"))?;
            Ok(())
        }))
    }
}
