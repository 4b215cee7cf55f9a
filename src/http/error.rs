//! The one error type of the HTTP API. Every handler returns `Result<_, ApiError>`; each variant
//! maps to a status and a JSON body `{"error": "..."}`. Database failures become a logged 500
//! with no detail for the client; constraint violations become 409 or 422.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid session.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 429: too many attempts.
    #[error("{0}")]
    TooManyRequests(String),
    /// 429 with Retry-After: too many attempts, try again in `retry_after` seconds.
    #[error("{message}")]
    Wait {
        /// What to tell the client.
        message: String,
        /// Seconds until the next try is taken.
        retry_after: u64,
    },
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state (a duplicate, a stale transition).
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed but refers to something that does not exist or breaks a rule.
    #[error("{0}")]
    Unprocessable(String),
    /// 503: a dependency (the database) is not available right now.
    #[error("{0}")]
    Unavailable(String),
    /// 500: our fault; the detail is logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) | ApiError::Wait { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => ApiError::NotFound("not found".into()),
            sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::Conflict(format!(
                "already exists ({})",
                db.constraint().unwrap_or("unique")
            )),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                ApiError::Unprocessable(format!(
                    "refers to something that does not exist ({})",
                    db.constraint().unwrap_or("foreign key")
                ))
            }
            sqlx::Error::Database(db) if db.is_check_violation() => ApiError::Unprocessable(
                format!("breaks the rule {}", db.constraint().unwrap_or("check")),
            ),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => {
                ApiError::Unavailable("the database is not available; try again".into())
            }
            // SQLSTATE classes 08 (connection), 53 (out of resources) and 57 (the server is
            // shutting down or restarting): the request may well succeed when tried again.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| ["08", "53", "57"].iter().any(|k| c.starts_with(k))) =>
            {
                ApiError::Unavailable("the database is not available; try again".into())
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl From<crate::tickets::store::StoreError> for ApiError {
    fn from(e: crate::tickets::store::StoreError) -> Self {
        use crate::tickets::store::StoreError as S;
        use crate::tickets::workflow::WorkflowError as W;
        match e {
            S::NotFound(m) => ApiError::NotFound(m),
            S::Stale { .. } => ApiError::Conflict(e.to_string()),
            S::Workflow(W::Illegal { .. }) => ApiError::Conflict(e.to_string()),
            S::Workflow(W::Forbidden(m)) => ApiError::Forbidden(m.to_string()),
            S::Workflow(W::Rule(m)) => ApiError::Unprocessable(m),
            S::Workflow(W::Calendar(c)) => ApiError::Unprocessable(c.to_string()),
            S::Invalid(m) => ApiError::Unprocessable(m),
            S::Db(d) => d.into(),
        }
    }
}

impl From<crate::users::UserError> for ApiError {
    fn from(e: crate::users::UserError) -> Self {
        use crate::users::UserError as U;
        match e {
            U::WeakPassword | U::UnitMismatch => ApiError::Unprocessable(e.to_string()),
            U::Hash(m) => ApiError::Internal(anyhow::anyhow!(m)),
            U::Busy => ApiError::Unavailable(e.to_string()),
            U::Db(d) => d.into(),
        }
    }
}

/// Retry-After of a 503 answered because the database is not available.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(
                error = format!("{e:#}"),
                "internal error answering a request"
            );
        }
        let body = serde_json::json!({ "error": self.to_string() });
        let mut r = (self.status(), Json(body)).into_response();
        // When to come back: a throttled client after its wait, and after a few seconds when
        // the database is away (a restart or a failover takes about that long).
        let retry_after = match &self {
            ApiError::Wait { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        };
        if let Some(v) =
            retry_after.and_then(|s| axum::http::HeaderValue::from_str(&s.max(1).to_string()).ok())
        {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        r
    }
}

/// The dates the statistics and searches take: from 2000 to 2199. Beyond them lie only typing
/// mistakes and attempts to overflow date arithmetic (a panic in the handler).
pub fn date_in_range(day: chrono::NaiveDate, name: &str) -> Result<chrono::NaiveDate, ApiError> {
    use chrono::Datelike;
    if (2000..2200).contains(&day.year()) {
        Ok(day)
    } else {
        Err(ApiError::Unprocessable(format!(
            "{name} {day}: expected a date from 2000 to 2199"
        )))
    }
}

/// [`date_in_range`] for a moment.
pub fn time_in_range(
    t: chrono::DateTime<chrono::Utc>,
    name: &str,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    date_in_range(t.date_naive(), name).map(|_| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_503_and_internal_hides_detail() {
        assert_eq!(
            ApiError::from(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let e = ApiError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(
            ApiError::from(sqlx::Error::RowNotFound).status(),
            StatusCode::NOT_FOUND
        );
    }
}
