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
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::Unavailable("the database is not available; try again".into())
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(
                error = format!("{e:#}"),
                "internal error answering a request"
            );
        }
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
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
