//! 24/7 on one node (issue 24), end to end with real SIPp callers and a real PostgreSQL: a
//! node drains without cutting a call (new calls get 503 with Retry-After, /ready answers 503,
//! the calls in progress end normally, the node exits 0) and a restarted node serves again.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::center::*;
use common::sipp::{free_udp_port, sipp_in};
use common::*;
use serde_json::Value;
use sqlx::Row;

/// A caller (`number`) who talks for `ms` in the queue, then hangs up; SIPp's exit code.
fn caller(center: &Center, number: &str, ms: u32) -> std::thread::JoinHandle<(i32, String)> {
    let (dir, udp) = (center.work.path().to_path_buf(), center.node.udp);
    let (number, ms) = (number.to_string(), ms.to_string());
    std::thread::spawn(move || {
        sipp_in(
            &dir,
            udp,
            &scenario("uac_talks.xml"),
            "12345",
            &["-key", "caller", &number, "-d", &ms],
        )
    })
}

/// Polls the snapshot until `n` callers wait (up to 15 s).
fn wait_for_waiting(center: &Center, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let snap = center
            .http
            .ok("GET", "/api/acd/snapshot", Some(&center.admin), Value::Null);
        if snap["waiting"].as_array().map_or(0, Vec::len) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} waiting: {snap}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three callers wait in the queue when `hotline drain` runs: a fourth caller gets 503 with
/// Retry-After 30 and /ready answers 503 ("draining"), while the three talk on and hang up
/// normally (SIPp sees every 200); the node then exits 0 by itself, and started again it
/// answers a new caller and is ready.
#[test]
fn a_drain_refuses_new_calls_lets_the_calls_in_progress_end_and_exits_0() {
    let http = free_udp_port(); // a TCP port free on loopback as well, in practice
    let listen = format!("127.0.0.1:{http}");
    let mut center = Center::start_with(QUEUE_SCRIPT, &[("HOTLINE_HTTP__LISTEN", listen.as_ref())]);
    let callers: Vec<_> = (1..=3)
        .map(|i| caller(&center, &format!("1380000000{i}"), 7000))
        .collect();
    wait_for_waiting(&center, 3);

    let mut drain = hotline();
    drain
        .arg("--config")
        .arg(center.node.config())
        .args(["drain", "--wait-secs", "60"]);
    let drain = std::thread::spawn(move || drain.output().unwrap());
    // /ready says so at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = center.http.send("GET", "/ready", None, Value::Null);
        if code == 503 {
            assert_eq!(body["status"], "draining", "{body}");
            assert_eq!(body["draining"], true);
            assert_eq!(body["calls_in_progress"], 3, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/ready never said draining: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, errors) = sipp_in(
        center.work.path(),
        center.node.udp,
        &scenario("invite_draining.xml"),
        "12345",
        &[],
    );
    assert_eq!(code, 0, "a new call while draining: {errors}");

    for c in callers {
        let (code, errors) = c.join().unwrap();
        assert_eq!(code, 0, "a call in progress did not end normally: {errors}");
    }
    let out = drain.join().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hotline drain: {out:?}");
    assert!(said.contains("stopped after"), "{said}");
    let status = center.node.node.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the drained node's exit status");
    while let Ok(line) = center
        .node
        .node
        .lines
        .recv_timeout(Duration::from_millis(200))
    {
        center.node.node.log.push(line);
    }
    let log = center.node.node.log.join("\n");
    assert!(log.contains("drained: no call in progress"), "{log}");
    assert!(!center.node.config().with_file_name("hotline.pid").exists());

    let rows = center
        .node
        .db
        .rows("SELECT caller, end_reason FROM calls WHERE ended_at IS NOT NULL ORDER BY caller");
    let ended: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get("caller"), r.get("end_reason")))
        .collect();
    assert_eq!(ended.len(), 3, "{ended:?}");
    for (i, (number, reason)) in ended.iter().enumerate() {
        assert_eq!(number, &format!("1380000000{}", i + 1));
        assert_eq!(reason.as_deref(), Some("caller hung up"), "{ended:?}");
    }

    center.node.start_again();
    center.node.node.wait_http();
    let (code, body) = center.http.send("GET", "/ready", None, Value::Null);
    assert_eq!(
        (code, &body["status"]),
        (200, &Value::from("ready")),
        "{body}"
    );
    let (code, errors) = caller(&center, "13800000009", 500).join().unwrap();
    assert_eq!(code, 0, "the restarted node answers: {errors}");
}
