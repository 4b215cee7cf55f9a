//! Knowledge-base search at scale: 100,000 generated articles (default `ARTICLES`) in a
//! scratch PostgreSQL database, then
//!
//! 1. the startup rebuild through `Kb::open` (read every article from PostgreSQL, segment,
//!    index, commit) into an empty index directory, timed, with its articles per second;
//! 2. a reopen of the same directory (the fingerprint matches: no rebuild);
//! 3. `SEARCHES` searches (default 2,000) cycling through the 115 citizens' questions of
//!    `tests/fixtures/kb/queries.jsonl`, one at a time: p50, p99, max.
//!
//! The generated articles are the 52 fixture articles varied: a district, a year and a number
//! in the title, and body sentences drawn from the whole fixture, so terms repeat across many
//! articles as they do in a real base.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench kb`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot start has nothing to report

mod common;

use common::{env, percentile};
use std::time::{Duration, Instant};

use hotline::kb::Article;
use hotline::kb::index::Filter;
use hotline::kb::service::Kb;

fn main() {
    let n = env("ARTICLES", 100_000) as usize;
    let searches = env("SEARCHES", 2_000) as usize;
    common::with_scratch_db("hotline_kb_bench", |url| async move {
        run(&url, n, searches).await;
    });
}

fn generate(n: usize) -> Vec<Article> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kb");
    let fixture: Vec<Article> = std::fs::read_to_string(dir.join("articles.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sentences: Vec<String> = fixture
        .iter()
        .flat_map(|a| a.body.split('。').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| s.chars().count() > 8)
        .collect();
    let districts = [
        "历下区",
        "市中区",
        "槐荫区",
        "天桥区",
        "历城区",
        "长清区",
        "章丘区",
        "济阳区",
        "莱芜区",
        "钢城区",
        "平阴县",
        "商河县",
    ];
    (0..n)
        .map(|i| {
            let a = &fixture[i % fixture.len()];
            let d = districts[i % districts.len()];
            let mut body = a.body.clone();
            for k in 0..3 {
                body.push_str(&sentences[(i * 7 + k * 13) % sentences.len()]);
                body.push('。');
            }
            Article {
                id: 0,
                external_id: Some(format!("gen-{i}")),
                title: format!("{d}{}（{}年第{}号）", a.title, 2020 + i % 7, i),
                body,
                spoken_answer: a.spoken_answer.clone(),
                category: a.category.clone(),
                tags: a.tags.clone(),
                question_variants: a.question_variants.clone(),
                unit_id: None,
                status: "published".into(),
                valid_from: None,
                valid_until: None,
                version: 1,
            }
        })
        .collect()
}

async fn run(url: &str, n: usize, searches: usize) {
    let db = sqlx::PgPool::connect(url).await.unwrap();
    hotline::db::migrate(&db).await.unwrap();
    let articles = generate(n);
    let t = Instant::now();
    for chunk in articles.chunks(5_000) {
        let col = |f: fn(&Article) -> String| chunk.iter().map(f).collect::<Vec<String>>();
        sqlx::query(
            "INSERT INTO kb_articles (external_id, title, body, spoken_answer, category, status,
                                      updated_by)
             SELECT x, t, b, s, c, 'published', 'bench'
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                  AS u(x, t, b, s, c)",
        )
        .bind(col(|a| a.external_id.clone().unwrap_or_default()))
        .bind(col(|a| a.title.clone()))
        .bind(col(|a| a.body.clone()))
        .bind(col(|a| a.spoken_answer.clone()))
        .bind(col(|a| a.category.clone()))
        .execute(&db)
        .await
        .unwrap();
    }
    let chars: i64 = sqlx::query_scalar(
        "SELECT sum(char_length(title) + char_length(body))::bigint FROM kb_articles",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    println!(
        "{n} articles written to PostgreSQL in {:.1} s ({:.0} characters each on average)",
        t.elapsed().as_secs_f64(),
        chars as f64 / n as f64
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb-index");
    let t = Instant::now();
    let kb = Kb::open(db.clone(), Some(path.clone()), true)
        .await
        .unwrap();
    let rebuild = t.elapsed().as_secs_f64();
    println!(
        "startup rebuild (read, segment, index, commit): {rebuild:.1} s, {:.0} articles/s, index {:.0} MB",
        n as f64 / rebuild,
        dir_size(&path) as f64 / 1e6
    );
    drop(kb);
    let t = Instant::now();
    let kb = Kb::open(db.clone(), Some(path.clone()), true)
        .await
        .unwrap();
    println!(
        "restart with the index up to date (fingerprint matches, no rebuild): {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let queries: Vec<String> = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kb/queries.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["query"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect();
    let mut times = Vec::with_capacity(searches);
    let mut empty = 0;
    for i in 0..searches {
        let q = &queries[i % queries.len()];
        let t = Instant::now();
        let hits = kb.search(q, &Filter::default(), 10).unwrap();
        times.push(t.elapsed());
        if hits.is_empty() {
            empty += 1;
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{searches} searches over {n} articles (top 10, snippets): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {empty} without results",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );
    // One edit, as an editor would make it: write, commit, searchable.
    let t = Instant::now();
    let d: hotline::kb::store::Draft = serde_json::from_value(serde_json::json!({
        "title": "新增：城区临时停水通知查询渠道",
        "body": "计划停水信息在供水集团公众号发布。",
        "category": "水电气暖",
    }))
    .unwrap();
    let a = hotline::kb::store::create(&db, &d, None, "published", "bench")
        .await
        .unwrap();
    kb.put(vec![a.clone()]).await.unwrap();
    let found = kb
        .search("临时停水通知查询渠道", &Filter::default(), 1)
        .unwrap();
    println!(
        "one new article written, indexed and found first: {:.1} ms ({})",
        ms(t.elapsed()),
        found.first().is_some_and(|h| h.id == a.id)
    );
    db.close().await;
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
