//! The ACD end to end on loopback, with real SIP peers: agents' phones (SIPp) register with
//! digest authentication, the agents log in through the API, a SIPp caller dials 12345, the
//! IVR greets it and queues it, and the ACD rings the agents' registered phones. The first
//! agent's phone rings past the ring timeout and is cancelled (a miss); the next agent's
//! answers and is bridged: the recording holds the caller's tone on the left and the agent's on
//! the right, and the call record names the agent. The snapshot counts the answer today.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::process::Child;
use std::time::Duration;

use common::center::*;
use common::sipp::{errors_in, free_udp_port, sipp_in};
use common::*;
use serde_json::{Value, json};
use sqlx::Row;

/// The greeting, then the queue.
const SCRIPT: &str = QUEUE_SCRIPT;

#[test]
fn a_queued_caller_rings_the_next_agent_after_a_ring_timeout_and_is_bridged_and_recorded() {
    let mut center = Center::start(SCRIPT);
    let ids = [center.agent("alice", "1001"), center.agent("bob", "1002")];
    // The phones: alice's rings and is never picked up, bob's answers and speaks 1 kHz.
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let phone_a = phone(center.work.path(), "uas_agent_no_answer.xml", port_a);
    let phone_b = phone(center.work.path(), "uas_agent_talks.xml", port_b);
    center.register("1001", port_a);
    center.register("1002", port_b);
    // Alice logs in first: idle the longest, she is offered the call first.
    for name in ["alice", "bob"] {
        center.agent_does(name, "login", Value::Null);
        std::thread::sleep(Duration::from_millis(1100));
    }

    // The caller speaks 300 Hz for 12 s: greeting, 5 s ringing alice, 1 s ringing bob, then
    // about 4 s bridged to bob.
    let (code, errors) = sipp_in(
        center.work.path(),
        center.node.udp,
        &scenario("../../benches/sipp/uac_media_load.xml"),
        "12345",
        &["-d", "12000"],
    );
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    let a = phone_a.wait_with_output().unwrap();
    let b = phone_b.wait_with_output().unwrap();
    let phone_errors = center.sipp_errors();
    assert!(
        a.status.success(),
        "alice's phone was not cancelled: {phone_errors}"
    );
    assert!(b.status.success(), "bob's phone failed: {phone_errors}");

    // The call record names bob, answered.
    let rows = center.node.ended_calls(
        1,
        "agent_id, outcome, queue, recording, end_reason, rings,
         (agent_answered_at - queued_at) AS waited",
    );
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
    // Each ring: alice's ran the 5 s timeout, bob's was answered after about 1 s.
    let rings: Value = row.get("rings");
    let rings = rings.as_array().unwrap();
    let ring = |i: usize| {
        let r = &rings[i];
        let at = |k: &str| {
            r[k].as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .unwrap()
        };
        (
            r["agent"].as_i64().unwrap(),
            r["result"].as_str().unwrap().to_string(),
            (at("ended_at") - at("started_at")).num_milliseconds(),
        )
    };
    assert_eq!(rings.len(), 2, "{rings:?}");
    let (a, result, ms) = ring(0);
    assert_eq!((a, result.as_str()), (ids[0], "no answer"));
    assert!((4500..6500).contains(&ms), "alice rang {ms} ms");
    let (b, result, ms) = ring(1);
    assert_eq!((b, result.as_str()), (ids[1], "answered"));
    assert!((800..2500).contains(&ms), "bob rang {ms} ms");
    let waited: sqlx::postgres::types::PgInterval = row.get("waited");
    let waited = waited.microseconds as f64 / 1e6;
    assert!(
        (5.5..9.0).contains(&waited),
        "answered {waited} s after queueing: 5 s of alice ringing, 1 s of bob's"
    );
    assert!(
        !center
            .node
            .db
            .rows("SELECT 1 FROM missed_calls")
            .iter()
            .any(|_| true),
        "an answered call is not a missed call"
    );

    // The recording: left the caller's 300 Hz, right bob's 1 kHz, in the bridged part (the
    // last seconds before the caller hung up).
    let path: String = row.get::<Option<String>, _>("recording").expect("recorded");
    let (left, right) = channels(&path);
    assert!(left.len() > 8000 * 10, "{} samples", left.len());
    let end = left.len() - 4000;
    let (l, r) = (&left[end - 16_000..end], &right[end - 16_000..end]);
    assert_tone(l, 300.0, CALLER, "left (caller, 300 Hz)");
    assert_tone(r, 1000.0, PHONE, "right (agent, 1 kHz)");
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
    let snap = center
        .http
        .ok("GET", "/api/acd/snapshot", Some(&center.admin), Value::Null);
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
    center
        .node
        .node
        .wait_for_line("offering a call", Duration::from_secs(1));
}

