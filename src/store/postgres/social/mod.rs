//! [`SocialStore`] on PostgreSQL: migration 9's tables with the SQLite backend's
//! semantics, safe with outbox workers on several nodes ([`posts`] says how).

mod posts;
mod rows;
mod side;

use futures_util::future::BoxFuture;

use super::PgStore;
use crate::clients::social::Tokens;
use crate::social::{Inserted, MetricSample, NewPost, Outcome, PostFilter, PostId, PostRecord};
use crate::store::{Millis, SocialStore, StoreError};

impl SocialStore for PgStore {
    fn insert_post(
        &self,
        post: NewPost,
        content_hash: String,
        dedup_since: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Inserted, StoreError>> {
        let content = serde_json::to_string(&post.content);
        Box::pin(async move {
            let content = content.map_err(|e| StoreError::corrupt("social: insert post", e))?;
            self.in_transaction(move |c| {
                Box::pin(async move {
                    posts::insert(c, &post, &content, &content_hash, dedup_since, now).await
                })
            })
            .await
        })
    }

    fn claim_posts(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
        only: Option<PostId>,
    ) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { posts::claim(c, now, lease_until, limit, only).await })
        }))
    }

    fn finish_post(
        &self,
        id: PostId,
        outcome: Outcome,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move { posts::finish(c, id, &outcome, now).await })
        }))
    }

    fn get_post(&self, id: PostId) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.on_connection(move |c| Box::pin(rows::one_post(c, id))))
    }

    fn list_posts(&self, filter: PostFilter) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| Box::pin(async move { posts::list(c, &filter).await })),
        )
    }

    fn retry_post(
        &self,
        id: PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(posts::update_one(
                c,
                "social: retry post",
                "UPDATE social_posts SET status = 'queued', attempts = 0, not_before = $2,
                     updated_at = $2
                 WHERE id = $1 AND status IN ('failed', 'dead', 'cancelled')",
                id,
                now,
                false,
            ))
        }))
    }

    fn cancel_post(
        &self,
        id: PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(posts::update_one(
                c,
                "social: cancel post",
                "UPDATE social_posts SET status = 'cancelled', updated_at = $2
                 WHERE id = $1 AND status = 'queued'",
                id,
                now,
                true,
            ))
        }))
    }

    fn mark_deleted(&self, id: PostId, now: Millis) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "social: delete post",
                        "UPDATE social_posts SET status = 'deleted', metrics_next = NULL,
                             updated_at = $2
                         WHERE id = $1 AND status = 'posted'",
                        &[&id, &now],
                    )
                    .await?;
                Ok(n > 0)
            })
        }))
    }

    fn send_times(
        &self,
        account: String,
        since: Millis,
        except: PostId,
    ) -> BoxFuture<'_, Result<Vec<Millis>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { side::send_times(c, &account, since, except).await })
        }))
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<Millis>, StoreError>> {
        Box::pin(self.on_connection(|c| Box::pin(side::next_due(c))))
    }

    fn metrics_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        Box::pin(self.on_connection(move |c| Box::pin(side::metrics_due(c, now, limit))))
    }

    fn record_metrics(
        &self,
        id: PostId,
        taken_at: Millis,
        metrics: Vec<(String, i64)>,
        next: Option<Millis>,
        done: Option<u32>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(
                async move { side::record_metrics(c, id, taken_at, &metrics, next, done).await },
            )
        }))
    }

    fn metric_samples(
        &self,
        ids: Vec<PostId>,
    ) -> BoxFuture<'_, Result<Vec<MetricSample>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { side::metric_samples(c, &ids).await })
            }),
        )
    }

    fn save_budget(
        &self,
        account: String,
        op: String,
        bucket: String,
        info: serde_json::Value,
        blocked_until: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let info = info.to_string();
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                side::save_budget(c, [&account, &op, &bucket], &info, blocked_until, now).await
            })
        }))
    }

    fn blocked_until(
        &self,
        account: String,
        op: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<Millis>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { side::blocked_until(c, &account, &op, now).await })
        }))
    }

    fn budgets(&self) -> BoxFuture<'_, Result<Vec<side::BudgetRow>, StoreError>> {
        Box::pin(self.on_connection(|c| Box::pin(side::budgets(c))))
    }

    fn load_tokens(&self, account: String) -> BoxFuture<'_, Result<Option<Tokens>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { side::load_tokens(c, &account).await })
            }),
        )
    }

    fn save_tokens(
        &self,
        account: String,
        tokens: Tokens,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let text = serde_json::to_string(&tokens);
        Box::pin(async move {
            let text = text.map_err(|e| StoreError::corrupt("social: save tokens", e))?;
            self.on_connection(move |c| {
                Box::pin(async move { side::save_tokens(c, &account, &text, now).await })
            })
            .await
        })
    }
}
