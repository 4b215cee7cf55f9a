//! The HTTP server: one router per resource, merged into [`app`]. This module owns the shared
//! state handed to handlers and the service routes (`/health`, `/ready`, `/metrics`).

mod admin;
mod agents;
mod auth;
mod directory;
mod error;
mod export;
mod frequent;
mod kb;
mod kpis;
mod open311;
mod openapi;
mod public;
mod service;
pub mod sip_ws;
pub mod throttle;
mod tickets;
pub mod tls;
pub mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub db: PgPool,
    /// Renders the Prometheus text exposition for `/metrics`.
    pub metrics: PrometheusHandle,
    /// When this process started (reported by `/health`).
    pub started: Arc<Instant>,
    /// The IVR script in force, when one is configured (the admin API reloads it).
    pub ivr: Option<Arc<crate::ivr::store::ScriptStore>>,
    /// The admin API's bearer token; without one the admin API is off.
    pub admin_token: Option<Arc<str>>,
    /// The SIP engine task (the call handler takes commands through it).
    pub engine: Option<crate::engine::EngineHandle<crate::calls::Control>>,
    /// The ticket workflow's calendar, limits and clock.
    pub tickets: Arc<crate::tickets::store::Settings>,
    /// The knowledge base and this node's search index of it.
    pub kb: Option<Arc<crate::kb::service::Kb>>,
    /// The ACD task (queues and agents).
    pub acd: Option<crate::acd::service::AcdHandle>,
    /// The node: draining or not, what it restored at start.
    pub node: Arc<crate::node::NodeState>,
    /// Failed logins by address and user name.
    pub logins: Arc<throttle::LoginThrottle>,
    /// `acd.frequent_calls_per_hour`: more calls than this in an hour flag a number.
    pub frequent_calls_per_hour: u32,
}

impl AppState {
    /// The API over a database alone: no SIP engine, ACD, IVR script, knowledge base or admin
    /// token (tests and benchmarks set the ones they need on top); the routes that need one
    /// answer as when it is not configured.
    pub fn bare(db: PgPool, tickets: crate::tickets::store::Settings) -> AppState {
        AppState {
            db,
            metrics: crate::telemetry::prometheus(),
            started: Arc::new(Instant::now()),
            ivr: None,
            admin_token: None,
            engine: None,
            tickets: Arc::new(tickets),
            kb: None,
            acd: None,
            node: Arc::default(),
            logins: Arc::default(),
            frequent_calls_per_hour: crate::config::AcdConfig::default().frequent_calls_per_hour,
        }
    }
}

pub use tls::{redirect_to_https, with_hsts};

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(service::routes())
        .merge(admin::routes())
        .merge(auth::routes())
        .merge(directory::routes())
        .merge(tickets::routes())
        .merge(kb::routes())
        .merge(agents::routes())
        .merge(frequent::routes())
        .merge(kpis::routes())
        .merge(public::routes())
        .merge(open311::routes())
        .merge(openapi::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(track_metrics))
        .layer(middleware::map_response(|r: Response| {
            std::future::ready(with_safety_headers(r))
        }))
        .with_state(state)
}

/// Headers every response carries: no MIME sniffing (a JSON answer or an upload is never run
/// as a script), no framing by another site (click-jacking), no Referer with the path (ticket
/// numbers) to other sites.
pub fn with_safety_headers(mut r: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Counts requests and their latency by route pattern (not raw path, to bound the labels).
async fn track_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("hotline_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("hotline_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
