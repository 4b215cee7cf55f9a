//! Agents and the ACD over HTTP (issue 8).
//!
//! - `PUT /api/agents/{username}` (admin): the agent's profile: softphone (`sip_username`),
//!   skills with proficiency 1-10, queues
//! - `GET /api/agents/{username}`: the profile
//! - `GET /api/agents`: every user with an agent profile (id, names, softphone, queues), for
//!   the wall board (supervisors, analysts, administrators)
//! - `POST /api/agents/me/login` (the agent's queues from the profile),
//!   `POST /api/agents/me/pause` `{"reason"}`, `POST /api/agents/me/resume`,
//!   `POST /api/agents/me/logout`; a supervisor may do the same for anyone with
//!   `/api/agents/{username}/...` (forced state, audited)
//! - `GET /api/acd/snapshot`: queues (waiting, longest wait) and agents (state, time in it)
//! - `GET /api/acd/missed[?all=true]`: callers to call back, each with its `reason`: hung up
//!   while waiting (`abandoned`), cut off by the node stopping (`cut_off`), or every callback
//!   owed failed (`callback_failed`); the office sees the numbers (the read is audited), analysts masked ones;
//!   `POST /api/acd/missed/{id}/done` `{"outcome"}` closes one
//! - `POST /api/calls/{call_id}/transfer` `{"emergency": "110"}`, `{"queue": "general"}` or
//!   `{"agent": "alice"}`: the agent on the call (or a supervisor) sends the caller to a
//!   configured emergency route, back to a queue first in line, or to one agent; audited
//! - `POST /api/calls/{call_id}/hold` `{"hold": true}`: the agent on the call (or a
//!   supervisor) puts the caller on hold (music; neither hears the other) or back (`false`)
//! - `POST /api/calls/{call_id}/monitor` `{"mode": "listen" | "whisper" | "barge"}`: a
//!   supervisor joins a call with an agent through the supervisor's own softphone (the SIP
//!   account of the supervisor's agent profile, rung from `monitor`), or changes mode on the
//!   leg already there; `DELETE` leaves; audited `call.monitor`
//! - `GET /api/softphone`: the logged-in agent's own SIP account for the browser softphone
//!   (user, realm and its MD5 HA1, which JsSIP takes instead of the password: the browser
//!   never needs the plaintext)
//! - `GET /api/calls/{call_id}`: a call as the agent desktop shows it (caller, queue, the
//!   IVR's path and keys, recording, earlier tickets from the number); the office's roles
//!   only, the read is audited
//! - `GET /api/acd/events` (WebSocket; the session token as `Authorization: Bearer` or, from
//!   a browser, `?token=`): the snapshot as JSON at once and again whenever it changes
//!   (checked twice a second, so a change shows within a second and nothing is sent while
//!   nothing changes)

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Authed;
use super::{ApiError, AppState};
use crate::acd::routing::AcdError;
use crate::acd::service::{AcdHandle, Command, Snapshot};
use crate::calls::Control;
use crate::users::Role;

/// The office's roles that take and handle calls.
const CALL_ROLES: &[Role] = &[Role::Intake, Role::Dispatcher, Role::Supervisor];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/agents", get(list_agents))
        .route("/api/agents/{username}", put(set_profile).get(profile))
        .route("/api/agents/{username}/{action}", post(act))
        .route("/api/acd/snapshot", get(snapshot))
        .route("/api/acd/events", get(events))
        .route("/api/acd/missed", get(missed))
        .route("/api/acd/missed/{id}/done", post(missed_done))
        .route("/api/calls/{call_id}/transfer", post(transfer))
        .route("/api/calls/{call_id}", get(call_details))
        .route("/api/calls/{call_id}/hold", post(hold))
        .route(
            "/api/calls/{call_id}/monitor",
            post(monitor).delete(stop_monitor),
        )
        .route("/api/softphone", get(softphone))
}

fn acd(state: &AppState) -> Result<AcdHandle, ApiError> {
    state
        .acd
        .clone()
        .ok_or_else(|| ApiError::Unavailable("the ACD is not running on this node".into()))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    sip_username: Option<String>,
    #[serde(default)]
    skills: BTreeMap<String, u8>,
    #[serde(default)]
    queues: Vec<String>,
}

