//! Batching of the three hot task writes (add without dependencies, claim, complete), as
//! the bus batches sends and acks (`bus::batch`): each call joins a queue, and one flusher
//! per queue hands everything queued to PostgreSQL as one statement ([`quick`]) while the
//! next calls gather behind it. A thousand lanes adding, claiming and completing cost a
//! few statements and commits per round trip instead of one each; commits, not rows,
//! are what a small machine runs out of. Nobody is answered before the batch committed.
//!
//! Claims skip the sweep of lapsed leases and passed deadlines unless the last one is
//! [`SWEEP_EVERY`] ms old: a lapsed task comes back at most that much later than on
//! SQLite, and the claims in between cost one probe fewer each.
//!
//! A batch that fails answers every caller with the error; the caller then takes the
//! transactional path on its own, so each gets its own answer (a refusal, or its error).

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::write::SWEEP_PER_CLAIM;
use super::{due, quick};
use crate::bus::batch::{Queue, Waiting};
use crate::store::postgres::db_path;
use crate::store::postgres::pool::{Conn, Pool};
use crate::store::{Millis, StoreError};
use crate::tasks::{ClaimOutcome, ClaimQuery, Lease, NewTask, TaskEvent};

/// How often, at most, a store announces that it committed task transitions.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);
/// How often, at most, claims apply lapsed leases and passed deadlines first (ms).
pub(super) const SWEEP_EVERY: Millis = 50;

type Received<R> = oneshot::Receiver<Result<R, Arc<StoreError>>>;

/// The queues of one store, and what its flushers share.
pub(crate) struct TaskBatches {
    pool: Arc<Pool>,
    inserts: Queue<(NewTask, Millis), TaskEvent>,
    claims: Queue<(ClaimQuery, Millis), ClaimOutcome>,
    /// `None`: not the usual case; the caller completes on its own.
    completes: Queue<(Lease, Option<String>, Millis), Option<TaskEvent>>,
    /// When claims last swept (ms, on the callers' clock).
    swept: AtomicI64,
    /// The `NOTIFY` channel of task transitions, and whether an announcement is pending
    /// and whether its sender runs.
    channel: String,
    nudge: Mutex<(bool, bool)>,
}

impl TaskBatches {
    pub(crate) fn new(pool: Arc<Pool>, channel: String) -> Arc<TaskBatches> {
        Arc::new(TaskBatches {
            pool,
            channel,
            nudge: Mutex::new((false, false)),
            inserts: Queue::default(),
            claims: Queue::default(),
            completes: Queue::default(),
            swept: AtomicI64::new(i64::MIN),
        })
    }

    /// Adds one task without dependencies; its creation event once committed.
    pub(super) async fn insert(
        self: &Arc<Self>,
        task: NewTask,
        now: Millis,
    ) -> Result<TaskEvent, Arc<StoreError>> {
        let flush = || {
            let me = self.clone();
            async move { me.flush_inserts().await }
        };
        enqueue(&self.inserts, (task, now), flush).await
    }

    /// Claims the best ready task for `query`, sweeping first when it is time to.
    pub(super) async fn claim(
        self: &Arc<Self>,
        query: ClaimQuery,
        now: Millis,
    ) -> Result<ClaimOutcome, Arc<StoreError>> {
        let flush = || {
            let me = self.clone();
            async move { me.flush_claims().await }
        };
        enqueue(&self.claims, (query, now), flush).await
    }

    /// Completes a held task nothing depends on; `None` when that is not the case.
    pub(super) async fn complete(
        self: &Arc<Self>,
        lease: Lease,
        result: Option<String>,
        now: Millis,
    ) -> Result<Option<TaskEvent>, Arc<StoreError>> {
        let flush = || {
            let me = self.clone();
            async move { me.flush_completes().await }
        };
        enqueue(&self.completes, (lease, result, now), flush).await
    }

