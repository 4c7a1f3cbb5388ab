//! The REST side: records every request and answers with the shapes Discord returns.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{message_json, user_json, Call, Shared, APPLICATION_ID, BOT_USER_ID};

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, gateway_port: u16) {
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move { handle(&shared, gateway_port, method, uri, headers, body) }
        },
    );
    let _ = axum::serve(listener, app).await;
}

fn error(code: StatusCode, message: &str, discord_code: u32) -> Response {
    (
        code,
        Json(json!({"message": message, "code": discord_code})),
    )
        .into_response()
}

fn handle(
    shared: &Shared,
    gateway_port: u16,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/api/v10") else {
        return error(StatusCode::NOT_FOUND, "404: Not Found", 0);
    };
    let path = path.to_string();
    let (body_json, files) = parse_body(&headers, &body);
    let call = Call {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        body: body_json.clone(),
        files,
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Interaction and webhook routes carry their credential in the URL, as on Discord.
    let url_credential = matches!(parts.first(), Some(&"interactions") | Some(&"webhooks"));
    let mut state = shared.state.lock().unwrap();
    if state.hold {
        // Discord down as a whole: its edge answers 503 and the request goes nowhere.
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "503: Service Unavailable",
            0,
        );
    }
    if !url_credential && parts != ["gateway"] {
        let expected = format!("Bot {}", state.token);
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given != expected {
            state.calls.push(call);
            shared.changed.notify_all();
            return error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0);
        }
    }
    let id = state.snowflake();
    state.calls.push(call);
    shared.changed.notify_all();
    drop(state);
    let bot = || {
        let mut u = user_json(BOT_USER_ID);
        u["bot"] = json!(true);
        u
    };
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["gateway"]) => Json(json!({"url": format!("ws://127.0.0.1:{gateway_port}")})).into_response(),
        ("GET", ["gateway", "bot"]) => Json(json!({
            "url": format!("ws://127.0.0.1:{gateway_port}"), "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
        }))
        .into_response(),
        ("GET", ["users", "@me"]) => {
            let mut u = bot();
            u["verified"] = json!(true);
            u["mfa_enabled"] = json!(false);
            u["flags"] = json!(0);
            Json(u).into_response()
        }
        ("PUT", ["applications", _, "commands"]) | ("PUT", ["applications", _, "guilds", _, "commands"]) => {
            let guild = parts.get(3).filter(|_| parts.len() == 5).map(|g| g.to_string());
            let commands: Vec<Value> = body_json
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["id"] = json!((id + i as u64).to_string());
                    c["application_id"] = json!(APPLICATION_ID.to_string());
                    c["version"] = json!("1");
                    c["type"] = c.get("type").cloned().unwrap_or(json!(1));
                    c["default_member_permissions"] = json!(null);
                    if let Some(g) = &guild {
                        c["guild_id"] = json!(g);
                    }
                    c
                })
                .collect();
            Json(Value::Array(commands)).into_response()
        }
        ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["webhooks", app, _]) if *app == APPLICATION_ID.to_string() => {
            let mut m = message_json(id, 1, body_json["content"].as_str().unwrap_or(""), bot());
            m["embeds"] = body_json.get("embeds").cloned().unwrap_or(json!([]));
            m["webhook_id"] = json!(APPLICATION_ID.to_string());
            Json(m).into_response()
        }
        ("PATCH", ["webhooks", _, _, "messages", _]) => {
            Json(message_json(id, 1, body_json["content"].as_str().unwrap_or(""), bot())).into_response()
        }
        // A plain webhook (alerts): 204 unless `?wait=true`.
        ("POST", ["webhooks", _, _]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["channels", channel, "messages"]) => {
            let channel = channel.parse::<u64>().unwrap_or(0);
            let mut m = message_json(id, channel, body_json["content"].as_str().unwrap_or(""), bot());
            m["embeds"] = body_json.get("embeds").cloned().unwrap_or(json!([]));
            Json(m).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "404: Not Found", 0),
    }
}

/// The JSON body, or a multipart body's `payload_json` plus its files.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> (Value, Vec<(String, String)>) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(body).to_string();
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return (
            serde_json::from_str(&text).unwrap_or(Value::Null),
            Vec::new(),
        );
    };
    let boundary = format!("--{}", boundary.trim_matches('"'));
    let mut payload = Value::Null;
    let mut files = Vec::new();
    for part in text.split(&boundary) {
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let content = content.trim_end_matches("\r\n").to_string();
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        if name == "payload_json" {
            payload = serde_json::from_str(&content).unwrap_or(Value::Null);
        } else if let Some(filename) = head
            .split("filename=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            files.push((filename.to_string(), content));
        }
    }
    (payload, files)
}
