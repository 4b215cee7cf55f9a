//! 24/7 on one node (issue 24), end to end with real SIPp callers and a real PostgreSQL: a
//! node drains without cutting a call (new calls get 503 with Retry-After, /ready answers 503,
//! the calls in progress end normally, the node exits 0) and a restarted node serves again;
//! a node killed mid-work comes back with its registrations, agents and kept callbacks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::process::{Child, Command, Stdio};
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
            let snap = center
                .http
                .ok("GET", "/api/acd/snapshot", Some(&center.admin), Value::Null);
            assert_eq!(
                snap["node"]["draining"], true,
                "the wall board's feed: {snap}"
            );
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

/// A SIPp caller as a process (killed when the node it called dies).
fn caller_process(center: &Center, scenario_name: &str, number: &str, extra: &[&str]) -> Child {
    Command::new("sipp")
        .current_dir(center.work.path())
        .arg(center.node.udp.to_string())
        .arg("-sf")
        .arg(scenario(scenario_name))
        .args(["-s", "12345", "-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args([
            "-key",
            "caller",
            number,
            "-timeout",
            "60s",
            "-nostdin",
            "-trace_err",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp is installed")
}

fn snapshot(center: &Center) -> Value {
    center
        .http
        .ok("GET", "/api/acd/snapshot", Some(&center.admin), Value::Null)
}

/// Polls until `what` holds of the snapshot (up to `secs`).
fn wait_snapshot(center: &Center, secs: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let snap = snapshot(center);
        if ok(&snap) {
            return snap;
        }
        assert!(Instant::now() < deadline, "never {what}: {snap}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node is killed (SIGKILL) while two callers talk to agents, two callers' callbacks are
/// kept and three callers wait. Started again, without any phone registering again: the two
/// agents come back available, the two kept callbacks are placed (the citizen's SIPp phone
/// answers) and bridged to them, recorded; the five callers whose calls died are on the
/// missed-call list with their numbers and the reason, the kept callbacks are not; every call
/// answered before the crash has a playable recording; /ready counts what was restored.
#[test]
fn a_killed_node_restarts_with_its_registrations_agents_and_kept_callbacks() {
    let http = free_udp_port();
    let listen = format!("127.0.0.1:{http}");
    let citizen_dir = tempfile::tempdir().unwrap();
    std::fs::write(citizen_dir.path().join("agent.ulaw"), tone(300.0, 20)).unwrap();
    let citizen_port = free_udp_port();
    let route = format!("sip:{{number}}@127.0.0.1:{citizen_port}");
    let mut center = Center::start_with(
        CALLBACK_SCRIPT,
        &[
            ("HOTLINE_HTTP__LISTEN", listen.as_ref()),
            ("HOTLINE_ACD__CALLBACK_ROUTE", route.as_ref()),
        ],
    );
    let alice = center.agent("alice", "1001");
    let bob = center.agent("bob", "1002");
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let mut phones = vec![
        phone(center.work.path(), "uas_agent_talks.xml", pa),
        phone(center.work.path(), "uas_agent_talks.xml", pb),
    ];
    center.register("1001", pa);
    center.register("1002", pb);
    center.agent_does("alice", "login", Value::Null);
    center.agent_does("bob", "login", Value::Null);

    // Two callers talk to the agents.
    let mut callers = vec![
        caller_process(&center, "uac_talks.xml", "13900000001", &["-d", "60000"]),
        caller_process(&center, "uac_talks.xml", "13900000002", &["-d", "60000"]),
    ];
    center.on_call(alice);
    center.on_call(bob);
    // Two take the callback and hang up; their places are kept.
    let kept: Vec<_> = ["13700000001", "13700000002"]
        .iter()
        .map(|n| {
            let (dir, udp) = (center.work.path().to_path_buf(), center.node.udp);
            let n = n.to_string();
            std::thread::spawn(move || {
                sipp_in(
                    &dir,
                    udp,
                    &scenario("uac_callback.xml"),
                    "12345",
                    &["-key", "caller", &n],
                )
            })
        })
        .collect();
    for k in kept {
        let (code, errors) = k.join().unwrap();
        assert_eq!(code, 0, "a caller taking the callback: {errors}");
    }
    // Three wait.
    for n in ["13600000001", "13600000002", "13600000003"] {
        callers.push(caller_process(
            &center,
            "uac_talks.xml",
            n,
            &["-d", "60000"],
        ));
    }
    wait_snapshot(&center, 15, "5 waiting, 2 with callbacks", |s| {
        let w = s["waiting"].as_array().cloned().unwrap_or_default();
        w.len() == 5 && w.iter().filter(|w| w["callback"] == true).count() == 2
    });

    // The crash. The callers' and phones' calls die with it.
    center.node.kill();
    for mut c in callers.drain(..).chain(phones.drain(..)) {
        let _ = c.kill();
        let _ = c.wait();
    }
    // The phones are back on their ports (they do not register again); the citizen answers
    // the callbacks.
    let phone_a = phone(center.work.path(), "uas_agent_hangs_up.xml", pa);
    let phone_b = phone(center.work.path(), "uas_agent_hangs_up.xml", pb);
    let citizen = Command::new("sipp")
        .current_dir(citizen_dir.path())
        .arg("-sf")
        .arg(scenario("uas_agent_talks.xml"))
        .args(["-i", "127.0.0.1", "-p", &citizen_port.to_string()])
        .args(["-mp", &common::baresip::free_port().to_string()])
        .args(["-m", "2", "-nostdin", "-timeout", "60s", "-trace_err"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    center.node.start_again();
    center.node.node.wait_http();

    let a = phone_a.wait_with_output().unwrap();
    let b = phone_b.wait_with_output().unwrap();
    assert!(
        a.status.success() && b.status.success(),
        "the agents' phones took the callbacks: {}",
        center.sipp_errors()
    );
    let c = citizen.wait_with_output().unwrap();
    assert!(
        c.status.success(),
        "the citizen answered both callbacks: {}",
        common::sipp::errors_in(citizen_dir.path())
    );

    let (code, ready) = center.http.send("GET", "/ready", None, Value::Null);
    assert_eq!(code, 200, "{ready}");
    let r = &ready["restored"];
    assert_eq!(
        (
            &r["bindings"],
            &r["agents"],
            &r["callbacks"],
            &r["missed"],
            &r["skipped"]
        ),
        (&2.into(), &2.into(), &2.into(), &5.into(), &0.into()),
        "{ready}"
    );
    let snap = snapshot(&center);
    assert_eq!(
        &snap["node"]["restored"], r,
        "the wall board shows it: {snap}"
    );

    // The callbacks' records: answered by the agents, recorded with both sides.
    let rows = center.node.db.rows(
        "SELECT caller, agent_id, recording FROM calls WHERE callback AND ended_at IS NOT NULL
          ORDER BY caller",
    );
    let called_back: Vec<String> = rows.iter().map(|r| r.get("caller")).collect();
    assert_eq!(called_back, ["13700000001", "13700000002"]);
    let mut agents: Vec<Option<i64>> = rows.iter().map(|r| r.get("agent_id")).collect();
    agents.sort();
    assert_eq!(agents, [Some(alice), Some(bob)]);
    for r in &rows {
        let path: String = r.get::<Option<String>, _>("recording").expect("recorded");
        let (left, right) = channels(&path);
        assert!(left.len() > 8000 && right.len() > 8000, "{path}");
    }

    // The missed-call list: the five cut off, not the kept callbacks.
    let intake = center.http.login("alice", "agent's password");
    let missed = center
        .http
        .ok("GET", "/api/acd/missed", Some(&intake), Value::Null);
    let mut cut: Vec<(String, String)> = missed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["caller"].as_str().unwrap().to_string(),
                m["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    cut.sort();
    let expected: Vec<(String, String)> = [
        "13600000001",
        "13600000002",
        "13600000003",
        "13900000001",
        "13900000002",
    ]
    .iter()
    .map(|n| (n.to_string(), "cut_off".to_string()))
    .collect();
    assert_eq!(cut, expected, "{missed}");
    // Every call answered before the crash has a playable recording.
    let rows = center.node.db.rows(
        "SELECT caller, recording, end_reason FROM calls
          WHERE caller LIKE '139%' OR caller LIKE '136%' ORDER BY caller",
    );
    assert_eq!(rows.len(), 5);
    for r in &rows {
        assert_eq!(
            r.get::<Option<String>, _>("end_reason").as_deref(),
            Some("cut off")
        );
        let path: String = r.get::<Option<String>, _>("recording").expect("recorded");
        let (left, _) = channels(&path);
        assert!(left.len() > 8000, "{path}: {} samples", left.len());
    }
    // Nothing is owed any more.
    assert!(center.node.db.rows("SELECT 1 FROM acd_entries").is_empty());
}

/// A kept callback whose caller is busy is tried again by the rule (here 2 tries, 5 s apart,
/// any hour), and after the last try the caller is on the missed-call list as
/// `callback_failed`; nothing is owed any more.
#[test]
fn a_busy_callback_is_retried_by_the_rule_then_listed_as_missed() {
    let citizen_dir = tempfile::tempdir().unwrap();
    let citizen_port = free_udp_port();
    let route = format!("sip:{{number}}@127.0.0.1:{citizen_port}");
    let mut center = Center::start_with(
        CALLBACK_SCRIPT,
        &[
            ("HOTLINE_ACD__CALLBACK_ROUTE", route.as_ref()),
            ("HOTLINE_ACD__CALLBACK_ATTEMPTS", "2".as_ref()),
            ("HOTLINE_ACD__CALLBACK_RETRY_SECS", "5".as_ref()),
            ("HOTLINE_ACD__CALLBACK_HOURS", "".as_ref()),
        ],
    );
    // No agent is logged in yet: the caller takes the callback.
    center.agent("bob", "1002");
    center.register("1002", free_udp_port());
    let (code, errors) = sipp_in(
        center.work.path(),
        center.node.udp,
        &scenario("uac_callback.xml"),
        "12345",
        &["-key", "caller", "13512345678"],
    );
    assert_eq!(code, 0, "the caller taking the callback: {errors}");
    let citizen = Command::new("sipp")
        .current_dir(citizen_dir.path())
        .arg("-sf")
        .arg(scenario("uas_busy.xml"))
        .args(["-i", "127.0.0.1", "-p", &citizen_port.to_string()])
        .args(["-m", "2", "-nostdin", "-timeout", "40s", "-trace_err"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Bob comes: the callback is placed at once, busy; again 5 s later, busy.
    center.agent_does("bob", "login", Value::Null);
    let first = center
        .node
        .node
        .wait_for_line("it is tried again", Duration::from_secs(20));
    let last = center
        .node
        .node
        .wait_for_line("it goes on the missed-call list", Duration::from_secs(30));
    let c = citizen.wait_with_output().unwrap();
    assert!(
        c.status.success(),
        "the callee was called twice: {}",
        common::sipp::errors_in(citizen_dir.path())
    );
    let at = |line: &str| {
        chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next().unwrap()).unwrap()
    };
    let gap = (at(&last) - at(&first)).num_milliseconds();
    assert!(
        (4500..15_000).contains(&gap),
        "the second try came {gap} ms after the first"
    );
    assert!(first.contains("status=486"), "{first}");

    let intake = center.http.login("bob", "agent's password");
    let deadline = Instant::now() + Duration::from_secs(10);
    let missed = loop {
        let m = center
            .http
            .ok("GET", "/api/acd/missed", Some(&intake), Value::Null);
        if m.as_array().is_some_and(|a| !a.is_empty()) {
            break m;
        }
        assert!(Instant::now() < deadline, "never on the missed-call list");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(missed[0]["caller"], "13512345678", "{missed}");
    assert_eq!(missed[0]["reason"], "callback_failed", "{missed}");
    assert!(center.node.db.rows("SELECT 1 FROM acd_entries").is_empty());
    let snap = snapshot(&center);
    assert_eq!(snap["waiting"], serde_json::json!([]), "{snap}");
}

/// Saved rows a node cannot read (an unknown state, a newer format, an address that is none, a
/// callback without its number) are logged with their keys and skipped: the node starts, takes
/// the good rows back, and counts the skipped ones. The agent restored without a registered
/// phone waits paused until her phone registers.
#[test]
fn unreadable_saved_rows_are_logged_and_skipped_never_a_failed_start() {
    let http = free_udp_port();
    let listen = format!("127.0.0.1:{http}");
    let mut center = Center::start_with(QUEUE_SCRIPT, &[("HOTLINE_HTTP__LISTEN", listen.as_ref())]);
    let alice = center.agent("alice", "1001");
    center.agent_does("alice", "login", Value::Null);
    // Written by the ACD on login.
    let deadline = Instant::now() + Duration::from_secs(5);
    while center.node.db.rows("SELECT 1 FROM acd_agents").is_empty() {
        assert!(Instant::now() < deadline, "the login was not saved");
        std::thread::sleep(Duration::from_millis(100));
    }
    for sql in [
        "INSERT INTO acd_agents (agent_id, queues, chosen) VALUES (9001, '{general}', 'dancing')",
        "INSERT INTO acd_agents (agent_id, queues, chosen, version) VALUES (9002, '{general}', 'available', 7)",
        "INSERT INTO acd_entries (call_id, caller, queue, queued_at, callback) VALUES ('half-written', '1', 'general', now(), '139')",
        "INSERT INTO sip_bindings (aor, contact, source, transport, call_id, cseq, expires_at) VALUES ('1001', 'sip:1001@x', 'nowhere', 'udp', 'c', 1, now() + interval '1 hour')",
    ] {
        center.node.db.execute(sql.to_string());
    }
    center.node.restart();
    center.node.node.wait_http();
    let log = center.node.node.log.join("\n");
    for needle in [
        "acd_agents row skipped: unknown state \"dancing\"",
        "agent=Some(9001)",
        "acd_agents row skipped: written in format 7",
        "call_id=Some(\"half-written\")",
        "source \"nowhere\" is not an address and port",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    let (code, ready) = center.http.send("GET", "/ready", None, Value::Null);
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["restored"]["skipped"], 4, "{ready}");
    assert_eq!(ready["restored"]["agents"], 1, "{ready}");
    // Alice came back (waiting for her phone, which has not registered).
    let snap = snapshot(&center);
    let me = snap["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == alice)
        .cloned()
        .unwrap();
    assert_eq!(me["state"], "paused", "{snap}");
    assert_eq!(me["reason"], "waiting for the phone to register", "{snap}");
    assert_eq!(snap["node"]["restored"]["skipped"], 4, "{snap}");
    // Her phone registers: she takes calls again.
    center.register("1001", free_udp_port());
    wait_snapshot(&center, 10, "alice available", |s| {
        s["agents"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["id"] == alice && a["state"] == "available")
        })
    });
}
