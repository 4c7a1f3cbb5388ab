//! The outbox's reads and side tables on PostgreSQL: send times, due times, engagement
//! samples, learned rate-limit budgets and refreshed tokens, as on SQLite.

use super::rows::{query_posts, COLUMNS};
use crate::clients::social::Tokens;
use crate::social::{MetricSample, PostId, PostRecord};
use crate::store::postgres::pool::Conn;
use crate::store::{Millis, StoreError};

/// Every budget row: (account, op, bucket, info, blocked_until).
pub(super) type BudgetRow = (String, String, String, serde_json::Value, Option<Millis>);

pub(super) async fn send_times(
    c: &mut Conn,
    account: &str,
    since: Millis,
    except: PostId,
) -> Result<Vec<Millis>, StoreError> {
    let rows = c
        .query(
            "social: send times",
            "SELECT COALESCE(posted_at, sending_since) AS t FROM social_posts
             WHERE account = $1 AND status IN ('posted', 'deleted', 'sending')
               AND COALESCE(posted_at, sending_since) >= $2 AND id <> $3
             ORDER BY t",
            &[&account, &since, &except],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn next_due(c: &mut Conn) -> Result<Option<Millis>, StoreError> {
    let row = c
        .query_one(
            "social: next due",
            "SELECT MIN(t) FROM (
                 SELECT MIN(p.not_before) AS t FROM social_posts p WHERE p.status = 'queued'
                     AND (p.parent IS NULL OR EXISTS (SELECT 1 FROM social_posts q
                          WHERE q.id = p.parent AND q.status = 'posted'))
                 UNION ALL SELECT MIN(lease_until) FROM social_posts WHERE status = 'sending'
                 UNION ALL SELECT MIN(metrics_next) FROM social_posts
                     WHERE metrics_next IS NOT NULL AND status = 'posted'
             ) AS due",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

pub(super) async fn metrics_due(
    c: &mut Conn,
    now: Millis,
    limit: usize,
) -> Result<Vec<PostRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM social_posts WHERE status = 'posted'
         AND metrics_next IS NOT NULL AND metrics_next <= $1
         ORDER BY metrics_next LIMIT $2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query_posts(c, "social: metrics due", &sql, &[&now, &limit]).await
}

pub(super) async fn record_metrics(
    c: &mut Conn,
    id: PostId,
    taken_at: Millis,
    metrics: &[(String, i64)],
    next: Option<Millis>,
    done: Option<u32>,
) -> Result<(), StoreError> {
    let what = "social: record metrics";
    for (name, value) in metrics {
        c.execute(
            what,
            "INSERT INTO social_metrics (post, taken_at, name, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (post, taken_at, name) DO UPDATE SET value = excluded.value",
            &[&id, &taken_at, name, value],
        )
        .await?;
    }
    c.execute(
        what,
        "UPDATE social_posts SET metrics_next = $2,
             metrics_done = COALESCE($3, metrics_done)
         WHERE id = $1 AND status = 'posted'",
        &[&id, &next, &done.map(i64::from)],
    )
    .await?;
    Ok(())
}

/// Samples of `ids`, post by post in the order asked, each oldest first.
pub(super) async fn metric_samples(
    c: &mut Conn,
    ids: &[PostId],
) -> Result<Vec<MetricSample>, StoreError> {
    let rows = c
        .query(
            "social: read metrics",
            "SELECT post, taken_at, name, value FROM social_metrics WHERE post = ANY($1)
             ORDER BY array_position($1, post), taken_at, name",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MetricSample {
            post: r.get(0),
            taken_at: r.get(1),
            name: r.get(2),
            value: r.get(3),
        })
        .collect())
}

pub(super) async fn save_budget(
    c: &mut Conn,
    key: [&str; 3],
    info: &str,
    blocked_until: Option<Millis>,
    now: Millis,
) -> Result<(), StoreError> {
    let [account, op, bucket] = key;
    c.execute(
        "social: save budget",
        "INSERT INTO social_budgets (account, op, bucket, info, blocked_until, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account, op, bucket) DO UPDATE SET info = excluded.info,
             blocked_until = excluded.blocked_until, updated_at = excluded.updated_at",
        &[&account, &op, &bucket, &info, &blocked_until, &now],
    )
    .await?;
    Ok(())
}

pub(super) async fn blocked_until(
    c: &mut Conn,
    account: &str,
    op: &str,
    now: Millis,
) -> Result<Option<Millis>, StoreError> {
    let row = c
        .query_one(
            "social: read budgets",
            "SELECT MAX(blocked_until) FROM social_budgets
             WHERE account = $1 AND op = $2 AND blocked_until > $3",
            &[&account, &op, &now],
        )
        .await?;
    Ok(row.get(0))
}

pub(super) async fn budgets(c: &mut Conn) -> Result<Vec<BudgetRow>, StoreError> {
    let rows = c
        .query(
            "social: read budgets",
            "SELECT account, op, bucket, info, blocked_until FROM social_budgets
             ORDER BY account, op, bucket",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let info: String = r.get(3);
            (
                r.get(0),
                r.get(1),
                r.get(2),
                // A budget note that does not parse is only advice: shown as null.
                serde_json::from_str(&info).unwrap_or(serde_json::Value::Null),
                r.get(4),
            )
        })
        .collect())
}

pub(super) async fn load_tokens(c: &mut Conn, account: &str) -> Result<Option<Tokens>, StoreError> {
    let row = c
        .query_opt(
            "social: load tokens",
            "SELECT tokens FROM social_tokens WHERE account = $1",
            &[&account],
        )
        .await?;
    row.map(|r| {
        let text: String = r.get(0);
        serde_json::from_str(&text).map_err(|e| StoreError::corrupt("social: load tokens", e))
    })
    .transpose()
}

pub(super) async fn save_tokens(
    c: &mut Conn,
    account: &str,
    tokens: &str,
    now: Millis,
) -> Result<(), StoreError> {
    c.execute(
        "social: save tokens",
        "INSERT INTO social_tokens (account, tokens, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (account) DO UPDATE SET tokens = excluded.tokens,
             updated_at = excluded.updated_at",
        &[&account, &tokens, &now],
    )
    .await?;
    Ok(())
}
