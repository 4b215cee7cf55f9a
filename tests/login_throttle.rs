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

/// Sessions end when they should (issue 22, item 14): a new password or a disabled login ends
/// the sessions opened before, the live feed closes within seconds of a logout, and expired
/// sessions are purged.
#[sqlx::test]
async fn a_new_password_or_a_disabled_login_ends_its_sessions_and_the_feed_follows(db: PgPool) {
    use futures_util::StreamExt;
    let api = Api::new(db.clone(), china(2026, 3, 2)).await;
    let admin = api.login("admin").await;
    let old = api.login("analyst").await;
    let (s, _) = api.get("/api/auth/me", &old).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = api
        .send(
            "PATCH",
            "/api/users/analyst",
            Some(&admin),
            json!({"password": "a brand new password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = api.get("/api/auth/me", &old).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the old session ended");
    let (s, b) = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "analyst", "password": "a brand new password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let fresh = b["token"].as_str().unwrap().to_string();
    // Disabled: out at once, and no way back in.
    let (s, _) = api
        .send(
            "PATCH",
            "/api/users/analyst",
            Some(&admin),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.get("/api/auth/me", &fresh).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "analyst", "password": "a brand new password"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Only an administrator may, and only for someone who exists.
    let (s, _) = api
        .send(
            "PATCH",
            "/api/users/admin",
            Some(&fresh),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = api
        .send(
            "PATCH",
            "/api/users/nobody",
            Some(&admin),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The live feed closes after a logout.
    let sup = api.login("supervisor").await;
    let addr = api.serve().await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/acd/events?token={sup}"))
            .await
            .unwrap();
    assert!(ws.next().await.is_some(), "the first snapshot");
    let (s, _) = api
        .send(
            "POST",
            "/api/auth/logout",
            Some(&sup),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(8), async {
        while let Some(m) = ws.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f))) = m {
                return Some(u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the feed closed within 8 s");
    assert_eq!(closed, Some(4401));

    // Expired sessions are purged (at the next login).
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 hour'")
        .execute(&db)
        .await
        .unwrap();
    api.login("supervisor").await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 1, "only the new session");
}
