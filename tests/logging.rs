//! What the binary logs: masked telephone numbers, and JSON lines on request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use common::hotline;

/// A node pointed at a server that is not there logs the URL it tries (with the password
/// hidden) and fails; the user name here is a mobile number, which must come out masked.
fn failing_serve(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = hotline()
        .current_dir(dir.path())
        .args(extra)
        .arg("serve")
        .env(
            "HOTLINE_DATABASE__URL",
            "postgres://13812345678:pw@127.0.0.1:1/hotline",
        )
        .env("HOTLINE_HTTP__LISTEN", "127.0.0.1:0")
        .env("HOTLINE_SIP__UDP_PORT", "0")
        .env("HOTLINE_SIP__TCP_PORT", "0")
        .output()
        .expect("run hotline");
    assert_ne!(out.status.code(), Some(0), "no database: serve must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn caller_numbers_are_masked_in_log_lines() {
    let log = failing_serve(&[]);
    assert!(
        log.contains("using the configured PostgreSQL server"),
        "{log}"
    );
    assert!(log.contains("138****5678"), "{log}");
    assert!(
        !log.contains("13812345678"),
        "unmasked number in the log:\n{log}"
    );
    assert!(!log.contains(":pw@"), "password in the log:\n{log}");
}

#[test]
fn json_format_gives_one_object_per_line() {
    let log = failing_serve(&["--log-format", "json"]);
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "using the configured PostgreSQL server"
                && e["url"].as_str().is_some_and(|u| u.contains("138****5678"))),
        "{log}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["level"].is_string() && e["timestamp"].is_string())
    );
}
