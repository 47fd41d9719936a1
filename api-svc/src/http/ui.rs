//! The web UI at `/ui/`: plain HTML, CSS and JavaScript modules from `api-svc/ui/`,
//! embedded in the binary at compile time (no build step, no CDN).
//!
//! Every answer carries a strict Content-Security-Policy (only this origin; WebSocket
//! connections allowed), `nosniff`, no framing, and an `ETag` (SHA-256 of the asset) with
//! `Cache-Control: no-cache`, so browsers revalidate cheaply (304) and always pick up a new
//! version after an upgrade. `/ui` redirects to `/ui/`; unknown `/ui/...` paths are 404.
//! The client side routes with the URL fragment (`/ui/#/calendar`), so no server-side
//! fallback to `index.html` is needed. These routes are deliberately not part of the
//! OpenAPI document (they are not API).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// The policy of every UI answer.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Path below `/ui/`.
    pub(crate) path: &'static str,
    /// `Content-Type` header value.
    pub(crate) content_type: &'static str,
    /// The bytes.
    pub(crate) body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $ty:expr) => {
        Asset {
            path: $path,
            content_type: $ty,
            body: include_bytes!(concat!("../../ui/", $path)),
        }
    };
}

/// Every file of the UI.
pub(crate) static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/time.js", JS),
    asset!("js/session.js", JS),
    asset!("js/auth.js", JS),
    asset!("js/calendar.js", JS),
    asset!("js/drag.js", JS),
    asset!("js/editor.js", JS),
    asset!("js/groups.js", JS),
    asset!("js/notifications.js", JS),
    asset!("js/live.js", JS),
    asset!("js/profile.js", JS),
    asset!("js/cluster.js", JS),
];

/// Strong ETags, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            format!("\"{}\"", hex::encode(&digest[..12]))
        })
        .collect()
});

/// Routes of the UI (not documented in OpenAPI: not API).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/ui", get(to_index))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn to_index() -> Redirect {
    Redirect::permanent("/ui/")
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|e| e.into_response())
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers).unwrap_or_else(|e| e.into_response())
}

/// Position of `path` in [`ASSETS`].
fn find(path: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.path == path)
}

/// Whether an `If-None-Match` header matches `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn serve(path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let i = find(path).ok_or_else(|| ApiError::NotFound("page".into()))?;
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let mut response = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(ASSETS[find(path).unwrap()].body).unwrap()
    }

    /// Every `needle"…"` (or `needle'…'`) value in `haystack`.
    fn quoted_after<'a>(haystack: &'a str, needle: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut rest = haystack;
        while let Some(at) = rest.find(needle) {
            rest = &rest[at + needle.len()..];
            let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            if let Some(end) = rest[1..].find(q) {
                out.push(&rest[1..=end]);
                rest = &rest[end + 1..];
            }
        }
        out
    }

    #[test]
    fn asset_paths_are_unique_and_typed() {
        let paths: BTreeSet<_> = ASSETS.iter().map(|a| a.path).collect();
        assert_eq!(paths.len(), ASSETS.len());
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            let want = match a.path.rsplit('.').next() {
                Some("html") => HTML,
                Some("css") => CSS,
                Some("js") => JS,
                Some("svg") => SVG,
                other => panic!("unexpected extension {other:?}"),
            };
            assert_eq!(a.content_type, want, "{}", a.path);
        }
    }

    #[test]
    fn the_page_and_the_modules_reference_only_embedded_files() {
        let html = text("index.html");
        let refs: Vec<_> = quoted_after(html, "src=")
            .into_iter()
            .chain(quoted_after(html, "href="))
            .filter(|r| !r.starts_with('#'))
            .collect();
        assert!(!refs.is_empty());
        for r in refs {
            let local = r.strip_prefix("/ui/").unwrap_or(r);
            assert!(find(local).is_some(), "index.html refers to {r}, which is not embedded");
        }
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let src = std::str::from_utf8(a.body).unwrap();
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            let imports = quoted_after(src, "from ")
                .into_iter()
                .chain(quoted_after(src, "import("));
            for import in imports {
                let rel = import.strip_prefix("./").expect("relative import");
                let full = if dir.is_empty() {
                    rel.to_owned()
                } else {
                    format!("{dir}/{rel}")
                };
                assert!(
                    find(&full).is_some(),
                    "{} imports {import}, which is not embedded",
                    a.path
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = text("index.html");
        assert!(!html.contains("<script>"), "inline scripts break the CSP");
        assert!(!html.contains("<style"), "inline styles break the CSP");
        assert!(!html.contains(" style="), "style attributes break the CSP");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resources"
        );
    }

    #[test]
    fn answers_carry_type_policy_and_revalidation() {
        let r = serve("app.css", &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CSS);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'")
        );
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("app.css", &h).unwrap().status(), StatusCode::NOT_MODIFIED);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(serve("app.css", &h).unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for p in ["", "nope.js", "../Cargo.toml", "js/", "js/../index.html"] {
            assert!(matches!(serve(p, &HeaderMap::new()), Err(ApiError::NotFound(_))), "{p}");
        }
    }
}
