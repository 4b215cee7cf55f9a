//! The staff side of the ticket workflow (issue 7): intake, the lifecycle steps, lists and
//! filters, supervision, revisits, duplicates, scorecards and the audit log, each behind the
//! roles the regulation gives (Art. 8, 9).
//!
//! Who sees what: the hotline office (intake, dispatcher, supervisor) sees every ticket and its
//! caller; unit staff see only their unit's tickets (lead or co-handling; 403 otherwise) and
//! never a confidential caller's identity or recording (Art. 11); analysts and administrators
//! see tickets without personal data. The office also sees the citizen's access code (to tell
//! it again to a citizen who lost it); nobody else does. Lists show no more of a number than
//! the role needs: the office `138****5678`, a unit the last four digits (`*******5678`) and
//! nothing of a confidential caller, analysts and administrators nothing. Every answer that
//! carries a caller's identity is written to the audit log first (Art. 7, 33, 36); when that
//! write fails, the data is not sent.
//!
//! Changes carry the `version` the client read; a stale one gets 409 naming the current
//! version and state, and so does a step the current state does not allow.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, NaiveDate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Authed;
use super::export::{self, Format};
use super::{ApiError, AppState};
use crate::mask::{mask_number, mask_tail};
use crate::tickets::store::{
    self, By, Filed, Filter, IdempotencyKey, NewTicket, Step, Summary, TicketRow,
};
use crate::tickets::workflow::Actor;
use crate::users::{Role, User};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tickets", get(list).post(create))
        .route("/api/tickets/{number}", get(show))
        .route("/api/tickets/{number}/history", get(history))
        .route("/api/tickets/{number}/actions", post(act))
        .route("/api/tickets/{number}/duplicates", get(duplicates))
        .route("/api/supervision", get(supervision))
        .route("/api/revisits", get(revisits))
        .route("/api/stats/units", get(scorecards))
        .route("/api/stats/tickets", get(counts))
        .route("/api/stats/hot-topics", get(hot_topics))
        .route("/api/audit", get(audit_log))
}

const OFFICE: [Role; 3] = [Role::Intake, Role::Dispatcher, Role::Supervisor];

/// The workflow's view of a user.
fn actor(user: &User) -> Result<Actor, ApiError> {
    Ok(match (user.role, user.unit_id) {
        (Role::Intake, _) => Actor::IntakeAgent,
        (Role::Dispatcher, _) => Actor::Dispatcher,
        (Role::Supervisor, _) => Actor::Supervisor,
        (Role::UnitStaff, Some(u)) => Actor::UnitStaff(u),
        _ => {
            return Err(ApiError::Forbidden(format!(
                "the {} role does not work tickets",
                user.role.as_str()
            )));
        }
    })
}

/// Refuses unit staff a ticket that is not their unit's.
fn may_read(user: &User, t: &TicketRow) -> Result<(), ApiError> {
    match (user.role, user.unit_id) {
        (Role::UnitStaff, Some(u)) if !t.involves(u) => Err(ApiError::Forbidden(format!(
            "ticket {} is not handled by your unit",
            t.number
        ))),
        (Role::UnitStaff, None) => Err(ApiError::Forbidden("no unit on this account".into())),
        _ => Ok(()),
    }
}

/// Whether the user may see who the caller is and hear the recording.
fn sees_identity(user: &User, t: &TicketRow) -> bool {
    match user.role {
        Role::Intake | Role::Dispatcher | Role::Supervisor => true,
        Role::UnitStaff => !t.confidential,
        Role::Analyst | Role::Admin => false,
    }
}

/// The ticket as this user may see it; audits the read when personal data goes out.
async fn view(state: &AppState, user: &User, t: &TicketRow) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(t).map_err(|e| ApiError::Internal(e.into()))?;
    let personal = ["caller_name", "caller_phone", "recording", "call_id"];
    if sees_identity(user, t) {
        let mut shown: Vec<&str> = personal
            .iter()
            .copied()
            .filter(|k| !v[*k].is_null())
            .collect();
        if OFFICE.contains(&user.role) {
            v["access_code"] = json!(t.access_code);
            shown.push("access_code");
        }
        if !shown.is_empty() {
            crate::audit::record(
                &state.db,
                &user.username,
                "ticket.read_personal",
                &format!("ticket:{}", t.number),
                json!({ "fields": shown }),
            )
            .await?;
        }
    } else {
        for k in personal {
            v[k] = Value::Null;
        }
        v["caller_hidden"] = json!(if t.confidential && user.role == Role::UnitStaff {
            "confidential (Art. 11)"
        } else {
            "not shown to this role"
        });
    }
    if let Some(m) = t.master_id {
        v["merged_into"] = json!(store::get_by_id(&state.db, m).await?.number);
    }
    v["merged"] = json!(store::merged_into(&state.db, t.id).await?);
    Ok(v)
}

