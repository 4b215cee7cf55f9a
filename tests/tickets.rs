//! The 12345 ticket lifecycle through the HTTP API against a real PostgreSQL (each test gets
//! its own database), on a hand-set clock: one test per path of REGULATION.md Art. 18-27.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

#[path = "common/api.rs"]
mod api;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use api::{Api, ECOLOGY, HUAIYIN, LIXIA, WATER, china};

/// The end (24:00 China time) of a day, as the API writes it.
fn end_of(y: i32, m: u32, d: u32) -> String {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(y, m, d, 16, 0, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn num(t: &serde_json::Value) -> String {
    t["number"].as_str().unwrap().to_string()
}

#[sqlx::test]
async fn spring_festival_deadline_then_an_extension(db: PgPool) {
    // Thursday 12 February 2026, the week before the Spring Festival holiday (15-23 Feb) with
    // make-up working days on Saturday 14 and Saturday 28 February.
    let api = Api::new(db, china(2026, 2, 12)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let sup = api.login("supervisor").await;
    let unit = api.login("huaiyin").await;

    let t = api.file(&intake, json!({})).await;
    let n = num(&t);
    assert_eq!(t["status"], "accepted");
    assert!(n.starts_with("20260212"), "{n}");
    assert_eq!(
        t["suggested_unit"]["unit_id"], HUAIYIN,
        "the district's rule wins"
    );

    // Dispatch without naming a unit: the catalogue's suggestion, the category's 5 days.
    let t = api.ok(&disp, &n, json!({"action": "dispatch"})).await;
    assert_eq!(t["status"], "dispatched");
    assert_eq!(t["lead_unit"], HUAIYIN);
    // Fri 13, Sat 14 (make-up), then Tue 24, Wed 25, Thu 26: due at the end of 26 Feb.
    assert_eq!(t["due_at"], end_of(2026, 2, 26));

    api.set_now(china(2026, 2, 13));
    let t = api.ok(&unit, &n, json!({"action": "sign"})).await;
    assert_eq!(t["status"], "handling");

    // An extension needs a reason, stays within 10 days, and is decided by a supervisor.
    api.set_now(china(2026, 2, 25));
    let (s, b) = api
        .step(
            &unit,
            &n,
            json!({"action": "request_extension", "days": 3, "reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = api
        .step(
            &unit,
            &n,
            json!({"action": "request_extension", "days": 11, "reason": "施工方协调"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"].as_str().unwrap().contains("at most 10"), "{b}");
    let t = api
        .ok(
            &unit,
            &n,
            json!({"action": "request_extension", "days": 3, "reason": "需协调施工方和住建部门"}),
        )
        .await;
    assert_eq!(t["pending_extension"], 3);
    let (s, _) = api
        .step(&disp, &n, json!({"action": "approve_extension"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only a supervisor approves");
    let t = api
        .ok(
            &sup,
            &n,
            json!({"action": "approve_extension", "note": "同意"}),
        )
        .await;
    // 26 Feb + 3 working days: Fri 27, Sat 28 (make-up), Mon 2 March.
    assert_eq!(t["due_at"], end_of(2026, 3, 2));
    assert_eq!(t["extension_days"], 3);

    // The reply on time counts for the unit's scorecard.
    api.set_now(china(2026, 3, 2));
    let t = api
        .ok(
            &unit,
            &n,
            json!({"action": "reply", "reply": "已责令工地夜间停工，违规部分已处罚"}),
        )
        .await;
    assert_eq!(t["status"], "replied");
    assert_eq!(t["replied_on_time"], true);

    let (s, h) = api.get(&format!("/api/tickets/{n}/history"), &sup).await;
    assert_eq!(s, StatusCode::OK);
    let steps: Vec<(&str, &str)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("create", "intake"),
            ("dispatch", "dispatcher"),
            ("sign", "huaiyin"),
            ("request_extension", "huaiyin"),
            ("approve_extension", "supervisor"),
            ("reply", "huaiyin"),
        ]
    );
    assert_eq!(h[3]["reason"], "需协调施工方和住建部门");
    assert_eq!(h[4]["detail"]["due_at"], "2026-03-02T16:00:00+00:00");
}

#[sqlx::test]
async fn a_category_with_a_longer_legal_limit_gets_it(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let t = api.file(&intake, json!({"category": "disclosure"})).await;
    let (s, b) = api
        .step(&disp, &num(&t), json!({"action": "dispatch"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no rule for it: {b}");
    assert!(b["error"].as_str().unwrap().contains("name one"), "{b}");
    let t = api
        .ok(
            &disp,
            &num(&t),
            json!({"action": "dispatch", "lead_unit": LIXIA}),
        )
        .await;
    // Monday 2 March + 15 working days: Monday 23 March.
    assert_eq!(t["due_at"], end_of(2026, 3, 23));
}

#[sqlx::test]
async fn a_return_within_two_working_days_then_redispatch_and_not_after(db: PgPool) {
    // Dispatched Friday 13 Feb 2026: the window runs through Sat 14 (make-up) and Tue 24.
    let api = Api::new(db, china(2026, 2, 13)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let huaiyin = api.login("huaiyin").await;
    let ecology = api.login("ecology").await;

    let a = num(&api.file(&intake, json!({})).await);
    let b = num(&api
        .file(&intake, json!({"caller_phone": "13900001111"}))
        .await);
    api.ok(
        &disp,
        &a,
        json!({"action": "dispatch", "lead_unit": HUAIYIN}),
    )
    .await;
    api.ok(
        &disp,
        &b,
        json!({"action": "dispatch", "lead_unit": HUAIYIN}),
    )
    .await;

    api.set_now(china(2026, 2, 24));
    let (s, r) = api
        .step(&huaiyin, &a, json!({"action": "return", "reason": ""}))
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {r}"
    );
    let t = api
        .ok(
            &huaiyin,
            &a,
            json!({"action": "return", "reason": "该工地属市管重点工程，不属本区职责"}),
        )
        .await;
    assert_eq!(t["status"], "returned");
    assert_eq!(t["lead_unit"], serde_json::Value::Null);
    assert_eq!(t["return_count"], 1);
    // The unit no longer sees it.
    let (s, _) = api.get(&format!("/api/tickets/{a}"), &huaiyin).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Re-dispatched to the city department, with a new deadline from today.
    let t = api
        .ok(
            &disp,
            &a,
            json!({"action": "dispatch", "lead_unit": ECOLOGY}),
        )
        .await;
    assert_eq!(t["status"], "dispatched");
    // Tue 24 Feb + 5: Wed 25, Thu 26, Fri 27, Sat 28 (make-up), Mon 2 March.
    assert_eq!(t["due_at"], end_of(2026, 3, 2));
    let (s, _) = api.get(&format!("/api/tickets/{a}"), &ecology).await;
    assert_eq!(s, StatusCode::OK);

    // The third working day is too late.
    api.set_now(china(2026, 2, 25));
    let (s, r) = api
        .step(
            &huaiyin,
            &b,
            json!({"action": "return", "reason": "不属本区职责"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("2 working days"),
        "{r}"
    );
}

#[sqlx::test]
async fn a_designated_unit_cannot_return_the_ticket(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let sup = api.login("supervisor").await;
    let huaiyin = api.login("huaiyin").await;
    let n = num(&api.file(&intake, json!({})).await);
    api.ok(&disp, &n, json!({"action": "dispatch"})).await;
    api.ok(
        &huaiyin,
        &n,
        json!({"action": "return", "reason": "不属本区"}),
    )
    .await;
    let (s, _) = api
        .step(
            &disp,
            &n,
            json!({"action": "designate", "unit": HUAIYIN, "reason": "属地管理"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a dispute is settled by a supervisor"
    );
    let t = api
        .ok(
            &sup,
            &n,
            json!({"action": "designate", "unit": HUAIYIN, "reason": "按属地管理原则由槐荫区办理"}),
        )
        .await;
    assert_eq!(t["designated"], true);
    assert_eq!(t["status"], "dispatched");
    let (s, r) = api
        .step(
            &huaiyin,
            &n,
            json!({"action": "return", "reason": "仍不属本区"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(r["error"].as_str().unwrap().contains("designated"), "{r}");
}

#[sqlx::test]
async fn termination_is_requested_reviewed_and_explained_to_the_caller(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let sup = api.login("supervisor").await;
    let unit = api.login("huaiyin").await;
    let n = num(&api.file(&intake, json!({})).await);
    api.ok(&disp, &n, json!({"action": "dispatch"})).await;
    api.ok(&unit, &n, json!({"action": "sign"})).await;
    api.ok(
        &unit,
        &n,
        json!({"action": "request_termination", "reason": "来电人拒不配合现场核实"}),
    )
    .await;
    let t = api
        .ok(
            &sup,
            &n,
            json!({"action": "refuse_termination", "reason": "请再次联系来电人"}),
        )
        .await;
    assert_eq!(t["status"], "handling");
    api.ok(
        &unit,
        &n,
        json!({"action": "request_termination", "reason": "三次联系均拒绝核实"}),
    )
    .await;
    let (s, _) = api
        .step(
            &sup,
            &n,
            json!({"action": "approve_termination", "explanation": ""}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the caller must be told why"
    );
    let t = api
        .ok(
            &sup,
            &n,
            json!({"action": "approve_termination", "explanation": "因无法现场核实，本件终止办理"}),
        )
        .await;
    assert_eq!(t["status"], "terminated");
    assert!(t["closed_at"].is_string());
    let (s, p) = api
        .send(
            "GET",
            &format!(
                "/api/public/tickets/{n}?access_code={}",
                api.access_code(&n).await
            ),
            None,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "terminated");
    assert_eq!(p["note"], "因无法现场核实，本件终止办理");
    // A final state takes no more steps.
    let (s, r) = api
        .step(&unit, &n, json!({"action": "reply", "reply": "x"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(r["error"], "cannot reply a ticket that is terminated");
}

#[sqlx::test]
async fn a_dissatisfied_revisit_reopens_to_the_same_unit_and_counts_against_it(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let unit = api.login("water").await;
    let analyst = api.login("analyst").await;
    let n = num(&api
        .file(
            &intake,
            json!({"category": "water-outage", "district": "历下区"}),
        )
        .await);
    api.ok(&disp, &n, json!({"action": "dispatch"})).await;
    api.ok(&unit, &n, json!({"action": "sign"})).await;
    api.ok(
        &unit,
        &n,
        json!({"action": "reply", "reply": "管道已抢修，已恢复供水"}),
    )
    .await;
    let (s, list) = api.get("/api/revisits", &disp).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list["tickets"][0]["number"],
        n.as_str(),
        "waiting for its revisit"
    );

    api.set_now(china(2026, 3, 4));
    let t = api
        .ok(
            &disp,
            &n,
            json!({"action": "revisit", "result": "dissatisfied", "note": "来电人称仍无水"}),
        )
        .await;
    assert_eq!(t["status"], "handling");
    assert_eq!(t["lead_unit"], WATER);
    assert_eq!(t["reopen_count"], 1);
    // Wed 4 March + 5 working days: Wed 11 March.
    assert_eq!(t["due_at"], end_of(2026, 3, 11));

    api.set_now(china(2026, 3, 5));
    api.ok(
        &unit,
        &n,
        json!({"action": "reply", "reply": "已更换阀门，现场确认恢复"}),
    )
    .await;
    let t = api
        .ok(
            &disp,
            &n,
            json!({"action": "revisit", "result": "satisfied"}),
        )
        .await;
    assert_eq!(t["status"], "closed");

    let (s, cards) = api
        .get("/api/stats/units?from=2026-03-01&to=2026-03-31", &analyst)
        .await;
    assert_eq!(s, StatusCode::OK, "{cards}");
    let water = cards
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["unit_id"] == WATER)
        .unwrap();
    assert_eq!(water["dispatched"], 1);
    assert_eq!(water["replied"], 2);
    assert_eq!(water["replied_on_time"], 2);
    assert_eq!(water["reopened"], 1);
    assert_eq!(water["satisfied"], 1);
    assert_eq!(water["dissatisfied"], 1);
    assert_eq!(water["reopen_rate"], 0.5);
    assert_eq!(water["satisfaction_rate"], 0.5);
}

#[sqlx::test]
async fn intake_rejects_with_an_art_19_reason_or_answers_directly(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let unit = api.login("huaiyin").await;
    let a = num(&api.file(&intake, json!({})).await);
    let (s, b) = api
        .step(
            &intake,
            &a,
            json!({"action": "reject", "reason": "other_channel"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the right channel must be named: {b}"
    );
    let (s, b) = api
        .step(
            &intake,
            &a,
            json!({"action": "reject", "reason": "no_such_reason", "note": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let t = api
        .ok(&intake, &a, json!({"action": "reject", "reason": "other_channel", "note": "劳动争议请向劳动人事争议仲裁委员会申请仲裁"}))
        .await;
    assert_eq!(t["status"], "not_accepted");
    assert_eq!(
        t["public_note"],
        "劳动争议请向劳动人事争议仲裁委员会申请仲裁"
    );

    let b = num(&api
        .file(&intake, json!({"request_type": "consultation"}))
        .await);
    let (s, _) = api
        .send(
            "POST",
            &format!("/api/tickets/{b}/actions"),
            Some(&unit),
            json!({"version": 1, "action": "answer_directly", "answer": "x"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a unit does not see intake tickets"
    );
    let t = api
        .ok(&intake, &b, json!({"action": "answer_directly", "answer": "夜间施工须办理夜间施工许可，可拨打 12369 核实"}))
        .await;
    assert_eq!(t["status"], "answered_directly");
    assert!(t["closed_at"].is_string());
}

#[sqlx::test]
async fn stale_versions_and_illegal_steps_get_409_naming_the_state(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let unit = api.login("huaiyin").await;
    let n = num(&api.file(&intake, json!({})).await);
    let path = format!("/api/tickets/{n}/actions");
    // Two dispatchers read version 1; the first to write wins, the second gets 409.
    let (s, _) = api
        .send(
            "POST",
            &path,
            Some(&disp),
            json!({"version": 1, "action": "dispatch"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = api
        .send(
            "POST",
            &path,
            Some(&disp),
            json!({"version": 1, "action": "escalate", "reason": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let e = b["error"].as_str().unwrap();
    assert!(e.contains("version 2") && e.contains("dispatched"), "{e}");
    let (s, b) = api
        .step(&unit, &n, json!({"action": "reply", "reply": "好"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["error"], "cannot reply a ticket that is dispatched");
    // Racing writers: of ten concurrent steps at the same version exactly one lands.
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let api = api.clone();
        let (disp, path) = (disp.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            api.send(
                "POST",
                &path,
                Some(&disp),
                json!({"version": 2, "action": "note", "text": format!("备注 {i}")}),
            )
            .await
            .0
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "no lost update");
    let (_, h) = api.get(&format!("/api/tickets/{n}/history"), &disp).await;
    assert_eq!(h.as_array().unwrap().len(), 3, "create, dispatch, one note");
}

#[sqlx::test]
async fn duplicates_are_suggested_and_a_merged_ticket_gets_the_masters_outcome(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let unit = api.login("huaiyin").await;
    let master = num(&api.file(&intake, json!({})).await);
    // Another caller, same site written differently; and the same caller about another thing.
    let neighbour = num(&api
        .file(
            &intake,
            json!({"caller_phone": "13600002222", "address": "经十路100号"}),
        )
        .await);
    let same_caller = num(&api
        .file(
            &intake,
            json!({"category": "water-outage", "address": "别处"}),
        )
        .await);
    let unrelated = num(&api
        .file(
            &intake,
            json!({"caller_phone": "13700003333", "address": "别处"}),
        )
        .await);
    let (s, d) = api
        .get(&format!("/api/tickets/{master}/duplicates"), &disp)
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let found: Vec<(String, String)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["number"].as_str().unwrap().into(),
                x["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        found.contains(&(neighbour.clone(), "same_place".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&(same_caller.clone(), "same_caller".into())),
        "{found:?}"
    );
    assert!(!found.iter().any(|(n, _)| *n == unrelated), "{found:?}");

    let (s, b) = api
        .step(
            &disp,
            &neighbour,
            json!({"action": "merge", "into": neighbour}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let t = api
        .ok(
            &disp,
            &neighbour,
            json!({"action": "merge", "into": master}),
        )
        .await;
    assert_eq!(t["status"], "merged");
    assert_eq!(t["merged_into"], master.as_str());
    let (_, m) = api.get(&format!("/api/tickets/{master}"), &disp).await;
    assert_eq!(m["merged"], json!([neighbour]));

    api.ok(&disp, &master, json!({"action": "dispatch"})).await;
    api.ok(&unit, &master, json!({"action": "sign"})).await;
    api.ok(
        &unit,
        &master,
        json!({"action": "reply", "reply": "工地已停止夜间施工"}),
    )
    .await;
    // The neighbour asks with their own number and phone and hears the master's outcome.
    let (s, p) = api
        .send(
            "GET",
            &format!(
                "/api/public/tickets/{neighbour}?access_code={}&phone_last4=2222",
                api.access_code(&neighbour).await
            ),
            None,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "replied");
    assert_eq!(p["merged_into"], master.as_str());
    assert_eq!(p["reply"], "工地已停止夜间施工");
    assert_eq!(p["handling_unit"], "槐荫区人民政府");
}

#[sqlx::test]
async fn supervision_lists_overdue_tickets_and_records_urging_and_escalation(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let sup = api.login("supervisor").await;
    let huaiyin = api.login("huaiyin").await;
    let lixia = api.login("lixia").await;
    let late = num(&api.file(&intake, json!({})).await);
    api.ok(&disp, &late, json!({"action": "dispatch"})).await; // due end of Mon 9 March
    api.set_now(china(2026, 3, 6));
    let soon = num(&api.file(&intake, json!({})).await);
    api.ok(&disp, &soon, json!({"action": "dispatch", "days": 2}))
        .await; // due end of Tue 10

    // Tuesday 10 March, 10:00: the first is overdue, the second due within 24 hours.
    api.set_now(china(2026, 3, 10));
    let (s, sv) = api.get("/api/supervision?within_hours=24", &sup).await;
    assert_eq!(s, StatusCode::OK, "{sv}");
    assert_eq!(sv["overdue"][0]["number"], late.as_str());
    assert_eq!(sv["overdue"].as_array().unwrap().len(), 1);
    assert_eq!(sv["due_soon"][0]["number"], soon.as_str());
    assert_eq!(
        sv["overdue"][0]["caller_phone"], "138****5678",
        "lists show masked numbers only"
    );
    let (_, l) = api.get("/api/tickets?overdue=true", &disp).await;
    assert_eq!(l["tickets"].as_array().unwrap().len(), 1);
    // The unit sees its own supervision list; another unit sees nothing.
    let (_, own) = api.get("/api/supervision", &huaiyin).await;
    assert_eq!(own["overdue"].as_array().unwrap().len(), 1);
    let (_, other) = api.get("/api/supervision", &lixia).await;
    assert!(other["overdue"].as_array().unwrap().is_empty());

    let t = api
        .ok(
            &disp,
            &late,
            json!({"action": "urge", "message": "已超期，请于今日内办结"}),
        )
        .await;
    assert_eq!(t["urged_count"], 1);
    let t = api
        .ok(
            &sup,
            &late,
            json!({"action": "supervise", "on": true, "reason": "超期督办"}),
        )
        .await;
    assert_eq!(t["supervised"], true);
    let t = api
        .ok(
            &sup,
            &late,
            json!({"action": "escalate", "reason": "区级无法协调"}),
        )
        .await;
    assert_eq!(t["escalation"], 1);
    let t = api
        .ok(
            &sup,
            &late,
            json!({"action": "escalate", "reason": "提交常务会议"}),
        )
        .await;
    assert_eq!(t["escalation"], 2);
    let (s, b) = api
        .step(&sup, &late, json!({"action": "escalate", "reason": "再升"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, l) = api.get("/api/tickets?supervised=true", &disp).await;
    assert_eq!(l["tickets"][0]["number"], late.as_str());
    // A late reply is recorded as late.
    api.ok(&huaiyin, &late, json!({"action": "sign"})).await;
    let t = api
        .ok(
            &huaiyin,
            &late,
            json!({"action": "reply", "reply": "已处理"}),
        )
        .await;
    assert_eq!(t["replied_on_time"], false);
}

#[sqlx::test]
async fn lists_filter_and_page_without_losing_or_repeating_a_ticket(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let water = api.login("water").await;
    let mut waters = Vec::new();
    for i in 0..7 {
        let t = api
            .file(&intake, json!({"category": "water-outage", "district": "历下区", "caller_phone": format!("1390000{i:04}")}))
            .await;
        api.ok(
            &disp,
            &num(&t),
            json!({"action": "dispatch", "co_units": [LIXIA]}),
        )
        .await;
        waters.push(num(&t));
        api.file(&intake, json!({})).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/tickets?category=water-outage&limit=3".to_string();
    loop {
        let (s, page) = api.get(&path, &disp).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for t in page["tickets"].as_array().unwrap() {
            seen.push(t["number"].as_str().unwrap().to_string());
        }
        match page["next"].as_i64() {
            Some(c) => path = format!("/api/tickets?category=water-outage&limit=3&before={c}"),
            None => break,
        }
    }
    waters.reverse();
    assert_eq!(seen, waters, "newest first, every one once");
    // The unit's list is its own tickets; the co-handling unit sees them too.
    let (_, mine) = api.get("/api/tickets?limit=200", &water).await;
    assert_eq!(mine["tickets"].as_array().unwrap().len(), 7);
    let lixia = api.login("lixia").await;
    let (_, co) = api.get("/api/tickets?limit=200", &lixia).await;
    assert_eq!(co["tickets"].as_array().unwrap().len(), 7);
    // Counts by category and period, from the summary kept as tickets are filed.
    let analyst = api.login("analyst").await;
    let (s, c) = api
        .get(
            "/api/stats/tickets?from=2026-03-01&to=2026-03-31&by=category",
            &analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(
        c,
        json!([{"key": "noise", "filed": 7}, {"key": "water-outage", "filed": 7}])
    );
    let (_, c) = api
        .get(
            "/api/stats/tickets?from=2026-01-01&to=2026-12-31&by=month",
            &analyst,
        )
        .await;
    assert_eq!(c, json!([{"key": "2026-03", "filed": 14}]));
    let (_, c) = api
        .get(
            "/api/stats/tickets?from=2026-03-03&to=2026-03-31&by=district",
            &analyst,
        )
        .await;
    assert_eq!(c, json!([]), "nothing filed after the 2nd");
    let (s, _) = api
        .get(
            "/api/stats/tickets?from=2026-03-01&to=2026-03-31&by=category",
            &water,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api.get("/api/tickets?status=bogus", &disp).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = api.get("/api/tickets?status=bogus", &disp).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _) = api.get("/api/tickets?no_such_filter=1", &disp).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Searching by the full number is for the office, and audited.
    let (s, _) = api
        .get("/api/tickets?caller_phone=13900000003", &water)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, found) = api
        .get("/api/tickets?caller_phone=13900000003", &disp)
        .await;
    assert_eq!(found["tickets"].as_array().unwrap().len(), 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'ticket.search_by_phone' AND actor = 'dispatcher'")
        .fetch_one(&api.db)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
