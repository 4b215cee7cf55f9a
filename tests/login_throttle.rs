//! Logins against guessing (issue 22, item 4), through the HTTP API on a real PostgreSQL: a
//! user name that fails five times waits before the next try (429 with Retry-After, no
//! password checked, even the right one), and its owner gets in once the wait is over; names
//! and passwords no one has (too long) are refused before any hashing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

#[path = "common/api.rs"]
mod api;

use api::{Api, PASSWORD, china};
use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test]
async fn a_guessed_account_makes_the_guesser_wait_and_its_owner_gets_in_after(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 3, 2)).await;
    api.login("analyst").await; // the account exists and works
    let attempt = |password: &'static str| {
        let api = &api;
        async move {
            api.send(
                "POST",
                "/api/auth/login",
                None,
                json!({"username": "analyst", "password": password}),
            )
            .await
        }
    };
    for _ in 0..5 {
        let (s, b) = attempt("guess-guess-guess").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    }
    let (s, b) = attempt(PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b["error"].as_str().unwrap().contains("try again"), "{b}");
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'login.failed'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(failed, 5, "a throttled try writes nothing");
    // The back-off is 1 s after the fifth failure: then the owner gets in.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, b) = attempt(PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The count started over.
    let (s, _) = attempt("guess-guess-guess").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, b) = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "x".repeat(65), "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _) = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "analyst", "password": "p".repeat(2000)}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
