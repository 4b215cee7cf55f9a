//! Agents' states through the HTTP API and the ACD task's snapshot: profiles kept by
//! administrators, agents logging into their queues, pausing with a reason, resuming and
//! logging out, a supervisor forcing a state (audited), and callers the IVR queues appearing
//! in the snapshot until they leave.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

#[path = "common/api.rs"]
mod api;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use api::{Api, china};
use hotline::acd::service::Command;

fn agent(snap: &Value, id: i64) -> &Value {
    snap["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or(&Value::Null)
}

#[sqlx::test]
async fn agents_log_in_pause_with_a_reason_and_supervisors_see_it(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 11, 28)).await;
    let admin = api.login("admin").await;
    let intake = api.login("intake").await;
    let sup = api.login("supervisor").await;
    let unit = api.login("huaiyin").await;
    let intake_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'intake'")
        .fetch_one(&db)
        .await
        .unwrap();

    let (s, b) = api
        .send(
            "PUT",
            "/api/agents/intake",
            Some(&admin),
            json!({"skills": {"mandarin": 11}, "queues": ["general"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _) = api
        .send(
            "PUT",
            "/api/agents/intake",
            Some(&sup),
            json!({"queues": ["general"]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "profiles are the administrator's");
    let (s, b) = api
        .send(
            "PUT",
            "/api/agents/intake",
            Some(&admin),
            json!({"skills": {"mandarin": 8, "housing": 5}, "queues": ["general"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (s, b) = api
        .send("POST", "/api/agents/me/login", Some(&intake), Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, snap) = api.get("/api/acd/snapshot", &sup).await;
    assert_eq!(s, StatusCode::OK, "{snap}");
    assert_eq!(agent(&snap, intake_id)["state"], "available");
    assert_eq!(agent(&snap, intake_id)["queues"], json!(["general"]));
    assert_eq!(snap["queues"][0]["name"], "general");

    let (s, _) = api
        .send("POST", "/api/agents/me/pause", Some(&intake), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a pause needs a reason"
    );
    let (s, _) = api
        .send(
            "POST",
            "/api/agents/me/pause",
            Some(&intake),
            json!({"reason": "用餐"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, snap) = api.get("/api/acd/snapshot", &intake).await;
    assert_eq!(agent(&snap, intake_id)["state"], "paused");
    assert_eq!(agent(&snap, intake_id)["reason"], "用餐");
    let (s, _) = api
        .send(
            "POST",
            "/api/agents/me/pause",
            Some(&intake),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "a pause may change its reason");

    // Only a supervisor forces another's state, and it is audited.
    let (s, _) = api
        .send(
            "POST",
            "/api/agents/intake/resume",
            Some(&unit),
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = api
        .send("POST", "/api/agents/intake/resume", Some(&sup), Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'agent.force_state' AND actor = 'supervisor' AND subject = 'user:intake'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let (_, snap) = api.get("/api/acd/snapshot", &sup).await;
    assert_eq!(agent(&snap, intake_id)["state"], "available");

    let (s, _) = api
        .send("POST", "/api/agents/me/logout", Some(&intake), Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, snap) = api.get("/api/acd/snapshot", &sup).await;
    assert_eq!(agent(&snap, intake_id)["state"], "offline");
    let (s, _) = api
        .send("POST", "/api/agents/me/resume", Some(&intake), Value::Null)
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "an offline agent logs in, it does not resume"
    );
    let (s, _) = api
        .send("POST", "/api/agents/me/dance", Some(&intake), Value::Null)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api.get("/api/acd/snapshot", &unit).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // An agent profile naming a queue the node does not have cannot log in.
    api.send(
        "PUT",
        "/api/agents/dispatcher",
        Some(&admin),
        json!({"queues": ["nowhere"]}),
    )
    .await;
    let disp = api.login("dispatcher").await;
    let (s, b) = api
        .send("POST", "/api/agents/me/login", Some(&disp), Value::Null)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

#[tokio::test]
async fn callers_the_ivr_queues_show_in_the_snapshot_until_they_leave() {
    use hotline::acd::routing::QueueConfig;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let acd = hotline::acd::service::spawn(
        vec![QueueConfig::new("general")],
        Default::default(),
        shutdown.clone(),
    );
    for call in [1, 2] {
        acd.send(Command::Enqueue {
            call,
            call_id: format!("call-{call}"),
            caller: "13800000000".into(),
            queue: "general".into(),
            priority: 0,
            skills: vec![],
            agent: None,
        });
    }
    acd.send(Command::Enqueue {
        call: 3,
        call_id: "call-3".into(),
        caller: "13800000000".into(),
        queue: "nowhere".into(),
        priority: 0,
        skills: vec![],
        agent: None,
    });
    let snap = acd.snapshot().await.unwrap();
    assert_eq!(
        snap.queues[0].waiting, 2,
        "the unknown queue's caller is refused"
    );
    // Self-service keeps the place; hanging up leaves.
    acd.send(Command::SelfService {
        call: 1,
        away: true,
    });
    assert_eq!(acd.snapshot().await.unwrap().queues[0].waiting, 2);
    acd.send(Command::Leave {
        call: 1,
        hung_up: true,
    });
    acd.send(Command::Leave {
        call: 2,
        hung_up: false,
    });
    let snap = acd.snapshot().await.unwrap();
    assert_eq!(snap.queues[0].waiting, 0);
    assert_eq!(snap.queues[0].longest_wait_secs, 0);
    // Today's counts: two offered, one hung up (abandoned), the other went elsewhere in the
    // script (not abandoned); nothing answered yet, so no service level but a 100 % abandon
    // rate of the calls that ended in the queue.
    let q = &snap.queues[0];
    assert_eq!(
        (q.offered_today, q.answered_today, q.abandoned_today),
        (2, 0, 1)
    );
    assert_eq!(q.service_level_pct, Some(0.0));
    assert_eq!(q.abandon_rate_pct, Some(100.0));
    assert_eq!(q.target_secs, 15);
    shutdown.cancel();
}

#[sqlx::test]
async fn the_live_feed_sends_the_snapshot_and_each_change_within_a_second(db: PgPool) {
    use futures_util::StreamExt;
    let api = Api::new(db.clone(), china(2026, 11, 28)).await;
    let admin = api.login("admin").await;
    let sup = api.login("supervisor").await;
    let intake = api.login("intake").await;
    let unit = api.login("huaiyin").await;
    api.send(
        "PUT",
        "/api/agents/intake",
        Some(&admin),
        json!({"queues": ["general"]}),
    )
    .await;
    let addr = api.serve().await;

    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/api/acd/events")).await;
    assert!(refused.is_err(), "no token, no feed");
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/acd/events?token={unit}")).await;
    assert!(refused.is_err(), "units do not watch the hotline's agents");

    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/acd/events?token={sup}"))
            .await
            .unwrap();
    let first = next(&mut ws).await;
    assert_eq!(first["queues"][0]["name"], "general");
    assert!(first["agents"].as_array().unwrap().is_empty());
    let started = std::time::Instant::now();
    let (s, _) = api
        .send("POST", "/api/agents/me/login", Some(&intake), Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    let change = next(&mut ws).await;
    assert_eq!(change["agents"][0]["state"], "available");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Nothing changes: nothing is sent.
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(1200), ws.next()).await;
    assert!(quiet.is_err(), "a message without a change: {quiet:?}");
}

type Feed =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message of the feed, within a second, as JSON.
async fn next(ws: &mut Feed) -> Value {
    use futures_util::StreamExt;
    let m = tokio::time::timeout(std::time::Duration::from_secs(1), ws.next())
        .await
        .expect("a message within a second")
        .unwrap()
        .unwrap();
    serde_json::from_str::<Value>(m.to_text().unwrap()).unwrap()
}

fn record(
    call: &str,
    queue: Option<&str>,
    reason: &str,
    transfer: Option<&str>,
) -> hotline::calls::record::CallRecord {
    let start = chrono::Utc::now() - chrono::Duration::seconds(120);
    hotline::calls::record::CallRecord {
        call_id: call.into(),
        caller: "13812345678".into(),
        called: "12345".into(),
        started_at: start,
        answered_at: Some(start),
        ended_at: start + chrono::Duration::seconds(65),
        recording: None,
        end_reason: reason.into(),
        codec: Some("PCMU".into()),
        ivr_path: vec!["greeting".into(), "queue".into()],
        ivr_keys: String::new(),
        ivr_vars: Default::default(),
        queue: queue.map(str::to_string),
        queued_at: queue.map(|_| start + chrono::Duration::seconds(5)),
        agent_id: None,
        agent_answered_at: None,
        callback: false,
        callback_requested: false,
        rings: Vec::new(),
        transfer_to: transfer.map(str::to_string),
        score: None,
        packets_sent: 0,
        packets_received: 0,
        quality: None,
    }
}

#[sqlx::test]
async fn callers_who_hang_up_while_waiting_are_kept_for_calling_back(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 11, 28)).await;
    let abandoned = record("a", Some("general"), "caller hung up", None);
    let id = abandoned.complete(&db, None).await.unwrap();
    // A replayed spool writes it again: still one.
    abandoned.complete(&db, None).await.unwrap();
    for r in [
        record(
            "b",
            Some("general"),
            "caller hung up",
            Some("sip:1001@127.0.0.1"),
        ),
        record("c", Some("general"), "ivr hung up", None),
        record("d", None, "caller hung up", None),
    ] {
        r.complete(&db, None).await.unwrap();
    }
    let intake = api.login("intake").await;
    let analyst = api.login("analyst").await;
    let unit = api.login("huaiyin").await;
    let (s, list) = api.get("/api/acd/missed", &intake).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the abandoned one: {list}"
    );
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["caller"], "13812345678");
    assert_eq!(list[0]["queue"], "general");
    assert_eq!(list[0]["waited_secs"], 60.0);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'missed_calls.read' AND actor = 'intake'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let (_, list) = api.get("/api/acd/missed", &analyst).await;
    assert_eq!(list[0]["caller"], "138****5678");
    let (s, _) = api.get("/api/acd/missed", &unit).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let path = format!("/api/acd/missed/{id}/done");
    let (s, _) = api
        .send("POST", &path, Some(&intake), json!({"outcome": " "}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = api
        .send("POST", &path, Some(&analyst), json!({"outcome": "x"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = api
        .send(
            "POST",
            &path,
            Some(&intake),
            json!({"outcome": "已回拨，市民问题已记录工单"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = api
        .send("POST", &path, Some(&intake), json!({"outcome": "again"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = api
        .send(
            "POST",
            "/api/acd/missed/999999/done",
            Some(&intake),
            json!({"outcome": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, open) = api.get("/api/acd/missed", &intake).await;
    assert_eq!(open, json!([]));
    let (_, all) = api.get("/api/acd/missed?all=true", &intake).await;
    assert_eq!(all[0]["done_by"], "intake");
}

/// Inserts an ended call record: queued at `queued` (China time on 2026-03-02, "HH:MM:SS"),
/// answered by `agent` after `wait` seconds, talking `talk` seconds.
#[allow(clippy::too_many_arguments)]
async fn ended_call(
    db: &PgPool,
    queue: &str,
    agent: Option<i64>,
    queued: &str,
    wait: Option<i64>,
    talk: i64,
    outcome: &str,
    callback: bool,
) {
    sqlx::query(
        "INSERT INTO calls (call_id, caller, called, started_at, queued_at, agent_id,
                            agent_answered_at, ended_at, outcome, queue, callback)
         SELECT gen_random_uuid()::text, '13800000000', '12345', q, q, $2,
                q + make_interval(secs => $3), COALESCE(q + make_interval(secs => $3), q) + make_interval(secs => $4),
                $5, $6, $7
           FROM (SELECT ('2026-03-02 ' || $1 || '+08')::timestamptz AS q) t",
    )
    .bind(queued)
    .bind(agent)
    .bind(wait.map(|w| w as f64))
    .bind(talk as f64)
    .bind(outcome)
    .bind(queue)
    .bind(callback)
    .execute(db)
    .await
    .unwrap();
}

#[sqlx::test]
async fn call_kpis_per_quarter_hour_and_agent_match_the_hand_counts(db: PgPool) {
    let api = Api::new(db.clone(), china(2026, 3, 2)).await;
    let analyst = api.login("analyst").await;
    let intake = api.login("intake").await;
    // general 09:00-09:15: answered after 5 s (talk 120), 15 s (60), 40 s (300), one
    // abandoned, one callback placed; 09:20 answered after 10 s (200); elderly 09:05
    // answered after 20 s (100).
    for (queue, agent, at, wait, talk, outcome, callback) in [
        (
            "general",
            Some(1),
            "09:00:00",
            Some(5),
            120,
            "answered",
            false,
        ),
        (
            "general",
            Some(2),
            "09:01:00",
            Some(15),
            60,
            "answered",
            false,
        ),
        (
            "general",
            Some(1),
            "09:14:59",
            Some(40),
            300,
            "answered",
            false,
        ),
        ("general", None, "09:03:00", None, 30, "abandoned", false),
        (
            "general",
            Some(2),
            "09:10:00",
            Some(3),
            90,
            "answered",
            true,
        ),
        (
            "general",
            Some(2),
            "09:20:00",
            Some(10),
            200,
            "answered",
            false,
        ),
        (
            "elderly",
            Some(1),
            "09:05:00",
            Some(20),
            100,
            "answered",
            false,
        ),
    ] {
        ended_call(&db, queue, agent, at, wait, talk, outcome, callback).await;
    }
    let range = "from=2026-03-02T00:00:00%2B08:00&to=2026-03-03T00:00:00%2B08:00";

    let (s, b) = api
        .send(
            "GET",
            &format!("/api/stats/calls?interval=15m&{range}"),
            Some(&analyst),
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first = row(&b, |r| {
        r["queue"] == "general" && r["start"] == "2026-03-02T09:00:00+08:00"
    });
    assert_eq!(
        (
            &first["offered"],
            &first["answered"],
            &first["abandoned"],
            &first["answered_15s"],
            &first["callbacks_made"]
        ),
        (&json!(4), &json!(3), &json!(1), &json!(2), &json!(1)),
        "{first}"
    );
    assert_eq!(first["answer_15s_rate"], 50.0);
    assert_eq!(first["connection_rate"], 75.0);
    assert_eq!(first["asa_secs"], 20.0);
    assert_eq!(first["aht_secs"], 160.0);
    assert_eq!(b["rows"].as_array().map(Vec::len), Some(3), "{b}");

    let (s, b) = api
        .send(
            "GET",
            &format!("/api/stats/calls?interval=day&by=agent&{range}"),
            Some(&analyst),
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let two = row(&b, |r| r["agent"] == "2");
    assert_eq!(
        (&two["answered"], &two["callbacks_made"], &two["aht_secs"]),
        (&json!(2), &json!(1), &json!(130.0))
    );

    // CSV for the spreadsheet; the wrong people and questions are refused.
    let (s, csv) = api
        .get(
            &format!("/api/stats/calls?interval=hour&format=csv&{range}"),
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // A spreadsheet's CSV: a byte-order mark (UTF-8), CRLF line ends.
    let csv = csv.as_str().unwrap().to_string();
    assert!(
        csv.starts_with('\u{feff}') && csv.contains("\r\n"),
        "{csv:?}"
    );
    let csv = csv.trim_start_matches('\u{feff}');
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("start,queue,offered,answered"),
        "{csv}"
    );
    assert!(
        lines.contains(&"2026-03-02T09:00:00+08:00,general,5,4,1,3,60.0,80.0,17.5,170.0,,1"),
        "{csv}"
    );
    let (s, _) = api
        .send("GET", "/api/stats/calls", Some(&intake), Value::Null)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = api
        .send(
            "GET",
            "/api/stats/calls?interval=week",
            Some(&analyst),
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

/// The ACD sends every change of an agent's state to the history writer: logging in opens an
/// `available` row, a pause closes it and opens `paused` with the reason, logging out closes
/// it; and the KPIs read occupancy from those rows.
#[sqlx::test]
async fn agent_states_go_to_the_history_and_occupancy_is_read_from_it(db: PgPool) {
    use hotline::acd::service::{AcdSettings, spawn};
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (tx, writer) = hotline::acd::history::spawn(db.clone(), shutdown.clone());
    let acd = spawn(
        vec![hotline::acd::routing::QueueConfig::new("general")],
        AcdSettings {
            history: Some(tx),
            ..Default::default()
        },
        shutdown.clone(),
    );
    let ask = |c: fn(tokio::sync::oneshot::Sender<_>) -> Command| {
        let (reply, rx) = tokio::sync::oneshot::channel();
        acd.send(c(reply));
        rx
    };
    ask(|reply| Command::Login {
        agent: 7,
        device: None,
        queues: vec!["general".into()],
        skills: Vec::new(),
        reply,
    })
    .await
    .unwrap()
    .unwrap();
    ask(|reply| Command::AgentState {
        agent: 7,
        pause: Some("meal".into()),
        logout: false,
        reply,
    })
    .await
    .unwrap()
    .unwrap();
    ask(|reply| Command::AgentState {
        agent: 7,
        pause: None,
        logout: true,
        reply,
    })
    .await
    .unwrap()
    .unwrap();
    // The writer catches up.
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = sqlx::query_as::<_, (String, Option<String>, Vec<String>, bool)>(
            "SELECT state, reason, queues, ended_at IS NOT NULL FROM agent_states
              WHERE agent_id = 7 ORDER BY id",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        if rows.len() == 2 && rows[1].3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let general = vec!["general".to_string()];
    assert_eq!(
        rows,
        [
            ("available".to_string(), None, general.clone(), true),
            (
                "paused".to_string(),
                Some("meal".to_string()),
                general,
                true
            ),
        ]
    );
    shutdown.cancel();
    writer.await.unwrap();

    // Occupancy: agent 1 available 09:00-09:30 then on a call until 09:45 and in wrap-up to
    // 09:50; agent 2 on a call 09:10-09:20, paused after. The 09:00 hour of general: busy
    // 20 + 10 = 30 min of 50 + 10 = 60 staffed: 50 %.
    let api = Api::new(db.clone(), china(2026, 3, 2)).await;
    let analyst = api.login("analyst").await;
    for (agent, state, from, to) in [
        (1, "available", "09:00", "09:30"),
        (1, "on_call", "09:30", "09:45"),
        (1, "wrap_up", "09:45", "09:50"),
        (2, "on_call", "09:10", "09:20"),
        (2, "paused", "09:20", "10:30"),
    ] {
        sqlx::query(
            "INSERT INTO agent_states (agent_id, state, queues, started_at, ended_at)
             VALUES ($1, $2, '{general}', ('2026-03-02 ' || $3)::timestamp AT TIME ZONE 'Asia/Shanghai',
                     ('2026-03-02 ' || $4)::timestamp AT TIME ZONE 'Asia/Shanghai')",
        )
        .bind(agent)
        .bind(state)
        .bind(from)
        .bind(to)
        .execute(&db)
        .await
        .unwrap();
    }
    let range = "from=2026-03-02T00:00:00%2B08:00&to=2026-03-03T00:00:00%2B08:00";
    let (s, b) = api
        .get(&format!("/api/stats/calls?interval=hour&{range}"), &analyst)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let nine = row(&b, |r| {
        r["start"] == "2026-03-02T09:00:00+08:00" && r["queue"] == "general"
    });
    assert_eq!(
        (
            &nine["busy_secs"],
            &nine["staffed_secs"],
            &nine["occupancy"]
        ),
        (&json!(1800.0), &json!(3600.0), &json!(50.0)),
        "{b}"
    );
    assert_eq!(
        nine["offered"], 0,
        "no calls that hour: a row for occupancy alone"
    );
    let (s, b) = api
        .get(
            &format!("/api/stats/calls?interval=hour&by=agent&{range}"),
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let two = row(&b, |r| r["agent"] == "2");
    assert_eq!(two["occupancy"], 100.0, "paused time is not staffed: {b}");
}

/// The snapshot's alerts come from the ACD's own state: the 24-hour connection rate (seeded
/// from the call records, as at start-up) under 95 %, an agent longer than its state's limit;
/// and the history seeded with calls older than a day does not count.
#[tokio::test]
async fn the_snapshot_raises_connection_rate_and_stuck_agent_alerts() {
    use hotline::acd::alerts::AlertSettings;
    use hotline::acd::service::{AcdSettings, spawn};
    let shutdown = tokio_util::sync::CancellationToken::new();
    let acd = spawn(
        vec![hotline::acd::routing::QueueConfig::new("general")],
        AcdSettings {
            alerts: AlertSettings {
                stuck_secs: [("available".to_string(), 1)].into_iter().collect(),
                min_connection_pct: 95.0,
            },
            ..Default::default()
        },
        shutdown.clone(),
    );
    // 19 answered and 1 abandoned in the last day (95 %: no alert); 5 abandoned two days ago.
    let mut recent: Vec<(u64, bool)> = (0..19).map(|i| (600 + i, true)).collect();
    recent.push((300, false));
    recent.extend((0..5).map(|_| (2 * 86_400, false)));
    acd.send(Command::Recent(recent));
    let snap = acd.snapshot().await.unwrap();
    assert_eq!((snap.answered_24h, snap.abandoned_24h), (19, 1));
    assert_eq!(snap.connection_rate_24h_pct, Some(95.0));
    assert!(snap.alerts.is_empty(), "{:?}", snap.alerts);
    // One more abandoned: 19 of 21, 90.5 %.
    acd.send(Command::Recent(vec![(10, false)]));
    let snap = acd.snapshot().await.unwrap();
    assert_eq!(snap.connection_rate_24h_pct, Some(90.5));
    let kinds: Vec<&str> = snap.alerts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, ["connection_rate"]);

    // An agent available for more than a second (the limit set above).
    let (reply, rx) = tokio::sync::oneshot::channel();
    acd.send(Command::Login {
        agent: 3,
        device: None,
        queues: vec!["general".into()],
        skills: Vec::new(),
        reply,
    });
    rx.await.unwrap().unwrap();
    assert!(
        acd.snapshot().await.unwrap().alerts.len() == 1,
        "not yet stuck"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let snap = acd.snapshot().await.unwrap();
    let stuck: Vec<&str> = snap
        .alerts
        .iter()
        .filter(|a| a.kind == "agent_stuck")
        .map(|a| a.subject.as_str())
        .collect();
    assert_eq!(stuck, ["agent:3"], "{:?}", snap.alerts);
    shutdown.cancel();
}

/// The first of a statistics answer's rows that `matches` (a test failure if none does).
fn row(b: &Value, matches: impl Fn(&Value) -> bool) -> Value {
    b["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| matches(r)))
        .cloned()
        .unwrap_or_else(|| panic!("no such row in {b}"))
}

/// `n` answered calls from `caller`, `every` minutes apart, the last `last` minutes before
/// 10:00 China time on 2026-11-28 (the fixture's clock); call ids `{caller}-{i}`.
async fn calls_from(db: &PgPool, caller: &str, n: i32, every: i32, last: i32) {
    for i in 0..n {
        sqlx::query(
            "INSERT INTO calls (call_id, caller, called, started_at, answered_at, ended_at,
                                end_reason, queue)
             SELECT $1, $2, '12345', t, t, t + interval '20 seconds', 'caller hung up', 'general'
               FROM (SELECT '2026-11-28 10:00+08'::timestamptz
                            - make_interval(mins => $3) AS t) x",
        )
        .bind(format!("{caller}-{i}"))
        .bind(caller)
        .bind(last + i * every)
        .execute(db)
        .await
        .unwrap();
    }
}

fn queue_of(snap: &hotline::acd::service::Snapshot, call_id: &str) -> Option<String> {
    snap.waiting
        .iter()
        .find(|w| w.call_id.as_deref() == Some(call_id))
        .map(|w| w.queue.clone())
}

fn enqueue(api: &Api, call: u64, caller: &str) {
    api.acd.send(Command::Enqueue {
        call,
        call_id: format!("live-{call}"),
        caller: caller.into(),
        queue: "general".into(),
        priority: 0,
        skills: vec![],
        agent: None,
    });
}

#[sqlx::test]
async fn a_frequent_caller_is_flagged_and_a_supervisor_may_give_it_its_own_queue(db: PgPool) {
    let api = Api::with_queues(db.clone(), china(2026, 11, 28), &["general", "repeat"]).await;
    let sup = api.login("supervisor").await;
    let intake = api.login("intake").await;
    // Six calls in the last hour (the default threshold is five), and more before it; another
    // number called twice.
    calls_from(&db, "13900001111", 6, 9, 1).await;
    calls_from(&db, "13900001111", 3, 30, 120).await;
    calls_from(&db, "13700002222", 2, 10, 5).await;

    // The agent who takes the call sees the flag with the count.
    let (s, c) = api.get("/api/calls/13900001111-0", &intake).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["frequent"]["calls_last_hour"], 6);
    assert_eq!(c["frequent"]["flagged"], true);
    let (_, c) = api.get("/api/calls/13700002222-0", &intake).await;
    assert_eq!(c["frequent"]["flagged"], false);

    // The board's list: that number, with its calls of the day; not the other.
    let (s, e) = api.get("/api/frequent-callers", &intake).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, list) = api.get("/api/frequent-callers", &sup).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["threshold"], 5);
    let callers = list["callers"].as_array().unwrap();
    assert_eq!(callers.len(), 1, "{list}");
    assert_eq!(callers[0]["caller"], "13900001111");
    assert_eq!(callers[0]["caller_masked"], "139****1111");
    assert_eq!(callers[0]["calls_last_hour"], 6);
    assert_eq!(callers[0]["recent"].as_array().unwrap().len(), 9);
    assert!(callers[0]["route"].is_null());
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'frequent.read'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(audited, 1);

    // Never blocked: without a route its calls queue as anyone's.
    enqueue(&api, 1, "13900001111");
    let snap = api.acd.snapshot().await.unwrap();
    assert_eq!(queue_of(&snap, "live-1").as_deref(), Some("general"));

    // The supervisor routes it to the dedicated queue; only a supervisor, only a real queue.
    let route = |number: &str, queue: &str| {
        (
            format!("/api/frequent-callers/{number}/route"),
            json!({"queue": queue, "note": "每天反复来电询问同一事项"}),
        )
    };
    let (path, body) = route("13900001111", "nowhere");
    let (s, e) = api.send("PUT", &path, Some(&sup), body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (path, body) = route("1390000abc", "repeat");
    let (s, _) = api.send("PUT", &path, Some(&sup), body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (path, body) = route("13900001111", "repeat");
    let (s, _) = api.send("PUT", &path, Some(&intake), body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, r) = api.send("PUT", &path, Some(&sup), body).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    enqueue(&api, 2, "13900001111");
    enqueue(&api, 3, "13700002222");
    let snap = api.acd.snapshot().await.unwrap();
    assert_eq!(queue_of(&snap, "live-2").as_deref(), Some("repeat"));
    assert_eq!(queue_of(&snap, "live-3").as_deref(), Some("general"));
    let (_, c) = api.get("/api/calls/13900001111-0", &intake).await;
    assert_eq!(c["frequent"]["routed_to"], "repeat");
    let (_, list) = api.get("/api/frequent-callers", &sup).await;
    assert_eq!(list["callers"][0]["route"]["queue"], "repeat");
    assert_eq!(list["callers"][0]["route"]["set_by"], "supervisor");

    // The route is lifted: back to the IVR's queue.
    let (s, _) = api.send("DELETE", &path, Some(&sup), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.send("DELETE", &path, Some(&sup), Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    enqueue(&api, 4, "13900001111");
    let snap = api.acd.snapshot().await.unwrap();
    assert_eq!(queue_of(&snap, "live-4").as_deref(), Some("general"));
}
