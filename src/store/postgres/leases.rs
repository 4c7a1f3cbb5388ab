//! [`LeaseStore`] on PostgreSQL. Acquiring is one `INSERT ... ON CONFLICT DO UPDATE ...
//! WHERE ... RETURNING` over every name: PostgreSQL locks each conflicting row and checks
//! the `WHERE` against its newest version, so of two nodes acquiring the same lapsed lease
//! at once exactly one gets it, and the other sees it held.

use futures_util::future::BoxFuture;

use super::PgStore;
use crate::store::{LeaseRecord, LeaseStore, Millis, NodeRecord, StoreError, FORGET_NODES_AFTER};

/// Migration 12.
pub(super) const SCHEMA: &str = "
CREATE TABLE leases (
    name     TEXT   PRIMARY KEY,
    node     TEXT   NOT NULL,
    until    BIGINT NOT NULL,
    acquired BIGINT NOT NULL
);
CREATE INDEX leases_by_node ON leases (node);
CREATE TABLE nodes (
    node      TEXT   PRIMARY KEY,
    addr      TEXT   NOT NULL,
    pid       BIGINT NOT NULL,
    started   BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
";

/// Migration 16, as on SQLite.
pub(super) const NODE_UNITS: &str = "ALTER TABLE nodes ADD COLUMN units TEXT NOT NULL DEFAULT '';";

impl LeaseStore for PgStore {
    fn acquire_leases(
        &self,
        names: Vec<String>,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        // Names go in sorted, so two nodes acquiring overlapping sets lock rows in the
        // same order and never deadlock each other.
        Box::pin(self.on_connection(move |conn| {
            Box::pin(async move {
                let rows = conn
                    .query(
                        "leases: acquire",
                        "INSERT INTO leases (name, node, until, acquired)
                         SELECT DISTINCT n, $2::text, $3::bigint, $4::bigint FROM unnest($1::text[]) AS n
                         ORDER BY n
                         ON CONFLICT (name) DO UPDATE SET
                             node = excluded.node,
                             until = excluded.until,
                             acquired = CASE WHEN leases.node = excluded.node
                                             THEN leases.acquired ELSE excluded.acquired END
                         WHERE leases.until <= $4 OR leases.node = excluded.node
                         RETURNING name",
                        &[&names, &node, &until, &now],
                    )
                    .await?;
                let got: std::collections::HashSet<String> =
                    rows.iter().map(|r| r.get(0)).collect();
                Ok(names.into_iter().filter(|n| got.contains(n)).collect())
            })
        }))
    }

    fn renew_leases(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.in_transaction(move |conn| {
            Box::pin(async move {
                conn.execute(
                    "leases: mark node seen",
                    "UPDATE nodes SET last_seen = $2 WHERE node = $1",
                    &[&node, &now],
                )
                .await?;
                let rows = conn
                    .query(
                        "leases: renew",
                        "UPDATE leases SET until = $2 WHERE node = $1 RETURNING name",
                        &[&node, &until],
                    )
                    .await?;
                let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                names.sort();
                Ok(names)
            })
        }))
    }

    fn release_leases(
        &self,
        node: String,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.on_connection(move |conn| {
            Box::pin(async move {
                conn.execute(
                    "leases: release",
                    "DELETE FROM leases WHERE node = $1 AND name = ANY($2)",
                    &[&node, &names],
                )
                .await
            })
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
        Box::pin(self.on_connection(move |conn| {
            Box::pin(async move {
                let n = conn
                    .execute(
                        "leases: hand over",
                        "UPDATE leases SET node = $3, acquired = $4, until = $5
                         WHERE name = $1 AND node = $2",
                        &[&name, &from, &to, &now, &until],
                    )
                    .await?;
                Ok(n == 1)
            })
        }))
    }

    fn leases(&self) -> BoxFuture<'_, Result<Vec<LeaseRecord>, StoreError>> {
        Box::pin(self.on_connection(|conn| {
            Box::pin(async move {
                let rows = conn
                    .query(
                        "leases: list",
                        "SELECT name, node, until, acquired FROM leases ORDER BY name",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| LeaseRecord {
                        name: r.get(0),
                        node: r.get(1),
                        until: r.get(2),
                        acquired: r.get(3),
                    })
                    .collect())
            })
        }))
    }

    fn put_node(&self, n: NodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.in_transaction(move |conn| {
            Box::pin(async move {
                conn.execute(
                    "leases: forget old nodes",
                    "DELETE FROM nodes WHERE last_seen < $1",
                    &[&(n.last_seen - FORGET_NODES_AFTER)],
                )
                .await?;
                conn.execute(
                    "leases: record node",
                    "INSERT INTO nodes (node, addr, pid, started, last_seen, units)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (node) DO UPDATE SET addr = excluded.addr,
                         pid = excluded.pid, started = excluded.started,
                         last_seen = excluded.last_seen, units = excluded.units",
                    &[
                        &n.node,
                        &n.addr,
                        &i64::from(n.pid),
                        &n.started,
                        &n.last_seen,
                        &n.units.join("\n"),
                    ],
                )
                .await?;
                Ok(())
            })
        }))
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRecord>, StoreError>> {
        Box::pin(self.on_connection(|conn| {
            Box::pin(async move {
                let rows = conn
                    .query(
                        "leases: list nodes",
                        "SELECT node, addr, pid, started, last_seen, units FROM nodes
                         ORDER BY node",
                        &[],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let pid: i64 = r.get(2);
                        Ok(NodeRecord {
                            node: r.get(0),
                            addr: r.get(1),
                            pid: u32::try_from(pid)
                                .map_err(|_| conn.corrupt("leases: list nodes", pid))?,
                            started: r.get(3),
                            last_seen: r.get(4),
                            units: crate::store::lease_types::split_units(r.get(5)),
                        })
                    })
                    .collect()
            })
        }))
    }

    fn remove_node(&self, node: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.on_connection(move |conn| {
            Box::pin(async move {
                conn.execute(
                    "leases: remove node",
                    "DELETE FROM nodes WHERE node = $1",
                    &[&node],
                )
                .await?;
                Ok(())
            })
        }))
    }
}
