//! `dreamos repl --attach`: the REPL's [`Evaluator`] over the daemon's control API. The
//! frontends (terminal, piped) are the plain REPL's; only where chunks run changes. What a
//! chunk prints comes back with its result and is printed here, before the result.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::repl::eval::{Chunk, Completion, Evaluator, Mode, Outcome};
use crate::config::Config;
use crate::server::files;
use crate::server::repl::{outcome_of, CompleteReply, EvalReply};

pub struct RemoteEvaluator {
    http: reqwest::Client,
    /// `http://addr/api/repl/<id>`
    base: String,
    token: String,
    preloaded: Vec<String>,
}

impl RemoteEvaluator {
    /// Finds the daemon and opens a session in it.
    pub async fn connect(config: &Arc<Config>) -> anyhow::Result<RemoteEvaluator> {
        let data_dir = config.resolve(&config.runtime.data_dir);
        let (info, token) = files::find_daemon(&data_dir)?;
        // No overall timeout: a chunk may legitimately run long (Ctrl-C stops it).
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let root = format!("http://{}", info.addr);
        let resp = http
            .post(format!("{root}/api/repl"))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "no dreamos daemon is answering at {root} (pid {}): {e}",
                    info.pid
                )
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!(
                "{}",
                body["error"]
                    .as_str()
                    .unwrap_or("the daemon refused a REPL session")
            );
        }
        let id = body["session"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("the daemon answered without a session id"))?;
        let preloaded = body["preloaded"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(RemoteEvaluator {
            http,
            base: format!("{root}/api/repl/{id}"),
            token,
            preloaded,
        })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Value,
    ) -> Result<T, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("lost the daemon: {e}"))?;
        if !resp.status().is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(body["error"]
                .as_str()
                .unwrap_or("the daemon refused")
                .to_string());
        }
        resp.json::<T>()
            .await
            .map_err(|e| format!("unreadable answer from the daemon: {e}"))
    }
}

impl Drop for RemoteEvaluator {
    fn drop(&mut self) {
        // Best effort: a session left open ends with the daemon anyway.
        let (http, url, token) = (self.http.clone(), self.base.clone(), self.token.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = http.delete(url).bearer_auth(token).send().await;
            });
        }
    }
}

impl Evaluator for RemoteEvaluator {
    async fn eval(&mut self, chunk: Chunk<'_>) -> Outcome {
        let mode = match chunk.mode {
            Mode::Prompt => "prompt",
            Mode::Final => "final",
            Mode::Script => "script",
        };
        let body = json!({
            "source": String::from_utf8_lossy(chunk.source),
            "name": chunk.name,
            "mode": mode,
        });
        match self.post::<EvalReply>("/eval", body).await {
            Ok(mut reply) => {
                if !reply.output.is_empty() {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(std::mem::take(&mut reply.output).as_bytes());
                    let _ = out.flush();
                }
                outcome_of(reply)
            }
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn complete(&mut self, line: &str, pos: usize) -> Completion {
        match self
            .post::<CompleteReply>("/complete", json!({ "line": line, "pos": pos }))
            .await
        {
            Ok(c) => Completion {
                start: c.start,
                candidates: c.candidates,
            },
            Err(_) => Completion::default(),
        }
    }

    fn preloaded(&self) -> Vec<String> {
        self.preloaded.clone()
    }

    async fn settle(&mut self) {}
}
