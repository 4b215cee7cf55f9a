//! Administration routes, for the hotline office's operators and their tools. Disabled unless
//! `http.admin_token` is set; each request carries it as `Authorization: Bearer <token>`, and
//! every action leaves a row in the audit log.
//!
//! - `POST /api/admin/ivr/reload`: reload the IVR script, as SIGHUP does: new calls take the
//!   new version, calls in progress keep theirs; a version that fails validation is refused
//!   (422 with every problem as `FILE:LINE: reason`) and the script in force stays.
//! - `POST /api/admin/calls/{call_id}/recording/pause` and `.../resume`: while personal data
//!   is read aloud the call's recording records silence (Art. 11); 404 when no such call is in
//!   progress. (The agent desktop, issue 9, will give agents the same switch.)

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/ivr/reload", post(reload_ivr))
        .route(
            "/api/admin/calls/{call_id}/recording/{action}",
            post(recording),
        )
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
    let r = crate::audit::record(&state.db, "admin-token", action, subject, detail).await;
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

async fn recording(
    State(state): State<AppState>,
    Path((call_id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&state, &headers) {
        return r;
    }
    let pause = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => {
            return ApiError::NotFound(format!("no recording action {action:?} (pause, resume)"))
                .into_response();
        }
    };
    let Some(engine) = state.engine.clone() else {
        return ApiError::Unavailable("calls are not handled by this node".into()).into_response();
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let control = crate::calls::RecordingControl {
        call_id: call_id.clone(),
        pause,
        reply,
    };
    if !engine.tell(crate::calls::Control::Recording(control)).await {
        return ApiError::Unavailable("the SIP engine has stopped".into()).into_response();
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), answer).await {
        Ok(Ok(true)) => {
            let what = if pause {
                "recording.pause"
            } else {
                "recording.resume"
            };
            audit(
                &state,
                what,
                &format!("call:{call_id}"),
                serde_json::json!({}),
            )
            .await;
            Json(serde_json::json!({
                "call_id": call_id,
                "recording": if pause { "paused" } else { "recording" },
            }))
            .into_response()
        }
        Ok(_) => ApiError::NotFound(format!("no call {call_id:?} in progress")).into_response(),
        Err(_) => ApiError::Unavailable("the call handler did not answer".into()).into_response(),
    }
}
