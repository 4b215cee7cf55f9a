//! `hotline serve` with no database configured runs its own PostgreSQL cluster, reports ready,
//! serves metrics, and stops everything it started on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

fn wait_ready(base: &str) -> serde_json::Value {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = client.get(format!("{base}/ready")).send()
            && resp.status() == 200
        {
            return resp.json().expect("ready body");
        }
        assert!(Instant::now() < deadline, "/ready never reported ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every line of a Prometheus text exposition is a comment or `name{labels} value`.
fn assert_prometheus_text(body: &str) {
    let mut samples = 0;
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() == Some(&"TYPE") {
                assert!(
                    matches!(
                        words.get(2).copied(),
                        Some("counter" | "gauge" | "histogram" | "summary" | "untyped")
                    ),
                    "bad TYPE line: {line}"
                );
            }
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').expect("sample has a value");
        let name = name_labels.split('{').next().unwrap_or("");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_labels.contains('{') {
            assert!(name_labels.ends_with('}'), "unclosed labels in {line}");
        }
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in {line}"
        );
        samples += 1;
    }
    assert!(samples > 0, "no samples in:\n{body}");
}

#[test]
fn serve_runs_on_the_embedded_cluster_and_stops_it_on_sigterm() {
    let dir = shared_tempdir();
    let config = write_config(dir.path());
    let mut node = Node::start(&config);
    let base = node.wait_http();

    let ready = wait_ready(&base);
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["database"]["pending_migrations"],
        serde_json::json!([])
    );

    let client = reqwest::blocking::Client::new();
    let health = client.get(format!("{base}/health")).send().expect("health");
    assert_eq!(health.status(), 200);

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let content_type = metrics
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let body = metrics.text().expect("metrics body");
    assert_prometheus_text(&body);
    assert!(body.contains("# TYPE hotline_build_info gauge"));
    assert!(
        body.contains(
            "hotline_http_requests_total{method=\"GET\",route=\"/ready\",status=\"200\"}"
        ),
        "{body}"
    );

    let data_dir = dir.path().join("pg").join("pgdata");
    let postmaster = postmaster_pid(&data_dir).expect("the embedded cluster is running");
    assert!(process_alive(postmaster));

    let code = node.signal_and_wait(Signal::SIGTERM, Duration::from_secs(40));
    assert_eq!(code, 0, "exit code; log:\n{}", node.log.join("\n"));
    assert!(
        !process_alive(postmaster),
        "the embedded postgres (pid {postmaster}) still runs after hotline exited"
    );
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "postmaster.pid left behind: the cluster was not shut down cleanly"
    );
    assert!(
        node.log
            .iter()
            .any(|l| l.contains("embedded PostgreSQL stopped")),
        "{}",
        node.log.join("\n")
    );
}

#[test]
fn a_server_left_by_a_killed_hotline_is_taken_over_on_restart() {
    let dir = shared_tempdir();
    let config = write_config(dir.path());
    let data_dir = dir.path().join("pg").join("pgdata");

    let mut first = Node::start(&config);
    let base = first.wait_http();
    wait_ready(&base);
    let orphan = postmaster_pid(&data_dir).expect("cluster running");
    // SIGKILL: hotline cannot stop its server; the server (own process group) survives.
    first.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10));
    assert!(
        process_alive(orphan),
        "the server should outlive a killed hotline"
    );

    let mut second = Node::start(&config);
    let base = second.wait_http();
    let ready = wait_ready(&base);
    assert_eq!(ready["status"], "ready");
    assert!(
        !process_alive(orphan),
        "the leftover server was not stopped"
    );
    let code = second.signal_and_wait(Signal::SIGINT, Duration::from_secs(40));
    assert_eq!(code, 0, "{}", second.log.join("\n"));
    assert!(postmaster_pid(&data_dir).is_none());
}
