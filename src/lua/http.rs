//! `dreamos.http`: `request{method, url, headers, query, body, json, timeout, error_on_status}`,
//! `get(url, opts?)`, `post(url, opts?)`.
//!
//! Returns a response table `{status, ok, headers, body, url}` with `resp:json()`. Network
//! failures (refused, DNS, TLS, timeout, body too large) return `nil, err`; so does a non-2xx
//! status when `error_on_status = true`. Misuse (unknown option, bad URL, unsupported
//! scheme, host not granted) raises. Redirects are followed only to granted hosts.

use std::collections::BTreeMap;

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::support::{check_options, duration, fail, misuse, required_str};
use crate::runtime::{host, Grants};

const OPTIONS: &[&str] = &[
    "method",
    "url",
    "headers",
    "query",
    "body",
    "json",
    "timeout",
    "error_on_status",
];

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set(
        "request",
        lua.create_async_function(|lua, opts: Value| async move {
            let Value::Table(opts) = opts else {
                return Err(misuse(
                    &lua,
                    "http.request: expected a table {url = ..., method = ...}",
                ));
            };
            request(lua, "http.request", opts).await
        })?,
    )?;
    for (name, method) in [("get", "GET"), ("post", "POST")] {
        m.set(
            name,
            lua.create_async_function(
                move |lua, (url, opts): (Value, Option<Table>)| async move {
                    let func = format!("http.{name}");
                    let opts = match opts {
                        Some(t) => t,
                        None => lua.create_table()?,
                    };
                    if opts.contains_key("url")? || opts.contains_key("method")? {
                        return Err(misuse(
                            &lua,
                            format!("{func}: pass the url as the first argument, not in options"),
                        ));
                    }
                    opts.set("url", url)?;
                    opts.set("method", method)?;
                    request(lua, &func, opts).await
                },
            )?,
        )?;
    }
    Ok(m)
}

async fn request(lua: Lua, func: &str, opts: Table) -> mlua::Result<mlua::MultiValue> {
    check_options(&lua, func, &opts, OPTIONS)?;
    let url_text = required_str(&lua, func, "url", &opts.get("url")?)?;
    let mut url = reqwest::Url::parse(&url_text)
        .map_err(|e| misuse(&lua, format!("{func}: invalid url '{url_text}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(misuse(
            &lua,
            format!(
                "{func}: unsupported scheme '{}' in '{url_text}' (use http or https)",
                url.scheme()
            ),
        ));
    }
    let (client, max_body, default_timeout) = {
        let h = host(&lua)?;
        let host_name = url.host_str().unwrap_or_default();
        h.grants
            .check_net(host_name, url.port_or_known_default())
            .map_err(|m| misuse(&lua, format!("{func}: {m}")))?;
        let client = h
            .http
            .get_or_init(|| build_client(&h.grants, &h.config.http.user_agent))
            .clone();
        (client, h.config.http.max_body, h.config.http.timeout)
    };
    if let Some(query) = opts.get::<Option<Table>>("query")? {
        let mut pairs = url.query_pairs_mut();
        for pair in query.pairs::<String, Value>() {
            let (k, v) = pair?;
            pairs.append_pair(&k, &v.to_string()?);
        }
    }
    let method_text = opts
        .get::<Option<String>>("method")?
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method_text.as_bytes())
        .map_err(|_| misuse(&lua, format!("{func}: invalid method '{method_text}'")))?;
    let timeout = match opts.get::<Value>("timeout")? {
        Value::Nil => default_timeout,
        v => duration(&lua, func, "timeout", &v)?,
    };
    let mut req = client.request(method, url).timeout(timeout);
    if let Some(headers) = opts.get::<Option<Table>>("headers")? {
        for pair in headers.pairs::<String, String>() {
            let (k, v) = pair?;
            req = req.header(k, v);
        }
    }
    let body: Value = opts.get("body")?;
    let json: Value = opts.get("json")?;
    match (body, json) {
        (Value::Nil, Value::Nil) => {}
        (Value::String(s), Value::Nil) => req = req.body(s.as_bytes().to_vec()),
        (Value::Nil, json) => {
            let v: serde_json::Value = lua
                .from_value(json)
                .map_err(|e| misuse(&lua, format!("{func}: json: {e}")))?;
            req = req.json(&v);
        }
        (Value::String(_), _) => {
            return Err(misuse(&lua, format!("{func}: give body or json, not both")))
        }
        (other, _) => {
            return Err(misuse(
                &lua,
                format!(
                    "{func}: body must be a string, got {}",
                    super::support::type_name(&other)
                ),
            ))
        }
    }
    let error_on_status = opts
        .get::<Option<bool>>("error_on_status")?
        .unwrap_or(false);
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(&lua, error_kind(&e), describe(&e)),
    };
    let status = resp.status();
    if error_on_status && !status.is_success() {
        return fail(
            &lua,
            "http_status",
            format!("{} returned {status}", resp.url()),
        );
    }
    let final_url = resp.url().to_string();
    let mut headers = BTreeMap::new();
    for (k, v) in resp.headers() {
        headers.insert(
            k.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
    }
    let body = match read_body(resp, max_body).await {
        Ok(b) => b,
        Err((kind, message)) => return fail(&lua, kind, message),
    };
    let t = lua.create_table()?;
    t.set("status", status.as_u16())?;
    t.set("ok", status.is_success())?;
    t.set("url", final_url)?;
    t.set("headers", headers)?;
    t.set("body", lua.create_string(&body)?)?;
    t.set(
        "json",
        lua.create_function(|lua, this: Table| {
            let body: mlua::LuaString = this.get("body")?;
            let v: serde_json::Value = serde_json::from_slice(&body.as_bytes())
                .map_err(|e| misuse(lua, format!("response:json: body is not JSON: {e}")))?;
            lua.to_value_with(
                &v,
                mlua::serde::SerializeOptions::new().serialize_none_to_null(true),
            )
        })?,
    )?;
    Ok(mlua::MultiValue::from_iter([Value::Table(t)]))
}

/// One client per state: connection pooling, and redirects re-checked against the grants.
fn build_client(grants: &Grants, user_agent: &str) -> reqwest::Client {
    let grants = grants.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects (10)");
        }
        let url = attempt.url();
        match grants.check_net(
            url.host_str().unwrap_or_default(),
            url.port_or_known_default(),
        ) {
            Ok(()) => attempt.follow(),
            Err(m) => attempt.error(format!("redirect refused: {m}")),
        }
    });
    reqwest::Client::builder()
        .user_agent(user_agent)
        .redirect(policy)
        .build()
        .unwrap_or_default()
}

async fn read_body(
    mut resp: reqwest::Response,
    max: u64,
) -> Result<Vec<u8>, (&'static str, String)> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err((
                        "too_large",
                        format!(
                            "response body exceeds http.max_body ({})",
                            crate::units::format_bytes(max)
                        ),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err((error_kind(&e), describe(&e))),
        }
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_redirect() {
        "redirect"
    } else {
        "network"
    }
}

/// reqwest's Display hides the cause ("error sending request"); include the chain.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
