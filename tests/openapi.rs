//! The OpenAPI document describes the whole API: every route the code declares is in it, and
//! every operation in it is answered by a route (not the 404 fallback, not 405).
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

#[path = "common/api.rs"]
mod api;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

/// `/a/{x}/b/{y}.json` and `/a/{z}/b/{w}` both become `/a/{}/b/{}`.
fn shape(path: &str) -> String {
    let re = regex::Regex::new(r"\{[^}]+\}(\.json)?").unwrap();
    re.replace_all(path, "{}").into_owned()
}

#[sqlx::test]
async fn every_route_is_described_and_every_description_is_routed(db: PgPool) {
    let api = api::Api::new(db, api::china(2026, 3, 2)).await;
    let (s, doc) = api
        .send("GET", "/api/openapi.json", None, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();

    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let mut declared = BTreeSet::new();
    for entry in std::fs::read_dir("src/http").unwrap() {
        let path = entry.unwrap().path();
        // The pages (web.rs) are HTML, not API; the README describes them.
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("web.rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for c in route.captures_iter(&text) {
                declared.insert(shape(&c[1]));
            }
        }
    }
    let described: BTreeSet<String> = paths.keys().map(|p| shape(p)).collect();
    assert!(declared.len() > 25, "{declared:?}");
    let missing: Vec<_> = declared.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes not in openapi.json: {missing:?}"
    );
    let extra: Vec<_> = described.difference(&declared).collect();
    assert!(
        extra.is_empty(),
        "openapi.json paths with no route: {extra:?}"
    );

    let param = regex::Regex::new(r"\{[^}]+\}").unwrap();
    for (path, ops) in paths {
        let concrete = param.replace_all(path, "x").into_owned();
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            let (s, body) = api
                .send(&method.to_uppercase(), &concrete, None, Value::Null)
                .await;
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"], "no such endpoint", "{method} {path}");
        }
    }
}
