//! The gateway websocket: one session at a time, plain-text JSON frames (serenity accepts
//! them even though it asks for compression).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::{user_json, Shared, APPLICATION_ID, BOT_USER_ID, GUILD_ID};

const SESSION_ID: &str = "fake-session-1";

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut seq: u64 = 0;
    while let Ok((stream, _)) = listener.accept().await {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            continue;
        };
        // "Unreachable": the connection hangs until the test lifts the hold.
        while shared.state.lock().unwrap().hold {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Sessions run one after the other: a reconnect is accepted once the old one ended.
        session(
            ws,
            &shared,
            &mut seq,
            listener.local_addr().map(|a| a.port()).unwrap_or(0),
        )
        .await;
        let mut s = shared.state.lock().unwrap();
        s.connected = false;
        shared.changed.notify_all();
    }
}

fn frame(op: u8, d: Value, s: Option<u64>, t: Option<&str>) -> Message {
    Message::Text(json!({"op": op, "d": d, "s": s, "t": t}).to_string())
}

async fn session(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shared: &Arc<Shared>,
    seq: &mut u64,
    port: u16,
) {
    // Discord asks for a heartbeat every 41.25 s; a client notices a connection that went
    // silent (a resume that never got its Hello) only at a missed heartbeat, so the fake
    // asks for one every second and tests see a drop within seconds, not most of a minute.
    if ws
        .send(frame(10, json!({"heartbeat_interval": 1000}), None, None))
        .await
        .is_err()
    {
        return;
    }
    let mut live = false;
    // The fake's own polling of the test's queue; the test itself never sleeps.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else {
                    if matches!(msg, Message::Close(_)) { return; }
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["op"].as_u64() {
                    Some(1) => {
                        shared.state.lock().unwrap().heartbeats += 1;
                        if ws.send(Message::Text(json!({"op": 11}).to_string())).await.is_err() {
                            return;
                        }
                    }
                    Some(2) => {
                        let token_ok = {
                            let s = shared.state.lock().unwrap();
                            // serenity sends the token as its HTTP client holds it ("Bot ...").
                            let given = v["d"]["token"].as_str().unwrap_or("");
                            given.trim_start_matches("Bot ") == s.token
                        };
                        if !token_ok {
                            let _ = ws.send(Message::Close(Some(CloseFrame {
                                code: CloseCode::Library(4004),
                                reason: "Authentication failed.".into(),
                            }))).await;
                            return;
                        }
                        *seq += 1;
                        let ready = json!({
                            "v": 10,
                            "user": user_json(BOT_USER_ID).as_object().map(|o| {
                                let mut o = o.clone();
                                o.insert("bot".into(), json!(true));
                                o.insert("verified".into(), json!(true));
                                o.insert("mfa_enabled".into(), json!(false));
                                o.insert("flags".into(), json!(0));
                                Value::Object(o)
                            }).unwrap_or_default(),
                            "guilds": [{"id": GUILD_ID.to_string(), "unavailable": true}],
                            "session_id": SESSION_ID,
                            "resume_gateway_url": format!("ws://127.0.0.1:{port}"),
                            "shard": [0, 1],
                            "application": {"id": APPLICATION_ID.to_string(), "flags": 0}
                        });
                        if ws.send(frame(0, ready, Some(*seq), Some("READY"))).await.is_err() {
                            return;
                        }
                        live = true;
                        let mut s = shared.state.lock().unwrap();
                        s.identifies += 1;
                        s.connected = true;
                        shared.changed.notify_all();
                    }
                    Some(6) => {
                        *seq += 1;
                        if ws.send(frame(0, json!({}), Some(*seq), Some("RESUMED"))).await.is_err() {
                            return;
                        }
                        live = true;
                        let mut s = shared.state.lock().unwrap();
                        s.resumes += 1;
                        s.connected = true;
                        shared.changed.notify_all();
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let (drop_now, pending) = {
                    let mut s = shared.state.lock().unwrap();
                    let drop_now = std::mem::take(&mut s.drop_requested);
                    let pending = if live && !drop_now { std::mem::take(&mut s.pending) } else { Vec::new() };
                    (drop_now, pending)
                };
                if drop_now {
                    // A network drop: no close frame, the TCP connection just ends.
                    return;
                }
                for (t, d) in pending {
                    *seq += 1;
                    if ws.send(frame(0, d, Some(*seq), Some(&t))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
