//! The directory the workflow runs on, kept by administrators: handling units (Art. 9), the
//! people who log in, the category catalogue with its time limits, the dispatch rules by
//! category and area (Art. 24), and Open311 clients' API keys. Every change is audited.
//!
//! - `GET|POST /api/units`, `GET|POST /api/users`, `GET|POST /api/categories`,
//!   `PATCH /api/categories/{code}` (a category's fields, its Open311 `public_view` among them),
//!   `GET|POST /api/dispatch-rules`, `GET /api/dispatch-rules/suggest?category=&district=&town=`
//! - `POST /api/open311-clients` `{"name", "channel"}` -> the API key, shown once

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::Authed;
use super::{ApiError, AppState};
use crate::users::{self, Role};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/units", get(list_units).post(create_unit))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{username}", axum::routing::patch(change_user))
        .route(
            "/api/categories",
            get(list_categories).post(create_category),
        )
        .route(
            "/api/categories/{code}",
            axum::routing::patch(change_category),
        )
        .route("/api/dispatch-rules", get(list_rules).post(create_rule))
        .route("/api/dispatch-rules/suggest", get(suggest))
        .route("/api/open311-clients", post(create_client))
}

async fn audit_change(
    state: &AppState,
    who: &str,
    action: &str,
    subject: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    crate::audit::record(&state.db, who, action, &subject, detail).await?;
    Ok(())
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow)]
struct Unit {
    #[serde(default)]
    id: i64,
    code: String,
    name: String,
    kind: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

async fn list_units(_: Authed, State(state): State<AppState>) -> Result<Json<Vec<Unit>>, ApiError> {
    let units = sqlx::query_as::<_, Unit>(
        "SELECT id, code, name, kind, phone, active FROM units ORDER BY id",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(units))
}

async fn create_unit(
    user: Authed,
    State(state): State<AppState>,
    Json(u): Json<Unit>,
) -> Result<(StatusCode, Json<Unit>), ApiError> {
    let who = user.require(&[Role::Admin], "managing units")?;
    let id = sqlx::query_scalar!(
        "INSERT INTO units (code, name, kind, phone, active) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
        u.code,
        u.name,
        u.kind,
        u.phone,
        u.active
    )
    .fetch_one(&state.db)
    .await?;
    audit_change(
        &state,
        &who.username,
        "unit.create",
        format!("unit:{id}"),
        serde_json::json!({ "code": u.code, "name": u.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Unit { id, ..u })))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    role: String,
    unit_id: Option<i64>,
    enabled: bool,
}

async fn list_users(
    user: Authed,
    State(state): State<AppState>,
) -> Result<Json<Vec<UserRow>>, ApiError> {
    user.require(&[Role::Admin, Role::Supervisor], "the user list")?;
    let rows = sqlx::query_as::<_, UserRow>(
        "SELECT id, username, display_name, role, unit_id, enabled FROM users ORDER BY id",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    display_name: String,
    role: Role,
    unit_id: Option<i64>,
    password: String,
}

async fn create_user(
    user: Authed,
    State(state): State<AppState>,
    Json(u): Json<NewUser>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let who = user.require(&[Role::Admin], "managing users")?;
    let id = users::create(
        &state.db,
        &u.username,
        &u.display_name,
        u.role,
        u.unit_id,
        &u.password,
    )
    .await?;
    audit_change(
        &state,
        &who.username,
        "user.create",
        format!("user:{}", u.username),
        serde_json::json!({ "role": u.role, "unit_id": u.unit_id }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "username": u.username, "role": u.role })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    /// Disable (false) or enable (true) the login.
    enabled: Option<bool>,
    /// A new password (at least 10 characters).
    password: Option<String>,
}

/// An administrator disables or enables a login, or gives it a new password; either way the
/// sessions opened before end (a disabled login's, or those of whoever knew the old password).
async fn change_user(
    user: Authed,
    State(state): State<AppState>,
    axum::extract::Path(username): axum::extract::Path<String>,
    Json(c): Json<UserChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = user.require(&[Role::Admin], "managing users")?;
    if c.enabled.is_none() && c.password.is_none() {
        return Err(ApiError::Unprocessable(
            "say what changes: enabled, password or both".into(),
        ));
    }
    if let Some(p) = &c.password {
        if p.chars().count() < 10 {
            return Err(users::UserError::WeakPassword.into());
        }
        if !users::set_password(&state.db, &username, p).await? {
            return Err(ApiError::NotFound(format!("no user {username:?}")));
        }
    }
    if let Some(enabled) = c.enabled
        && !users::set_enabled(&state.db, &username, enabled).await?
    {
        return Err(ApiError::NotFound(format!("no user {username:?}")));
    }
    audit_change(
        &state,
        &who.username,
        "user.change",
        format!("user:{username}"),
        serde_json::json!({ "enabled": c.enabled, "password_changed": c.password.is_some() }),
    )
    .await?;
    Ok(Json(
        serde_json::json!({ "username": username, "enabled": c.enabled, "sessions_ended": true }),
    ))
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
struct Category {
    code: String,
    name: String,
    #[serde(default = "five")]
    time_limit_days: i32,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    active: bool,
    /// What the public Open311 feed shows of its requests: "full", "summary" or "none".
    #[serde(default = "full")]
    public_view: String,
}

fn five() -> i32 {
    5
}

fn full() -> String {
    "full".into()
}

/// The public views a category may have (the column's CHECK says the same).
const PUBLIC_VIEWS: [&str; 3] = ["full", "summary", "none"];

fn check_public_view(v: &str) -> Result<(), ApiError> {
    if PUBLIC_VIEWS.contains(&v) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "public_view {v:?} is not one of full (description and place), summary (service, \
             status, unit, dates) or none (not published)"
        )))
    }
}

