//! History, export, the dead-letter queue, stats and retention.
//!
//! The export file is a JSON array with one [`HistoryRecord`] per line (greppable, and
//! still one JSON document), oldest first. It is written to a temporary file in the same
//! directory, flushed to disk, then renamed over the target, so a reader never sees half a
//! file and a crash leaves the previous export intact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::clock::millis;
use super::{Bus, BusError, BusStats, HistoryQuery, HistoryRecord, MessageId, Outcome};

/// Records fetched per store read while exporting.
const EXPORT_PAGE: usize = 1000;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub path: PathBuf,
    pub records: u64,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Queued messages whose ttl had passed, now `expired`.
    pub expired: u64,
    /// Acked or expired messages deleted for age or count.
    pub deleted: u64,
}

impl Bus {
    /// Messages matching `query` with every status transition. A `limit` of 0 means
    /// `bus.history_limit`.
    pub async fn history(&self, mut query: HistoryQuery) -> Result<Vec<HistoryRecord>, BusError> {
        if query.limit == 0 {
            query.limit = self.inner.config.history_limit;
        }
        Ok(self.inner.store.history(query).await?)
    }

    /// Writes every message matching `filter` (its `limit` and `after_id` are ignored) to
    /// `path`, or to `bus.export_path`, atomically.
    pub async fn export(
        &self,
        filter: HistoryQuery,
        path: Option<&Path>,
    ) -> Result<ExportReport, BusError> {
        let path = path.map_or_else(|| self.inner.config.export_path.clone(), Path::to_path_buf);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BusError::Export { path, source }
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        }
        let name = path.file_name().map_or_else(
            || "message_history.json".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let written = self.write_export(&filter, &tmp).await;
        let records = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        if let Err(source) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(BusError::Export { path, source });
        }
        // Make the rename itself durable; best effort (not every platform allows it).
        if let Some(dir) = dir.map(Path::to_path_buf) {
            let _ = tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await;
        }
        Ok(ExportReport { path, records })
    }

    async fn write_export(&self, filter: &HistoryQuery, tmp: &Path) -> Result<u64, BusError> {
        let io = |source| BusError::Export {
            path: tmp.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::create(tmp).await.map_err(io)?;
        let mut out = tokio::io::BufWriter::new(file);
        out.write_all(b"[").await.map_err(io)?;
        let mut after: MessageId = 0;
        let mut count = 0u64;
        loop {
            let page = self
                .inner
                .store
                .history(HistoryQuery {
                    after_id: Some(after),
                    limit: EXPORT_PAGE,
                    ..filter.clone()
                })
                .await?;
            let mut chunk = Vec::with_capacity(page.len() * 256);
            for record in &page {
                chunk.extend_from_slice(if count == 0 { b"\n" } else { b",\n" });
                serde_json::to_writer(&mut chunk, record)
                    .map_err(|e| BusError::Payload(e.to_string()))?;
                count += 1;
            }
            out.write_all(&chunk).await.map_err(io)?;
            match page.last() {
                Some(last) if page.len() == EXPORT_PAGE => after = last.id,
                _ => break,
            }
        }
        out.write_all(b"\n]\n").await.map_err(io)?;
        out.flush().await.map_err(io)?;
        out.into_inner().sync_all().await.map_err(io)?;
        Ok(count)
    }

    /// Dead letters (`failed` and `dead`), oldest first, with their last error.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<HistoryRecord>, BusError> {
        Ok(self.inner.store.dead_letters(limit).await?)
    }

    /// Queues one dead letter again, with fresh attempts.
    pub async fn retry_dead(&self, id: MessageId) -> Result<(), BusError> {
        let requeued = self.inner.store.retry_dead(Some(id), self.now()).await?;
        if requeued.is_empty() {
            let statuses = self.inner.store.statuses(vec![id]).await?;
            return Err(match statuses.first() {
                Some(&(_, status)) => BusError::NotDead { id, status },
                None => BusError::NotFound(id),
            });
        }
        self.wake_all(&requeued);
        Ok(())
    }

    /// Queues every dead letter again; returns how many.
    pub async fn retry_all_dead(&self) -> Result<usize, BusError> {
        let requeued = self.inner.store.retry_dead(None, self.now()).await?;
        self.wake_all(&requeued);
        Ok(requeued.len())
    }

    /// Deletes every dead letter; returns how many.
    pub async fn purge_dead(&self) -> Result<u64, BusError> {
        Ok(self.inner.store.purge_dead().await?)
    }

    fn wake_all(&self, requeued: &[(MessageId, String)]) {
        for (_, channel) in requeued {
            self.wake(channel);
        }
    }

    /// Depth per channel, in flight, dead, totals.
    pub async fn stats(&self) -> Result<BusStats, BusError> {
        Ok(self.inner.store.stats().await?)
    }

    /// Applies retention once: expires overdue queued messages, then deletes acked and
    /// expired messages older than `bus.retention_age` or beyond the newest
    /// `bus.retention_count`. Never touches pending messages or dead letters.
    pub async fn prune(&self) -> Result<PruneReport, BusError> {
        let config = &self.inner.config;
        let now = self.now();
        let older_than = now.saturating_sub(millis(config.retention_age));
        let (expired, deleted) = self
            .inner
            .store
            .prune(now, older_than, config.retention_count)
            .await?;
        Ok(PruneReport { expired, deleted })
    }

    /// Runs [`prune`](Bus::prune) every `bus.retention_interval` until the bus is dropped
    /// or the task aborted. Errors are logged, and the next pass tries again.
    pub fn spawn_retention(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.config.retention_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let bus = Bus { inner };
                match bus.prune().await {
                    Ok(report) if report.deleted + report.expired > 0 => {
                        tracing::debug!(
                            deleted = report.deleted,
                            expired = report.expired,
                            "bus retention"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "bus retention failed; will retry"),
                }
            }
        })
    }
}

/// One line for a person: `#42 cli -> agent:scout [acked, 1 attempt] {"x":1}`.
pub fn summary_line(r: &HistoryRecord) -> String {
    let attempts = if r.attempts == 1 {
        "attempt"
    } else {
        "attempts"
    };
    let to = if r.to == r.channel {
        r.channel.clone()
    } else {
        format!("{} via {}", r.channel, r.to)
    };
    let mut line = format!(
        "#{} {} {} -> {} [{}, {} {attempts}] {}",
        r.id,
        crate::store::format_millis(r.created_at),
        r.from,
        to,
        r.status,
        r.attempts,
        r.payload
    );
    if let Some(error) = &r.error {
        line.push_str(&format!(" error: {error}"));
    }
    line
}

/// The outcome word a receipt would give for a record, if final.
pub fn outcome_of(r: &HistoryRecord) -> Option<Outcome> {
    Outcome::of(r.status)
}
