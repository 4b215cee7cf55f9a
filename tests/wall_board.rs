//! The supervisors' wall board in a real headless Chromium (Debian's, driven by
//! playwright-core from `web/tests/board_live.mjs`), fed only by the live event WebSocket: a
//! SIPp caller dials 12345 while no agent is logged in; the board shows it waiting within a
//! second of its queueing, raises the long-wait alert once the wait passes the (here 3 s)
//! service-level target, and shows the call with the agent within a second of the answer,
//! the alert gone. The supervisor then listens through the page's own softphone (WebRTC
//! through the gateway) and hears both the caller's 300 Hz and the agent's 1 kHz, barges in
//! for three seconds (the browser's 700 Hz microphone is in the recording's office side for
//! exactly those seconds) and leaves; all in the audit log. The supervisor pauses the agent from the board (audited). The
//! KPI page's CSV downloads. Screenshots in
//! `ci-artifacts/wall-board/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use common::baresip::tone_share;
use common::browser::*;
use common::center::*;
use common::sipp::free_udp_port;
use common::*;
use serde_json::Value;
use sqlx::Row;

fn millis(line: &str) -> i64 {
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a time in {line:?}"))
}

#[test]
fn the_board_shows_a_call_waiting_alerting_and_answered_within_a_second_and_a_supervisor_listens() {
    let center = Center::start_with(
        QUEUE_SCRIPT,
        &[("HOTLINE_ACD__SERVICE_LEVEL_SECS", "3".as_ref())],
    );
    let alice = center.agent("alice", "1001");
    center.user_with_phone("sue", "1009", "supervisor", &[]);
    // Alice's phone answers after a second and speaks 1 kHz.
    let port = free_udp_port();
    let alice_phone = phone(center.work.path(), "uas_agent_talks.xml", port);
    center.register("1001", port);
    // Three tickets about a water outage, filed now: the analytics page shows them, their
    // words among the hot topics once the term indexer has taken them (5-10 s).
    center.http.ok(
        "POST",
        "/api/categories",
        Some(&center.admin),
        serde_json::json!({"code": "water-outage", "name": "停水", "time_limit_days": 5}),
    );
    let sue = center.http.login("sue", "agent's password");
    for district in ["槐荫区", "历下区", "槐荫区"] {
        center.http.ok(
            "POST",
            "/api/tickets",
            Some(&sue),
            serde_json::json!({"channel": "phone", "request_type": "complaint",
                   "category": "water-outage", "district": district,
                   "description": "小区停水两天，自来水公司没有通知"}),
        );
    }
    // A number that called six times in the last hour: the board flags it (Art. 12, 34).
    center.node.db.execute(
        "INSERT INTO calls (call_id, caller, called, started_at, answered_at, ended_at, end_reason)
         SELECT 'often-' || i, '13900001111', '12345', now() - make_interval(mins => i * 9 + 1),
                now() - make_interval(mins => i * 9 + 1), now() - make_interval(mins => i * 9),
                'caller hung up'
           FROM generate_series(0, 5) i"
            .to_string(),
    );
    let tone = microphone(&center, 700.0);
    let mut browser = Browser::start(
        &center,
        "board_live.mjs",
        "wall-board",
        &[
            ("SUPERVISOR", "sue"),
            ("PASSWORD", "agent's password"),
            ("TONE", tone.to_str().unwrap()),
            ("CALLER_HZ", "300"),
            ("AGENT_HZ", "1000"),
        ],
    );
    // The supervisor routed it from the board to a queue of its own.
    browser.expect("frequent-routed", 60);
    browser.expect("ready", 5);
    let routed = center
        .node
        .db
        .rows("SELECT queue, set_by FROM frequent_caller_routes WHERE caller = '13900001111'");
    assert_eq!(routed.len(), 1, "the route the board set is kept");
    assert_eq!(routed[0].get::<String, _>("set_by"), "sue");
    // Out of the way of the call records read below.
    center
        .node
        .db
        .execute("DELETE FROM calls WHERE call_id LIKE 'often-%'".to_string());

    // Nobody is logged in: the caller waits.
    let call = caller(&center, 20_000);
    let waiting = millis(&browser.expect("waiting ", 30));
    let alert = millis(&browser.expect("alert ", 20));
    center.agent_does("alice", "login", Value::Null);
    let talking = millis(&browser.expect("talking ", 30));
    browser.expect("alert-cleared", 10);
    browser.expect("listening", 30);
    let levels: Value =
        serde_json::from_str(browser.expect("levels ", 20).trim_start_matches("levels ")).unwrap();
    browser.expect("barging", 10);
    browser.expect("left", 20);
    browser.expect("forced", 60);
    // The live agents table as CSV: a byte-order mark, the header, alice paused by the
    // supervisor.
    let agents_csv: String = serde_json::from_str(
        browser
            .expect("agents-csv ", 10)
            .trim_start_matches("agents-csv "),
    )
    .unwrap();
    assert!(
        agents_csv.starts_with(
            "\u{feff}agent,state,reason,secs_in_state,queues,answered_today\r\nalice,paused,supervisor,"
        ),
        "{agents_csv:?}"
    );
    let csv_header = browser.expect("kpi-csv ", 60);
    let csv_rows = millis(&browser.expect("kpi-rows ", 5));
    let topics = browser.expect("topics ", 30);
    assert!(topics.contains("停水"), "{topics}");
    browser.expect("done", 30);
    let (code, errors) = call.join().unwrap();
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    let _ = alice_phone.wait_with_output();

    let rows = center.node.ended_calls(
        1,
        "(extract(epoch FROM queued_at) * 1000)::bigint AS queued,
         (extract(epoch FROM agent_answered_at) * 1000)::bigint AS answered, agent_id",
    );
    let (queued, answered): (i64, i64) = (rows[0].get("queued"), rows[0].get("answered"));
    assert_eq!(rows[0].get::<Option<i64>, _>("agent_id"), Some(alice));
    let after = |seen: i64, event: i64| seen - event;
    println!(
        "waiting shown {} ms after queueing, alert {} ms after, answered shown {} ms after the answer; heard {levels}",
        after(waiting, queued),
        after(alert, queued),
        after(talking, answered)
    );
    assert!(
        (-200..1000).contains(&after(waiting, queued)),
        "the waiting caller showed {} ms after queueing",
        after(waiting, queued)
    );
    // The wait passes 3 s once it reaches 4 whole seconds.
    assert!(
        (3900..5500).contains(&after(alert, queued)),
        "the long-wait alert showed {} ms after queueing",
        after(alert, queued)
    );
    assert!(
        (-200..1000).contains(&after(talking, answered)),
        "the answered call showed {} ms after the answer",
        after(talking, answered)
    );

    // Listening, the supervisor hears the caller and the agent, well above the floor.
    let level = |k: &str| levels[k].as_f64().unwrap();
    for who in ["caller", "agent"] {
        assert!(
            level(who) > level("elsewhere") + 20.0,
            "the supervisor hears the {who}: {levels}"
        );
    }
    let audit = center.node.db.rows(
        "SELECT actor, detail->>'mode' AS mode FROM audit_log WHERE action = 'call.monitor' ORDER BY id",
    );
    let audit: Vec<(String, String)> = audit
        .iter()
        .map(|r| (r.get("actor"), r.get("mode")))
        .collect();
    assert_eq!(
        audit,
        [("sue", "listen"), ("sue", "barge"), ("sue", "leave")]
            .map(|(a, m)| (a.to_string(), m.to_string()))
    );
    // Barging, the browser's microphone (700 Hz) went into the call: the recording's office
    // side carries it beside the agent's 1 kHz, and only in the three seconds of the barge
    // (not while listening, not after leaving).
    let rows = center.node.ended_calls(1, "recording");
    let recording: String = rows[0].get::<Option<String>, _>("recording").unwrap();
    let (_, right) = channels(&recording);
    let seconds: Vec<(f64, f64)> = right
        .chunks_exact(8000)
        .map(|s| (tone_share(s, 8000, 700.0), tone_share(s, 8000, 1000.0)))
        .collect();
    let barged: Vec<usize> = (0..seconds.len())
        .filter(|&i| seconds[i].0 > 0.2 && seconds[i].1 > 0.2)
        .collect();
    println!("seconds with the supervisor and the agent on the right: {barged:?}");
    assert!(
        (2..=4).contains(&barged.len()) && barged.windows(2).all(|w| w[1] == w[0] + 1),
        "the supervisor and the agent together on the right for the barge only: {seconds:?}"
    );
    let forced = center.node.db.rows(
        "SELECT 1 FROM audit_log WHERE action = 'agent.force_state' AND actor = 'sue'
            AND subject = 'user:alice'",
    );
    assert_eq!(forced.len(), 1, "the forced pause is audited");
    assert!(
        csv_header.starts_with("kpi-csv start,queue,offered,answered,abandoned"),
        "{csv_header}"
    );
    assert_eq!(csv_rows, 1, "the call's hour in the KPI CSV");
    for shot in [
        "board-alert.png",
        "board-answered.png",
        "board-listening.png",
        "board-kpis.png",
        "board-analytics.png",
    ] {
        let len = std::fs::metadata(artifacts("wall-board").join(shot))
            .unwrap()
            .len();
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
}