const SELF_SERVICE_SCRIPT: &str = r##"
start = "hello"

[nodes.hello]
type = "play"
prompt = { text = "您好" }
next = "queue"

[nodes.queue]
type = "queue"
queue = "general"
digits = { "2" = "status" }

[nodes.status]
type = "ticket_status"
next = "queue"
"##;

/// A caller of `uac_keys.xml` whose keys and pauses are `steps`, run in `dir`.
fn keyed_caller(center: &Center, steps: &str) -> std::thread::JoinHandle<(i32, String)> {
    let template = std::fs::read_to_string(scenario("uac_keys.xml")).unwrap();
    let keys = r#"<pause milliseconds="1500"/>
  <nop><action><exec play_dtmf="2123456#,100"/></action></nop>
  <pause milliseconds="9000"/>"#;
    assert!(template.contains(keys));
    let file = center
        .work
        .path()
        .join(format!("caller-{}.xml", free_udp_port()));
    std::fs::write(&file, template.replace(keys, steps)).unwrap();
    let (dir, udp) = (center.work.path().to_path_buf(), center.node.udp);
    std::thread::spawn(move || sipp_in(&dir, udp, &file, "12345", &[]))
}

/// When the first log line containing `needle` was written (waiting up to 30 s for it).
fn logged_at(center: &mut Center, needle: &str) -> chrono::DateTime<chrono::Utc> {
    let line = center
        .node
        .node
        .wait_for_line(needle, Duration::from_secs(30));
    line.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"))
}

/// A caller steps out of the queue for self-service (press 2: a ticket's status) while an
/// agent logs in: nobody is offered the call while it is away; when it comes back it keeps
/// its place (the wait counts from its first queueing) and the agent's phone rings and is
/// bridged. A second caller, with every agent logged out, hangs up while waiting: an
/// abandoned call on the missed-call list, and the day's abandon rate says so.
#[test]
fn self_service_while_queued_keeps_the_place_and_a_caller_who_hangs_up_is_missed() {
    let mut center = Center::start(SELF_SERVICE_SCRIPT);
    let bob = center.agent("bob", "1002");
    let port = free_udp_port();
    let phone_b = phone(center.work.path(), "uas_agent_talks.xml", port);
    center.register("1002", port);

    let caller = keyed_caller(
        &center,
        r#"<pause milliseconds="1500"/>
  <nop><action><exec play_dtmf="2,100"/></action></nop>
  <pause milliseconds="18000"/>"#,
    );
    // Away: the caller hears the ticket status (about 9 s of speech) from this moment.
    let told = logged_at(&mut center, "IVR told a caller a ticket's status");
    // Bob becomes available while the caller is away.
    center.agent_does("bob", "login", Value::Null);
    let offered = logged_at(&mut center, "offering a call");
    let away = (offered - told).num_milliseconds();
    assert!(
        away > 6000,
        "offered {away} ms after stepping out: only once back from self-service"
    );
    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "the first caller's call failed: {errors}");
    let b = phone_b.wait_with_output().unwrap();
    assert!(b.status.success(), "bob's phone: {}", center.sipp_errors());
    let rows = center.node.ended_calls(
        1,
        "agent_id, outcome, ivr_path, extract(epoch FROM agent_answered_at - queued_at)::float8 AS waited",
    );
    let row = &rows[0];
    assert_eq!(row.get::<Option<i64>, _>("agent_id"), Some(bob));
    assert_eq!(
        row.get::<Option<String>, _>("outcome").as_deref(),
        Some("answered")
    );
    assert_eq!(
        row.get::<Vec<String>, _>("ivr_path"),
        ["hello", "queue", "status", "queue"]
    );
    // The wait runs from the first queueing, through the self-service, to the answer.
    let waited: f64 = row.get("waited");
    assert!(waited > 3.0, "waited {waited} s");

    // Second caller: nobody logged in; it hangs up after 3 s in the queue.
    center.agent_does("bob", "logout", Value::Null);
    let caller = keyed_caller(&center, r#"<pause milliseconds="3500"/>"#);
    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "the second caller's call failed: {errors}");
    let rows = center.node.ended_calls(2, "outcome");
    assert_eq!(
        rows[1].get::<Option<String>, _>("outcome").as_deref(),
        Some("abandoned")
    );
    let missed = center
        .node
        .db
        .rows("SELECT queue, waited_secs FROM missed_calls");
    assert_eq!(
        missed.len(),
        1,
        "the abandoned call is on the missed-call list"
    );
    assert_eq!(missed[0].get::<String, _>("queue"), "general");
    let waited: f64 = missed[0].get("waited_secs");
    assert!((1.5..4.0).contains(&waited), "waited {waited} s");
    let snap = center
        .http
        .ok("GET", "/api/acd/snapshot", Some(&center.admin), Value::Null);
    let q = &snap["queues"][0];
    assert_eq!(
        (
            &q["offered_today"],
            &q["answered_today"],
            &q["abandoned_today"]
        ),
        (&json!(2), &json!(1), &json!(1)),
        "{snap}"
    );
    assert_eq!(q["abandon_rate_pct"], json!(50.0), "{snap}");
}

