//! The daemon's HTTP side without a browser: refusals without the token and of forged
//! cross-site requests, the dead-letter API, and the modes of the files the daemon writes.

#[path = "support/backend.rs"]
mod backend;

#[path = "support/daemon.rs"]
mod daemon;

use std::time::Duration;

use daemon::{dreamos, runtime, start_daemon};

#[test]
fn the_daemon_keeps_its_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = start_daemon();
    let p = d.dir.path();
    let log = p.join("logs/dreamos.jsonl");
    let started = std::time::Instant::now();
    while !log.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no log file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mode = |f: &str| {
        std::fs::metadata(p.join(f))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    for dir in ["data", "logs"] {
        assert_eq!(mode(dir), 0o700, "{dir}");
    }
    for file in [
        "data/daemon.token",
        "data/daemon.json",
        "data/daemon.lock",
        "data/dreamos.db",
        "logs/dreamos.jsonl",
    ] {
        if file.ends_with(".db") && backend::postgres() {
            continue;
        }
        assert_eq!(mode(file), 0o600, "{file}");
    }
}

#[test]
fn the_http_side_refuses_requests_without_the_token_and_forged_ones() {
    let d = start_daemon();
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let url = |p: &str| format!("http://{}{p}", d.addr);
        for path in [
            "/api/agents",
            "/api/tasks",
            "/api/events",
            "/api/logs",
            "/assets/app.js",
        ] {
            let r = client.get(url(path)).send().await.expect("get");
            assert_eq!(r.status(), 401, "{path} without a token");
        }
        // The login page shows a form and no data.
        let page = client
            .get(url("/"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        assert!(
            page.contains("name=\"token\"") && !page.contains("scout"),
            "{page}"
        );
        // A wrong token does not log in.
        let r = client
            .post(url("/login"))
            .form(&[("token", "nope")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401);
        let r = client
            .post(url("/login"))
            .form(&[("token", d.token.as_str())])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 303);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let session = cookie.split(';').next().expect("pair").to_string();
        // With the cookie: reads work; a state change needs the header and our origin.
        let r = client
            .get(url("/api/agents"))
            .header("cookie", &session)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
        let restart = url("/api/agents/scout/restart");
        let r = client
            .post(&restart)
            .header("cookie", &session)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "cookie without the anti-forgery header");
        let r = client
            .post(&restart)
            .header("cookie", &session)
            .header("x-dreamos-request", "1")
            .header("origin", "http://evil.example")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "another site's origin");
        let status: serde_json::Value = client
            .get(url("/api/agents/scout"))
            .bearer_auth(&d.token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            status["restarts"], 0,
            "a refused request changed nothing: {status}"
        );
        // `dreamos dashboard` tells where to log in and with what.
        let out = dreamos(d.dir.path(), &["dashboard", "--no-open"]);
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.contains(&format!("http://{}/", d.addr)),
            "{printed}"
        );
        assert!(printed.contains(&d.token), "{printed}");
        // Health and metrics are open (read-only).
        let r = client.get(url("/health")).send().await.expect("get");
        assert_eq!(r.status(), 200);
        let metrics = client
            .get(url("/metrics"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains("dreamos_agents{state=\"running\"} 2"),
            "{metrics}"
        );
    });
}

#[test]
fn a_dead_letter_is_listed_and_retried_through_the_api() {
    let d = start_daemon();
    runtime().block_on(async {
        // A message that failed for good, made with the library on the daemon's database.
        let store = backend::open(d.dir.path()).await;
        let bus = dreamos::bus::Bus::new(store, dreamos::bus::BusConfig::default()).expect("bus");
        let receipt = bus
            .send(
                "test",
                "jobs",
                &serde_json::json!({"job": 1}),
                Default::default(),
            )
            .await
            .expect("send");
        let delivery = bus
            .recv("jobs", Some(Duration::from_secs(30)))
            .await
            .expect("recv")
            .expect("a delivery");
        bus.nack(&delivery, "cannot do job 1", false)
            .await
            .expect("nack");
        let client = reqwest::Client::new();
        let get = |path: &str| {
            client
                .get(format!("http://{}{path}", d.addr))
                .bearer_auth(&d.token)
                .send()
        };
        let dead: serde_json::Value = get("/api/bus/dead")
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let ids: Vec<i64> = dead
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|m| m["id"].as_i64())
            .collect();
        assert_eq!(ids, [receipt.id()], "{dead}");
        assert_eq!(dead[0]["error"], "cannot do job 1");
        let r = client
            .post(format!(
                "http://{}/api/bus/dead/{}/retry",
                d.addr,
                receipt.id()
            ))
            .bearer_auth(&d.token)
            .send()
            .await
            .expect("retry");
        assert_eq!(r.status(), 200);
        let dead: serde_json::Value = get("/api/bus/dead")
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(dead, serde_json::json!([]));
        let again = bus
            .recv("jobs", Some(Duration::from_secs(30)))
            .await
            .expect("recv")
            .expect("delivered again");
        assert_eq!(again.message.payload, serde_json::json!({"job": 1}));
        // Retrying something that is not dead says so.
        let r = client
            .post(format!(
                "http://{}/api/bus/dead/{}/retry",
                d.addr,
                receipt.id()
            ))
            .bearer_auth(&d.token)
            .send()
            .await
            .expect("retry");
        assert_eq!(r.status(), 409);
    });
}
