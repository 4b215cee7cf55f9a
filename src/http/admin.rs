//! Administration routes, for the hotline office's operators and their tools. Disabled unless
//! `http.admin_token` is set; each request carries it as `Authorization: Bearer <token>`, and
//! every action leaves a row in the audit log.
//!
//! - `POST /api/admin/ivr/reload`: reload the IVR script, as SIGHUP does: new calls take the
//!   new version, calls in progress keep theirs; a version that fails validation is refused
//!   (422 with every problem as `FILE:LINE: reason`) and the script in force stays.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/ivr/reload", post(reload_ivr))
}

/// Compares in time independent of where the strings differ (a token is a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the bearer token: `None` when the request may go on, else the refusal to send.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = state.admin_token.as_deref() else {
        return Some(
            ApiError::NotFound("the admin API is not enabled (set http.admin_token)".into())
                .into_response(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same(g.as_bytes(), token.as_bytes()) => None,
        _ => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "a valid admin bearer token is required" })),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            Some(r)
        }
    }
}

async fn audit(state: &AppState, action: &str, subject: &str, detail: serde_json::Value) {
    let r = sqlx::query!(
        "INSERT INTO audit_log (actor, action, subject, detail) VALUES ('admin-token', $1, $2, $3)",
        action,
        subject,
        detail
    )
    .execute(&state.db)
    .await;
    if let Err(e) = r {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}

async fn reload_ivr(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&state, &headers) {
        return r;
    }
    let Some(store) = state.ivr.clone() else {
        return ApiError::NotFound("no IVR script is configured (ivr.script)".into())
            .into_response();
    };
    // Validation reads the file and may synthesise new text prompts: off the async threads.
    let result = tokio::task::spawn_blocking(move || store.reload()).await;
    match result {
        Ok(Ok(script)) => {
            let nodes = script.nodes.len();
            audit(
                &state,
                "ivr.reload",
                "ivr",
                serde_json::json!({ "nodes": nodes }),
            )
            .await;
            Json(serde_json::json!({ "reloaded": true, "nodes": nodes })).into_response()
        }
        Ok(Err(problems)) => {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            for p in &problems {
                tracing::error!("IVR script reload refused: {p}");
            }
            audit(
                &state,
                "ivr.reload.refused",
                "ivr",
                serde_json::json!({ "problems": problems }),
            )
            .await;
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({
                    "error": "the script has problems; the script in force stays",
                    "problems": problems,
                })),
            )
                .into_response()
        }
        Err(e) => ApiError::Internal(e.into()).into_response(),
    }
}