/// The rows of a list as `user` may see them: no more of a number than the role needs.
fn masked(mut rows: Vec<Summary>, user: &User) -> Vec<Summary> {
    for r in &mut rows {
        r.caller_phone = match user.role {
            Role::Intake | Role::Dispatcher | Role::Supervisor => {
                r.caller_phone.as_deref().map(mask_number)
            }
            Role::UnitStaff if !r.confidential => {
                r.caller_phone.as_deref().map(|p| mask_tail(p, 4))
            }
            Role::UnitStaff | Role::Analyst | Role::Admin => None,
        };
    }
    rows
}

/// The request's `Idempotency-Key`, if it sent one (400 when it is not a valid key).
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, String> {
    headers
        .get("idempotency-key")
        .map(|v| IdempotencyKey::parse(v.as_bytes()))
        .transpose()
}

/// The headers of a filing's answer: `Idempotency-Replayed: true` when nothing new was filed.
pub(super) fn replayed(filed: &Filed) -> [(&'static str, &'static str); 1] {
    match filed {
        Filed::Replayed(_) => [("idempotency-replayed", "true")],
        Filed::New(_) => [("idempotency-replayed", "false")],
    }
}

async fn create(
    user: Authed,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(t): Json<NewTicket>,
) -> Result<Response, ApiError> {
    let who = user.require(&OFFICE, "filing tickets")?;
    let key = idempotency_key(&headers).map_err(ApiError::BadRequest)?;
    let filed =
        store::create_once(&state.db, &state.tickets, &t, &who.username, key.as_ref()).await?;
    let row = filed.row();
    let suggestion =
        store::suggest_unit(&state.db, &row.category, &row.district, &row.town).await?;
    let mut v = view(&state, who, row).await?;
    v["suggested_unit"] = json!(suggestion);
    Ok((StatusCode::CREATED, replayed(&filed), Json(v)).into_response())
}

async fn show(
    user: Authed,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = store::get(&state.db, &number).await?;
    may_read(&user.0, &t)?;
    Ok(Json(view(&state, &user.0, &t).await?))
}

