//! Service routes for operators and orchestrators: liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::db;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Liveness: the process answers. Says nothing about the database.
async fn health(State(st): State<AppState>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.started.elapsed().as_secs(),
    }))
}

/// Readiness: the database answers, every compiled-in migration is applied, and the node is
/// not draining (a load balancer stops sending it new work).
async fn ready(State(st): State<AppState>) -> impl IntoResponse {
    let db = db::readiness(&st.db, Duration::from_secs(2)).await;
    let draining = st.node.draining();
    let ready = db.is_ready() && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if draining { "draining" } else if ready { "ready" } else { "not ready" },
        "database": db,
        "draining": draining,
        "calls_in_progress": st.node.live_calls(),
        "restored": st.node.restored(),
    });
    (status, Json(body))
}

/// Prometheus text exposition format, version 0.0.4.
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let pool = &st.db;
    metrics::gauge!("hotline_db_pool_connections").set(pool.size() as f64);
    metrics::gauge!("hotline_db_pool_idle_connections").set(pool.num_idle() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}
