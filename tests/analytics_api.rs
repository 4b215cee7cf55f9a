//! Ticket analytics over HTTP against a real PostgreSQL: hot topics from new tickets'
//! descriptions (segmented by jieba in the term indexer, counted once per ticket and day),
//! the most frequent and the fastest rising against the period before, checked against
//! counts made by hand; volumes by handling unit; every table as CSV and as an SVG chart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api.rs"]
mod api;

use std::sync::Arc;

use api::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Files a ticket directly on `day` (China date) at 10:00 with `description`.
async fn filed(db: &PgPool, n: usize, day: &str, description: &str) {
    sqlx::query(
        "INSERT INTO tickets (number, channel, request_type, category, description, status,
                              created_by, created_at)
         VALUES ($1, 'phone', 'complaint', 'noise', $2, 'registered', 'intake',
                 ($3::date + time '10:00') AT TIME ZONE 'Asia/Shanghai')",
    )
    .bind(format!("T{n:06}"))
    .bind(description)
    .bind(day)
    .execute(db)
    .await
    .unwrap();
}

#[sqlx::test]
async fn hot_topics_rank_by_frequency_and_by_rise_against_the_period_before(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 11, 9)).await;
    let analyst = api.login("analyst").await;
    let intake = api.login("intake").await;
    // The week 2026-11-02..08: water outages in six tickets, noise in four, a broken street
    // light in two. The week before: one outage, eight noise complaints.
    let mut n = 0;
    let mut file = |day: &'static str, text: &'static str, times: usize| {
        let mut v = Vec::new();
        for _ in 0..times {
            n += 1;
            v.push((n, day, text));
        }
        v
    };
    let mut all = Vec::new();
    all.extend(file("2026-11-03", "停水", 3));
    all.extend(file("2026-11-03", "又停水了", 1));
    all.extend(file("2026-11-05", "我们这里停水，什么时候恢复供水", 2));
    all.extend(file("2026-11-04", "施工噪音", 4));
    all.extend(file("2026-11-06", "路灯坏了", 2));
    all.extend(file("2026-10-28", "停水", 1));
    all.extend(file("2026-10-30", "施工噪音", 8));
    for (n, day, text) in all {
        filed(&db, n, day, text).await;
    }
    let jieba = Arc::new(jieba_rs::Jieba::new());
    let mut indexed = 0;
    loop {
        let k = hotline::tickets::terms::index_batch(&db, &jieba, 5)
            .await
            .unwrap();
        if k == 0 {
            break;
        }
        indexed += k;
    }
    assert_eq!(indexed, 21, "every ticket indexed once, in batches");
    assert_eq!(
        hotline::tickets::terms::index_batch(&db, &jieba, 5)
            .await
            .unwrap(),
        0,
        "nothing twice"
    );

    let (s, b) = api
        .get(
            "/api/stats/hot-topics?from=2026-11-02&to=2026-11-08&limit=50",
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (&b["previous_from"], &b["previous_to"]),
        (&json!("2026-10-26"), &json!("2026-11-01"))
    );
    let top = b["top"].as_array().unwrap();
    let get = |list: &[Value], term: &str| -> Option<(i64, i64)> {
        list.iter().find(|t| t["term"] == term).map(|t| {
            (
                t["tickets"].as_i64().unwrap(),
                t["previous"].as_i64().unwrap(),
            )
        })
    };
    assert_eq!(top[0]["term"], "停水", "{b}");
    assert_eq!(get(top, "停水"), Some((6, 1)));
    assert_eq!(get(top, "噪音"), Some((4, 8)));
    assert_eq!(get(top, "路灯"), Some((2, 0)));
    assert_eq!(get(top, "供水"), Some((2, 0)));
    for filler in ["我们", "这里", "什么", "时候", "了"] {
        assert_eq!(get(top, filler), None, "{filler} is not a topic: {b}");
    }
    // Rising (three tickets at least): outages 7/2 = 3.5 times; noise fell (5/9).
    let rising = b["rising"].as_array().unwrap();
    assert_eq!(rising[0]["term"], "停水", "{b}");
    assert_eq!(rising[0]["ratio"], 3.5);
    assert!(
        get(rising, "路灯").is_none(),
        "two tickets are too few to rise"
    );
    let noise = rising.iter().position(|t| t["term"] == "噪音").unwrap();
    assert!(noise > 0 && rising[noise]["ratio"].as_f64().unwrap() < 1.0);

    // Whole months come from the monthly roll-up: October and November together.
    let (s, b) = api
        .get(
            "/api/stats/hot-topics?from=2026-10-01&to=2026-11-30&limit=50",
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let top = b["top"].as_array().unwrap();
    assert_eq!(get(top, "噪音"), Some((12, 0)), "{b}");
    assert_eq!(get(top, "停水"), Some((7, 0)), "{b}");
    assert_eq!(get(top, "路灯"), Some((2, 0)), "{b}");
    // And the days at either end from the daily table: 28 October to 5 November.
    let (_, b) = api
        .get(
            "/api/stats/hot-topics?from=2026-10-28&to=2026-11-05&limit=50",
            &analyst,
        )
        .await;
    let top = b["top"].as_array().unwrap();
    assert_eq!(get(top, "停水"), Some((7, 0)), "{b}");
    assert_eq!(get(top, "路灯"), None, "6 November is outside: {b}");

    // CSV: both lists; SVG: a chart of the top terms.
    let (s, csv) = api
        .get(
            "/api/stats/hot-topics?from=2026-11-02&to=2026-11-08&limit=2&format=csv",
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let csv = csv.as_str().unwrap().trim_start_matches('\u{feff}');
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "list,term,tickets,previous,ratio");
    assert_eq!(lines[1], "top,停水,6,1,3.50");
    assert!(lines.contains(&"rising,停水,6,1,3.50"), "{csv}");
    let (s, svg) = api
        .get(
            "/api/stats/hot-topics?from=2026-11-02&to=2026-11-08&format=svg",
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let svg = svg.as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("停水"), "{svg}");

    // Only the office's analysing roles; a format is one of three.
    let (s, _) = api
        .get(
            "/api/stats/hot-topics?from=2026-11-02&to=2026-11-08",
            &intake,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .get(
            "/api/stats/hot-topics?from=2026-11-02&to=2026-11-08&format=xml",
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test]
async fn volumes_by_unit_and_the_scorecard_export_as_csv_and_charts(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 11, 9)).await;
    let analyst = api.login("analyst").await;
    // Dispatches counted into the units' daily summary, as the history's trigger does.
    for (unit, day, dispatched, replied, on_time) in [
        (WATER, "2026-11-03", 5, 4, 3),
        (WATER, "2026-11-04", 2, 2, 2),
        (ECOLOGY, "2026-11-04", 3, 1, 0),
    ] {
        sqlx::query(
            "INSERT INTO unit_daily (unit_id, day, dispatched, replied, replied_on_time)
             VALUES ($1, $2::date, $3, $4, $5)",
        )
        .bind(unit)
        .bind(day)
        .bind(dispatched)
        .bind(replied)
        .bind(on_time)
        .execute(&db)
        .await
        .unwrap();
    }
    let range = "from=2026-11-02&to=2026-11-08";
    let (s, b) = api
        .get(&format!("/api/stats/tickets?by=unit&{range}"), &analyst)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!([{"key": "市水务集团", "filed": 7}, {"key": "市生态环境局", "filed": 3}])
    );
    let (_, csv) = api
        .get(
            &format!("/api/stats/tickets?by=unit&format=csv&{range}"),
            &analyst,
        )
        .await;
    assert_eq!(
        csv.as_str().unwrap(),
        "\u{feff}unit,tickets\r\n市水务集团,7\r\n市生态环境局,3\r\n"
    );
    let (_, svg) = api
        .get(
            &format!("/api/stats/tickets?by=unit&format=svg&{range}"),
            &analyst,
        )
        .await;
    assert_eq!(svg.as_str().unwrap().matches("class=\"bar\"").count(), 2);

    let (_, csv) = api
        .get(&format!("/api/stats/units?format=csv&{range}"), &analyst)
        .await;
    let csv = csv.as_str().unwrap().trim_start_matches('\u{feff}');
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("unit,dispatched,returned,replied,replied_on_time"),
        "{csv}"
    );
    // Water: 5 of 6 replies on time (83.3 %).
    assert!(
        lines.contains(&"市水务集团,7,0,6,5,0,0,0,0,83.3,0.0,0.0,"),
        "{csv}"
    );
    let (_, svg) = api
        .get(&format!("/api/stats/units?format=svg&{range}"), &analyst)
        .await;
    assert!(svg.as_str().unwrap().contains("on time"));
}