/// With no agent free, the caller takes the callback offer (press 1 after 5 s) and hangs up
/// keeping its place. When an agent logs in, the engine calls the caller back through the
/// callback route (a SIPp phone speaking 300 Hz), then rings the agent (speaking 1 kHz), and
/// bridges and records them; the agent hangs up. The first call's outcome is `callback`; the
/// callback's record names the agent, and its recording holds the caller left, the agent
/// right.
#[test]
fn a_caller_who_takes_the_callback_is_called_back_and_bridged_to_the_agent() {
    let citizen_dir = tempfile::tempdir().unwrap();
    std::fs::write(citizen_dir.path().join("agent.ulaw"), tone(300.0, 20)).unwrap();
    let citizen_port = free_udp_port();
    let route = format!("sip:{{number}}@127.0.0.1:{citizen_port}");
    let center = Center::start_with(
        CALLBACK_SCRIPT,
        &[("HOTLINE_ACD__CALLBACK_ROUTE", route.as_ref())],
    );
    let bob = center.agent("bob", "1002");
    let port = free_udp_port();
    let phone_b = phone(center.work.path(), "uas_agent_hangs_up.xml", port);
    center.register("1002", port);
    // The caller's phone for the callback: answers and speaks 300 Hz until the engine's BYE.
    let citizen = phone(citizen_dir.path(), "uas_agent_talks.xml", citizen_port);

    let (code, errors) = sipp_in(
        center.work.path(),
        center.node.udp,
        &scenario("uac_callback.xml"),
        "12345",
        &["-key", "caller", "13812345678"],
    );
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    let rows = center.node.ended_calls(1, "outcome, ivr_path, agent_id");
    assert_eq!(
        rows[0].get::<Option<String>, _>("outcome").as_deref(),
        Some("callback")
    );
    assert_eq!(
        rows[0].get::<Vec<String>, _>("ivr_path"),
        ["hello", "queue", "thanks", "bye"]
    );
    assert!(
        center.node.db.rows("SELECT 1 FROM missed_calls").is_empty(),
        "a kept callback is not a missed call"
    );

    // Bob comes: the callback is placed, then bob's phone rings.
    center.agent_does("bob", "login", Value::Null);
    let b = phone_b.wait_with_output().unwrap();
    assert!(b.status.success(), "bob's phone: {}", center.sipp_errors());
    let c = citizen.wait_with_output().unwrap();
    assert!(
        c.status.success(),
        "the caller's phone: {}",
        errors_in(citizen_dir.path())
    );

    let rows = center.node.ended_calls(
        2,
        "caller, callback, agent_id, outcome, queue, recording, end_reason",
    );
    assert_eq!(rows.len(), 2);
    let back = &rows[1];
    assert!(back.get::<bool, _>("callback"));
    assert_eq!(back.get::<String, _>("caller"), "13812345678");
    assert_eq!(back.get::<Option<i64>, _>("agent_id"), Some(bob));
    assert_eq!(
        back.get::<Option<String>, _>("outcome").as_deref(),
        Some("answered")
    );
    assert_eq!(
        back.get::<Option<String>, _>("end_reason").as_deref(),
        Some("agent hung up")
    );
    let path: String = back
        .get::<Option<String>, _>("recording")
        .expect("recorded");
    let (left, right) = channels(&path);
    assert!(left.len() > 8000 * 3, "{} samples", left.len());
    // The bridge's last 1.5 s before the agent hung up.
    let end = left.len() - 5600;
    let (l, r) = (&left[end - 12_000..end], &right[end - 12_000..end]);
    assert_tone(l, 300.0, CALLER, "left (caller, 300 Hz)");
    assert_tone(r, 1000.0, PHONE, "right (agent, 1 kHz)");
    let snap = center
        .http
        .ok("GET", "/api/acd/snapshot", Some(&center.admin), Value::Null);
    let q = &snap["queues"][0];
    assert_eq!(
        (&q["callbacks_today"], &q["answered_today"]),
        (&json!(1), &json!(1)),
        "{snap}"
    );
}

