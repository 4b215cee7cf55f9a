//! The knowledge base over HTTP (issue 6). Staff only (a session token); handling units edit
//! only their own unit's articles (403 otherwise), and with `kb.require_approval` their
//! "publish" submits the article for the hotline office's approval (a supervisor or an
//! administrator publishes it).
//!
//! - `GET /api/kb/search?q=&category=&unit=&status=&limit=`: ranked, highlighted results
//! - `POST /api/kb/suggest` `{"text", "limit"}`: articles for a ticket being written
//! - `POST /api/kb/articles`, `GET|PUT /api/kb/articles/{id}` (PUT with `version`),
//!   `POST /api/kb/articles/{id}/publish|expire` `{"version"}`, `GET .../history`
//! - `POST /api/kb/import?format=jsonl|csv` (all or nothing; 422 lists every bad line),
//!   `GET /api/kb/export?format=jsonl|csv`
//!
//! Every write lands in this node's index at once and in every other node's within a second
//! (PostgreSQL NOTIFY, [`crate::kb::service`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Authed;
use super::{ApiError, AppState};
use crate::kb::Article;
use crate::kb::index::Filter;
use crate::kb::service::Kb;
use crate::kb::store::{self, Draft, KbError};
use crate::users::{Role, User};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/kb/search", get(search))
        .route("/api/kb/suggest", post(suggest))
        .route("/api/kb/articles", post(create))
        .route("/api/kb/articles/{id}", get(show).put(edit))
        .route("/api/kb/articles/{id}/publish", post(publish))
        .route("/api/kb/articles/{id}/expire", post(expire))
        .route("/api/kb/articles/{id}/history", get(history))
        .route("/api/kb/import", post(import))
        .route("/api/kb/export", get(export))
}

impl From<KbError> for ApiError {
    fn from(e: KbError) -> Self {
        match e {
            KbError::NotFound(_) => ApiError::NotFound(e.to_string()),
            KbError::Stale { .. } => ApiError::Conflict(e.to_string()),
            KbError::Invalid(m) => ApiError::Unprocessable(m),
            KbError::Db(d) => d.into(),
        }
    }
}

fn kb(state: &AppState) -> Result<Arc<Kb>, ApiError> {
    state.kb.clone().ok_or_else(|| {
        ApiError::Unavailable("the knowledge base is not running on this node".into())
    })
}

fn index_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("search index: {e}"))
}

/// Who may write: the office and administrators any article, unit staff their own unit's.
fn may_write(user: &User, a: Option<&Article>) -> Result<(), ApiError> {
    match user.role {
        Role::Dispatcher | Role::Supervisor | Role::Admin => Ok(()),
        Role::UnitStaff => match a {
            Some(a) if a.unit_id != user.unit_id => Err(ApiError::Forbidden(format!(
                "article {} belongs to another unit",
                a.id
            ))),
            _ => Ok(()),
        },
        Role::Intake | Role::Analyst => Err(ApiError::Forbidden(format!(
            "the {} role does not edit the knowledge base",
            user.role.as_str()
        ))),
    }
}

fn approver(user: &User) -> bool {
    matches!(user.role, Role::Supervisor | Role::Admin)
}

