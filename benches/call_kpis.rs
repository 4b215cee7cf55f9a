//! The call KPIs (`GET /api/stats/calls`) at a year of a large city's calls, through real
//! HTTP on loopback against a real PostgreSQL: a scratch database is filled with `CALLS`
//! call records (default 1,000,000: a year, 3 queues, 100 agents; 90 % answered after 0-60 s
//! with 1-10 minutes of talk, 8 % abandoned, 2 % callbacks) and the agents' state history
//! (`agent_states`: 100 agents, 8 hours a day, a state change every 10 minutes on average),
//! then each query is timed (`ROUNDS` each, sequential) and p50/p99/max reported.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench call_kpis`
//! (env: CALLS, ROUNDS). The scratch database is dropped at the end.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot start has nothing to report

mod common;

use std::time::Instant;

use common::{env, ms, percentile};
use hotline::users::{self, Role};
use serde_json::Value;

const PASSWORD: &str = "benchmark password";

const FILL: &str = r#"
INSERT INTO calls (call_id, caller, called, started_at, answered_at, ended_at, end_reason,
                   queue, queued_at, agent_id, agent_answered_at, outcome, callback)
SELECT 'c' || i || '@bench', '13' || lpad(((i * 104729) % 1000000000)::text, 9, '0'), '12345',
       q, q, q + CASE WHEN o = 'abandoned' THEN w ELSE w + talk END, 'caller hung up',
       (ARRAY['general', 'elderly', 'enterprise'])[1 + i % 3], q + interval '20 seconds',
       CASE WHEN o = 'abandoned' THEN NULL ELSE 1 + (i * 7) % 100 END,
       CASE WHEN o = 'abandoned' THEN NULL ELSE q + interval '20 seconds' + w END,
       o, o = 'callback'
FROM (
    SELECT i, now() - ($CALLS - i) * (interval '1 second' * 31536000 / $CALLS) AS q,
           ((i * 7919) % 61) * interval '1 second' AS w,
           (60 + (i * 104723) % 540) * interval '1 second' AS talk,
           CASE WHEN i % 50 = 0 THEN 'callback' WHEN i % 12 = 0 THEN 'abandoned'
                ELSE 'answered' END AS o
    FROM generate_series(1::bigint, $CALLS) i
) g;
-- 100 agents, 08:00-16:00 China time every day of the year, a state every 10 minutes on
-- average: available, on a call, wrap-up, sometimes paused.
INSERT INTO agent_states (agent_id, state, queues, started_at, ended_at)
SELECT a, (ARRAY['available', 'on_call', 'on_call', 'wrap_up', 'on_call', 'paused'])[1 + (a * 31 + s) % 6],
       ARRAY[(ARRAY['general', 'elderly', 'enterprise'])[1 + a % 3]],
       d + interval '8 hours' + s * interval '10 minutes',
       d + interval '8 hours' + (s + 1) * interval '10 minutes'
FROM generate_series(1, 100) a,
     generate_series(date_trunc('day', now() - interval '365 days') AT TIME ZONE 'Asia/Shanghai',
                     now() - interval '1 day', interval '1 day') d,
     generate_series(0, 47) s;
ANALYZE;
"#;

fn main() {
    let calls = env("CALLS", 1_000_000);
    let rounds = env("ROUNDS", 10) as usize;
    common::with_scratch_db("hotline_kpis", |url| async move {
        run(&url, calls, rounds).await;
    });
}

async fn run(url: &str, calls: u64, rounds: usize) {
    let (db, t0) = common::filled_db(url, 8, FILL.replace("$CALLS", &calls.to_string())).await;
    let states: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_states")
        .fetch_one(&db)
        .await
        .unwrap();
    println!(
        "filled {calls} calls and {states} agent states in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    users::create(&db, "analyst", "analyst", Role::Analyst, None, PASSWORD)
        .await
        .unwrap();
    let base = common::serve_api(db.clone()).await;
    let http = reqwest::Client::new();
    let token = common::login(&http, &base, "analyst", PASSWORD).await;
    let now = chrono::Utc::now();
    let since = |days: i64| {
        (now - chrono::Duration::days(days))
            .to_rfc3339()
            .replace('+', "%2B")
    };
    let to = now.to_rfc3339().replace('+', "%2B");
    let queries = [
        (
            "a day by 15 minutes, per queue",
            format!("interval=15m&from={}&to={to}", since(1)),
        ),
        (
            "a day by 15 minutes, per agent",
            format!("interval=15m&by=agent&from={}&to={to}", since(1)),
        ),
        (
            "30 days by hour, per queue",
            format!("interval=hour&from={}&to={to}", since(30)),
        ),
        (
            "30 days by day, per agent",
            format!("interval=day&by=agent&from={}&to={to}", since(30)),
        ),
        (
            "30 days by day, CSV",
            format!("interval=day&format=csv&from={}&to={to}", since(30)),
        ),
        (
            "a year by month, per queue",
            format!("interval=month&from={}&to={to}", since(365)),
        ),
        (
            "a year by day, per queue",
            format!("interval=day&from={}&to={to}", since(365)),
        ),
    ];
    println!("\n| query ({rounds} rounds) | rows | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (label, q) in queries {
        let mut times = Vec::with_capacity(rounds);
        let mut rows = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let resp = http
                .get(format!("{base}/api/stats/calls?{q}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{label}: {}", resp.status());
            let text = resp.text().await.unwrap();
            times.push(t.elapsed());
            rows = serde_json::from_str::<Value>(&text).map_or_else(
                |_| text.lines().count().saturating_sub(1),
                |v| v["rows"].as_array().map_or(0, Vec::len),
            );
        }
        times.sort();
        println!(
            "| {label} | {rows} | {} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
    }
}