    async fn flush_inserts(&self) {
        while let Some(batch) = self.inserts.take() {
            let (items, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let result = match self.pool.get().await {
                Ok(mut c) => quick::insert_many(&mut c, &items).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(events) => {
                    for (answer, event) in answers.into_iter().zip(events) {
                        let _ = answer.send(Ok(event));
                    }
                }
                Err(e) => fail_all(answers, self.located(e)),
            }
        }
    }

    async fn flush_claims(&self) {
        while let Some(batch) = self.claims.take() {
            // One statement per distinct query; most batches have one (a pool of workers
            // asking for the same work).
            let mut groups: Vec<(ClaimQuery, Waiting<Millis, ClaimOutcome>)> = Vec::new();
            let mut latest = Millis::MIN;
            for ((query, now), answer) in batch {
                latest = latest.max(now);
                match groups.iter_mut().find(|(q, _)| *q == query) {
                    Some((_, members)) => members.push((now, answer)),
                    None => groups.push((query, vec![(now, answer)])),
                }
            }
            let mut swept = match self.sweep_if_due(latest).await {
                Ok(events) => events,
                Err(e) => {
                    let e = self.located(e);
                    for (_, members) in groups {
                        fail_all(members.into_iter().map(|m| m.1).collect(), e.clone());
                    }
                    continue;
                }
            };
            // Groups run side by side, each on its own connection.
            let results = join_all(groups.iter().map(|(query, members)| async move {
                let now = members.iter().map(|m| m.0).max().unwrap_or(latest);
                let mut c = self.pool.get().await?;
                claim_group(&mut c, query, now, members.len()).await
            }))
            .await;
            for ((_, members), result) in groups.into_iter().zip(results) {
                let answers = members.into_iter().map(|m| m.1);
                match result {
                    Ok(outcomes) => {
                        for (answer, mut outcome) in answers.zip(outcomes) {
                            if !swept.is_empty() {
                                // The sweep's transitions, published by the first caller.
                                swept.append(&mut outcome.events);
                                outcome.events = std::mem::take(&mut swept);
                            }
                            let _ = answer.send(Ok(outcome));
                        }
                    }
                    Err(e) => fail_all(answers.collect(), self.located(e)),
                }
            }
        }
    }

    /// Applies lapsed leases and passed deadlines when the last sweep is [`SWEEP_EVERY`]
    /// ms old (or the clock went back).
    async fn sweep_if_due(&self, now: Millis) -> Result<Vec<TaskEvent>, StoreError> {
        let last = self.swept.load(Ordering::Relaxed);
        if now >= last && now.saturating_sub(last) < SWEEP_EVERY {
            return Ok(Vec::new());
        }
        let mut c = self.pool.get().await?;
        c.begin().await?;
        let mut events = Vec::new();
        let result = due::sweep(&mut c, now, SWEEP_PER_CLAIM, &mut events).await;
        c.finish(result).await?;
        // A full sweep may have left more behind: the next claims sweep again.
        if events.len() < SWEEP_PER_CLAIM {
            self.swept.store(now, Ordering::Relaxed);
        }
        Ok(events)
    }

    async fn flush_completes(&self) {
        while let Some(batch) = self.completes.take() {
            // A task completed twice in one batch: the second goes the full way (and is
            // refused there), so one statement never sees a task twice.
            let mut seen = HashSet::new();
            let (mut items, mut answers) = (Vec::new(), Vec::new());
            for (item, answer) in batch {
                if seen.insert(item.0.id) {
                    items.push(item);
                    answers.push(answer);
                } else {
                    let _ = answer.send(Ok(None));
                }
            }
            let result = match self.pool.get().await {
                Ok(mut c) => quick::complete_many(&mut c, &items).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(events) => {
                    for (answer, event) in answers.into_iter().zip(events) {
                        let _ = answer.send(Ok(event));
                    }
                }
                Err(e) => fail_all(answers, self.located(e)),
            }
        }
    }

    /// The channel other nodes listen on for task transitions.
    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// Tells other nodes (and this one's event tail) that task transitions committed:
    /// a `NOTIFY` after the commit, at most every [`ANNOUNCE_EVERY`], the last one always
    /// sent. Sent apart from the transitions because a `NOTIFY` in a transaction takes a
    /// database-wide lock until that transaction's commit is on disk, which would put
    /// every task write in one line.
    pub(super) fn announce(self: &Arc<Self>) {
        let start = match self.nudge.lock() {
            Ok(mut nudge) => {
                nudge.0 = true;
                !std::mem::replace(&mut nudge.1, true)
            }
            Err(_) => false,
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.send_announcements().await });
        }
    }

    async fn send_announcements(&self) {
        loop {
            match self.nudge.lock() {
                Ok(mut nudge) if nudge.0 => nudge.0 = false,
                Ok(mut nudge) => {
                    nudge.1 = false;
                    return;
                }
                Err(_) => return,
            }
            let sent = match self.pool.get().await {
                Ok(mut c) => c
                    .execute(
                        "tasks: announce transitions",
                        "SELECT pg_notify($1, '')::text",
                        &[&self.channel],
                    )
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                // Other nodes catch up at their next wake-up or fallback look.
                tracing::warn!(target: "dreamos::tasks", "cannot announce task transitions: {e}");
            }
            tokio::time::sleep(ANNOUNCE_EVERY).await;
        }
    }

    fn located(&self, e: StoreError) -> Arc<StoreError> {
        Arc::new(e.at(&db_path(self.pool.db())))
    }
}

/// `n` claims for one query: the tasks found go to the first callers, and the others
/// learn when the next lease ends (a task may come back then).
async fn claim_group(
    c: &mut Conn,
    query: &ClaimQuery,
    now: Millis,
    n: usize,
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let claimed = quick::claim_many(c, query, now, n).await?;
    let next_expiry = if claimed.len() < n {
        c.query_one(
            "tasks: find the next lease expiry",
            "SELECT MIN(lease_until) FROM tasks WHERE lease_until IS NOT NULL",
            &[],
        )
        .await?
        .get(0)
    } else {
        None
    };
    let mut outcomes: Vec<ClaimOutcome> = claimed
        .into_iter()
        .map(|(task, event)| ClaimOutcome {
            task: Some(task),
            events: vec![event],
            next_expiry: None,
        })
        .collect();
    outcomes.resize_with(n, || ClaimOutcome {
        next_expiry,
        ..ClaimOutcome::default()
    });
    Ok(outcomes)
}

fn fail_all<R>(answers: Vec<oneshot::Sender<Result<R, Arc<StoreError>>>>, error: Arc<StoreError>) {
    for answer in answers {
        let _ = answer.send(Err(error.clone()));
    }
}

/// Queues `item`; the call that opens a batch starts its flusher (`flush`) in a task of
/// its own. Answers once the batch holding `item` committed (or failed).
async fn enqueue<T, R, F>(
    queue: &Queue<T, R>,
    item: T,
    flush: impl FnOnce() -> F,
) -> Result<R, Arc<StoreError>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (rx, start) = queue.push(item);
    if start {
        tokio::spawn(flush());
    }
    answer(rx).await
}

async fn answer<R>(rx: Received<R>) -> Result<R, Arc<StoreError>> {
    match rx.await {
        Ok(result) => result,
        // The flusher went away without answering (the runtime is shutting down).
        Err(_) => Err(Arc::new(StoreError::Io {
            what: "tasks: a batched write was dropped before it was stored".into(),
            source: std::io::Error::other("batch flusher stopped"),
        })),
    }
}
