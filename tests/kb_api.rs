//! The knowledge base through the HTTP API against a real PostgreSQL: unit ownership,
//! approval, version history, expiry, imports that land whole or not at all, export, and two
//! nodes sharing one database seeing each other's published edits in search.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

#[path = "common/api.rs"]
mod api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use api::{Api, china};
use hotline::kb::service::Kb;

async fn node(db: &PgPool, seed: bool, shutdown: &CancellationToken) -> (Api, Arc<Kb>) {
    let kb = Kb::open(db.clone(), None, true).await.unwrap();
    kb.spawn_follower(shutdown.clone());
    let api = Api::attach(db.clone(), china(2026, 11, 28), Some(kb.clone()));
    if seed {
        api.seed().await;
    }
    (api, kb)
}

fn article(title: &str) -> Value {
    json!({
        "title": title,
        "body": "停水期间可拨打供水服务热线96606报修，抢修人员2小时内到达现场。",
        "spoken_answer": "停水请拨打96606报修。",
        "category": "水电气暖",
        "question_variants": ["家里没水了找谁", "停水了怎么办"],
        "tags": ["停水"],
    })
}

async fn search(api: &Api, token: &str, q: &str) -> Vec<Value> {
    let (s, r) = api
        .get(&format!("/api/kb/search?q={}", urlencode(q)), token)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r["hits"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[sqlx::test]
async fn units_edit_their_own_articles_and_the_office_approves(db: PgPool) {
    let shutdown = CancellationToken::new();
    let (api, _) = node(&db, true, &shutdown).await;
    let water = api.login("water").await;
    let huaiyin = api.login("huaiyin").await;
    let sup = api.login("supervisor").await;
    let intake = api.login("intake").await;

    let (s, a) = api
        .send(
            "POST",
            "/api/kb/articles",
            Some(&water),
            article("突然停水报修"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["status"], "draft");
    assert_eq!(a["unit_id"], api::WATER, "a unit's article is its own");
    let id = a["id"].as_i64().unwrap();
    let (s, _) = api
        .send("POST", "/api/kb/articles", Some(&intake), article("x"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Another unit may not touch it.
    let mut edit = article("突然停水报修（槐荫区改）");
    edit["version"] = json!(1);
    let (s, b) = api
        .send(
            "PUT",
            &format!("/api/kb/articles/{id}"),
            Some(&huaiyin),
            edit.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, _) = api
        .send(
            "POST",
            &format!("/api/kb/articles/{id}/publish"),
            Some(&huaiyin),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The owner's publish waits for approval; drafts and pending articles are not found.
    let (s, a) = api
        .send(
            "POST",
            &format!("/api/kb/articles/{id}/publish"),
            Some(&water),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["status"], "pending");
    assert!(search(&api, &intake, "停水报修").await.is_empty());
    let (s, a) = api
        .send(
            "POST",
            &format!("/api/kb/articles/{id}/publish"),
            Some(&sup),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["status"], "published");
    let hits = search(&api, &intake, "家里没水了").await;
    assert_eq!(hits[0]["id"], id, "{hits:?}");

    // A stale edit is refused; the owner's edit of a published article needs approval again.
    let (s, b) = api
        .send(
            "PUT",
            &format!("/api/kb/articles/{id}"),
            Some(&water),
            edit.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    edit["version"] = json!(3);
    let (s, a) = api
        .send("PUT", &format!("/api/kb/articles/{id}"), Some(&water), edit)
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["status"], "draft");
    assert!(search(&api, &intake, "停水报修").await.is_empty());

    let (s, h) = api
        .get(&format!("/api/kb/articles/{id}/history"), &intake)
        .await;
    assert_eq!(s, StatusCode::OK);
    let steps: Vec<(i64, &str, &str)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["action"].as_str().unwrap(),
                v["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (1, "create", "water"),
            (2, "submit", "water"),
            (3, "publish", "supervisor"),
            (4, "edit", "water")
        ]
    );
    assert_eq!(
        h[0]["snapshot"]["title"], "突然停水报修",
        "each version keeps its content"
    );
    assert_eq!(h[3]["snapshot"]["title"], "突然停水报修（槐荫区改）");
    let e = sqlx::query("UPDATE kb_versions SET actor = 'x'")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"));
    shutdown.cancel();
}

#[sqlx::test]
async fn articles_leave_search_on_their_last_day_and_are_marked_expired(db: PgPool) {
    let shutdown = CancellationToken::new();
    let (api, kb) = node(&db, true, &shutdown).await;
    let sup = api.login("supervisor").await;
    let today = hotline::kb::service::today();
    let mut a = article("今年的停水补贴政策");
    a["valid_until"] = json!((today - chrono::Duration::days(1)).to_string());
    let (_, a) = api.send("POST", "/api/kb/articles", Some(&sup), a).await;
    let id = a["id"].as_i64().unwrap();
    let mut b = article("长期有效的停水报修指南");
    b["valid_until"] = json!(today.to_string());
    let (_, b) = api.send("POST", "/api/kb/articles", Some(&sup), b).await;
    for x in [&a, &b] {
        let (s, _) = api
            .send(
                "POST",
                &format!("/api/kb/articles/{}/publish", x["id"]),
                Some(&sup),
                json!({"version": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let ids: Vec<i64> = search(&api, &sup, "停水")
        .await
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [b["id"].as_i64().unwrap()],
        "the expired one is gone, the last-day one stays"
    );
    let expired = hotline::kb::store::expire_due(&db, today).await.unwrap();
    assert_eq!(expired, [id]);
    kb.refresh(&[id]).await.unwrap();
    let (_, a) = api.get(&format!("/api/kb/articles/{id}"), &sup).await;
    assert_eq!(a["status"], "expired");
    shutdown.cancel();
}

#[sqlx::test]
async fn imports_land_whole_or_not_at_all_and_export_round_trips(db: PgPool) {
    let shutdown = CancellationToken::new();
    let (api, _) = node(&db, true, &shutdown).await;
    let sup = api.login("supervisor").await;
    let water = api.login("water").await;
    let good = r#"{"external_id":"gov-1","title":"停水报修","body":"拨打96606报修。","spoken_answer":"请拨打96606。","category":"水电气暖","question_variants":["没水了找谁"]}"#;
    let bad_file = format!(
        "{good}\n{{not json\n{}\n{}\n",
        r#"{"title":"无正文","body":"","category":"水电气暖","question_variants":[]}"#,
        r#"{"title":"未知单位","body":"正文","category":"c","question_variants":[],"unit":"nowhere"}"#
    );
    let (s, r) = import(&api, &sup, "jsonl", &bad_file).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let lines: Vec<i64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4]);
    assert!(r["errors"][1]["error"].as_str().unwrap().contains("body"));
    assert!(
        r["errors"][2]["error"]
            .as_str()
            .unwrap()
            .contains("nowhere")
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM kb_articles")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing half-imported");

    let file = format!(
        "{good}\n{}\n",
        r#"{"external_id":"gov-2","title":"燃气泄漏","body":"关闭阀门，开窗通风，到室外拨打96777。","category":"水电气暖","question_variants":["煤气味"],"unit":"water","tags":["燃气"]}"#
    );
    let (s, r) = import(&api, &sup, "jsonl&publish=true", &file).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["imported"], 2);
    let hits = search(&api, &sup, "家里有煤气味").await;
    assert_eq!(
        hits[0]["external_id"], "gov-2",
        "results carry the other system's id"
    );
    // Importing the same external id again makes a new version, not a duplicate.
    let (s, _) = import(
        &api,
        &sup,
        "jsonl&publish=true",
        &file.replace("拨打96606报修。", "拨打96606或12345报修。"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM kb_articles")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // A unit imports only for itself.
    let (s, r) = import(
        &api,
        &water,
        "jsonl",
        &good.replace("gov-1", "gov-3").replace(
            r#""question_variants""#,
            r#""unit":"huaiyin","question_variants""#,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    // Nor may it take over the office's article by its external id (issue 22, item 11): it
    // would become the unit's draft and leave search.
    let (s, r) = import(&api, &water, "jsonl", &good.replace("96606", "00000")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(
        r.to_string().contains("the hotline office's article"),
        "{r}"
    );
    let hits = search(&api, &sup, "没水了找谁").await;
    assert_eq!(hits[0]["external_id"], "gov-1", "still published as it was");
    // A whole ticket's text to suggest articles for, however long (1.4 MB here; the body limit is 2 MB), is read from
    // its start (issue 22, item 12).
    let long = format!(
        "家里停水了，没水了找谁。{}",
        "市民反映情况较多".repeat(60_000)
    );
    let (s, r) = api
        .send(
            "POST",
            "/api/kb/suggest",
            Some(&sup),
            serde_json::json!({ "text": long }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["hits"][0]["external_id"], "gov-1", "{r}");

    // CSV out and back in.
    let (s, csv) = api.get("/api/kb/export?format=csv", &sup).await;
    assert_eq!(s, StatusCode::OK);
    let csv = csv.as_str().unwrap().to_string();
    assert!(csv.starts_with("external_id,title,body"), "{csv}");
    assert!(csv.contains("gov-2") && csv.contains(",water,"), "{csv}");
    let (s, r) = import(&api, &sup, "csv", &csv).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["imported"], 2);
    let (s, r) = import(&api, &sup, "csv", "title,colour\nx,y\n").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let (s, jsonl) = api.get("/api/kb/export?format=jsonl", &sup).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(jsonl.as_str().unwrap().lines().count(), 2);
    shutdown.cancel();
}

async fn import(api: &Api, token: &str, format: &str, body: &str) -> (StatusCode, Value) {
    let req = axum::http::Request::post(format!("/api/kb/import?format={format}"))
        .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    api.raw(req).await
}

#[sqlx::test]
async fn two_nodes_on_one_database_see_each_others_published_edits(db: PgPool) {
    let shutdown = CancellationToken::new();
    let (a, _) = node(&db, true, &shutdown).await;
    let (b, kb_b) = node(&db, false, &shutdown).await;
    let sup_a = a.login("supervisor").await;
    let intake_b = b.login("intake").await;
    let (_, art) = a
        .send(
            "POST",
            "/api/kb/articles",
            Some(&sup_a),
            article("停水报修"),
        )
        .await;
    let id = art["id"].as_i64().unwrap();
    a.send(
        "POST",
        &format!("/api/kb/articles/{id}/publish"),
        Some(&sup_a),
        json!({"version": 1}),
    )
    .await;
    let started = Instant::now();
    let found = loop {
        let hits = search(&b, &intake_b, "停水了怎么办").await;
        if hits.first().is_some_and(|h| h["id"] == id) || started.elapsed() > Duration::from_secs(3)
        {
            break hits;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(found[0]["id"], id, "node B never saw node A's article");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    // An edit on A reaches B's index too, and B's index holds exactly the database.
    let mut edit = article("停水报修和水压低");
    edit["version"] = json!(2);
    let (s, _) = a
        .send("PUT", &format!("/api/kb/articles/{id}"), Some(&sup_a), edit)
        .await;
    assert_eq!(s, StatusCode::OK);
    let started = Instant::now();
    while search(&b, &intake_b, "水压低").await.is_empty()
        && started.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!search(&b, &intake_b, "水压低").await.is_empty());
    assert_eq!(kb_b.indexed(), 1);
    shutdown.cancel();
}

#[sqlx::test]
async fn a_corrupt_index_directory_is_rebuilt_from_the_database(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb-index");
    {
        let kb = Kb::open(db.clone(), Some(path.clone()), true)
            .await
            .unwrap();
        let d: hotline::kb::store::Draft = serde_json::from_value(article("停水报修")).unwrap();
        let a = hotline::kb::store::create(&db, &d, None, "published", "test")
            .await
            .unwrap();
        kb.put(vec![a]).await.unwrap();
    }
    // Reopened untouched: reused.
    {
        let kb = Kb::open(db.clone(), Some(path.clone()), true)
            .await
            .unwrap();
        assert_eq!(kb.search("停水", &Default::default(), 5).unwrap().len(), 1);
    }
    // Every file scribbled over: rebuilt, not fatal.
    for e in std::fs::read_dir(&path).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, b"garbage").unwrap();
        }
    }
    let kb = Kb::open(db.clone(), Some(path.clone()), true)
        .await
        .unwrap();
    assert_eq!(kb.search("停水", &Default::default(), 5).unwrap().len(), 1);
    // Missing altogether: rebuilt too.
    drop(kb);
    std::fs::remove_dir_all(&path).unwrap();
    let kb = Kb::open(db.clone(), Some(path.clone()), true)
        .await
        .unwrap();
    assert_eq!(kb.search("停水", &Default::default(), 5).unwrap().len(), 1);
    // A second node pointed at the same directory (locked by the first) indexes in memory.
    let other = Kb::open(db.clone(), Some(path), true).await.unwrap();
    assert_eq!(
        other.search("停水", &Default::default(), 5).unwrap().len(),
        1
    );
}