async fn history(
    user: Authed,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<Vec<store::Event>>, ApiError> {
    let t = store::get(&state.db, &number).await?;
    may_read(&user.0, &t)?;
    Ok(Json(store::history(&state.db, t.id).await?))
}

#[derive(Deserialize)]
struct StepRequest {
    version: i32,
    #[serde(flatten)]
    step: Step,
}

async fn act(
    user: Authed,
    State(state): State<AppState>,
    Path(number): Path<String>,
    body: Result<Json<StepRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let by = By {
        name: user.0.username.clone(),
        actor: actor(&user.0)?,
    };
    let t = store::get(&state.db, &number).await?;
    may_read(&user.0, &t)?;
    let row = store::apply(
        &state.db,
        &state.tickets,
        &number,
        req.version,
        &req.step,
        &by,
    )
    .await?;
    Ok(Json(view(&state, &user.0, &row).await?))
}

async fn list(
    user: Authed,
    State(state): State<AppState>,
    Query(f): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let u = &user.0;
    let only_unit = match u.role {
        Role::UnitStaff => Some(
            u.unit_id
                .ok_or_else(|| ApiError::Forbidden("no unit on this account".into()))?,
        ),
        _ => None,
    };
    if let Some(phone) = &f.caller_phone {
        user.require(&OFFICE, "searching by the caller's number")?;
        crate::audit::record(
            &state.db,
            &u.username,
            "ticket.search_by_phone",
            &format!("phone:{}", mask_number(phone)),
            json!({}),
        )
        .await?;
    }
    let (rows, next) = store::list(&state.db, state.tickets.clock.now(), &f, only_unit).await?;
    Ok(Json(json!({ "tickets": masked(rows, u), "next": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupervisionQuery {
    /// Include tickets due within this many hours (default 24); 0: overdue only.
    within_hours: Option<i64>,
    limit: Option<i64>,
}

async fn supervision(
    user: Authed,
    State(state): State<AppState>,
    Query(q): Query<SupervisionQuery>,
) -> Result<Json<Value>, ApiError> {
    let u = &user.0;
    let only_unit = match u.role {
        Role::UnitStaff => u.unit_id,
        Role::Dispatcher | Role::Supervisor | Role::Analyst | Role::Intake => None,
        Role::Admin => return Err(ApiError::Forbidden("supervision is the office's".into())),
    };
    let now = state.tickets.clock.now();
    let within = Duration::hours(q.within_hours.unwrap_or(24).clamp(0, 24 * 30));
    let rows =
        store::due_before(&state.db, now + within, only_unit, q.limit.unwrap_or(200)).await?;
    let (overdue, soon): (Vec<Summary>, Vec<Summary>) = masked(rows, u)
        .into_iter()
        .partition(|r| r.due_at.is_some_and(|d| d < now));
    Ok(Json(
        json!({ "now": now, "overdue": overdue, "due_soon": soon }),
    ))
}

async fn revisits(
    user: Authed,
    State(state): State<AppState>,
    Query(mut f): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    user.require(&[Role::Dispatcher, Role::Supervisor], "the revisit list")?;
    f.status = Some("replied".into());
    let (rows, next) = store::list(&state.db, state.tickets.clock.now(), &f, None).await?;
    Ok(Json(
        json!({ "tickets": masked(rows, &user.0), "next": next }),
    ))
}

async fn duplicates(
    user: Authed,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<Vec<store::Duplicate>>, ApiError> {
    user.require(&OFFICE, "duplicate search")?;
    let t = store::get(&state.db, &number).await?;
    Ok(Json(store::duplicates(&state.db, &t).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Period {
    from: NaiveDate,
    to: NaiveDate,
    /// `json` (default), `csv` or `svg`.
    format: Option<String>,
}

/// Who reads the hotline's statistics.
const STATS: [Role; 4] = [
    Role::Dispatcher,
    Role::Supervisor,
    Role::Analyst,
    Role::Admin,
];

fn period(from: NaiveDate, to: NaiveDate) -> Result<(), ApiError> {
    super::error::date_in_range(from, "from")?;
    super::error::date_in_range(to, "to")?;
    if to < from {
        return Err(ApiError::BadRequest("to is before from".into()));
    }
    Ok(())
}

async fn scorecards(
    user: Authed,
    State(state): State<AppState>,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    user.require(&STATS, "unit scorecards")?;
    period(p.from, p.to)?;
    let format = Format::parse(p.format.as_deref())?;
    let cards = store::scorecards(&state.db, p.from, p.to).await?;
    Ok(match format {
        Format::Json => Json(cards).into_response(),
        Format::Csv => export::csv_response(
            "unit-scorecards",
            export::csv(
                &[
                    "unit",
                    "dispatched",
                    "returned",
                    "replied",
                    "replied_on_time",
                    "reopened",
                    "satisfied",
                    "basically_satisfied",
                    "dissatisfied",
                    "on_time_pct",
                    "return_pct",
                    "reopen_pct",
                    "satisfaction_pct",
                ],
                cards.iter().map(|c| {
                    let p = |r: Option<f64>| export::num(r.map(|r| r * 100.0));
                    vec![
                        c.unit_name.clone(),
                        c.dispatched.to_string(),
                        c.returned.to_string(),
                        c.replied.to_string(),
                        c.replied_on_time.to_string(),
                        c.reopened.to_string(),
                        c.satisfied.to_string(),
                        c.basically_satisfied.to_string(),
                        c.dissatisfied.to_string(),
                        p(c.on_time_rate),
                        p(c.return_rate),
                        p(c.reopen_rate),
                        p(c.satisfaction_rate),
                    ]
                }),
            ),
        ),
        Format::Svg => {
            let labels: Vec<String> = cards.iter().map(|c| c.unit_name.clone()).collect();
            let pct = |f: fn(&store::Scorecard) -> Option<f64>| {
                cards
                    .iter()
                    .map(|c| f(c).unwrap_or(0.0) * 100.0)
                    .collect::<Vec<_>>()
            };
            export::svg_response(export::bars(
                "Unit scorecard, %",
                &labels,
                &[
                    ("on time", pct(|c| c.on_time_rate)),
                    ("satisfied", pct(|c| c.satisfaction_rate)),
                    ("returned", pct(|c| c.return_rate)),
                    ("reopened", pct(|c| c.reopen_rate)),
                ],
            ))
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountQuery {
    from: NaiveDate,
    to: NaiveDate,
    by: store::CountBy,
    /// `json` (default), `csv` or `svg`.
    format: Option<String>,
}

async fn counts(
    user: Authed,
    State(state): State<AppState>,
    Query(q): Query<CountQuery>,
) -> Result<Response, ApiError> {
    user.require(&STATS, "ticket counts")?;
    period(q.from, q.to)?;
    let format = Format::parse(q.format.as_deref())?;
    let counts = store::counts(&state.db, q.from, q.to, q.by).await?;
    let by = q.by.name();
    Ok(match format {
        Format::Json => Json(counts).into_response(),
        Format::Csv => export::csv_response(
            &format!("tickets-by-{by}"),
            export::csv(
                &[by, "tickets"],
                counts
                    .iter()
                    .map(|c| vec![c.key.clone(), c.filed.to_string()]),
            ),
        ),
        Format::Svg => export::svg_response(export::bars(
            &format!("Tickets by {}", by.replace('_', " ")),
            &counts.iter().map(|c| c.key.clone()).collect::<Vec<_>>(),
            &[("tickets", counts.iter().map(|c| c.filed as f64).collect())],
        )),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicQuery {
    from: NaiveDate,
    to: NaiveDate,
    /// Terms in each list (default 20, at most 200).
    limit: Option<i64>,
    /// Tickets a term needs in the period to count as rising (default 3).
    min: Option<i64>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The words of new tickets' descriptions in a period: the most frequent, and the fastest
/// rising against the period of the same length before it.
async fn hot_topics(
    user: Authed,
    State(state): State<AppState>,
    Query(q): Query<TopicQuery>,
) -> Result<Response, ApiError> {
    user.require(&STATS, "hot topics")?;
    period(q.from, q.to)?;
    if (q.to - q.from).num_days() > 400 {
        return Err(ApiError::Unprocessable("at most 400 days".into()));
    }
    let format = Format::parse(q.format.as_deref())?;
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let min = q.min.unwrap_or(3).max(1);
    let topics = crate::tickets::terms::hot_topics(&state.db, q.from, q.to, limit, min).await?;
    Ok(match format {
        Format::Json => {
            let list = |l: &[crate::tickets::terms::Topic]| {
                l.iter()
                    .map(|t| {
                        json!({"term": t.term, "tickets": t.tickets,
                                    "previous": t.previous, "ratio": t.ratio()})
                    })
                    .collect::<Vec<_>>()
            };
            Json(json!({
                "from": topics.from, "to": topics.to,
                "previous_from": topics.previous_from, "previous_to": topics.previous_to,
                "top": list(&topics.top), "rising": list(&topics.rising),
            }))
            .into_response()
        }
        Format::Csv => export::csv_response(
            "hot-topics",
            export::csv(
                &["list", "term", "tickets", "previous", "ratio"],
                [("top", &topics.top), ("rising", &topics.rising)]
                    .into_iter()
                    .flat_map(|(name, l)| {
                        l.iter().map(move |t| {
                            vec![
                                name.to_string(),
                                t.term.clone(),
                                t.tickets.to_string(),
                                t.previous.to_string(),
                                format!("{:.2}", t.ratio()),
                            ]
                        })
                    }),
            ),
        ),
        Format::Svg => export::svg_response(export::bars(
            "Hot topics: tickets now and in the period before",
            &topics
                .top
                .iter()
                .map(|t| t.term.clone())
                .collect::<Vec<_>>(),
            &[
                ("now", topics.top.iter().map(|t| t.tickets as f64).collect()),
                (
                    "before",
                    topics.top.iter().map(|t| t.previous as f64).collect(),
                ),
            ],
        )),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    subject: Option<String>,
    actor: Option<String>,
    limit: Option<i64>,
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
    actor: String,
    action: String,
    subject: String,
    detail: Value,
}

/// The audit log, read-only: there is no route that changes it, and the database refuses
/// updates and deletes anyway.
async fn audit_log(
    user: Authed,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    user.require(&[Role::Supervisor, Role::Admin], "the audit log")?;
    let rows = sqlx::query_as::<_, AuditRow>(
        "SELECT id, at, actor, action, subject, detail FROM audit_log
         WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR actor = $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(q.subject)
    .bind(q.actor)
    .bind(q.limit.unwrap_or(100).clamp(1, 1000))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
