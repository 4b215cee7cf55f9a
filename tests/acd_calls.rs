//! The ACD end to end on loopback, with real SIP peers: agents' phones (SIPp) register with
//! digest authentication, the agents log in through the API, a SIPp caller dials 12345, the
//! IVR greets it and queues it, and the ACD rings the agents' registered phones. The first
//! agent's phone rings past the ring timeout and is cancelled (a miss); the next agent's
//! answers and is bridged: the recording holds the caller's tone on the left and the agent's on
//! the right, and the call record names the agent. The snapshot counts the answer today.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sipp::{free_udp_port, sipp_in};
use common::*;
use hotline_sip::media::g711::ulaw_encode;
use serde_json::{Value, json};
use sqlx::Row;

const SCRIPT: &str = r##"
start = "hello"

[nodes.hello]
type = "play"
prompt = { text = "您好" }
next = "queue"

[nodes.queue]
type = "queue"
queue = "general"
"##;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A tone of `hz` for `secs`, G.711 mu-law, as SIPp's `rtp_stream` plays it.
fn tone(hz: f64, secs: usize) -> Vec<u8> {
    (0..8000 * secs)
        .map(|i| {
            ulaw_encode(
                (6000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16,
            )
        })
        .collect()
}

/// An agent's phone: a SIPp UAS on `port` running `scenario`, in `dir`.
fn phone(dir: &Path, scenario_name: &str, port: u16) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .arg("-sf")
        .arg(scenario(scenario_name))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string(), "-m", "1", "-nostdin"])
        .args(["-timeout", "40s", "-trace_err"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp is installed")
}

struct Http {
    base: String,
    client: reqwest::blocking::Client,
}

impl Http {
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
        let (s, b) = self.send(method, path, token, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {b}");
        b
    }

    fn login(&self, user: &str, password: &str) -> String {
        let b = self.ok(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": user, "password": password}),
        );
        b["token"].as_str().unwrap().to_string()
    }
}

/// Zero crossings in a stretch of samples (a tone of f Hz has 2f a second).
fn crossings(s: &[i16]) -> usize {
    s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

#[test]
fn a_queued_caller_rings_the_next_agent_after_a_ring_timeout_and_is_bridged_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    // SIPp computes MD5 digests only.
    let mut node = start_sip_node_env(
        "digest_algorithms = [\"MD5\"]",
        &[
            ("HOTLINE_IVR__SCRIPT", script.as_os_str()),
            ("HOTLINE_ACD__RING_TIMEOUT_SECS", "5".as_ref()),
            ("HOTLINE_ACD__WRAP_UP_SECS", "0".as_ref()),
            ("HOTLINE_ACD__ANNOUNCE_SECS", "0".as_ref()),
        ],
    );
    let base = node.node.wait_http();
    let cli = |args: &[&str], stdin: &str| {
        let mut cmd = hotline();
        cmd.current_dir(dir.path())
            .env("HOTLINE_DATABASE__URL", &node.db.url)
            .args(args);
        let out = run_with_stdin(cmd, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cli(&["user", "chief", "--role", "admin"], "chief's password\n");
    cli(&["sip-account", "1001"], "phone-1001-secret\n");
    cli(&["sip-account", "1002"], "phone-1002-secret\n");
    let http = Http {
        base,
        client: reqwest::blocking::Client::new(),
    };
    let admin = http.login("chief", "chief's password");
    let mut ids = Vec::new();
    for (name, ext) in [("alice", "1001"), ("bob", "1002")] {
        let u = http.ok(
            "POST",
            "/api/users",
            Some(&admin),
            json!({"username": name, "display_name": name, "role": "intake",
                   "password": "agent's password"}),
        );
        ids.push(u["id"].as_i64().unwrap());
        http.ok(
            "PUT",
            &format!("/api/agents/{name}"),
            Some(&admin),
            json!({"sip_username": ext, "queues": ["general"]}),
        );
    }

    // The phones: alice's rings and is never picked up, bob's answers and speaks 1 kHz.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("agent.ulaw"), tone(1000.0, 10)).unwrap();
    std::fs::write(work.path().join("voice.ulaw"), tone(300.0, 10)).unwrap();
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let phone_a = phone(work.path(), "uas_agent_no_answer.xml", port_a);
    let phone_b = phone(work.path(), "uas_agent_talks.xml", port_b);
    for (ext, port) in [("1001", port_a), ("1002", port_b)] {
        let password = format!("phone-{ext}-secret");
        let (code, errors) = sipp_in(
            work.path(),
            node.udp,
            &scenario("register_contact.xml"),
            "register",
            &[
                "-key",
                "user",
                ext,
                "-au",
                ext,
                "-ap",
                &password,
                "-key",
                "contact_port",
                &port.to_string(),
            ],
        );
        assert_eq!(code, 0, "{ext} registers: {errors}");
    }
    // Alice logs in first: idle the longest, she is offered the call first.
    for name in ["alice", "bob"] {
        let token = http.login(name, "agent's password");
        http.ok("POST", "/api/agents/me/login", Some(&token), Value::Null);
        std::thread::sleep(Duration::from_millis(1100));
    }

    // The caller speaks 300 Hz for 12 s: greeting, 5 s ringing alice, 1 s ringing bob, then
    // about 4 s bridged to bob.
    let (code, errors) = sipp_in(
        work.path(),
        node.udp,
        &scenario("../../benches/sipp/uac_media_load.xml"),
        "12345",
        &["-d", "12000"],
    );
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    let a = phone_a.wait_with_output().unwrap();
    let b = phone_b.wait_with_output().unwrap();
    let phone_errors: String = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        a.status.success(),
        "alice's phone was not cancelled: {phone_errors}"
    );
    assert!(b.status.success(), "bob's phone failed: {phone_errors}");

    // The call record names bob, answered.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = node.db.rows(
            "SELECT agent_id, outcome, queue, recording, end_reason,
                    (agent_answered_at - queued_at) AS waited, queued_at IS NOT NULL AS queued
             FROM calls WHERE ended_at IS NOT NULL",
        );
        if !rows.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rows.len(), 1, "one call record");
    let row = &rows[0];
    assert_eq!(row.get::<Option<i64>, _>("agent_id"), Some(ids[1]));
    assert_eq!(
        row.get::<Option<String>, _>("outcome").as_deref(),
        Some("answered")
    );
    assert_eq!(
        row.get::<Option<String>, _>("queue").as_deref(),
        Some("general")
    );
    assert_eq!(
        row.get::<Option<String>, _>("end_reason").as_deref(),
        Some("caller hung up")
    );
    let waited: sqlx::postgres::types::PgInterval = row.get("waited");
    let waited = waited.microseconds as f64 / 1e6;
    assert!(
        (5.5..9.0).contains(&waited),
        "answered {waited} s after queueing: 5 s of alice ringing, 1 s of bob's"
    );
    assert!(
        !node
            .db
            .rows("SELECT 1 FROM missed_calls")
            .iter()
            .any(|_| true),
        "an answered call is not a missed call"
    );

    // The recording: left the caller's 300 Hz, right bob's 1 kHz, in the bridged part (the
    // last seconds before the caller hung up).
    let path: String = row.get::<Option<String>, _>("recording").expect("recorded");
    let mut reader = hound::WavReader::open(&path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(left.len() > 8000 * 10, "{} samples", left.len());
    let end = left.len() - 4000;
    let (l, r) = (&left[end - 16_000..end], &right[end - 16_000..end]);
    assert!(
        (1100..1300).contains(&crossings(l)),
        "left (caller, 300 Hz): {}",
        crossings(l)
    );
    assert!(
        (3800..4200).contains(&crossings(r)),
        "right (agent, 1 kHz): {}",
        crossings(r)
    );
    // While the caller waited, the right channel carried what it heard: music on hold, not
    // the agent (no 1 kHz before the answer).
    let waiting = &right[8000 * 3..8000 * 5];
    assert!(
        !(3800..4200).contains(&crossings(waiting)),
        "the agent was not heard before answering"
    );
    assert!(
        waiting.iter().filter(|s| s.abs() > 300).count() > 4000,
        "music on hold while waiting"
    );

    // The live figures: one offered, one answered within the 15 s target; alice missed one
    // and is available again, bob is available after his call (no wrap-up configured).
    let snap = http.ok("GET", "/api/acd/snapshot", Some(&admin), Value::Null);
    let q = &snap["queues"][0];
    assert_eq!(q["name"], "general");
    assert_eq!(
        (
            &q["offered_today"],
            &q["answered_today"],
            &q["answered_in_target_today"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{snap}"
    );
    assert_eq!(q["service_level_pct"], json!(100.0));
    let agent = |id: i64| {
        snap["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == json!(id))
            .cloned()
            .unwrap()
    };
    assert_eq!(agent(ids[0])["state"], "available", "{snap}");
    assert_eq!(agent(ids[1])["state"], "available", "{snap}");
    assert_eq!(agent(ids[1])["answered_today"], 1, "{snap}");
    node.node
        .wait_for_line("offering a call", Duration::from_secs(1));
}
