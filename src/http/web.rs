//! The pages people work in (the agent desktop at `/agent/`, the supervisors' wall board at
//! `/board/`), served from `http.web_dir`: the
//! project's own HTML, CSS and JavaScript with the SIP library bundled beside them by
//! `scripts/web.sh` (npm, pinned by `web/package-lock.json`). Every page carries a
//! Content-Security-Policy that runs only the pages' own scripts (no inline script, no other
//! origin but the node's own WebSocket), and may not be framed by another site.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// `/agent/...` and `/board/...` from `dir`.
pub fn routes(dir: PathBuf) -> Router {
    Router::new()
        .route("/agent", get(|| async { Redirect::permanent("/agent/") }))
        .route("/agent/", get(file))
        .route("/agent/{*path}", get(file))
        .route("/board", get(|| async { Redirect::permanent("/board/") }))
        .route("/board/", get(file))
        .route("/board/{*path}", get(file))
        .with_state(dir)
        .layer(axum::middleware::map_response(|mut r: Response| {
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(CSP),
            );
            std::future::ready(super::with_safety_headers(r))
        }))
}

/// What a page may load: its own scripts, styles, images and media; its own origin's API and
/// SIP WebSocket; nothing framed, no plugins, forms only to itself.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn file(State(dir): State<PathBuf>, uri: Uri) -> Response {
    let rel = uri.path().trim_start_matches('/');
    let rel = if rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    let Some(path) = safe_join(&dir, &rel) else {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&path)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let page = rel.split('/').next().unwrap_or_default();
            let hint = if !dir.join(page).exists() {
                " (the pages are not built: run scripts/web.sh)"
            } else {
                ""
            };
            (StatusCode::NOT_FOUND, format!("no such page{hint}")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot read a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the page").into_response()
        }
    }
}

/// `dir/rel` when `rel` stays inside `dir` (no `..`, no absolute part).
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Some(dir.join(rel))
    } else {
        None
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("wav") => "audio/wav",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_directory() {
        let d = Path::new("/srv/web");
        assert_eq!(
            safe_join(d, "agent/index.html"),
            Some(PathBuf::from("/srv/web/agent/index.html"))
        );
        assert_eq!(safe_join(d, "agent/../../etc/passwd"), None);
        assert_eq!(safe_join(d, "/etc/passwd"), None);
    }
}
