//! What citizens can do without an account (REGULATION.md Art. 13, 14): learn a ticket's
//! progress and result, rate the handling, and object to the reply, each by the ticket number
//! plus the six-digit access code told at intake (the last four digits of the phone may be
//! given as well, as a second factor; alone they open nothing). The IVR's `ticket_status` node
//! asks the same question.
//!
//! - `GET /api/public/tickets/{number}?access_code=123456[&phone_last4=5678]`
//! - `POST /api/public/tickets/{number}/rating`
//!   `{"access_code", "phone_last4"?, "score": 1-5, "comment"}`
//! - `POST /api/public/tickets/{number}/objection` `{"access_code", "phone_last4"?, "reason"}`:
//!   the ticket goes back to the same unit with a fresh time limit
//!
//! A wrong number, code or digits get the same 404. After five wrong tries on one ticket, or
//! twenty from one address, each further try waits (429 with Retry-After: 30 s, doubling up to
//! an hour); the tries are counted atomically (see [`citizen`]). Successful reads are in the
//! audit log.

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

/// The ticket, when `proof` shows the caller may see it.
async fn check(
    state: &AppState,
    from: &axum::http::Extensions,
    number: &str,
    proof: &Proof,
) -> Result<TicketRow, ApiError> {
    let proof = proof.checked()?;
    let source = from
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    match citizen::lookup(&state.db, number, &proof, "citizen", &source).await? {
        Lookup::Found(t) => Ok(*t),
        Lookup::NotFound => Err(ApiError::NotFound(
            "no ticket with this number and this access code".into(),
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
    access_code: String,
    phone_last4: Option<String>,
}

impl Proof {
    /// The proof in the citizen module's terms; 400 when it cannot be one (a malformed code
    /// is not a wrong try: it is not counted).
    fn checked(&self) -> Result<citizen::Proof, ApiError> {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(&self.access_code, 6) {
            return Err(ApiError::BadRequest(
                "access_code is the six digits given with the ticket number".into(),
            ));
        }
        if let Some(d) = &self.phone_last4
            && !digits(d, 4)
        {
            return Err(ApiError::BadRequest(
                "phone_last4 is four digits (or leave it out)".into(),
            ));
        }
        Ok(citizen::Proof {
            access_code: self.access_code.clone(),
            phone_last4: self.phone_last4.clone(),
        })
    }
}

async fn status(
    State(state): State<AppState>,
    from: axum::http::Extensions,
    Path(number): Path<String>,
    Query(p): Query<Proof>,
) -> Result<Json<Value>, ApiError> {
    let t = check(&state, &from, &number, &p).await?;
    Ok(Json(store::public_view(&state.db, &t).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rating {
    access_code: String,
    phone_last4: Option<String>,
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
    let proof = Proof {
        access_code: r.access_code,
        phone_last4: r.phone_last4,
    };
    let t = check(&state, &from, &number, &proof).await?;
    store::rate(&state.db, &state.tickets, &t, r.score, &r.comment).await?;
    let t = store::get(&state.db, &number).await?;
    Ok(Json(store::public_view(&state.db, &t).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Objection {
    access_code: String,
    phone_last4: Option<String>,
    reason: String,
}

async fn object(
    State(state): State<AppState>,
    from: axum::http::Extensions,
    Path(number): Path<String>,
    Json(o): Json<Objection>,
) -> Result<Json<Value>, ApiError> {
    let proof = Proof {
        access_code: o.access_code,
        phone_last4: o.phone_last4,
    };
    let t = check(&state, &from, &number, &proof).await?;
    let by = By {
        name: "citizen".into(),
        actor: Actor::Citizen,
    };
    let step = Step::Object { reason: o.reason };
    let t = store::apply(&state.db, &state.tickets, &t.number, t.version, &step, &by).await?;
    Ok(Json(store::public_view(&state.db, &t).await?))
}
