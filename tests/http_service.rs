//! The service routes against a real PostgreSQL (each test gets its own database).
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

use hotline::http::{AppState, app};

fn state(db: PgPool) -> AppState {
    let settings =
        hotline::tickets::store::Settings::from_config(&Default::default()).expect("calendar");
    AppState::bare(db, settings)
}

async fn get(db: PgPool, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = app(state(db))
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[sqlx::test]
async fn ready_when_migrated(db: PgPool) {
    let (status, body) = get(db, "/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
}

#[sqlx::test(migrations = false)]
async fn not_ready_until_migrated(db: PgPool) {
    let (status, body) = get(db.clone(), "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["database"]["reachable"], true);
    let all: Vec<i64> = hotline::db::MIGRATOR.iter().map(|m| m.version).collect();
    assert!(all.len() >= 2);
    assert_eq!(
        body["database"]["pending_migrations"],
        serde_json::json!(all)
    );

    hotline::db::migrate(&db).await.expect("migrate");
    let (status, _) = get(db, "/ready").await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test]
async fn not_ready_when_the_database_is_gone(db: PgPool) {
    db.close().await;
    let (status, body) = get(db, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["database"]["reachable"], false);
}

#[sqlx::test]
async fn health_answers_and_unknown_paths_get_a_json_404(db: PgPool) {
    let (status, body) = get(db.clone(), "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = get(db, "/no/such/thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such endpoint");
}

/// Every answer says not to sniff, frame or leak the path; pages also carry a policy that runs
/// only their own scripts (issue 22, item 16).
#[sqlx::test]
async fn answers_carry_the_safety_headers_and_pages_a_content_security_policy(db: PgPool) {
    let resp = hotline::http::app(state(db))
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agent")).unwrap();
    std::fs::write(dir.path().join("agent/index.html"), "<!doctype html>").unwrap();
    let resp = hotline::http::web::routes(dir.path().to_path_buf())
        .oneshot(Request::get("/agent/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    for part in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
}
