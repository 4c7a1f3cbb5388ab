//! `dreamos social`: post, queue, retry, cancel, send, accounts, report.
//!
//! `post` stores the post in the outbox first, then (unless `--at`) makes the attempt
//! itself, so a user sees the platform's answer; a post that is rate limited or fails for
//! now stays queued for `dreamos serve` (or the next `dreamos social send`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::scheduler::trigger::format_time;
use crate::social::{
    platform_connect, report, view, MediaSpec, Outbox, PostContent, PostFilter, PostOrder,
    PostRecord, Queued, Status,
};
use crate::store::{Millis, SocialStore};

#[derive(Debug, Subcommand)]
pub enum SocialCommand {
    /// Queue a post and send it now (or at --at); --dry-run prints the exact request.
    Post {
        /// A [social.accounts.<name>] from dreamos.toml.
        account: String,
        text: String,
        /// An image to attach (repeatable).
        #[arg(long, value_name = "FILE")]
        media: Vec<PathBuf>,
        /// A public URL of the media (Instagram fetches images itself).
        #[arg(long, value_name = "URL")]
        media_url: Option<String>,
        /// When: "+30m", RFC 3339, or local time in [scheduler] timezone.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Reddit: the post title.
        #[arg(long)]
        title: Option<String>,
        /// Reddit: the subreddit, without r/.
        #[arg(long)]
        subreddit: Option<String>,
        #[arg(long)]
        link: Option<String>,
        /// The same key never posts twice.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Print the request that would be sent; send and store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The outbox with each post's state (unfinished posts; --all for every post).
    Queue {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Queue a failed, dead or cancelled post again, with fresh attempts.
    Retry { id: i64 },
    /// Cancel a queued post (its queued replies fail with it).
    Cancel { id: i64 },
    /// Attempt every post that is due now and read due metrics (what the daemon does
    /// continuously).
    Send,
    /// The configured accounts: platform, caps, dry-run state, and learned budgets that
    /// hold posts back.
    Accounts,
    /// Engagement per post with a sparkline per metric.
    Report {
        #[arg(long)]
        account: Option<String>,
        /// How far back, e.g. "7d" (default 7d).
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long)]
        json: bool,
    },
}

fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub async fn run(
    cmd: SocialCommand,
    store: crate::store::SharedStore,
    config: Arc<Config>,
) -> anyhow::Result<ExitCode> {
    let outbox = Outbox::new(
        store as Arc<dyn SocialStore>,
        config.clone(),
        platform_connect(),
        None,
    );
    match cmd {
        SocialCommand::Post {
            account,
            text,
            media,
            media_url,
            at,
            title,
            subreddit,
            link,
            idempotency_key,
            dry_run,
        } => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let media: Vec<MediaSpec> = media
                .iter()
                .map(|p| {
                    let full = cwd.join(p);
                    if !full.is_file() {
                        anyhow::bail!("--media {}: no such file", p.display());
                    }
                    Ok(MediaSpec {
                        path: full.display().to_string(),
                        url: media_url.clone(),
                        alt: None,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let at = match at {
                Some(t) => Some(
                    view::parse_at(&t, &config.scheduler.timezone, now())
                        .map_err(|e| anyhow::anyhow!("--at {t}: {e}"))?,
                ),
                None => None,
            };
            let order = PostOrder {
                account,
                content: PostContent {
                    text,
                    media,
                    link,
                    subreddit,
                    title,
                    ..Default::default()
                },
                at,
                idempotency_key,
                parent: None,
                source: "cli".into(),
                dry_run,
            };
            post(&outbox, order).await
        }
        SocialCommand::Queue { all, account, json } => {
            let statuses = if all {
                vec![]
            } else {
                vec![
                    Status::Queued,
                    Status::Sending,
                    Status::Failed,
                    Status::Dead,
                ]
            };
            let posts = outbox
                .store()
                .list_posts(PostFilter {
                    account,
                    statuses,
                    since: None,
                    limit: Some(500),
                })
                .await?;
            if json {
                let rows: Vec<_> = posts.iter().map(view::record_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if posts.is_empty() {
                println!(
                    "the outbox is empty{}",
                    if all {
                        ""
                    } else {
                        " (--all shows posted ones)"
                    }
                );
            } else {
                print_queue(&posts);
            }
            Ok(ExitCode::SUCCESS)
        }
        SocialCommand::Retry { id } => match outbox.store().retry_post(id, now()).await? {
            Some(p) => {
                println!("post {id} queued again (account {})", p.account);
                Ok(ExitCode::SUCCESS)
            }
            None => refuse(&outbox, id, "retry", "failed, dead or cancelled").await,
        },
        SocialCommand::Cancel { id } => match outbox.store().cancel_post(id, now()).await? {
            Some(p) => {
                println!("post {id} cancelled (account {})", p.account);
                Ok(ExitCode::SUCCESS)
            }
            None => refuse(&outbox, id, "cancel", "queued").await,
        },
        SocialCommand::Send => {
            let done = outbox.send_due(now()).await?;
            let read = outbox.poll_metrics(now()).await?;
            if done.is_empty() {
                println!("no post is due");
            } else {
                print_queue(&done);
            }
            if read > 0 {
                println!("read metrics of {read} post(s)");
            }
            Ok(ExitCode::SUCCESS)
        }
        SocialCommand::Accounts => {
            accounts(&outbox).await?;
            Ok(ExitCode::SUCCESS)
        }
        SocialCommand::Report {
            account,
            since,
            json,
        } => {
            let d = crate::units::parse_duration(&since)
                .map_err(|e| anyhow::anyhow!("--since {since}: {e}"))?;
            let from = now() - d.as_millis() as Millis;
            let posts = outbox
                .store()
                .list_posts(PostFilter {
                    account,
                    statuses: vec![Status::Posted, Status::Deleted],
                    since: Some(from),
                    limit: Some(1000),
                })
                .await?;
            let ids = posts.iter().map(|p| p.id).collect();
            let samples = outbox.store().metric_samples(ids).await?;
            let reports = report::build(&posts, &samples);
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if reports.is_empty() {
                println!("no posts since {}", format_time(from, chrono_tz::Tz::UTC));
            } else {
                print!("{}", report::render(&reports));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn post(outbox: &Outbox, order: PostOrder) -> anyhow::Result<ExitCode> {
    let later = order.at.is_some_and(|t| t > now());
    match outbox.enqueue(order, now()).await? {
        Queued::DryRun { previews, note } => {
            if let Some(note) = note {
                eprintln!("dry run: {note}");
            }
            print!("{}", view::render_previews(&previews));
            Ok(ExitCode::SUCCESS)
        }
        Queued::Existing(p) => {
            println!(
                "post {} already exists with this idempotency key: {}",
                p.id,
                describe(&p)
            );
            Ok(ExitCode::SUCCESS)
        }
        Queued::Created(p) if later => {
            println!(
                "post {} queued for {} ({})",
                p.id,
                format_time(p.not_before, chrono_tz::Tz::UTC),
                p.account
            );
            Ok(ExitCode::SUCCESS)
        }
        Queued::Created(p) => {
            let after = outbox.send_next(now(), Some(p.id)).await?;
            let after = match after {
                Some(a) => a,
                None => outbox.store().get_post(p.id).await?.unwrap_or(p),
            };
            println!("post {}: {}", after.id, describe(&after));
            Ok(match after.status {
                Status::Posted | Status::Queued | Status::Sending => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            })
        }
    }
}

fn describe(p: &PostRecord) -> String {
    match p.status {
        Status::Posted => format!(
            "posted as {}{}",
            p.platform_id.as_deref().unwrap_or("?"),
            p.url.as_ref().map(|u| format!(" {u}")).unwrap_or_default()
        ),
        Status::Queued => format!(
            "queued, next attempt {}{}",
            format_time(p.not_before, chrono_tz::Tz::UTC),
            p.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        s => format!(
            "{}{}",
            s.name(),
            p.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}

fn print_queue(posts: &[PostRecord]) {
    println!(
        "{:>5}  {:<10} {:<16} {:<10} {:>3}  {:<25} TEXT",
        "ID", "STATUS", "ACCOUNT", "PLATFORM", "TRY", "DUE / POSTED"
    );
    for p in posts {
        let when = p.posted_at.unwrap_or(p.not_before);
        let text: String = p
            .content
            .text
            .chars()
            .take(40)
            .collect::<String>()
            .replace('\n', " ");
        println!(
            "{:>5}  {:<10} {:<16} {:<10} {:>3}  {:<25} {}",
            p.id,
            p.status.name(),
            p.account,
            p.platform.name(),
            p.attempts,
            format_time(when, chrono_tz::Tz::UTC),
            text
        );
        if let (Some(e), false) = (&p.error, p.status == Status::Posted) {
            println!("       {e}");
        }
    }
}

async fn refuse(outbox: &Outbox, id: i64, action: &str, allowed: &str) -> anyhow::Result<ExitCode> {
    match outbox.store().get_post(id).await? {
        Some(p) => anyhow::bail!(
            "cannot {action} post {id}: it is {}, and only {allowed} posts can be",
            p.status.name()
        ),
        None => anyhow::bail!(
            "cannot {action} post {id}: there is no such post (see dreamos social queue --all)"
        ),
    }
}

async fn accounts(outbox: &Outbox) -> anyhow::Result<()> {
    let config = &outbox.settings().accounts;
    if config.is_empty() {
        println!("no accounts: add [social.accounts.NAME] to dreamos.toml");
        return Ok(());
    }
    let budgets = outbox.store().budgets().await?;
    let now = now();
    for (name, a) in config {
        let caps = format!(
            "daily_max {}, hourly_max {}, min_gap {}",
            a.daily_max,
            a.hourly_max,
            crate::units::format_duration(a.min_gap)
        );
        println!("{name} ({}): {caps}", a.platform);
        if let Some(reason) = outbox.dry_run_reason(name)? {
            println!("    {reason}");
        }
        for (_, op, bucket, info, until) in budgets.iter().filter(|b| &b.0 == name) {
            let left = info["remaining"]
                .as_f64()
                .map(|r| format!(" remaining {r}"))
                .unwrap_or_default();
            match until.filter(|t| *t > now) {
                Some(t) => println!(
                    "    {op} {bucket}:{left} blocked until {}",
                    format_time(t, chrono_tz::Tz::UTC)
                ),
                None => println!("    {op} {bucket}:{left}"),
            }
        }
    }
    Ok(())
}
