//! A small HTTP/1.1 server on 127.0.0.1 for `dreamos.http` tests. One thread per
//! connection, `Connection: close`; routes:
//! `/json`, `/echo` (echoes method, path, body, x-token as JSON), `/status/<code>`,
//! `/slow` (answers after 5 s, for client timeouts), `/redirect-away` (302 to the same
//! server under the name `localhost`, which the tests do not grant), `/` (plain text).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

pub struct FakeHttp {
    pub port: u16,
}

impl FakeHttp {
    pub fn start() -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || handle(stream, port));
            }
        });
        FakeHttp { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn handle(stream: TcpStream, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut content_length = 0usize;
    let mut token = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => content_length = v.trim().parse().unwrap_or(0),
                "x-token" => token = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body).to_string();
    let route = path.split('?').next().unwrap_or("/").to_string();
    let (status, extra, content_type, payload) = match route.as_str() {
        "/json" => (
            200,
            String::new(),
            "application/json",
            r#"{"hello":"world"}"#.to_string(),
        ),
        "/echo" => {
            let v =
                serde_json::json!({"method": method, "path": path, "body": body, "token": token});
            (200, String::new(), "application/json", v.to_string())
        }
        "/slow" => {
            thread::sleep(Duration::from_secs(5));
            (200, String::new(), "text/plain", "late".to_string())
        }
        "/redirect-away" => (
            302,
            format!("Location: http://localhost:{port}/json\r\n"),
            "text/plain",
            String::new(),
        ),
        r if r.starts_with("/status/") => {
            let code = r.trim_start_matches("/status/").parse().unwrap_or(500);
            (code, String::new(), "text/plain", format!("status {code}"))
        }
        _ => (
            200,
            String::new(),
            "text/plain",
            "hello from the fake server".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{payload}",
        payload.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}