async fn list_categories(State(state): State<AppState>) -> Result<Json<Vec<Category>>, ApiError> {
    let rows = sqlx::query_as::<_, Category>(
        "SELECT code, name, time_limit_days, description, active, public_view FROM categories
         ORDER BY code",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

async fn create_category(
    user: Authed,
    State(state): State<AppState>,
    Json(c): Json<Category>,
) -> Result<(StatusCode, Json<Category>), ApiError> {
    let who = user.require(&[Role::Admin], "managing the catalogue")?;
    check_public_view(&c.public_view)?;
    sqlx::query(
        "INSERT INTO categories (code, name, time_limit_days, description, active, public_view)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.code)
    .bind(&c.name)
    .bind(c.time_limit_days)
    .bind(&c.description)
    .bind(c.active)
    .bind(&c.public_view)
    .execute(&state.db)
    .await?;
    audit_change(
        &state,
        &who.username,
        "category.create",
        format!("category:{}", c.code),
        serde_json::json!({ "time_limit_days": c.time_limit_days, "public_view": c.public_view }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryChange {
    name: Option<String>,
    time_limit_days: Option<i32>,
    description: Option<String>,
    active: Option<bool>,
    public_view: Option<String>,
}

/// An administrator changes a category: what is given changes, the rest stays. A new time
/// limit applies to tickets dispatched from now on.
async fn change_category(
    user: Authed,
    State(state): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
    Json(c): Json<CategoryChange>,
) -> Result<Json<Category>, ApiError> {
    let who = user.require(&[Role::Admin], "managing the catalogue")?;
    if let Some(v) = &c.public_view {
        check_public_view(v)?;
    }
    let row = sqlx::query_as::<_, Category>(
        "UPDATE categories SET name = COALESCE($2, name),
                time_limit_days = COALESCE($3, time_limit_days),
                description = COALESCE($4, description), active = COALESCE($5, active),
                public_view = COALESCE($6, public_view)
         WHERE code = $1
         RETURNING code, name, time_limit_days, description, active, public_view",
    )
    .bind(&code)
    .bind(&c.name)
    .bind(c.time_limit_days)
    .bind(&c.description)
    .bind(c.active)
    .bind(&c.public_view)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no category {code:?}")))?;
    audit_change(
        &state,
        &who.username,
        "category.change",
        format!("category:{code}"),
        serde_json::to_value(&c).unwrap_or_default(),
    )
    .await?;
    Ok(Json(row))
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    id: i64,
    category: String,
    district: Option<String>,
    town: Option<String>,
    unit_id: i64,
}

async fn list_rules(_: Authed, State(state): State<AppState>) -> Result<Json<Vec<Rule>>, ApiError> {
    let rows = sqlx::query_as::<_, Rule>(
        "SELECT id, category, district, town, unit_id FROM dispatch_rules
         ORDER BY category, district NULLS FIRST, town NULLS FIRST",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

async fn create_rule(
    user: Authed,
    State(state): State<AppState>,
    Json(r): Json<Rule>,
) -> Result<(StatusCode, Json<Rule>), ApiError> {
    let who = user.require(&[Role::Admin], "managing dispatch rules")?;
    let id = sqlx::query_scalar!(
        "INSERT INTO dispatch_rules (category, district, town, unit_id) VALUES ($1, $2, $3, $4)
         RETURNING id",
        r.category,
        r.district,
        r.town,
        r.unit_id
    )
    .fetch_one(&state.db)
    .await?;
    audit_change(
        &state,
        &who.username,
        "dispatch_rule.create",
        format!("dispatch_rule:{id}"),
        serde_json::json!({ "category": r.category, "district": r.district, "unit_id": r.unit_id }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Rule { id, ..r })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuggestQuery {
    category: String,
    #[serde(default)]
    district: String,
    #[serde(default)]
    town: String,
}

async fn suggest(
    _: Authed,
    State(state): State<AppState>,
    Query(q): Query<SuggestQuery>,
) -> Result<Json<crate::tickets::store::Suggestion>, ApiError> {
    crate::tickets::store::suggest_unit(&state.db, &q.category, &q.district, &q.town)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no dispatch rule for {:?} in {:?}",
                q.category, q.district
            ))
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    name: String,
    #[serde(default = "app")]
    channel: String,
}

fn app() -> String {
    "app".into()
}

async fn create_client(
    user: Authed,
    State(state): State<AppState>,
    Json(c): Json<NewClient>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let who = user.require(&[Role::Admin], "managing Open311 clients")?;
    let key = users::random_secret(24)?;
    sqlx::query!(
        "INSERT INTO open311_clients (key_hash, name, channel) VALUES ($1, $2, $3)",
        users::secret_hash(&key),
        c.name,
        c.channel
    )
    .execute(&state.db)
    .await?;
    audit_change(
        &state,
        &who.username,
        "open311_client.create",
        format!("open311:{}", c.name),
        serde_json::json!({ "channel": c.channel }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": c.name, "api_key": key })),
    ))
}
