//! Who may use the HTTP side, and how a browser logs in.
//!
//! Two ways to present the daemon's token:
//! - `Authorization: Bearer <token>`: the CLI. A browser never adds this header on its own,
//!   so such requests cannot be forged by another site.
//! - the `dreamos_session` cookie, set by `POST /login` (HttpOnly so page scripts cannot
//!   read it, SameSite=Strict so other sites' pages do not carry it). Because a browser
//!   sends cookies by itself, a state-changing request that relies on the cookie must also
//!   carry the [`CSRF_HEADER`] (a custom header another origin cannot add without a CORS
//!   preflight, which this server never grants) and, when the browser says where it comes
//!   from, an `Origin` equal to this server's `Host`.

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{error, ApiError, ApiState};

/// The session cookie's name.
pub const COOKIE: &str = "dreamos_session";
/// The header the dashboard's scripts add to every state-changing request.
pub const CSRF_HEADER: &str = "x-dreamos-request";

/// How a request proved it knows the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Bearer,
    Cookie,
}

/// Constant-time comparison (the token is short; timing leaks matter little on loopback,
/// but it costs nothing).
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Which credential the request carries, if it is the right token.
pub fn credential(token: &str, headers: &HeaderMap) -> Option<Credential> {
    if bearer(headers).is_some_and(|t| same(t, token)) {
        return Some(Credential::Bearer);
    }
    cookie(headers, COOKIE)
        .is_some_and(|t| same(t, token))
        .then_some(Credential::Cookie)
}

/// Refuses requests without the token, and cookie-borne state changes without the
/// anti-forgery header or from another origin.
pub fn authorize(state: &ApiState, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    match credential(&state.token, headers) {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong token (see <data_dir>/daemon.token)",
        )),
        Some(Credential::Bearer) => Ok(()),
        Some(Credential::Cookie) if is_safe(method) => Ok(()),
        Some(Credential::Cookie) => check_same_origin(headers),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The anti-forgery checks for a cookie-authenticated state change.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |why: &str| error(StatusCode::FORBIDDEN, "forbidden", why.to_string());
    if !headers.contains_key(CSRF_HEADER) {
        return Err(forbidden(
            "state-changing requests from a browser need the X-Dreamos-Request header",
        ));
    }
    origin_matches_host(headers).map_err(|e| forbidden(&e))
}

/// `Origin` (when sent) must name this server: `http://<Host>`.
fn origin_matches_host(headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if !host.is_empty() && bare == host {
        Ok(())
    } else {
        Err(format!(
            "cross-origin request refused (Origin {origin}, Host {host})"
        ))
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: checks the token and sets the session cookie, then sends the browser to
/// the dashboard; a wrong token gets the login page again with a message.
pub async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(e) = origin_matches_host(&headers) {
        return (StatusCode::FORBIDDEN, e).into_response();
    }
    if !same(form.token.trim(), &state.token) {
        return (
            StatusCode::UNAUTHORIZED,
            super::assets::login_page(Some("wrong token: copy it from `dreamos dashboard`")),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        state.token
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
}

/// `POST /logout`: forgets the cookie.
pub async fn logout(headers: HeaderMap) -> Response {
    if let Err(e) = origin_matches_host(&headers) {
        return (StatusCode::FORBIDDEN, e).into_response();
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn bearer_or_cookie_with_the_right_token() {
        let t = "abc123";
        assert_eq!(
            credential(t, &headers(&[("authorization", "Bearer abc123")])),
            Some(Credential::Bearer)
        );
        assert_eq!(
            credential(t, &headers(&[("cookie", "a=1; dreamos_session=abc123")])),
            Some(Credential::Cookie)
        );
        assert_eq!(
            credential(t, &headers(&[("cookie", "dreamos_session=abc124")])),
            None
        );
        assert_eq!(
            credential(t, &headers(&[("authorization", "abc123")])),
            None
        );
        assert_eq!(credential(t, &HeaderMap::new()), None);
    }

    #[test]
    fn cookie_state_changes_need_the_header_and_the_same_origin() {
        let ok = headers(&[
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:7878"),
        ]);
        assert!(check_same_origin(&ok).is_ok());
        let no_header = headers(&[("host", "127.0.0.1:7878")]);
        assert!(check_same_origin(&no_header).is_err());
        let other_site = headers(&[
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:7878"),
            ("origin", "http://evil.example"),
        ]);
        let err = check_same_origin(&other_site).expect_err("cross-origin");
        assert!(err.message.contains("evil.example"), "{}", err.message);
    }
}
