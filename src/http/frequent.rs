//! Frequent callers for supervisors ([`crate::acd::frequent`]; Art. 12, 34):
//!
//! - `GET /api/frequent-callers`: the numbers over `acd.frequent_calls_per_hour` in the last
//!   hour, the most first, then those routed, each with its calls of the last 24 hours, its
//!   ticket count and its route (full numbers: the read is audited)
//! - `PUT /api/frequent-callers/{number}/route` `{"queue", "note"}`: its calls wait in that
//!   queue from now on (audited); `DELETE` the same path sends them back to the IVR's queue
//!
//! A number is never blocked: the worst a supervisor can do is send it to a queue of its own.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Authed;
use super::{ApiError, AppState};
use crate::acd::frequent;
use crate::acd::service::Command;
use crate::users::Role;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/frequent-callers", get(list))
        .route(
            "/api/frequent-callers/{number}/route",
            axum::routing::put(set_route).delete(clear_route),
        )
}

/// The longest number a route takes (an E.164 number has at most 15 digits; room for a
/// prefix).
const MAX_NUMBER: usize = 32;

fn check_number(number: &str) -> Result<(), ApiError> {
    let ok = !number.is_empty()
        && number.len() <= MAX_NUMBER
        && number
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'+'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "{number:?} is not a telephone number (digits, a leading + allowed, at most \
             {MAX_NUMBER})"
        )))
    }
}

async fn list(user: Authed, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let me = user.require(&[Role::Supervisor], "reading frequent callers")?;
    let now = state.tickets.clock.now();
    let callers = frequent::list(&state.db, state.frequent_calls_per_hour, now).await?;
    crate::audit::record(
        &state.db,
        &me.username,
        "frequent.read",
        "frequent-callers",
        json!({ "numbers": callers.len() }),
    )
    .await?;
    let callers: Vec<Value> = callers
        .into_iter()
        .map(|f| {
            let masked = crate::mask::mask_number(&f.caller);
            let mut v = serde_json::to_value(&f).unwrap_or_default();
            v["caller_masked"] = Value::String(masked);
            v
        })
        .collect();
    Ok(Json(json!({
        "threshold": state.frequent_calls_per_hour,
        "callers": callers,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    queue: String,
    #[serde(default)]
    note: String,
}

async fn set_route(
    user: Authed,
    State(state): State<AppState>,
    Path(number): Path<String>,
    Json(body): Json<RouteBody>,
) -> Result<Json<Value>, ApiError> {
    let me = user.require(&[Role::Supervisor], "routing frequent callers")?;
    check_number(&number)?;
    if body.note.chars().count() > 500 {
        return Err(ApiError::Unprocessable(
            "the note is longer than 500 characters".into(),
        ));
    }
    let acd = state
        .acd
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the ACD is not running on this node".into()))?;
    let snapshot = acd
        .snapshot()
        .await
        .ok_or_else(|| ApiError::Unavailable("the ACD has stopped".into()))?;
    if !snapshot.queues.iter().any(|q| q.name == body.queue) {
        let known: Vec<&str> = snapshot.queues.iter().map(|q| q.name.as_str()).collect();
        return Err(ApiError::Unprocessable(format!(
            "no queue {:?}: the queues are {}",
            body.queue,
            known.join(", ")
        )));
    }
    let route =
        frequent::set_route(&state.db, &number, &body.queue, &body.note, &me.username).await?;
    acd.send(Command::Reroute {
        caller: number.clone(),
        queue: Some(body.queue.clone()),
    });
    crate::audit::record(
        &state.db,
        &me.username,
        "frequent.route",
        &format!("caller:{}", crate::mask::mask_number(&number)),
        json!({ "queue": body.queue, "note": body.note }),
    )
    .await?;
    Ok(Json(json!({
        "caller": number,
        "queue": route.queue,
        "note": route.note,
        "set_by": route.set_by,
        "set_at": route.set_at,
    })))
}

async fn clear_route(
    user: Authed,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = user.require(&[Role::Supervisor], "routing frequent callers")?;
    check_number(&number)?;
    if !frequent::clear_route(&state.db, &number).await? {
        return Err(ApiError::NotFound(format!(
            "{} has no route",
            crate::mask::mask_number(&number)
        )));
    }
    if let Some(acd) = &state.acd {
        acd.send(Command::Reroute {
            caller: number.clone(),
            queue: None,
        });
    }
    crate::audit::record(
        &state.db,
        &me.username,
        "frequent.unroute",
        &format!("caller:{}", crate::mask::mask_number(&number)),
        json!({}),
    )
    .await?;
    Ok(Json(json!({ "caller": number, "queue": null })))
}
