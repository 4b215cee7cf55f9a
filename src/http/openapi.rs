//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the whole HTTP API, kept beside the
//! routes (`openapi.json`); a test checks that every route in `src/http` is described.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