/// An agent on a call sends the caller to the police (110, a configured emergency route): the
/// agent's leg is hung up, the caller hears ringback and is bridged to the route; the call
/// record shows where it went, the audit log who sent it. Another user may not transfer a call
/// that is not theirs, and an unknown route is refused.
#[test]
fn an_agent_transfers_a_caller_to_the_emergency_route() {
    let police_dir = tempfile::tempdir().unwrap();
    std::fs::write(police_dir.path().join("agent.ulaw"), tone(500.0, 20)).unwrap();
    let police_port = free_udp_port();
    let police_uri = format!("sip:110@127.0.0.1:{police_port}");
    let center = Center::start_with(
        SCRIPT,
        &[("HOTLINE_ACD__EMERGENCY_ROUTES__110", police_uri.as_ref())],
    );
    let bob = center.agent("bob", "1002");
    center.http.ok(
        "POST",
        "/api/users",
        Some(&center.admin),
        json!({"username": "carol", "display_name": "carol", "role": "intake",
               "password": "agent's password"}),
    );
    let port = free_udp_port();
    let phone_b = phone(center.work.path(), "uas_agent_talks.xml", port);
    let police = phone(police_dir.path(), "uas_agent_talks.xml", police_port);
    center.register("1002", port);
    center.agent_does("bob", "login", Value::Null);

    let (dir, udp) = (center.work.path().to_path_buf(), center.node.udp);
    let caller = std::thread::spawn(move || {
        sipp_in(
            &dir,
            udp,
            &scenario("../../benches/sipp/uac_media_load.xml"),
            "12345",
            &["-d", "12000"],
        )
    });
    // Bob's call, as the live snapshot shows it.
    let call_id = center.on_call(bob);
    std::thread::sleep(Duration::from_secs(2));
    let path = format!("/api/calls/{call_id}/transfer");
    let carol = center.http.login("carol", "agent's password");
    let (s, b) = center
        .http
        .send("POST", &path, Some(&carol), json!({"emergency": "110"}));
    assert_eq!(s, 403, "{b}");
    let token = center.http.login("bob", "agent's password");
    let (s, b) = center
        .http
        .send("POST", &path, Some(&token), json!({"emergency": "119"}));
    assert_eq!(s, 422, "{b}");
    assert!(b["error"].as_str().unwrap_or("").contains("119"), "{b}");
    let done = center
        .http
        .ok("POST", &path, Some(&token), json!({"emergency": "110"}));
    assert_eq!(done["to"], json!(police_uri));

    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    let b = phone_b.wait_with_output().unwrap();
    assert!(b.status.success(), "bob's phone: {}", center.sipp_errors());
    let p = police.wait_with_output().unwrap();
    assert!(
        p.status.success(),
        "the police line: {}",
        errors_in(police_dir.path())
    );
    let rows = center
        .node
        .ended_calls(1, "agent_id, transfer_to, recording");
    assert_eq!(rows[0].get::<Option<i64>, _>("agent_id"), Some(bob));
    assert_eq!(
        rows[0].get::<Option<String>, _>("transfer_to"),
        Some(police_uri.clone())
    );
    let audit = center
        .node
        .db
        .rows("SELECT actor FROM audit_log WHERE action = 'call.transfer'");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].get::<String, _>("actor"), "bob");
    // The end of the recording: the caller left, the police line's 500 Hz right.
    let (left, right) = channels(&rows[0].get::<Option<String>, _>("recording").unwrap());
    let end = left.len() - 4000;
    let (l, r) = (&left[end - 8000..end], &right[end - 8000..end]);
    assert_tone(l, 300.0, CALLER, "left (caller, 300 Hz)");
    assert_tone(r, 500.0, PHONE, "right (police line, 500 Hz)");
}

