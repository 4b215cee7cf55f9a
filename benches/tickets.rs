//! The ticket API under load, through real HTTP on loopback against a real PostgreSQL:
//!
//! 1. fills a scratch database with `TICKETS` generated tickets (default 1,000,000: a year of a
//!    large city's 12345, 60 units, 40 categories, 12 districts; old ones closed, the last
//!    two weeks open, some overdue; ids rising with time as intake makes them), with
//!    `generate_series`, then `ANALYZE`;
//! 2. segments every ticket's description with jieba into the hot-topic terms (the server's
//!    term indexer, batch after batch) and reports tickets per second;
//! 3. times the list, filter, supervision and analytics queries (counts, hot topics, unit
//!    scorecards; JSON, CSV and SVG) one after another (`ROUNDS` each) through the HTTP API,
//!    with session look-up, and reports p50/p99/max;
//! 4. files tickets through `POST /api/tickets` from `CLIENTS` concurrent keep-alive clients
//!    for `SECONDS` and reports tickets per second and latency percentiles.
//!
//! The server runs in this process on 2 worker threads; the clients share the machine (and
//! PostgreSQL does too), as they would on a 2-core node.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench tickets`
//! (env: TICKETS, ROUNDS, CLIENTS, SECONDS; TAIL: long-tail terms a day added to the
//! hot-topic tables over two years, default 10,000; NEW: how many of every 100 are new words
//! each day, default 4). The scratch database is dropped at the end.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot start has nothing to report

use std::sync::Arc;
mod common;

use common::{env, ms, percentile};
use std::time::{Duration, Instant};

use hotline::users::{self, Role};
use serde_json::{Value, json};

const PASSWORD: &str = "benchmark password";

const FILL: &str = r#"
INSERT INTO units (code, name, kind)
    SELECT 'u' || i, '办理单位 ' || i, (ARRAY['county', 'department', 'company'])[1 + i % 3]
    FROM generate_series(1, 60) i;
INSERT INTO categories (code, name)
    SELECT 'c' || i, '类别 ' || i FROM generate_series(1, 40) i;
INSERT INTO dispatch_rules (category, unit_id)
    SELECT 'c' || i, 1 + (i * 7) % 60 FROM generate_series(1, 40) i;
ALTER TABLE tickets DISABLE TRIGGER tickets_daily;
INSERT INTO tickets (number, channel, request_type, category, address, district, town,
                     description, caller_name, caller_phone, confidential, status, lead_unit,
                     co_units, dispatched_at, due_at, replied_at, replied_on_time, closed_at,
                     created_by, created_at, updated_at)
