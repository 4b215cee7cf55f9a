//! Who may see what (REGULATION.md Art. 7, 11, 13, 14, 33, 36), the citizens' own API, and
//! Open311 GeoReport v2, through the HTTP API against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

#[path = "common/api.rs"]
mod api;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use api::{Api, HUAIYIN, china};

fn num(t: &Value) -> String {
    t["number"].as_str().unwrap().to_string()
}

async fn audit_count(api: &Api, action: &str, subject: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND subject = $2")
        .bind(action)
        .bind(subject)
        .fetch_one(&api.db)
        .await
        .unwrap()
}

#[sqlx::test]
async fn units_see_only_their_tickets_and_never_a_confidential_caller(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let huaiyin = api.login("huaiyin").await;
    let lixia = api.login("lixia").await;
    let analyst = api.login("analyst").await;

    let open = num(&api
        .file(&intake, json!({"recording": "2026/03/02/call-1.wav"}))
        .await);
    let secret = num(&api
        .file(
            &intake,
            json!({"confidential": true, "request_type": "report",
                                  "recording": "2026/03/02/call-2.wav"}),
        )
        .await);
    for n in [&open, &secret] {
        api.ok(
            &disp,
            n,
            json!({"action": "dispatch", "lead_unit": HUAIYIN}),
        )
        .await;
    }

    // Another unit: 403, and nothing is read.
    let (s, b) = api.get(&format!("/api/tickets/{open}"), &lixia).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, _) = api
        .get(&format!("/api/tickets/{open}/history"), &lixia)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .send(
            "POST",
            &format!("/api/tickets/{open}/actions"),
            Some(&lixia),
            json!({"version": 2, "action": "sign"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The lead unit sees an ordinary caller (and the read is audited) ...
    let subject = format!("ticket:{open}");
    // Filing, the dispatcher's read, the dispatch's answer: three reads of personal data.
    assert_eq!(audit_count(&api, "ticket.read_personal", &subject).await, 3);
    let (s, t) = api.get(&format!("/api/tickets/{open}"), &huaiyin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["caller_phone"], "13812345678");
    assert_eq!(t["caller_name"], "王女士");
    assert_eq!(audit_count(&api, "ticket.read_personal", &subject).await, 4);
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE subject = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&subject)
    .fetch_one(&api.db)
    .await
    .unwrap();
    assert_eq!(actor, "huaiyin");

    // ... but not a confidential one: no name, phone, call or recording.
    let (s, t) = api.get(&format!("/api/tickets/{secret}"), &huaiyin).await;
    assert_eq!(s, StatusCode::OK);
    for k in ["caller_name", "caller_phone", "recording", "call_id"] {
        assert_eq!(t[k], Value::Null, "{k} leaked: {t}");
    }
    assert_eq!(t["caller_hidden"], "confidential (Art. 11)");
    assert_eq!(
        t["description"],
        "工地夜间施工噪音扰民，晚上十一点后还在打桩"
    );
    assert!(!t.to_string().contains("13812345678"));
    // The step answers carry the same view.
    let t = api.ok(&huaiyin, &secret, json!({"action": "sign"})).await;
    assert_eq!(t["caller_phone"], Value::Null);
    // The list never shows more than a masked number.
    let (_, l) = api.get("/api/tickets", &huaiyin).await;
    assert!(!l.to_string().contains("13812345678"), "{l}");
    // The office still sees the informant.
    let (_, t) = api.get(&format!("/api/tickets/{secret}"), &disp).await;
    assert_eq!(t["caller_phone"], "13812345678");
    // Analysts see tickets, never personal data.
    let (s, t) = api.get(&format!("/api/tickets/{open}"), &analyst).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["caller_phone"], Value::Null);
    let (s, _) = api
        .send(
            "POST",
            &format!("/api/tickets/{open}/actions"),
            Some(&analyst),
            json!({"version": 2, "action": "note", "text": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Intake is for the office.
    let (s, _) = api
        .send("POST", "/api/tickets", Some(&huaiyin), json!({}))
        .await;
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s}"
    );
}

#[sqlx::test]
async fn sessions_are_required_and_end_at_logout(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let (s, b) = api.send("GET", "/api/tickets", None, Value::Null).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, _) = api.get("/api/tickets", "not-a-token").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "intake", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, _) = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "nobody", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let token = api.login("intake").await;
    let (s, me) = api.get("/api/auth/me", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["role"], "intake");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE token_hash = sha256($1::bytea)")
            .bind(token.as_bytes())
            .fetch_one(&api.db)
            .await
            .unwrap();
    assert_eq!(stored, 1, "only the token's hash is stored");
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'intake'")
            .fetch_one(&api.db)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let (s, _) = api
        .send("POST", "/api/auth/logout", Some(&token), Value::Null)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.get("/api/auth/me", &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Only administrators manage the directory.
    let disp = api.login("dispatcher").await;
    let (s, _) = api
        .send(
            "POST",
            "/api/units",
            Some(&disp),
            json!({"code": "x", "name": "x", "kind": "county"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let failed = audit_count(&api, "login.failed", "user:intake").await;
    assert_eq!(failed, 1);
}

#[sqlx::test]
async fn the_audit_log_can_be_read_but_not_altered(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let sup = api.login("supervisor").await;
    let n = num(&api.file(&intake, json!({})).await);
    let (s, log) = api
        .get(&format!("/api/audit?subject=ticket:{n}"), &sup)
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log[0]["actor"], "intake");
    assert_eq!(log[0]["action"], "ticket.read_personal");
    let (s, _) = api.get("/api/audit", &intake).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "intake agents do not read the audit log"
    );
    for method in ["DELETE", "PUT", "PATCH", "POST"] {
        let (s, _) = api.send(method, "/api/audit", Some(&sup), json!({})).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    // Not even the database's own users can change it, nor a ticket's history.
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE ticket_events SET actor = 'someone else'",
        "DELETE FROM ticket_events",
    ] {
        let e = sqlx::query(sql).execute(&api.db).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let (_, again) = api
        .get(&format!("/api/audit?subject=ticket:{n}"), &sup)
        .await;
    assert_eq!(again[0]["actor"], "intake");
}

#[sqlx::test]
async fn citizens_query_rate_and_object_by_number_and_access_code(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let unit = api.login("huaiyin").await;
    let filed = api.file(&intake, json!({})).await;
    let n = num(&filed);
    let code = filed["access_code"].as_str().unwrap().to_string();
    let (s, p) = public(&api, format!("/api/public/tickets/{n}?access_code={code}")).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "accepted");
    assert!(
        !p.to_string().contains("王女士"),
        "no personal data back: {p}"
    );

    api.ok(&disp, &n, json!({"action": "dispatch"})).await;
    api.ok(&unit, &n, json!({"action": "sign"})).await;
    let (_, p) = public(&api, format!("/api/public/tickets/{n}?access_code={code}")).await;
    assert_eq!(p["status"], "handling");
    assert_eq!(p["due_at"], "2026-03-09T16:00:00Z");
    assert_eq!(p["handling_unit"], "槐荫区人民政府");

    // Rating before there is an answer is refused; after the reply it is kept.
    let rating = |score: i64| json!({"access_code": code, "score": score, "comment": "处理及时"});
    let (s, _) = api
        .send(
            "POST",
            &format!("/api/public/tickets/{n}/rating"),
            None,
            rating(5),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    api.ok(&unit, &n, json!({"action": "reply", "reply": "已处理"}))
        .await;
    let (s, b) = api
        .send(
            "POST",
            &format!("/api/public/tickets/{n}/rating"),
            None,
            rating(9),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, p) = api
        .send(
            "POST",
            &format!("/api/public/tickets/{n}/rating"),
            None,
            rating(2),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["rating"], 2);
    // The citizen objects: back to the same unit.
    let (s, p) = api
        .send(
            "POST",
            &format!("/api/public/tickets/{n}/objection"),
            None,
            json!({"access_code": code, "phone_last4": "5678", "reason": "噪音仍在继续"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "handling");
    let (_, t) = api.get(&format!("/api/tickets/{n}"), &unit).await;
    assert_eq!(t["reopen_count"], 1);
    let (_, h) = api.get(&format!("/api/tickets/{n}/history"), &unit).await;
    let last = h.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["actor"].as_str()),
        (Some("object"), Some("citizen"))
    );

    // A wrong code and unknown numbers look the same; after five wrong tries the next waits
    // 30 s (not a lock-out of a quarter of an hour), even with the right code.
    let wrong_code = if code == "000000" { "000001" } else { "000000" };
    let (s, wrong) = public(
        &api,
        format!("/api/public/tickets/{n}?access_code={wrong_code}"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, unknown) = public(
        &api,
        format!("/api/public/tickets/20990101000001?access_code={code}"),
    )
    .await;
    assert_eq!(wrong, unknown);
    for _ in 0..4 {
        let (s, _) = public(
            &api,
            format!("/api/public/tickets/{n}?access_code={wrong_code}"),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, wait) = public_from(&api, &n, &code, "198.51.100.1").await;
    assert_eq!(
        (s, wait.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("30")),
        "even the right code waits now"
    );
    // Failed tries are counted, not written to the append-only audit log.
    assert_eq!(
        audit_count(&api, "public.denied", &format!("ticket:{n}")).await,
        0
    );
}

/// Issue 22, item 2: the phone's last four digits (which a list used to show) no longer open a
/// ticket; the random access code told at intake does, with the digits as a second factor only;
/// staff beyond the office never see the code; lists show no more of a number than the role
/// needs, and nothing of a confidential informant.
#[sqlx::test]
async fn a_citizen_proves_a_ticket_by_its_access_code_and_lists_show_only_what_a_role_needs(
    db: PgPool,
) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let huaiyin = api.login("huaiyin").await;
    let analyst = api.login("analyst").await;
    let open = api.file(&intake, json!({})).await;
    let secret = api
        .file(
            &intake,
            json!({"confidential": true, "request_type": "report", "caller_phone": "13987654321"}),
        )
        .await;
    let (n, s_n) = (num(&open), num(&secret));
    for t in [&n, &s_n] {
        api.ok(
            &disp,
            t,
            json!({"action": "dispatch", "lead_unit": HUAIYIN}),
        )
        .await;
    }

    // The intake agent is given the code to read out: six digits, one per ticket.
    let code = open["access_code"].as_str().unwrap().to_string();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{open}"
    );
    assert_eq!(code, api.access_code(&n).await);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..20 {
        codes.insert(api.file(&intake, json!({})).await["access_code"].to_string());
    }
    assert!(
        codes.len() >= 19,
        "codes are random, not a sequence: {codes:?}"
    );

    // What any staff member could read off a list no longer opens the ticket.
    let (s, b) = public(&api, format!("/api/public/tickets/{n}?phone_last4=5678")).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the digits alone are refused: {b}"
    );
    let (s, b) = public(&api, format!("/api/public/tickets/{n}?access_code=12345")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.to_string().contains("six digits"), "{b}");
    // The code opens it; with the digits too they must be right.
    let (s, _) = public(&api, format!("/api/public/tickets/{n}?access_code={code}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = public(
        &api,
        format!("/api/public/tickets/{n}?access_code={code}&phone_last4=5678"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = public(
        &api,
        format!("/api/public/tickets/{n}?access_code={code}&phone_last4=4321"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a wrong second factor fails");

    // Only the office sees the code (to tell it again), and that read is audited.
    let (_, t) = api.get(&format!("/api/tickets/{n}"), &disp).await;
    assert_eq!(t["access_code"], code.as_str());
    let fields: Value = sqlx::query_scalar(
        "SELECT detail->'fields' FROM audit_log WHERE actor = 'dispatcher' AND subject = $1
         ORDER BY id DESC LIMIT 1",
    )
    .bind(format!("ticket:{n}"))
    .fetch_one(&api.db)
    .await
    .unwrap();
    assert!(fields.to_string().contains("access_code"), "{fields}");
    for who in [&huaiyin, &analyst] {
        let (_, t) = api.get(&format!("/api/tickets/{n}"), who).await;
        assert_eq!(t["access_code"], Value::Null, "{t}");
        assert!(!t.to_string().contains(&code), "{t}");
    }

    // Lists: the office 138****5678, the unit only the last four and nothing of the
    // informant, analysts nothing.
    let phone_in = |l: &Value, t: &str| -> Value {
        l["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["number"] == t)
            .map(|r| r["caller_phone"].clone())
            .unwrap_or(Value::String("not listed".into()))
    };
    let (_, l) = api.get("/api/tickets", &disp).await;
    assert_eq!(phone_in(&l, &n), "138****5678");
    assert_eq!(phone_in(&l, &s_n), "139****4321");
    let (_, l) = api.get("/api/tickets", &huaiyin).await;
    assert_eq!(phone_in(&l, &n), "*******5678");
    assert_eq!(phone_in(&l, &s_n), Value::Null, "{l}");
    assert!(!l.to_string().contains("4321"), "{l}");
    let (_, l) = api.get("/api/tickets", &analyst).await;
    assert_eq!(phone_in(&l, &n), Value::Null);
    let (_, sup) = api.get("/api/supervision?within_hours=720", &huaiyin).await;
    assert!(!sup.to_string().contains("4321"), "{sup}");
    let (_, sup) = api.get("/api/supervision?within_hours=720", &analyst).await;
    assert!(!sup.to_string().contains("5678"), "{sup}");
}

/// Issue 22, item 3: parallel wrong tries are counted one by one, one address guessing many
/// tickets waits, the wait grows, and the citizen gets in once it is over.
#[sqlx::test]
async fn citizen_tries_are_counted_atomically_per_ticket_and_per_address(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let n = num(&api.file(&intake, json!({})).await);
    set_code(&api, &n, "246810").await;

    // 40 wrong tries at once, from 40 addresses: exactly five are answered, the rest wait.
    let tries = (0..40).map(|i| {
        let (api, n) = (&api, n.clone());
        async move {
            public_from(
                api,
                &n,
                &format!("{:06}", 100000 + i),
                &format!("203.0.113.{i}"),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let answered = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::NOT_FOUND)
        .count();
    assert_eq!(answered, 5, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, _)| matches!(*s, StatusCode::NOT_FOUND | StatusCode::TOO_MANY_REQUESTS))
    );
    // The next wrong try after the wait doubles it.
    sqlx::query("UPDATE citizen_failures SET wait_until = now() - interval '1 second'")
        .execute(&api.db)
        .await
        .unwrap();
    let (s, _) = public_from(&api, &n, "000001", "203.0.113.99").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, wait) = public_from(&api, &n, "246810", "203.0.113.98").await;
    assert_eq!(
        (s, wait.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("60"))
    );
    // Once the wait is over the citizen's right code is taken, and the count is cleared.
    sqlx::query("UPDATE citizen_failures SET wait_until = now() - interval '1 second'")
        .execute(&api.db)
        .await
        .unwrap();
    let (s, _) = public_from(&api, &n, "246810", "203.0.113.98").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = public_from(&api, &n, "000002", "203.0.113.97").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the ticket's count starts again");

    // One address trying twenty tickets' numbers waits on every ticket; others do not.
    let other = num(&api.file(&intake, json!({})).await);
    set_code(&api, &other, "135790").await;
    for i in 0..20 {
        let (s, _) = public_from(&api, &format!("2099010100{i:04}"), "135790", "192.0.2.7").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, wait) = public_from(&api, &other, "135790", "192.0.2.7").await;
    assert_eq!(
        (s, wait.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("30"))
    );
    let (s, _) = public_from(&api, &other, "135790", "192.0.2.8").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the citizen on another address is not held up"
    );
    assert_eq!(
        audit_count(&api, "public.read", &format!("ticket:{other}")).await,
        1
    );
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'public.%'")
            .fetch_one(&api.db)
            .await
            .unwrap();
    assert_eq!(rows, 2, "only the two successful reads are audited");
}

/// Gives ticket `n` a known access code (the one given at intake is random).
async fn set_code(api: &Api, n: &str, code: &str) {
    sqlx::query("UPDATE tickets SET access_code = $2 WHERE number = $1")
        .bind(n)
        .bind(code)
        .execute(&api.db)
        .await
        .unwrap();
}

/// A citizen's look-up of ticket `n` with access code `code` from `ip`: the status and any
/// Retry-After.
async fn public_from(api: &Api, n: &str, code: &str, ip: &str) -> (StatusCode, Option<String>) {
    let mut req = Request::get(format!("/api/public/tickets/{n}?access_code={code}"))
        .body(Body::empty())
        .unwrap();
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    let resp = api.response(req).await;
    let wait = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (resp.status(), wait)
}

async fn public(api: &Api, path: String) -> (StatusCode, Value) {
    api.send("GET", &path, None, Value::Null).await
}

async fn form(api: &Api, path: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    api.raw(req).await
}

#[sqlx::test]
async fn open311_georeport_v2_services_and_requests(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let admin = api.login("admin").await;
    let disp = api.login("dispatcher").await;
    let (s, c) = api
        .send(
            "POST",
            "/api/open311-clients",
            Some(&admin),
            json!({"name": "citizen-app", "channel": "app"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let key = c["api_key"].as_str().unwrap().to_string();

    let (s, services) = api
        .send("GET", "/open311/v2/services.json", None, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    let noise = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_code"] == "noise")
        .unwrap();
    for field in [
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    ] {
        assert!(noise.get(field).is_some(), "service lacks {field}: {noise}");
    }
    assert_eq!(noise["service_name"], "施工噪音");
    assert_eq!(noise["type"], "realtime");
    let (s, def) = api
        .send("GET", "/open311/v2/services/noise.json", None, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(def["service_code"], "noise");
    assert_eq!(def["attributes"][0]["code"], "request_type");
    assert_eq!(def["attributes"][0]["datatype"], "singlevaluelist");
    let (s, e) = api
        .send(
            "GET",
            "/open311/v2/services/nothing.json",
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e[0]["code"], 404, "errors are the spec's list: {e}");
    let (s, _) = api
        .send("GET", "/open311/v2/services/noise.xml", None, Value::Null)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let body = "service_code=noise&lat=36.6512&long=116.9972&address_string=%E7%BB%8F%E5%8D%81%E8%B7%AF%20100%20%E5%8F%B7\
                &description=%E5%A4%9C%E9%97%B4%E6%96%BD%E5%B7%A5&first_name=%E7%8E%8B&phone=13812345678\
                &attribute%5Brequest_type%5D=complaint";
    let (s, e) = form(&api, "/open311/v2/requests.json", body).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no api_key: {e}");
    let (s, e) = form(
        &api,
        "/open311/v2/requests.json",
        &format!("{body}&api_key=wrong"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, e) = form(
        &api,
        "/open311/v2/requests.json",
        &format!("api_key={key}&service_code=noise&description=x"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a location is required: {e}");
    assert!(e[0]["description"].as_str().unwrap().contains("location"));
    let (s, e) = form(
        &api,
        "/open311/v2/requests.json",
        &format!("api_key={key}&service_code=nothing&lat=1&long=2&description=x"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, created) = form(
        &api,
        "/open311/v2/requests.json",
        &format!("{body}&api_key={key}"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(created[0].get("service_notice").is_some());
    // The app is given the citizen's access code to pass on; the feed never shows it.
    let code = created[0]["access_code"].as_str().unwrap().to_string();
    assert_eq!(code, api.access_code(&id).await);

    // It is a ticket on the app channel, in the office's queue.
    let (_, t) = api.get(&format!("/api/tickets/{id}"), &disp).await;
    assert_eq!(t["channel"], "app");
    assert_eq!(t["request_type"], "complaint");
    assert_eq!(t["created_by"], "open311:citizen-app");
    assert_eq!(t["caller_phone"], "13812345678");
    api.ok(
        &disp,
        &id,
        json!({"action": "dispatch", "lead_unit": HUAIYIN}),
    )
    .await;

    let (s, list) = api
        .send(
            "GET",
            "/open311/v2/requests.json?status=open",
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let r = &list[0];
    for field in [
        "service_request_id",
        "status",
        "status_notes",
        "service_name",
        "service_code",
        "description",
        "agency_responsible",
        "service_notice",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "address",
        "address_id",
        "zipcode",
        "lat",
        "long",
        "media_url",
    ] {
        assert!(r.get(field).is_some(), "request lacks {field}: {r}");
    }
    assert_eq!(r["service_request_id"], id.as_str());
    assert_eq!(r["status"], "open");
    assert_eq!(r["agency_responsible"], "槐荫区人民政府");
    assert_eq!(r["lat"], 36.6512);
    assert!(
        list[0].get("access_code").is_none(),
        "no access code in the feed: {list}"
    );
    assert!(
        !list.to_string().contains("13812345678"),
        "no phone in the public feed"
    );
    let (_, closed) = api
        .send(
            "GET",
            "/open311/v2/requests.json?status=closed",
            None,
            Value::Null,
        )
        .await;
    assert_eq!(closed, json!([]));
    let (s, one) = api
        .send(
            "GET",
            &format!("/open311/v2/requests/{id}.json"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one[0]["service_request_id"], id.as_str());
    let (s, tok) = api
        .send(
            "GET",
            &format!("/open311/v2/tokens/{id}.json"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(tok[0]["service_request_id"], id.as_str());
    // Phone tickets are not published.
    let intake = api.login("intake").await;
    let phone = num(&api.file(&intake, json!({})).await);
    let (s, _) = api
        .send(
            "GET",
            &format!("/open311/v2/requests/{phone}.json"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// An Open311 client "citizen-app" on the app channel, made by `admin`: its API key.
async fn open311_key(api: &Api, admin: &str) -> String {
    let (s, c) = api
        .send(
            "POST",
            "/api/open311-clients",
            Some(admin),
            json!({"name": "citizen-app", "channel": "app"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["api_key"].as_str().unwrap().to_string()
}

/// What the public feed shows of one request, by id (None when it is not listed).
async fn published(api: &Api, id: &str) -> Option<Value> {
    let (s, v) = api
        .send(
            "GET",
            &format!("/open311/v2/requests/{id}.json"),
            None,
            Value::Null,
        )
        .await;
    match s {
        StatusCode::OK => Some(v[0].clone()),
        StatusCode::NOT_FOUND => None,
        s => panic!("{s}: {v}"),
    }
}

#[sqlx::test]
async fn the_public_feed_shows_what_the_category_allows_and_never_an_informant(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let admin = api.login("admin").await;
    let key = open311_key(&api, &admin).await;
    let story = "夜间施工，住在三号楼的我每晚睡不着";
    let file = |request_type: &'static str| {
        let api = &api;
        let key = key.clone();
        async move {
            let body = format!(
                "api_key={key}&service_code=noise&lat=36.6512&long=116.9972\
                 &address_string=%E7%BB%8F%E5%8D%81%E8%B7%AF%20100%20%E5%8F%B7&description={}\
                 &attribute%5Brequest_type%5D={request_type}",
                "%E5%A4%9C%E9%97%B4%E6%96%BD%E5%B7%A5%EF%BC%8C%E4%BD%8F%E5%9C%A8%E4%B8%89%E5%8F%B7%E6%A5%BC%E7%9A%84%E6%88%91%E6%AF%8F%E6%99%9A%E7%9D%A1%E4%B8%8D%E7%9D%80"
            );
            let (s, v) = form(api, "/open311/v2/requests.json", &body).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v[0]["service_request_id"].as_str().unwrap().to_string()
        }
    };
    let complaint = file("complaint").await;
    let report = file("report").await;

    // By default a category is published in full; a report never is: no story, no place.
    let c = published(&api, &complaint).await.unwrap();
    assert_eq!(c["description"], story);
    assert_eq!(c["lat"], 36.6512);
    let r = published(&api, &report).await.unwrap();
    assert_eq!(r["service_code"], "noise");
    assert_eq!(r["description"], "");
    assert_eq!(r["address"], "");
    assert!(r["lat"].is_null() && r["long"].is_null(), "{r}");

    // The administrator makes noise a summary: the complaint loses its story and place too.
    let (s, e) = api
        .send(
            "PATCH",
            "/api/categories/noise",
            Some(&admin),
            json!({"public_view": "everything"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let disp = api.login("dispatcher").await;
    let (s, _) = api
        .send(
            "PATCH",
            "/api/categories/noise",
            Some(&disp),
            json!({"public_view": "full"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only an administrator");
    let (s, cat) = api
        .send(
            "PATCH",
            "/api/categories/noise",
            Some(&admin),
            json!({"public_view": "summary"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cat}");
    assert_eq!(cat["public_view"], "summary");
    assert_eq!(cat["time_limit_days"], 5, "the rest unchanged: {cat}");
    let c = published(&api, &complaint).await.unwrap();
    assert_eq!(
        (c["description"].as_str(), c["address"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(c["status"], "open");
    let (_, list) = api
        .send("GET", "/open311/v2/requests.json", None, Value::Null)
        .await;
    assert!(!list.to_string().contains(story), "{list}");
    assert!(!list.to_string().contains("116.9972"), "{list}");

    // "none": the category's requests leave the feed.
    api.send(
        "PATCH",
        "/api/categories/noise",
        Some(&admin),
        json!({"public_view": "none"}),
    )
    .await;
    assert_eq!(published(&api, &complaint).await, None);
    let (_, list) = api
        .send("GET", "/open311/v2/requests.json", None, Value::Null)
        .await;
    assert_eq!(list, json!([]));

    // A confidential ticket is never listed, whatever the category says.
    api.send(
        "PATCH",
        "/api/categories/noise",
        Some(&admin),
        json!({"public_view": "full"}),
    )
    .await;
    sqlx::query("UPDATE tickets SET confidential = TRUE WHERE number = $1")
        .bind(&complaint)
        .execute(&api.db)
        .await
        .unwrap();
    assert_eq!(published(&api, &complaint).await, None);
    assert!(published(&api, &report).await.is_some());
}

/// A filing POST with its key, answered as (status, Idempotency-Replayed, body).
async fn file_with_key(
    api: &Api,
    token: &str,
    key: &str,
    description: &str,
) -> (StatusCode, Option<String>, Value) {
    let body = json!({
        "channel": "phone", "request_type": "complaint", "category": "noise",
        "address": "经十路 100 号", "district": "槐荫区", "town": "道德街街道",
        "description": description, "caller_name": "王女士", "caller_phone": "13812345678",
    });
    let req = Request::post("/api/tickets")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = api.response(req).await;
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotency-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, replayed, v)
}

async fn tickets_saying(api: &Api, description: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tickets WHERE description = $1")
        .bind(description)
        .fetch_one(&api.db)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_filing_retried_with_its_idempotency_key_files_one_ticket(db: PgPool) {
    let api = Api::new(db, china(2026, 3, 2)).await;
    let intake = api.login("intake").await;
    let disp = api.login("dispatcher").await;
    let said = "小区门口的路灯坏了一个星期";

    // The answer was lost; the client sends the same request with the same key again.
    let (s, replayed, first) = file_with_key(&api, &intake, "retry-1", said).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(replayed.as_deref(), Some("false"));
    let (s, replayed, again) = file_with_key(&api, &intake, "retry-1", said).await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again["number"], first["number"]);
    assert_eq!(
        again["caller_phone"], "13812345678",
        "the same view as the first answer"
    );
    assert_eq!(tickets_saying(&api, said).await, 1);

    // Tries at once with one key: one ticket, and every one of them is told its number.
    let said_twice = "楼上漏水，物业不管";
    let tries = (0..8).map(|_| file_with_key(&api, &intake, "burst-7", said_twice));
    let answers = futures_util::future::join_all(tries).await;
    let numbers: std::collections::HashSet<String> = answers
        .iter()
        .map(|(s, _, t)| {
            assert_eq!(*s, StatusCode::CREATED, "{t}");
            num(t)
        })
        .collect();
    assert_eq!(numbers.len(), 1, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.1.as_deref() == Some("false"))
            .count(),
        1,
        "exactly one try filed it"
    );
    assert_eq!(tickets_saying(&api, said_twice).await, 1);

    // The key with another request is the client's bug: refused, and nothing filed.
    let (s, _, e) = file_with_key(&api, &intake, "retry-1", "另一件事").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("Idempotency-Key"),
        "{e}"
    );
    assert_eq!(tickets_saying(&api, "另一件事").await, 0);

    // Keys belong to who sent them: another login's same key files its own ticket.
    let (s, replayed, other) = file_with_key(&api, &disp, "retry-1", said).await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    assert_eq!(replayed.as_deref(), Some("false"));
    assert_ne!(other["number"], first["number"]);

    // A key that is not one: 400, nothing filed.
    for bad in ["", "has space", &"k".repeat(129)] {
        let (s, _, e) = file_with_key(&api, &intake, bad, "坏的键").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {e}");
    }
    assert_eq!(tickets_saying(&api, "坏的键").await, 0);

    // A day later the key is forgotten and files anew.
    api.set_now(china(2026, 3, 3) + chrono::Duration::hours(2));
    let intake = api.login("intake").await;
    let (s, replayed, later) = file_with_key(&api, &intake, "retry-1", said).await;
    assert_eq!(s, StatusCode::CREATED, "{later}");
    assert_eq!(replayed.as_deref(), Some("false"));
    assert_eq!(tickets_saying(&api, said).await, 3);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_idempotency")
        .fetch_one(&api.db)
        .await
        .unwrap();
    assert_eq!(kept, 1, "keys a day old are deleted");

    // Open311 clients send the key the same way.
    let admin = api.login("admin").await;
    let key = open311_key(&api, &admin).await;
    let body = format!(
        "api_key={key}&service_code=noise&lat=36.6512&long=116.9972&description=%E5%A4%9C%E9%97%B4%E6%89%93%E6%A1%A9"
    );
    let mut ids = Vec::new();
    for want in ["false", "true"] {
        let req = Request::post("/open311/v2/requests.json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("idempotency-key", "app-req-42")
            .body(Body::from(body.clone()))
            .unwrap();
        let resp = api.response(req).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["idempotency-replayed"], want);
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        ids.push(v[0]["service_request_id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(tickets_saying(&api, "夜间打桩").await, 1);
}
