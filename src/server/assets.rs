//! The dashboard's files, compiled into the binary (no web server or Node build to run
//! it): one page, one script, one stylesheet, all plain. The script builds every element
//! with `textContent`, never `innerHTML`, so names, messages and log lines from scripts
//! are shown as text and cannot inject markup.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

use super::auth::{credential, Credential};
use super::ApiState;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// `GET /`: the dashboard for a logged-in browser, else the login form (which shows no
/// data at all).
pub async fn index(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match credential(&state.token, &headers) {
        Some(Credential::Cookie | Credential::Bearer) => Html(INDEX).into_response(),
        None => Html(login_page(None)).into_response(),
    }
}

/// The login form, with an optional message (escaped).
pub fn login_page(message: Option<&str>) -> String {
    let text = message.map(escape_html).unwrap_or_default();
    LOGIN.replace("{{message}}", &text)
}

/// `GET /assets/app.js` (behind the token: it is the dashboard's code).
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// `GET /assets/app.css` (public: the login form uses it, and it holds no data).
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Headers every response carries: scripts and styles only from this server (an injected
/// inline script would not run), no framing by other sites, no caching of data.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    // Not `no-referrer`: with it, browsers send `Origin: null` on form posts, which the
    // anti-forgery check must refuse.
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    response
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_message_is_escaped() {
        let page = login_page(Some("<script>alert(1)</script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>alert"));
    }

    #[test]
    fn the_script_never_writes_markup_from_strings() {
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(banned), "app.js uses {banned}");
        }
    }
}