async fn unit_id_of(
    state: &AppState,
    user: &User,
    code: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    if user.role == Role::UnitStaff {
        return Ok(user.unit_id);
    }
    match code {
        None => Ok(None),
        Some(c) => sqlx::query_scalar::<_, i64>("SELECT id FROM units WHERE code = $1")
            .bind(c)
            .fetch_optional(&state.db)
            .await?
            .map(Some)
            .ok_or_else(|| {
                ApiError::Unprocessable(format!("unit: no handling unit with code {c:?}"))
            }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: String,
    category: Option<String>,
    unit: Option<i64>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn search(
    _: Authed,
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let kb = kb(&state)?;
    let filter = Filter {
        category: q.category,
        unit: q.unit,
        status: q.status,
    };
    let t = std::time::Instant::now();
    let hits = kb
        .search_off(q.q, filter, q.limit.unwrap_or(10).clamp(1, 50))
        .await
        .map_err(index_error)?;
    Ok(Json(
        json!({ "hits": hits, "micros": t.elapsed().as_micros() as u64 }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuggestBody {
    text: String,
    limit: Option<usize>,
}

async fn suggest(
    _: Authed,
    State(state): State<AppState>,
    Json(b): Json<SuggestBody>,
) -> Result<Json<Value>, ApiError> {
    let kb = kb(&state)?;
    let hits = kb
        .search_off(b.text, Filter::default(), b.limit.unwrap_or(5).clamp(1, 20))
        .await
        .map_err(index_error)?;
    Ok(Json(json!({ "hits": hits })))
}

async fn create(
    user: Authed,
    State(state): State<AppState>,
    Json(d): Json<Draft>,
) -> Result<(StatusCode, Json<Article>), ApiError> {
    let kb = kb(&state)?;
    may_write(&user.0, None)?;
    let unit = unit_id_of(&state, &user.0, d.unit.as_deref()).await?;
    let a = store::create(&kb.db, &d, unit, "draft", &user.0.username).await?;
    kb.put(vec![a.clone()]).await.map_err(index_error)?;
    Ok((StatusCode::CREATED, Json(a)))
}

async fn show(
    _: Authed,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Article>, ApiError> {
    Ok(Json(store::get(&kb(&state)?.db, id).await?))
}

#[derive(Deserialize)]
struct EditBody {
    version: i32,
    #[serde(flatten)]
    draft: Draft,
}

async fn edit(
    user: Authed,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<EditBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Article>, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let kb = kb(&state)?;
    let current = store::get(&kb.db, id).await?;
    may_write(&user.0, Some(&current))?;
    // A unit's edit of a published article goes back through approval.
    let keep = !kb.require_approval || approver(&user.0) || user.0.role != Role::UnitStaff;
    let a = store::edit(&kb.db, id, b.version, &b.draft, keep, &user.0.username).await?;
    kb.put(vec![a.clone()]).await.map_err(index_error)?;
    Ok(Json(a))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionBody {
    version: i32,
}

async fn publish(
    user: Authed,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(b): Json<VersionBody>,
) -> Result<Json<Article>, ApiError> {
    let submit = kb(&state)?.require_approval && user.0.role == Role::UnitStaff;
    let (status, action) = if submit {
        ("pending", "submit")
    } else {
        ("published", "publish")
    };
    change_status(&state, &user.0, id, b.version, status, action).await
}

async fn expire(
    user: Authed,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(b): Json<VersionBody>,
) -> Result<Json<Article>, ApiError> {
    change_status(&state, &user.0, id, b.version, "expired", "expire").await
}

/// Moves an article the user may write to `status`, and into this node's index.
async fn change_status(
    state: &AppState,
    user: &User,
    id: i64,
    version: i32,
    status: &str,
    action: &str,
) -> Result<Json<Article>, ApiError> {
    let kb = kb(state)?;
    let current = store::get(&kb.db, id).await?;
    may_write(user, Some(&current))?;
    let a = store::set_status(&kb.db, id, version, status, action, &user.username).await?;
    kb.put(vec![a.clone()]).await.map_err(index_error)?;
    Ok(Json(a))
}

async fn history(
    _: Authed,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<store::Version>>, ApiError> {
    let kb = kb(&state)?;
    store::get(&kb.db, id).await?;
    Ok(Json(store::history(&kb.db, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatQuery {
    format: Option<String>,
    /// Import only: publish what is imported (office roles; otherwise drafts).
    publish: Option<bool>,
}

async fn import(
    user: Authed,
    State(state): State<AppState>,
    Query(f): Query<FormatQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kb = kb(&state)?;
    may_write(&user.0, None)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the file is not UTF-8 text".into()))?;
    let lines = match f.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => store::parse_jsonl(text),
        "csv" => store::parse_csv(text).map_err(ApiError::Unprocessable)?,
        other => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?}: expected jsonl or csv"
            )));
        }
    };
    if lines.is_empty() {
        return Err(ApiError::Unprocessable("the file has no articles".into()));
    }
    let only_unit = (user.0.role == Role::UnitStaff)
        .then_some(user.0.unit_id)
        .flatten();
    let status = if f.publish == Some(true) && approver(&user.0) {
        "published"
    } else {
        "draft"
    };
    match store::import(&kb.db, lines, status, only_unit, &user.0.username).await? {
        Ok(articles) => {
            let imported = articles.len();
            kb.put(articles).await.map_err(index_error)?;
            Ok(Json(json!({ "imported": imported, "status": status })).into_response())
        }
        Err(errors) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "nothing was imported: fix these lines and send the file again",
                "errors": errors,
            })),
        )
            .into_response()),
    }
}

async fn export(
    _: Authed,
    State(state): State<AppState>,
    Query(f): Query<FormatQuery>,
) -> Result<Response, ApiError> {
    let kb = kb(&state)?;
    let all = store::all(&kb.db).await?;
    match f.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => {
            let mut out = String::new();
            for a in &all {
                out.push_str(&serde_json::to_string(a).map_err(|e| ApiError::Internal(e.into()))?);
                out.push('\n');
            }
            Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
        }
        "csv" => {
            let units: Vec<(i64, String)> = sqlx::query_as("SELECT id, code FROM units")
                .fetch_all(&kb.db)
                .await?;
            let csv = store::to_csv(&all, |u| {
                u.and_then(|u| units.iter().find(|(id, _)| *id == u))
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default()
            });
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format {other:?}: expected jsonl or csv"
        ))),
    }
}
