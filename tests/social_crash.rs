//! kill -9 of `dreamos serve` while X is creating a post: the tweet exists, the daemon never
//! heard back. The next daemon reconciles the post from X's timeline and records it as
//! posted; X sees exactly one POST.
//!
//! A small proxy sits between the daemon and the fake X: it forwards every request, but
//! holds the answer to the first `POST /2/tweets` forever, so the daemon is stuck mid-call
//! at the moment it is killed.

mod fakes;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fakes::social::x::FakeX;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Forwards to `target`; while `hold` is set, the first tweet creation is forwarded and its
/// answer withheld.
async fn proxy(target: String, hold: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (target, hold) = (target.clone(), hold.clone());
            tokio::spawn(async move {
                let _ = forward(stream, &target, &hold).await;
            });
        }
    });
    format!("http://{addr}")
}

async fn forward(stream: TcpStream, target: &str, hold: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("connection") {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), format!("{target}{path}"));
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(std::io::Error::other)?;
        if method == "POST" && path == "/2/tweets" && hold.swap(false, Ordering::SeqCst) {
            // The tweet is created; its answer never comes back.
            std::future::pending::<()>().await;
        }
        let status = resp.status();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (k, v) in resp.headers() {
            if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
            }
        }
        let bytes = resp.bytes().await.map_err(std::io::Error::other)?;
        head.push_str(&format!("content-length: {}\r\n\r\n", bytes.len()));
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&bytes).await?;
    }
}

fn dreamos(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dreamos"));
    c.current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("T_X_ACCESS", "x-access-0")
        .args(args);
    c
}

fn serve(dir: &Path) -> Child {
    let _ = std::fs::remove_file(dir.join("data/daemon.json"));
    dreamos(dir, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn queue(dir: &Path) -> serde_json::Value {
    let o = dreamos(dir, &["social", "queue", "--all", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn kill_9_while_x_creates_the_post_then_restart_records_it_without_a_second_post() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeX::start());
    let hold = Arc::new(AtomicBool::new(true));
    let url = rt.block_on(proxy(fake.url.clone(), hold.clone()));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[log]\nconsole = \"off\"\n[daemon]\nport = 0\n\
         [social]\nsend_lease = \"1s\"\npoll_interval = \"100ms\"\n\
         [social.accounts.x-main]\nplatform = \"x\"\nbase_url = \"{url}\"\naccess_token_env = \"T_X_ACCESS\"\n"
    );
    std::fs::write(dir.path().join("dreamos.toml"), config).unwrap();
    let o = dreamos(
        dir.path(),
        &[
            "social",
            "post",
            "x-main",
            "posted while the daemon died",
            "--at",
            "+1s",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut first = serve(dir.path());
    wait_until("the tweet to exist at X", || fake.tweets().len() == 1);
    assert_eq!(
        queue(dir.path())[0]["status"],
        "sending",
        "the daemon is still waiting for X"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = serve(dir.path());
    wait_until("the post to be recorded", || {
        queue(dir.path())[0]["status"] == "posted"
    });
    second.kill().unwrap();
    second.wait().unwrap();

    let post = &queue(dir.path())[0];
    assert_eq!(post["platform_id"], fake.tweets()[0].id.as_str());
    assert_eq!(fake.tweets().len(), 1);
    let creates = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .count();
    assert_eq!(
        creates, 1,
        "reconciled from the timeline, never posted twice"
    );
}
