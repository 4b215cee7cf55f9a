//! What the database benchmarks share: a scratch database on the `DATABASE_URL` server
//! (default the local one), created for the run and dropped after it, a 2-worker runtime, the
//! HTTP API served on loopback over it, and a login.
#![allow(dead_code, clippy::unwrap_used)] // a benchmark that cannot start has nothing to report

use std::future::Future;

/// A number from the environment, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `run` with the URL of a fresh database named `<prefix>_<pid>` on a 2-worker runtime,
/// then drops the database (a killed run leaves it behind).
pub fn with_scratch_db<F, Fut>(prefix: &str, run: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b)
        .to_string();
    let name = format!("{prefix}_{}", std::process::id());
    let url = format!("{base}/{name}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        run(url).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await
        .unwrap();
    });
}

/// The `p` quantile (0 to 1) of sorted durations (zero for none).
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds with two decimals.
pub fn ms(d: std::time::Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A pool of `connections` on the scratch database at `url`, migrated, then filled by the
/// SQL script `fill`; with the instant the filling began.
pub async fn filled_db(
    url: &str,
    connections: u32,
    fill: String,
) -> (sqlx::PgPool, std::time::Instant) {
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect(url)
        .await
        .unwrap();
    hotline::db::migrate(&db).await.unwrap();
    let began = std::time::Instant::now();
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
        .execute(&db)
        .await
        .unwrap();
    (db, began)
}

/// Serves the HTTP API over `db` on a loopback port (no engine, ACD, IVR or knowledge base);
/// returns its base URL.
pub async fn serve_api(db: sqlx::PgPool) -> String {
    use hotline::http::{AppState, app};
    let settings = hotline::tickets::store::Settings::from_config(&Default::default()).unwrap();
    let state = AppState::bare(db, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    format!("http://{addr}")
}

/// A session token for `user` with `password`.
pub async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
    let v: serde_json::Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_string()
}
