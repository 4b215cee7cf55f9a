//! Call records survive a database outage: a node on a private PostgreSQL cluster (started by
//! this test, so no other test is disturbed) takes calls; the cluster is stopped while they
//! are in progress and a new call arrives during the outage; the calls go on, their records
//! wait in the spool on disk, and once the cluster is back every record is in `calls`,
//! each exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::sipp::sipp;
use common::*;
use hotline::embedded::EmbeddedPostgres;

/// The greeting, then the queue.
const SCRIPT: &str = QUEUE_SCRIPT;

async fn count(pg: &EmbeddedPostgres) -> (i64, i64) {
    let pool = sqlx::PgPool::connect_with(pg.connect_options())
        .await
        .unwrap();
    let r: (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE ended_at IS NOT NULL) FROM calls")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    r
}

#[test]
fn records_of_calls_during_a_database_outage_arrive_afterwards() {
    if hotline::embedded::find_binaries().is_none() {
        panic!("PostgreSQL's server programs are needed (scripts/test.sh installs them)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = shared_tempdir();
    let pg_dir = dir.path().join("pg-private");
    let mut pg = Some(rt.block_on(EmbeddedPostgres::start(&pg_dir)).unwrap());
    let socket = pg_dir.canonicalize().unwrap().join("run");
    let url = format!(
        "postgres://postgres@localhost/{}?host={}&port=5432",
        hotline::embedded::DATABASE,
        socket.display()
    );
    let script = dir.path().join("ivr.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    let config = write_config(dir.path());
    let mut cmd = hotline();
    cmd.env("HOTLINE_DATABASE__URL", &url)
        .env("HOTLINE_IVR__SCRIPT", script.as_os_str());
    let mut node = Node::start_with(cmd, &config);
    let line = node.wait_for_line("SIP listening on", Duration::from_secs(60));
    let udp: std::net::SocketAddr = line
        .split("udp:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_keys.xml");

    // Three calls (about 10.5 s each); the database stops 2 s in; a fourth call arrives
    // during the outage.
    let mut calls = Vec::new();
    for _ in 0..3 {
        let s = scenario.clone();
        calls.push(std::thread::spawn(move || sipp(udp, &s, "12345")));
    }
    std::thread::sleep(Duration::from_secs(2));
    rt.block_on(pg.take().unwrap().stop()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let s = scenario.clone();
    calls.push(std::thread::spawn(move || sipp(udp, &s, "12345")));
    for c in calls {
        let (code, errors) = c.join().unwrap();
        assert_eq!(
            code, 0,
            "a call failed while the database was down:\n{errors}"
        );
    }
    let spool = hotline::calls::record::spool_path(&dir.path().join("recordings"));
    assert!(spool.exists(), "records waited on disk");

    // Back up: everything arrives, once.
    let pg = rt.block_on(EmbeddedPostgres::start(&pg_dir)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let (rows, ended) = loop {
        let c = rt.block_on(count(&pg));
        if c == (4, 4) || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        (rows, ended),
        (4, 4),
        "every call's record, each exactly once"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while spool.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!spool.exists(), "the spool is emptied once replayed");
    node.wait_for_line("call-record spool replayed", Duration::from_secs(5));
    let code = node.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
    assert_eq!(code, 0);
    rt.block_on(pg.stop()).unwrap();
}
