//! What citizens can do without an account (REGULATION.md Art. 13, 14): learn a ticket's
//! progress and result, rate the handling, and object to the reply, each by the ticket number
//! plus the last four digits of the phone number given on the ticket. The IVR's
//! `ticket_status` node asks the same question.
//!
//! - `GET /api/public/tickets/{number}?phone_last4=1234`
//! - `POST /api/public/tickets/{number}/rating` `{"phone_last4", "score": 1-5, "comment"}`
//! - `POST /api/public/tickets/{number}/objection` `{"phone_last4", "reason"}`: the ticket goes
//!   back to the same unit with a fresh time limit
//!
//! A wrong number and a wrong four digits get the same 404. After five wrong tries on one
//! ticket, or twenty from one address, each further try waits (429 with Retry-After: 30 s,
//! doubling up to an hour), so the four digits cannot be guessed by trying all 10,000; the
//! tries are counted atomically (see [`citizen`]). Successful reads are in the audit log.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, AppState};
use crate::tickets::citizen::{self, Lookup};
use crate::tickets::store::{self, By, Step, TicketRow};
use crate::tickets::workflow::Actor;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/public/tickets/{number}", get(status))
        .route("/api/public/tickets/{number}/rating", post(rate))
        .route("/api/public/tickets/{number}/objection", post(object))
}

/// The ticket, when `last4` proves the caller may see it.
async fn check(
    state: &AppState,
    from: &axum::http::Extensions,
    number: &str,
    last4: &str,
) -> Result<TicketRow, ApiError> {
    let source = from
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    match citizen::lookup(&state.db, number, last4, "citizen", &source).await? {
        Lookup::Found(t) => Ok(*t),
        Lookup::NotFound => Err(ApiError::NotFound(
            "no ticket with this number and these last four digits of the phone".into(),
        )),
        Lookup::Throttled(secs) => Err(ApiError::Wait {
            message: format!("too many wrong attempts; try again in {secs} s"),
            retry_after: secs,
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proof {
    phone_last4: String,
}

async fn status(
    State(state): State<AppState>,
    from: axum::http::Extensions,
    Path(number): Path<String>,
    Query(p): Query<Proof>,
) -> Result<Json<Value>, ApiError> {
    let t = check(&state, &from, &number, &p.phone_last4).await?;
    Ok(Json(store::public_view(&state.db, &t).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rating {
    phone_last4: String,
    score: i16,
    #[serde(default)]
    comment: String,
}

async fn rate(
    State(state): State<AppState>,
    from: axum::http::Extensions,
    Path(number): Path<String>,
    Json(r): Json<Rating>,
) -> Result<Json<Value>, ApiError> {
    let t = check(&state, &from, &number, &r.phone_last4).await?;
    store::rate(&state.db, &state.tickets, &t, r.score, &r.comment).await?;
    let t = store::get(&state.db, &number).await?;
    Ok(Json(store::public_view(&state.db, &t).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Objection {
    phone_last4: String,
    reason: String,
}

async fn object(
    State(state): State<AppState>,
    from: axum::http::Extensions,
    Path(number): Path<String>,
    Json(o): Json<Objection>,
) -> Result<Json<Value>, ApiError> {
    let t = check(&state, &from, &number, &o.phone_last4).await?;
    let by = By {
        name: "citizen".into(),
        actor: Actor::Citizen,
    };
    let step = Step::Object { reason: o.reason };
    let t = store::apply(&state.db, &state.tickets, &t.number, t.version, &step, &by).await?;
    Ok(Json(store::public_view(&state.db, &t).await?))
}
