//! Drives the HTTP application in-process (tower `oneshot`) against a real PostgreSQL, on a
//! hand-set clock, with the directory of a small city: four handling units, three categories,
//! dispatch rules and one user per role.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

use hotline::http::{AppState, app};
use hotline::tickets::store::{Clock, Settings};
use hotline::users::{self, Role};

pub const PASSWORD: &str = "a long enough password";

pub struct Api {
    pub db: PgPool,
    pub clock: Clock,
    /// The ACD task the API talks to.
    pub acd: hotline::acd::service::AcdHandle,
    router: Router,
}

/// 10:00 China time on a day.
pub fn china(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 2, 0, 0).unwrap()
}

/// The unit ids of the fixture.
pub const HUAIYIN: i64 = 1;
pub const ECOLOGY: i64 = 2;
pub const WATER: i64 = 3;
pub const LIXIA: i64 = 4;

impl Api {
    pub async fn new(db: PgPool, now: DateTime<Utc>) -> Api {
        let api = Api::attach(db, now, None);
        api.seed().await;
        api
    }

    /// The fixture with an ACD of these queues.
    pub async fn with_queues(db: PgPool, now: DateTime<Utc>, queues: &[&str]) -> Api {
        let api = Api::attach_with(db, now, None, queues);
        api.seed().await;
        api
    }

    /// Another node on the same database (nothing seeded), with its knowledge base.
    pub fn attach(
        db: PgPool,
        now: DateTime<Utc>,
        kb: Option<std::sync::Arc<hotline::kb::service::Kb>>,
    ) -> Api {
        Api::attach_with(db, now, kb, &["general"])
    }

    fn attach_with(
        db: PgPool,
        now: DateTime<Utc>,
        kb: Option<std::sync::Arc<hotline::kb::service::Kb>>,
        queues: &[&str],
    ) -> Api {
        let clock = Clock::manual(now);
        let settings = Settings {
            clock: clock.clone(),
            ..Settings::from_config(&Default::default()).expect("calendar")
        };
        let acd = hotline::acd::service::spawn(
            queues
                .iter()
                .map(|q| hotline::acd::routing::QueueConfig::new(q))
                .collect(),
            Default::default(),
            tokio_util::sync::CancellationToken::new(),
        );
        let state = AppState {
            kb,
            acd: Some(acd.clone()),
            ..AppState::bare(db.clone(), settings)
        };
        Api {
            db,
            clock,
            acd,
            router: app(state),
        }
    }

    pub async fn seed(&self) {
        users::create(&self.db, "admin", "管理员", Role::Admin, None, PASSWORD)
            .await
            .unwrap();
        let admin = self.login("admin").await;
        for (code, name, kind) in [
            ("huaiyin", "槐荫区人民政府", "county"),
            ("ecology", "市生态环境局", "department"),
            ("water", "市水务集团", "company"),
            ("lixia", "历下区人民政府", "county"),
        ] {
            let (s, b) = self
                .send(
                    "POST",
                    "/api/units",
                    Some(&admin),
                    json!({"code": code, "name": name, "kind": kind}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        for (code, name, days) in [
            ("noise", "施工噪音", 5),
            ("water-outage", "停水", 5),
            ("disclosure", "政府信息公开", 15),
        ] {
            let (s, b) = self
                .send(
                    "POST",
                    "/api/categories",
                    Some(&admin),
                    json!({"code": code, "name": name, "time_limit_days": days}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        for (cat, district, unit) in [
            ("noise", Value::Null, ECOLOGY),
            ("noise", json!("槐荫区"), HUAIYIN),
            ("water-outage", Value::Null, WATER),
        ] {
            let (s, b) = self
                .send(
                    "POST",
                    "/api/dispatch-rules",
                    Some(&admin),
                    json!({"category": cat, "district": district, "town": null, "unit_id": unit}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        for (name, role, unit) in [
            ("intake", "intake", Value::Null),
            ("dispatcher", "dispatcher", Value::Null),
            ("supervisor", "supervisor", Value::Null),
            ("analyst", "analyst", Value::Null),
            ("huaiyin", "unit_staff", json!(HUAIYIN)),
            ("ecology", "unit_staff", json!(ECOLOGY)),
            ("water", "unit_staff", json!(WATER)),
            ("lixia", "unit_staff", json!(LIXIA)),
        ] {
            let (s, b) = self
                .send(
                    "POST",
                    "/api/users",
                    Some(&admin),
                    json!({"username": name, "display_name": name, "role": role,
                           "unit_id": unit, "password": PASSWORD}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
    }

    /// Serves the application on a loopback port (for WebSocket clients); returns its address.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    pub fn set_now(&self, at: DateTime<Utc>) {
        self.clock.set(at);
    }

    /// Logs in and returns the session token.
    pub async fn login(&self, user: &str) -> String {
        let (s, b) = self
            .send(
                "POST",
                "/api/auth/login",
                None,
                json!({"username": user, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["token"].as_str().unwrap().to_string()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = if body.is_null() {
            req.body(Body::empty()).unwrap()
        } else {
            req.header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        self.raw(req).await
    }

    /// The whole response, headers included.
    pub async fn response(&self, req: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(req).await.unwrap()
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send("GET", path, Some(token), Value::Null).await
    }

    /// Files a ticket as the intake agent and returns it.
    pub async fn file(&self, token: &str, extra: Value) -> Value {
        let mut t = json!({
            "channel": "phone",
            "request_type": "complaint",
            "category": "noise",
            "address": "经十路 100 号",
            "district": "槐荫区",
            "town": "道德街街道",
            "description": "工地夜间施工噪音扰民，晚上十一点后还在打桩",
            "caller_name": "王女士",
            "caller_phone": "13812345678",
        });
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        let (s, b) = self.send("POST", "/api/tickets", Some(token), t).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b
    }

    /// The citizen's access code of ticket `number`, as told at intake.
    pub async fn access_code(&self, number: &str) -> String {
        sqlx::query_scalar("SELECT access_code FROM tickets WHERE number = $1")
            .bind(number)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Takes a step on a ticket at the version it is at now (as `token` sees it).
    pub async fn step(&self, token: &str, number: &str, step: Value) -> (StatusCode, Value) {
        let (s, t) = self.get(&format!("/api/tickets/{number}"), token).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        let mut body = step;
        body["version"] = t["version"].clone();
        self.send(
            "POST",
            &format!("/api/tickets/{number}/actions"),
            Some(token),
            body,
        )
        .await
    }

    /// A step that must succeed; returns the ticket after it.
    pub async fn ok(&self, token: &str, number: &str, step: Value) -> Value {
        let (s, b) = self.step(token, number, step.clone()).await;
        assert_eq!(s, StatusCode::OK, "{step} -> {b}");
        b
    }
}