/// Dates no one means (year -262143, 262142) used to overflow the date arithmetic and panic
/// the handler; each endpoint now answers 422 and names the parameter.
#[sqlx::test]
async fn extreme_dates_are_refused_with_a_message_not_a_panic(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 11, 9)).await;
    let analyst = api.login("analyst").await;
    for (path, name) in [
        (
            "/api/stats/hot-topics?from=-262143-01-01&to=2026-01-01",
            "from",
        ),
        (
            "/api/stats/hot-topics?from=2026-01-01&to=%2B262142-12-31",
            "to",
        ),
        ("/api/stats/units?from=-262143-01-01&to=2026-01-01", "from"),
        (
            "/api/stats/tickets?from=2026-01-01&to=%2B262142-12-31&by=day",
            "to",
        ),
        ("/api/stats/calls?to=-262143-01-01T00:00:00Z", "to"),
        ("/api/stats/calls?from=-262143-01-01T00:00:00Z", "from"),
    ] {
        let (s, b) = api.get(path, &analyst).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {b}");
        assert!(
            b["error"].as_str().unwrap_or("").contains(name),
            "{path}: {b}"
        );
    }
    let (s, b) = api
        .send(
            "GET",
            "/open311/v2/requests.json?start_date=-262143-01-01T00:00:00Z",
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}