SELECT to_char(g.created AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || lpad(g.i::text, 7, '0'),
       (ARRAY['phone', 'phone', 'phone', 'phone', 'web', 'app', 'wechat'])[1 + g.i % 7],
       (ARRAY['consultation', 'help', 'suggestion', 'complaint', 'report', 'praise'])[1 + (g.i / 7) % 6],
       'c' || (1 + (g.i * 7919) % 40),
       '经十路 ' || (g.i % 5000) || ' 号',
       'd' || (1 + (g.i * 31) % 12),
       't' || (1 + (g.i * 17) % 80),
       -- What citizens report: one of 40 complaints, where (a street named from two of 60
       -- characters: 3,600 names, the long tail of terms a real city has), sometimes more;
       -- in the last week gas leaks rise.
       (ARRAY['小区停水三天没有恢复', '工地夜间施工噪音扰民', '路灯不亮存在安全隐患',
              '楼道垃圾堆放无人清理', '物业乱收停车费', '公交车长时间不来', '学校周边交通拥堵',
              '医保报销进度太慢', '公积金提取被拒', '暖气不热室温太低', '下水道堵塞污水外溢',
              '商户占道经营', '餐馆油烟扰民', '广场舞音响太吵', '共享单车乱停乱放',
              '道路坑洼积水', '小区电梯经常故障', '拖欠农民工工资', '房屋漏水开发商不修',
              '出租车拒载', '快递丢件商家推诿', '预付卡商家跑路', '违章建筑影响通行',
              '树木倒伏压坏车辆', '井盖缺失', '社保卡补办', '户口迁移手续', '居住证办理',
              '营业执照变更', '孩子入学报名', '垃圾分类投放点太远', '河道有异味',
              '噪音夜间施工', '停电没有通知', '燃气费用异常', '网约车乱收费', '食品过期',
              '药店价格过高', '老人高龄补贴', '低保申请'])[1 + (g.i * 7919) % 40]
       || '，地点在'
       || (ARRAY['东','西','南','北','中','新','华','光','明','建','设','和','平','安','康','兴',
                 '盛','泰','山','河','湖','海','花','园','林','春','秋','文','化','英','雄','解',
                 '放','人','民','胜','利','青','年','工','业','农','科','技','经','纬','历','下',
                 '市','槐','荫','天','桥','长','清','章','丘','济','阳','莱'])[1 + (g.i * 31) % 60]
       || (ARRAY['东','西','南','北','中','新','华','光','明','建','设','和','平','安','康','兴',
                 '盛','泰','山','河','湖','海','花','园','林','春','秋','文','化','英','雄','解',
                 '放','人','民','胜','利','青','年','工','业','农','科','技','经','纬','历','下',
                 '市','槐','荫','天','桥','长','清','章','丘','济','阳','莱'])[1 + (g.i * 97) % 60]
       || '路附近'
       || CASE WHEN g.i % 3 = 0 THEN '，已经反映多次，希望尽快解决' ELSE '' END
       || CASE WHEN ($TICKETS - g.i) * 31.5 < 7 * 86400 AND g.i % 5 = 0
               THEN '，闻到燃气泄漏的味道' ELSE '' END,
       '市民 ' || g.i,
       '13' || lpad(((g.i * 104729) % 1000000000)::text, 9, '0'),
       g.i % 50 = 0,
       g.status,
       CASE WHEN g.status IN ('accepted', 'not_accepted', 'answered_directly') THEN NULL
            ELSE 1 + (g.i * 13) % 60 END,
       CASE WHEN g.i % 10 = 0 THEN ARRAY[1 + (g.i * 29) % 60]::bigint[] ELSE '{}' END,
       CASE WHEN g.status IN ('accepted', 'not_accepted', 'answered_directly') THEN NULL
            ELSE g.created + interval '1 hour' END,
       CASE WHEN g.status IN ('accepted', 'not_accepted', 'answered_directly') THEN NULL
            ELSE g.created + interval '7 days' END,
       CASE WHEN g.status IN ('replied', 'closed') THEN g.created + interval '4 days' END,
       CASE WHEN g.status IN ('replied', 'closed') THEN g.i % 9 <> 0 END,
       CASE WHEN g.status IN ('closed', 'not_accepted', 'answered_directly', 'terminated')
            THEN g.created + interval '6 days' END,
       'bench', g.created, g.created
FROM (
    SELECT i, now() - ($TICKETS - i) * interval '31.5 seconds' AS created,
           CASE WHEN ($TICKETS - i) * 31.5 < 14 * 86400
                THEN (ARRAY['accepted', 'dispatched', 'handling', 'handling', 'handling', 'replied'])[1 + i % 6]
                ELSE (ARRAY['closed', 'closed', 'closed', 'closed', 'closed', 'closed', 'closed',
                            'answered_directly', 'answered_directly', 'not_accepted',
                            'terminated', 'merged', 'handling'])[1 + i % 13]
           END AS status
    FROM generate_series(1::bigint, $TICKETS) i
) g;
-- The daily summaries, as the triggers would have kept them.
INSERT INTO ticket_daily (day, category, district, channel, request_type, filed)
SELECT (created_at AT TIME ZONE 'Asia/Shanghai')::date, category, district, channel,
       request_type, count(*)
FROM tickets GROUP BY 1, 2, 3, 4, 5;
ALTER TABLE tickets ENABLE TRIGGER tickets_daily;
INSERT INTO unit_daily (unit_id, day, dispatched, returned, replied, replied_on_time, reopened,
                        satisfied, basically, dissatisfied)
SELECT lead_unit, (created_at AT TIME ZONE 'Asia/Shanghai')::date, count(*), count(*) / 20,
       count(replied_at), count(*) FILTER (WHERE replied_on_time), count(*) / 30,
       count(*) FILTER (WHERE status = 'closed') * 7 / 10,
       count(*) FILTER (WHERE status = 'closed') * 2 / 10,
       count(*) FILTER (WHERE status = 'closed') / 10
FROM tickets WHERE lead_unit IS NOT NULL GROUP BY 1, 2;
ANALYZE;
"#;

fn main() {
    let tickets = env("TICKETS", 1_000_000);
    let rounds = env("ROUNDS", 200) as usize;
    let clients = env("CLIENTS", 32) as usize;
    let seconds = env("SECONDS", 10);
    common::with_scratch_db("hotline_bench", |url| async move {
        run(&url, tickets, rounds, clients, seconds).await;
    });
}

async fn run(url: &str, tickets: u64, rounds: usize, clients: usize, seconds: u64) {
    let (db, t0) = common::filled_db(url, 20, FILL.replace("$TICKETS", &tickets.to_string())).await;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&db)
            .await
            .unwrap();
    println!(
        "filled {tickets} tickets in {:.1} s (database {size})",
        t0.elapsed().as_secs_f64()
    );
    // The hot-topic terms of every ticket, as the term indexer makes them after filing.
    let t0 = Instant::now();
    let jieba = Arc::new(jieba_rs::Jieba::new());
    let mut indexed = 0;
    loop {
        let n = hotline::tickets::terms::index_batch(&db, &jieba, 5000)
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        indexed += n;
    }
    let secs = t0.elapsed().as_secs_f64();
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_terms_daily")
        .fetch_one(&db)
        .await
        .unwrap();
    println!(
        "hot-topic terms of {indexed} tickets in {secs:.1} s ({:.0} tickets/s; {own} day-term rows)",
        indexed as f64 / secs
    );
    // A real city's descriptions have a long tail of words (names of places, firms, people):
    // `TAIL` more terms a day, in one to three tickets each, over two years (the year of
    // tickets and the one before, so a year's query compares two full years), so the
    // hot-topic queries read tables of the size they would meet. `NEW` of every 100 tail terms
    // are new each day (default 4: 400 a day, about 150,000 new words a year, what Heaps' law
    // gives for 20 million words of text); the rest recur.
    let tail = env("TAIL", 10_000);
    let new = env("NEW", 4).clamp(1, 100);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO ticket_terms_daily (day, term, tickets)
         SELECT d::date,
                CASE WHEN k % 100 < {new} THEN 'new' || k || '-' || to_char(d, 'YYYYMMDD')
                     ELSE 'tail' || k END,
                1 + k % 3
           FROM generate_series(now() - interval '730 days', now(), interval '1 day') d,
                generate_series(1, {tail}) k
         ON CONFLICT DO NOTHING;
         INSERT INTO ticket_terms_monthly AS m (month, term, tickets)
         SELECT date_trunc('month', day)::date, term, sum(tickets)
           FROM ticket_terms_daily WHERE term LIKE 'tail%' OR term LIKE 'new%' GROUP BY 1, 2
         ON CONFLICT (month, term) DO UPDATE SET tickets = m.tickets + EXCLUDED.tickets;
         ANALYZE ticket_terms_monthly;"
    )))
    .execute(&db)
    .await
    .unwrap();
    let terms: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_terms_daily")
        .fetch_one(&db)
        .await
        .unwrap();
    sqlx::query("ANALYZE ticket_terms_daily")
        .execute(&db)
        .await
        .unwrap();
    let months: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_terms_monthly")
        .fetch_one(&db)
        .await
        .unwrap();
    println!(
        "with {tail} long-tail terms a day over two years: {terms} day-term rows, {months} month-term rows"
    );
    users::create(&db, "disp", "disp", Role::Dispatcher, None, PASSWORD)
        .await
        .unwrap();
    users::create(&db, "unit17", "unit17", Role::UnitStaff, Some(17), PASSWORD)
        .await
        .unwrap();
    users::create(&db, "intake", "intake", Role::Intake, None, PASSWORD)
        .await
        .unwrap();

    let base = common::serve_api(db.clone()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()
        .unwrap();
    let disp = common::login(&http, &base, "disp", PASSWORD).await;
    let unit = common::login(&http, &base, "unit17", PASSWORD).await;
    let intake = common::login(&http, &base, "intake", PASSWORD).await;

    // A cursor 20 pages deep, and a real ticket and phone for the look-ups.
    let mut cursor = 0i64;
    let mut path = "/api/tickets?limit=50".to_string();
    for _ in 0..20 {
        let v: Value = http
            .get(format!("{base}{path}"))
            .bearer_auth(&disp)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cursor = v["next"].as_i64().unwrap();
        path = format!("/api/tickets?limit=50&before={cursor}");
    }
    let (number, phone): (String, String) = sqlx::query_as(
        "SELECT number, caller_phone FROM tickets WHERE status = 'handling' ORDER BY id LIMIT 1 OFFSET 500",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let last4 = &phone[phone.len() - 4..];
    let today = chrono::Utc::now();
    let day_before = (today - chrono::Duration::days(30)).to_rfc3339();
    let day_after = (today - chrono::Duration::days(29)).to_rfc3339();
    let month_from = (today - chrono::Duration::days(30)).date_naive();
    let month_to = today.date_naive();
    let week_from = (today - chrono::Duration::days(6)).date_naive();
    let year_from = (today - chrono::Duration::days(365)).date_naive();
    let queries: Vec<(&str, String, &str)> = vec![
        ("newest page (50)", "/api/tickets".into(), &disp),
        (
            "status=handling",
            "/api/tickets?status=handling".into(),
            &disp,
        ),
        (
            "unit 17, dispatched+handling",
            "/api/tickets?status=dispatched,handling&unit=17".into(),
            &disp,
        ),
        (
            "category + district",
            "/api/tickets?category=c7&district=d3".into(),
            &disp,
        ),
        (
            "category + district + status",
            "/api/tickets?category=c7&district=d3&status=closed".into(),
            &disp,
        ),
        ("overdue=true", "/api/tickets?overdue=true".into(), &disp),
        (
            "a unit's own list (lead or co)",
            "/api/tickets".into(),
            &unit,
        ),
        (
            "one day's window",
            format!(
                "/api/tickets?from={}&to={}",
                urlencode(&day_before),
                urlencode(&day_after)
            ),
            &disp,
        ),
        (
            "page 21 (keyset cursor)",
            format!("/api/tickets?limit=50&before={cursor}"),
            &disp,
        ),
        (
            "by caller phone (audited)",
            format!("/api/tickets?caller_phone={phone}"),
            &intake,
        ),
        (
            "supervision scan (overdue + due in 24 h, 200)",
            "/api/supervision".into(),
            &disp,
        ),
        (
            "a unit's supervision list",
            "/api/supervision".into(),
            &unit,
        ),
        (
            "ticket detail (audited read)",
            format!("/api/tickets/{number}"),
            &disp,
        ),
        (
            "counts by category, a year",
            format!(
                "/api/stats/tickets?from={}&to={month_to}&by=category",
                (today - chrono::Duration::days(365)).date_naive()
            ),
            &disp,
        ),
        (
            "counts by day, a year",
            format!(
                "/api/stats/tickets?from={}&to={month_to}&by=day",
                (today - chrono::Duration::days(365)).date_naive()
            ),
            &disp,
        ),
        (
            "unit scorecards, 30 days",
            format!("/api/stats/units?from={month_from}&to={month_to}"),
            &disp,
        ),
        (
            "unit scorecards, a year, CSV",
            format!("/api/stats/units?from={year_from}&to={month_to}&format=csv"),
            &disp,
        ),
        (
            "volumes by unit, a year",
            format!("/api/stats/tickets?from={year_from}&to={month_to}&by=unit"),
            &disp,
        ),
        (
            "volumes by district, a year, SVG chart",
            format!("/api/stats/tickets?from={year_from}&to={month_to}&by=district&format=svg"),
            &disp,
        ),
        (
            "volumes by category, a year, CSV",
            format!("/api/stats/tickets?from={year_from}&to={month_to}&by=category&format=csv"),
            &disp,
        ),
        (
            "hot topics, 7 days (vs the 7 before)",
            format!("/api/stats/hot-topics?from={week_from}&to={month_to}"),
            &disp,
        ),
        (
            "hot topics, 30 days",
            format!("/api/stats/hot-topics?from={month_from}&to={month_to}"),
            &disp,
        ),
        (
            "hot topics, 90 days",
            format!(
                "/api/stats/hot-topics?from={}&to={month_to}",
                (today - chrono::Duration::days(89)).date_naive()
            ),
            &disp,
        ),
        (
            "hot topics, a year (vs the year before)",
            format!("/api/stats/hot-topics?from={year_from}&to={month_to}"),
            &disp,
        ),
    ];
    println!("\n| query ({rounds} rounds, sequential) | rows | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (label, path, token) in &queries {
        let mut times = Vec::with_capacity(rounds);
        let mut rows = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let resp = http
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{label}: {}", resp.status());
            let text = resp.text().await.unwrap();
            times.push(t.elapsed());
            // JSON rows, CSV lines after the header, or an SVG chart's bars.
            rows = match serde_json::from_str::<Value>(&text) {
                Ok(v) => count(&v),
                Err(_) if text.starts_with("<svg") => text.matches("class=\"bar\"").count(),
                Err(_) => text.lines().count().saturating_sub(1),
            };
        }
        times.sort();
        println!(
            "| {label} | {rows} | {} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
    }
    // The public progress query (Art. 13), without a session.
    {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let r = http
                .get(format!(
                    "{base}/api/public/tickets/{number}?phone_last4={last4}"
                ))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| citizen's progress query ({} rounds) | 1 | {} | {} | {} |",
            times.len(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
    }

    // Intake throughput.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token) = (http.clone(), base.clone(), intake.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut failed = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let body = json!({
                    "channel": "phone",
                    "request_type": "complaint",
                    "category": format!("c{}", 1 + (c as u64 * 7 + i) % 40),
                    "address": "经十路 100 号",
                    "district": "d3",
                    "town": "t5",
                    "description": "工地夜间施工噪音扰民，晚上十一点后还在打桩",
                    "caller_name": "王女士",
                    "caller_phone": format!("138{:08}", c as u64 * 100000 + i),
                });
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/api/tickets"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        times.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (times, failed)
        }));
    }
    let mut times = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (mut t, f) = t.await.unwrap();
        times.append(&mut t);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    times.sort();
    println!(
        "\nPOST /api/tickets, {clients} clients, {seconds} s: {} created ({:.0}/s), {failed} failed; \
         latency p50 {} ms, p99 {} ms, max {} ms; this process (server + clients) used {:.1} CPU-s",
        times.len(),
        times.len() as f64 / elapsed,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        cpu
    );
    db.close().await;
}

fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o
            .get("tickets")
            .or_else(|| o.get("overdue"))
            .or_else(|| o.get("top"))
            .and_then(Value::as_array)
            .map_or(1, |a| {
                a.len()
                    + o.get("due_soon")
                        .or_else(|| o.get("rising"))
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
            }),
        _ => 0,
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
