//! Logging in and out, and the [`Authed`] extractor every staff route takes: it reads
//! `Authorization: Bearer <token>`, finds the live session and hands the handler the
//! [`User`]; without one the request is refused with 401 before the handler runs.
//!
//! - `POST /api/auth/login` `{"username", "password"}` -> `{"token", "expires_at", "user"}`
//! - `POST /api/auth/logout` ends the session of the token sent
//! - `GET /api/auth/me` -> the user

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::users::{self, Role, User};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
}

/// A request made by a logged-in user.
pub struct Authed(pub User);

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::Unauthorized("log in first: send Authorization: Bearer <token>".into())
        })?;
        users::by_token(&state.db, token)
            .await?
            .map(Authed)
            .ok_or_else(|| ApiError::Unauthorized("the session is unknown or has expired".into()))
    }
}

impl Authed {
    /// Refuses unless the user has one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<&User, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "{what} is not for the {} role",
                self.0.role.as_str()
            )))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// The longest user name and password a login reads (a longer one is no one's).
const MAX_USERNAME_CHARS: usize = 64;
const MAX_PASSWORD_BYTES: usize = 1024;

async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    Json(req): Json<Login>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if req.username.chars().count() > MAX_USERNAME_CHARS || req.password.len() > MAX_PASSWORD_BYTES
    {
        return Err(ApiError::Unprocessable(format!(
            "a user name has at most {MAX_USERNAME_CHARS} characters and a password at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let ip = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let now = std::time::Instant::now();
    if let Err(wait) = state.logins.check(ip, &req.username, now) {
        // Refused before any password is hashed; nothing is written either.
        let secs = wait.as_secs().max(1);
        metrics::counter!("hotline_logins_throttled_total").increment(1);
        let mut r =
            ApiError::TooManyRequests(format!("too many failed logins: try again in {secs} s"))
                .into_response();
        if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let hours = state.tickets.session_hours;
    match users::login(&state.db, &req.username, &req.password, hours).await? {
        Some(session) => {
            state.logins.succeeded(ip, &req.username);
            crate::audit::record(
                &state.db,
                &session.user.username,
                "login",
                &format!("user:{}", session.user.username),
                serde_json::json!({}),
            )
            .await?;
            Ok(Json(session).into_response())
        }
        None => {
            state
                .logins
                .failed(ip, &req.username, std::time::Instant::now());
            crate::audit::record(
                &state.db,
                &req.username,
                "login.failed",
                &format!("user:{}", req.username),
                serde_json::json!({}),
            )
            .await?;
            Err(ApiError::Unauthorized(
                "wrong username or password, or the account is disabled".into(),
            ))
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    parts: axum::http::HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    let token = parts
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("no session token sent".into()))?;
    users::logout(&state.db, token).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn me(user: Authed) -> Json<User> {
    Json(user.0)
}