async fn user_id(state: &AppState, username: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {username:?}")))
}

async fn set_profile(
    user: Authed,
    State(state): State<AppState>,
    Path(username): Path<String>,
    Json(p): Json<Profile>,
) -> Result<Json<Profile>, ApiError> {
    let who = user.require(&[Role::Admin], "managing agents")?;
    if let Some((k, v)) = p.skills.iter().find(|(_, v)| !(1..=10).contains(*v)) {
        return Err(ApiError::Unprocessable(format!(
            "skill {k:?}: proficiency {v} is not 1 to 10"
        )));
    }
    let id = user_id(&state, &username).await?;
    sqlx::query(
        "INSERT INTO agent_profiles (user_id, sip_username, skills, queues) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET sip_username = $2, skills = $3, queues = $4,
             updated_at = now()",
    )
    .bind(id)
    .bind(&p.sip_username)
    .bind(serde_json::to_value(&p.skills).unwrap_or_default())
    .bind(&p.queues)
    .execute(&state.db)
    .await?;
    crate::audit::record(
        &state.db,
        &who.username,
        "agent.profile",
        &format!("user:{username}"),
        json!({ "queues": p.queues, "skills": p.skills }),
    )
    .await?;
    Ok(Json(p))
}

async fn load_profile(state: &AppState, id: i64) -> Result<Profile, ApiError> {
    let row: Option<(Option<String>, Value, Vec<String>)> = sqlx::query_as(
        "SELECT sip_username, skills, queues FROM agent_profiles WHERE user_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    let (sip_username, skills, queues) =
        row.ok_or_else(|| ApiError::NotFound("no agent profile for this user".into()))?;
    Ok(Profile {
        sip_username,
        skills: serde_json::from_value(skills).unwrap_or_default(),
        queues,
    })
}

async fn profile(
    _: Authed,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    let id = user_id(&state, &username).await?;
    Ok(Json(load_profile(&state, id).await?))
}

/// Every user with an agent profile, by username.
async fn list_agents(user: Authed, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    user.require(
        &[Role::Supervisor, Role::Analyst, Role::Admin],
        "listing agents",
    )?;
    type Row = (i64, String, String, String, Option<String>, Vec<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.role, p.sip_username, p.queues
           FROM agent_profiles p JOIN users u ON u.id = p.user_id
          ORDER BY u.username",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(id, username, display_name, role, sip_username, queues)| {
                json!({"id": id, "username": username, "display_name": display_name,
                       "role": role, "sip_username": sip_username, "queues": queues})
            })
            .collect(),
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

fn refused(e: AcdError) -> ApiError {
    match e {
        AcdError::NoQueue(_) => ApiError::Unprocessable(e.to_string()),
        AcdError::NoAgent(_) | AcdError::NoCall(_) => ApiError::NotFound(e.to_string()),
        AcdError::State { .. } => ApiError::Conflict(e.to_string()),
    }
}

async fn act(
    user: Authed,
    State(state): State<AppState>,
    Path((username, action)): Path<(String, String)>,
    body: Option<Json<Reason>>,
) -> Result<Json<Value>, ApiError> {
    let acd = acd(&state)?;
    let me = &user.0;
    let (id, forced) = if username == "me" {
        (me.id, false)
    } else {
        user.require(&[Role::Supervisor], "changing another agent's state")?;
        (user_id(&state, &username).await?, true)
    };
    let reason = body.map(|Json(b)| b.reason).unwrap_or_default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let agent = u64::try_from(id).unwrap_or(0);
    let command = match action.as_str() {
        "login" => {
            let p = load_profile(&state, id).await?;
            Command::Login {
                agent,
                device: p.sip_username,
                queues: p.queues,
                skills: p.skills.into_iter().collect(),
                reply: tx,
            }
        }
        "pause" => {
            if reason.trim().is_empty() {
                return Err(ApiError::Unprocessable(
                    "reason: say why (break, meal, training, meeting, ...)".into(),
                ));
            }
            Command::AgentState {
                agent,
                pause: Some(reason.trim().to_string()),
                logout: false,
                reply: tx,
            }
        }
        "resume" => Command::AgentState {
            agent,
            pause: None,
            logout: false,
            reply: tx,
        },
        "logout" => Command::AgentState {
            agent,
            pause: None,
            logout: true,
            reply: tx,
        },
        other => {
            return Err(ApiError::NotFound(format!(
                "no agent action {other:?} (login, pause, resume, logout)"
            )));
        }
    };
    if !acd.send(command) {
        return Err(ApiError::Unavailable("the ACD has stopped".into()));
    }
    rx.await
        .map_err(|_| ApiError::Unavailable("the ACD has stopped".into()))?
        .map_err(refused)?;
    if forced {
        crate::audit::record(
            &state.db,
            &me.username,
            "agent.force_state",
            &format!("user:{username}"),
            json!({ "action": action, "reason": reason }),
        )
        .await?;
    }
    Ok(Json(json!({ "agent": username, "action": action })))
}

async fn snapshot(user: Authed, State(state): State<AppState>) -> Result<Json<Snapshot>, ApiError> {
    user.require(
        &[
            Role::Intake,
            Role::Dispatcher,
            Role::Supervisor,
            Role::Analyst,
            Role::Admin,
        ],
        "the ACD snapshot",
    )?;
    let mut snap = acd(&state)?
        .snapshot()
        .await
        .ok_or_else(|| ApiError::Unavailable("the ACD has stopped".into()))?;
    snap.node = Some(state.node.view());
    Ok(Json(snap))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    token: Option<String>,
}

/// The live feed: the snapshot on every change, as JSON text messages.
async fn events(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<TokenQuery>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Result<axum::response::Response, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or(q.token)
        .ok_or_else(|| ApiError::Unauthorized("log in first: a session token is needed".into()))?;
    let user = crate::users::by_token(&state.db, &token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the session is unknown or has expired".into()))?;
    if matches!(user.role, Role::UnitStaff) {
        return Err(ApiError::Forbidden(
            "the live feed is the hotline office's".into(),
        ));
    }
    let acd = acd(&state)?;
    let node = std::sync::Arc::clone(&state.node);
    let db = state.db.clone();
    Ok(ws.on_upgrade(move |socket| feed(socket, acd, node, db, token)))
}

/// How often the live feed checks that its session still holds (logout, expiry, a disabled
/// login or a new password end it).
const FEED_SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

async fn feed(
    mut socket: axum::extract::ws::WebSocket,
    acd: AcdHandle,
    node: std::sync::Arc<crate::node::NodeState>,
    db: sqlx::PgPool,
    token: String,
) {
    use axum::extract::ws::{CloseFrame, Message};
    let mut last: Option<Snapshot> = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    let mut check = tokio::time::interval(FEED_SESSION_CHECK);
    check.tick().await; // checked at the upgrade
    loop {
        tokio::select! {
            _ = check.tick() => {
                // A database that does not answer keeps the feed going; an ended session not.
                if let Ok(None) = crate::users::by_token(&db, &token).await {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 4401,
                            reason: "the session has ended".into(),
                        })))
                        .await;
                    return;
                }
            }
            _ = tick.tick() => {
                let Some(mut snap) = acd.snapshot().await else { return };
                snap.node = Some(node.view());
                // Seconds in state and waits tick on their own: only changes of who is where
                // are sent, with the times as they are at that moment.
                let changed = last.as_ref().is_none_or(|l| !same_shape(l, &snap));
                if changed {
                    let text = serde_json::to_string(&snap).unwrap_or_default();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                    last = Some(snap);
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Whether two snapshots differ only in the passing of time.
fn same_shape(a: &Snapshot, b: &Snapshot) -> bool {
    a.queues.len() == b.queues.len()
        && a.agents.len() == b.agents.len()
        && a.queues.iter().zip(&b.queues).all(|(x, y)| {
            x.name == y.name
                && x.waiting == y.waiting
                && (x.offered_today, x.answered_today, x.abandoned_today)
                    == (y.offered_today, y.answered_today, y.abandoned_today)
        })
        && a.agents.iter().zip(&b.agents).all(|(x, y)| {
            x.id == y.id
                && x.state == y.state
                && x.reason == y.reason
                && x.queues == y.queues
                && x.call_id == y.call_id
        })
        && a.waiting.len() == b.waiting.len()
        && a.waiting.iter().zip(&b.waiting).all(|(x, y)| {
            (&x.call_id, &x.queue, x.ringing, x.callback, x.self_service)
                == (&y.call_id, &y.queue, y.ringing, y.callback, y.self_service)
        })
        && (a.answered_24h, a.abandoned_24h) == (b.answered_24h, b.abandoned_24h)
        && a.node.map(|n| (n.draining, n.restored)) == b.node.map(|n| (n.draining, n.restored))
        && a.alerts.len() == b.alerts.len()
        && a.alerts
            .iter()
            .zip(&b.alerts)
            .all(|(x, y)| (x.kind, &x.subject) == (y.kind, &y.subject))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MissedQuery {
    /// Include the ones already called back.
    all: Option<bool>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Missed {
    id: i64,
    caller: String,
    queue: String,
    waited_secs: f64,
    /// `abandoned`, `cut_off` or `callback_failed`.
    reason: String,
    missed_at: chrono::DateTime<chrono::Utc>,
    done_at: Option<chrono::DateTime<chrono::Utc>>,
    done_by: Option<String>,
    outcome: Option<String>,
}

async fn missed(
    user: Authed,
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<MissedQuery>,
) -> Result<Json<Vec<Missed>>, ApiError> {
    let who = user.require(
        &[
            Role::Intake,
            Role::Dispatcher,
            Role::Supervisor,
            Role::Analyst,
        ],
        "the missed-call list",
    )?;
    let mut rows = sqlx::query_as::<_, Missed>(
        "SELECT call_row_id AS id, caller, queue, waited_secs, reason, missed_at, done_at, done_by,
                outcome
         FROM missed_calls WHERE $1 OR done_at IS NULL ORDER BY missed_at LIMIT 500",
    )
    .bind(q.all.unwrap_or(false))
    .fetch_all(&state.db)
    .await?;
    if who.role == Role::Analyst {
        for r in &mut rows {
            r.caller = crate::mask::mask_number(&r.caller);
        }
    } else if !rows.is_empty() {
        crate::audit::record(
            &state.db,
            &who.username,
            "missed_calls.read",
            "missed_calls",
            json!({ "rows": rows.len() }),
        )
        .await?;
    }
    Ok(Json(rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcome {
    outcome: String,
}

async fn missed_done(
    user: Authed,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(o): Json<Outcome>,
) -> Result<Json<Value>, ApiError> {
    let who = user.require(CALL_ROLES, "closing a missed call")?;
    if o.outcome.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "outcome: say what happened (called back, no answer, ...)".into(),
        ));
    }
    let n = sqlx::query(
        "UPDATE missed_calls SET done_at = now(), done_by = $2, outcome = $3
         WHERE call_row_id = $1 AND done_at IS NULL",
    )
    .bind(id)
    .bind(&who.username)
    .bind(o.outcome.trim())
    .execute(&state.db)
    .await?
    .rows_affected();
    if n == 0 {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM missed_calls WHERE call_row_id = $1)")
                .bind(id)
                .fetch_one(&state.db)
                .await?;
        return Err(if exists {
            ApiError::Conflict(format!("missed call {id} is already done"))
        } else {
            ApiError::NotFound(format!("no missed call {id}"))
        });
    }
    Ok(Json(json!({ "id": id, "done": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    emergency: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
}

/// The agent on a call (or a supervisor) transfers its caller.
async fn transfer(
    user: Authed,
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    Json(body): Json<TransferBody>,
) -> Result<Json<Value>, ApiError> {
    use crate::calls::{TransferControl, TransferTarget};
    let me = user.require(CALL_ROLES, "transferring calls")?;
    let to = match (body.emergency, body.queue, body.agent) {
        (Some(e), None, None) => TransferTarget::Emergency(e),
        (None, Some(q), None) => TransferTarget::Queue(q),
        (None, None, Some(a)) => {
            TransferTarget::Agent(u64::try_from(user_id(&state, &a).await?).unwrap_or(0))
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "say where to: exactly one of \"emergency\" (a route such as 110), \"queue\" or \"agent\" (a user name)"
                    .into(),
            ));
        }
    };
    let done = tell_call(&state, me, |agent, reply| {
        Control::Transfer(TransferControl {
            call_id: call_id.clone(),
            to: to.clone(),
            agent,
            reply,
        })
    })
    .await?;
    let (kind, name) = match &to {
        TransferTarget::Emergency(e) => ("emergency", e.clone()),
        TransferTarget::Queue(q) => ("queue", q.clone()),
        TransferTarget::Agent(_) => ("agent", done.clone()),
    };
    crate::audit::record(
        &state.db,
        &me.username,
        "call.transfer",
        &format!("call:{call_id}"),
        json!({ kind: name, "to": done }),
    )
    .await?;
    Ok(Json(json!({ "call_id": call_id, kind: name, "to": done })))
}

#[derive(Debug, Serialize)]
struct Softphone {
    sip_username: String,
    realm: String,
    ha1: String,
}

async fn softphone(
    user: Authed,
    State(state): State<AppState>,
) -> Result<Json<Softphone>, ApiError> {
    let p = load_profile(&state, user.0.id).await?;
    let name = p.sip_username.ok_or_else(|| {
        ApiError::NotFound("no softphone in this agent's profile (sip_username)".into())
    })?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT realm, ha1_md5 FROM sip_accounts WHERE username = $1 AND enabled")
            .bind(&name)
            .fetch_optional(&state.db)
            .await?;
    let (realm, ha1) = row.ok_or_else(|| {
        ApiError::NotFound(format!(
            "the SIP account {name:?} does not exist or is disabled"
        ))
    })?;
    Ok(Json(Softphone {
        sip_username: name,
        realm,
        ha1,
    }))
}

async fn call_details(
    user: Authed,
    State(state): State<AppState>,
    Path(call_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = user.require(CALL_ROLES, "reading calls")?;
    #[allow(clippy::type_complexity)]
    let row: Option<(
        String,
        String,
        Option<String>,
        Option<String>,
        Vec<String>,
        String,
        Value,
        chrono::DateTime<chrono::Utc>,
    )> = sqlx::query_as(
        "SELECT call_id, caller, queue, recording, ivr_path, ivr_keys, ivr_vars, started_at
           FROM calls WHERE call_id = $1 ORDER BY started_at DESC LIMIT 1",
    )
    .bind(&call_id)
    .fetch_optional(&state.db)
    .await?;
    let (call_id, caller, queue, recording, ivr_path, ivr_keys, ivr_vars, started_at) =
        row.ok_or_else(|| ApiError::NotFound(format!("no call {call_id:?}")))?;
    let earlier: Vec<(String, String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT number, status, category, created_at FROM tickets
          WHERE caller_phone = $1 ORDER BY created_at DESC LIMIT 10",
    )
    .bind(&caller)
    .fetch_all(&state.db)
    .await?;
    let now = state.tickets.clock.now();
    let calls_last_hour = crate::acd::frequent::calls_last_hour(&state.db, &caller, now).await?;
    let route = crate::acd::frequent::route_of(&state.db, &caller).await?;
    crate::audit::record(
        &state.db,
        &me.username,
        "call.read",
        &format!("call:{call_id}"),
        json!({}),
    )
    .await?;
    Ok(Json(json!({
        "call_id": call_id,
        "caller": caller,
        "caller_masked": crate::mask::mask_number(&caller),
        "queue": queue,
        "recording": recording,
        "ivr_path": ivr_path,
        "ivr_keys": ivr_keys,
        "ivr_vars": ivr_vars,
        "started_at": started_at,
        "frequent": {
            "calls_last_hour": calls_last_hour,
            "threshold": state.frequent_calls_per_hour,
            "flagged": crate::acd::frequent::is_flagged(calls_last_hour, state.frequent_calls_per_hour),
            "routed_to": route.map(|r| r.queue),
        },
        "earlier_tickets": earlier.into_iter().map(|(number, status, category, filed_at)| json!({
            "number": number, "status": status, "category": category, "filed_at": filed_at,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    hold: bool,
}

async fn hold(
    user: Authed,
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    body: Result<Json<HoldBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    use crate::calls::HoldControl;
    let Json(body) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let me = user.require(CALL_ROLES, "holding calls")?;
    tell_call(&state, me, |agent, reply| {
        Control::Hold(HoldControl {
            call_id: call_id.clone(),
            hold: body.hold,
            agent,
            reply,
        })
    })
    .await?;
    Ok(Json(json!({ "call_id": call_id, "hold": body.hold })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorBody {
    mode: String,
}

/// A supervisor listens, whispers or barges in (see the module comment).
async fn monitor(
    user: Authed,
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    body: Result<Json<MonitorBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let me = user.require(&[Role::Supervisor], "monitoring calls")?;
    let mode = crate::calls::MonitorMode::parse(&body.mode).ok_or_else(|| {
        ApiError::Unprocessable(format!("mode {:?}: listen, whisper or barge", body.mode))
    })?;
    let device: Option<String> =
        sqlx::query_scalar("SELECT sip_username FROM agent_profiles WHERE user_id = $1")
            .bind(me.id)
            .fetch_optional(&state.db)
            .await?
            .flatten();
    let Some(device) = device else {
        return Err(ApiError::Conflict(
            "no softphone in your agent profile (sip_username) to monitor with".into(),
        ));
    };
    let done = monitor_call(&state, me, &call_id, Some(mode), Some(device)).await?;
    Ok(Json(
        json!({ "call_id": call_id, "mode": mode.name(), "state": done }),
    ))
}

/// The supervisor leaves the call (hangs up the monitoring leg).
async fn stop_monitor(
    user: Authed,
    State(state): State<AppState>,
    Path(call_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let me = user.require(&[Role::Supervisor], "monitoring calls")?;
    let done = monitor_call(&state, me, &call_id, None, None).await?;
    Ok(Json(json!({ "call_id": call_id, "state": done })))
}

async fn monitor_call(
    state: &AppState,
    me: &crate::users::User,
    call_id: &str,
    mode: Option<crate::calls::MonitorMode>,
    device: Option<String>,
) -> Result<&'static str, ApiError> {
    let done = tell_call(state, me, |_, reply| {
        Control::Monitor(crate::calls::MonitorControl {
            call_id: call_id.to_string(),
            device,
            mode,
            reply,
        })
    })
    .await?;
    crate::audit::record(
        &state.db,
        &me.username,
        "call.monitor",
        &format!("call:{call_id}"),
        json!({ "mode": mode.map_or("leave", |m| m.name()), "state": done }),
    )
    .await?;
    Ok(done)
}

/// Hands the call handler a control message about a call in progress (made by `build` from
/// who asks, `None` for a supervisor, and where the answer goes) and waits for its answer:
/// no such call 404, not the asking agent's 403, no such route 422.
async fn tell_call<T: Send + 'static>(
    state: &AppState,
    me: &crate::users::User,
    build: impl FnOnce(
        Option<u64>,
        tokio::sync::oneshot::Sender<Result<T, crate::calls::TransferRefused>>,
    ) -> Control,
) -> Result<T, ApiError> {
    use crate::calls::TransferRefused;
    let engine = state
        .engine
        .clone()
        .ok_or_else(|| ApiError::Unavailable("calls are not handled by this node".into()))?;
    let agent = (me.role != Role::Supervisor).then(|| u64::try_from(me.id).unwrap_or(0));
    let (reply, answer) = tokio::sync::oneshot::channel();
    if !engine.tell(build(agent, reply)).await {
        return Err(ApiError::Unavailable("the SIP engine has stopped".into()));
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), answer).await {
        Ok(Ok(Ok(done))) => Ok(done),
        Ok(Ok(Err(e @ TransferRefused::NoCall(_)))) => Err(ApiError::NotFound(e.to_string())),
        Ok(Ok(Err(e @ TransferRefused::NotYours(_)))) => Err(ApiError::Forbidden(e.to_string())),
        Ok(Ok(Err(e @ TransferRefused::NoRoute(_)))) => Err(ApiError::Unprocessable(e.to_string())),
        Ok(Ok(Err(
            e @ (TransferRefused::NotTalking(_)
            | TransferRefused::NoPhone(_)
            | TransferRefused::Monitored(_)),
        ))) => Err(ApiError::Conflict(e.to_string())),
        _ => Err(ApiError::Unavailable(
            "the call handler did not answer".into(),
        )),
    }
}