/// The snapshot's view of an agent, polled until it is on a call (up to 10 s): its Call-ID.
/// Blind transfers: bob sends his caller back to `general`, first in line, and the next free
/// agent (alice, idle the longest) takes it; then alice sends it to dave by name, although
/// erin is free and idle longer: only dave's phone rings. The record's rings show each
/// agent in turn, erin never.
#[test]
fn agents_send_a_caller_back_to_the_queue_or_to_one_agent() {
    let center = Center::start(SCRIPT);
    let bob = center.agent("bob", "1002");
    let alice = center.agent("alice", "1001");
    let erin = center.agent("erin", "1004");
    let dave = center.agent("dave", "1003");
    let ports: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();
    let phones: Vec<(&str, Child)> = ["bob", "alice", "erin", "dave"]
        .into_iter()
        .zip(&ports)
        .map(|(who, port)| (who, phone(center.work.path(), "uas_agent_talks.xml", *port)))
        .collect();
    for (ext, port) in ["1002", "1001", "1004", "1003"].into_iter().zip(&ports) {
        center.register(ext, *port);
    }
    center.agent_does("bob", "login", Value::Null);
    let (dir, udp) = (center.work.path().to_path_buf(), center.node.udp);
    let caller = std::thread::spawn(move || {
        sipp_in(
            &dir,
            udp,
            &scenario("../../benches/sipp/uac_media_load.xml"),
            "12345",
            &["-d", "16000"],
        )
    });
    let call_id = center.on_call(bob);
    for name in ["alice", "erin", "dave"] {
        center.agent_does(name, "login", Value::Null);
        std::thread::sleep(Duration::from_millis(300));
    }
    let path = format!("/api/calls/{call_id}/transfer");
    let token = center.http.login("bob", "agent's password");
    let done = center
        .http
        .ok("POST", &path, Some(&token), json!({"queue": "general"}));
    assert_eq!(done["to"], "general");
    assert_eq!(center.on_call(alice), call_id, "the same call, now alice's");
    std::thread::sleep(Duration::from_secs(1));
    let token = center.http.login("alice", "agent's password");
    center
        .http
        .ok("POST", &path, Some(&token), json!({"agent": "dave"}));
    assert_eq!(center.on_call(dave), call_id, "the same call, now dave's");
    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    for (who, p) in phones {
        if who == "erin" {
            let _ = std::process::Command::new("kill")
                .arg(p.id().to_string())
                .status();
            continue;
        }
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{who}'s phone: {}",
            center.sipp_errors()
        );
    }
    let rows = center
        .node
        .ended_calls(1, "agent_id, outcome, transfer_to, rings");
    assert_eq!(rows[0].get::<Option<i64>, _>("agent_id"), Some(dave));
    assert_eq!(
        rows[0].get::<Option<String>, _>("outcome").as_deref(),
        Some("answered")
    );
    assert_eq!(rows[0].get::<Option<String>, _>("transfer_to"), None);
    let rings: Value = rows[0].get("rings");
    let rang: Vec<(i64, &str)> = rings
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agent"].as_i64().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rang,
        [(bob, "answered"), (alice, "answered"), (dave, "answered")],
        "erin ({erin}) never rang"
    );
}
