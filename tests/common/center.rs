//! A running hotline for the end-to-end call-center tests: the node, an administrator, the
//! agents' SIP accounts and profiles, SIPp phones and callers, and checks on recordings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hotline_sip::media::g711::ulaw_encode;
use serde_json::{Value, json};

use super::sipp::{errors_in, sipp_in};
use super::*;

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A tone of `hz` for `secs`, G.711 mu-law, as SIPp's `rtp_stream` plays it.
pub fn tone(hz: f64, secs: usize) -> Vec<u8> {
    (0..8000 * secs)
        .map(|i| {
            ulaw_encode(
                (6000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16,
            )
        })
        .collect()
}

/// An agent's phone: a SIPp UAS on `port` running `scenario`, in `dir`. Its media ports (SIPp
/// binds four from `-mp`: audio and video, RTP and RTCP) come from below the kernel's ephemeral
/// range, where no client connection of another test can take one meanwhile.
pub fn phone(dir: &Path, scenario_name: &str, port: u16) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .arg("-sf")
        .arg(scenario(scenario_name))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &super::baresip::free_port().to_string()])
        .args(["-m", "1", "-nostdin"])
        .args(["-timeout", "40s", "-trace_err"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp is installed")
}

pub struct Http {
    pub base: String,
    pub client: reqwest::blocking::Client,
}

impl Http {
    pub fn send(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
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

    pub fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
        let (s, b) = self.send(method, path, token, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {b}");
        b
    }

    pub fn login(&self, user: &str, password: &str) -> String {
        let b = self.ok(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": user, "password": password}),
        );
        b["token"].as_str().unwrap().to_string()
    }
}

/// The left and right channels of a stereo recording.
pub fn channels(path: &str) -> (Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Zero crossings in a stretch of samples (a tone of f Hz has 2f a second).
pub fn crossings(s: &[i16]) -> usize {
    s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

/// How far a tone's zero crossings may stray from 2f a second: the caller's tone reaches the
/// recording through the jitter buffer, a phone's through the bridge.
pub const CALLER: f64 = 0.055;
pub const PHONE: f64 = 0.05;

/// Asserts that 8 kHz `samples` carry a tone of `hz` (by zero crossings, within `tolerance`).
pub fn assert_tone(samples: &[i16], hz: f64, tolerance: f64, what: &str) {
    let expected = 2.0 * hz * samples.len() as f64 / 8000.0;
    let n = crossings(samples) as f64;
    assert!(
        (n - expected).abs() <= expected * tolerance,
        "{what}: {n} zero crossings, {expected} expected for {hz} Hz"
    );
}

/// A running hotline with an administrator, and what the agents' phones need.
pub struct Center {
    pub node: SipNode,
    pub http: Http,
    pub admin: String,
    pub dir: tempfile::TempDir,
    /// Where the phones' and callers' SIPp run (their audio files and error logs).
    pub work: tempfile::TempDir,
    /// The HTTPS certificate and key, when the center serves HTTPS.
    pub certs: Option<tempfile::TempDir>,
}

impl Center {
    /// A node running `script` with a 5 s ring timeout, no wrap-up and no announcements.
    pub fn start(script: &str) -> Center {
        Self::start_with(script, &[])
    }

    /// [`Center::start`] with more environment.
    pub fn start_with(script: &str, env: &[(&str, &std::ffi::OsStr)]) -> Center {
        Self::start_inner(script, env, None)
    }

    /// [`Center::start`] serving HTTPS with a certificate for `host` (and `localhost`), which
    /// the test's client resolves to the node on loopback and trusts; the certificate's PEM
    /// file is at [`Center::cert`].
    pub fn start_https(script: &str, host: &str) -> Center {
        let certs = tempfile::tempdir().unwrap();
        let made =
            rcgen::generate_simple_self_signed(vec![host.to_string(), "localhost".into()]).unwrap();
        let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let env: Vec<(&str, &std::ffi::OsStr)> = vec![
            ("HOTLINE_HTTP__TLS__MODE", "files".as_ref()),
            ("HOTLINE_HTTP__TLS__CERT", cert.as_os_str()),
            ("HOTLINE_HTTP__TLS__KEY", key.as_os_str()),
        ];
        let mut center = Self::start_inner(script, &env, Some((host, &cert)));
        center.certs = Some(certs);
        center
    }

    /// The HTTPS certificate of a center started with [`Center::start_https`].
    pub fn cert(&self) -> PathBuf {
        self.certs
            .as_ref()
            .expect("an HTTPS center")
            .path()
            .join("cert.pem")
    }

    fn start_inner(
        script: &str,
        env: &[(&str, &std::ffi::OsStr)],
        https: Option<(&str, &Path)>,
    ) -> Center {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.toml");
        std::fs::write(&path, script).unwrap();
        // SIPp computes MD5 digests only.
        let mut vars: Vec<(&str, &std::ffi::OsStr)> = vec![
            ("HOTLINE_IVR__SCRIPT", path.as_os_str()),
            ("HOTLINE_ACD__RING_TIMEOUT_SECS", "5".as_ref()),
            ("HOTLINE_ACD__WRAP_UP_SECS", "0".as_ref()),
            ("HOTLINE_ACD__ANNOUNCE_SECS", "0".as_ref()),
        ];
        vars.extend_from_slice(env);
        let mut node = start_sip_node_env("digest_algorithms = [\"MD5\"]", &vars);
        let mut base = node.node.wait_http();
        let mut client = reqwest::blocking::Client::builder();
        if let Some((host, cert)) = https {
            let at: std::net::SocketAddr = base.trim_start_matches("https://").parse().unwrap();
            base = format!("https://{host}:{}", at.port());
            let pem = std::fs::read(cert).unwrap();
            client = client
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .resolve(host, at);
        }
        let center = Center {
            node,
            http: Http {
                base,
                client: client.build().unwrap(),
            },
            certs: None,
            admin: String::new(),
            dir,
            work: tempfile::tempdir().unwrap(),
        };
        center.cli(&["user", "chief", "--role", "admin"], "chief's password\n");
        let admin = center.http.login("chief", "chief's password");
        std::fs::write(center.work.path().join("agent.ulaw"), tone(1000.0, 20)).unwrap();
        std::fs::write(center.work.path().join("voice.ulaw"), tone(300.0, 20)).unwrap();
        Center { admin, ..center }
    }

    pub fn cli(&self, args: &[&str], stdin: &str) {
        let mut cmd = hotline();
        cmd.current_dir(self.dir.path())
            .env("HOTLINE_DATABASE__URL", &self.node.db.url)
            .args(args);
        let out = run_with_stdin(cmd, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    /// An agent `name` (intake) whose softphone is SIP account `ext`, in queue `general`;
    /// returns the agent's id.
    pub fn agent(&self, name: &str, ext: &str) -> i64 {
        self.user_with_phone(name, ext, "intake", &["general"])
    }

    /// A user `name` with `role` whose softphone is SIP account `ext` (password
    /// `phone-{ext}-secret`), working `queues`; returns the user's id.
    pub fn user_with_phone(&self, name: &str, ext: &str, role: &str, queues: &[&str]) -> i64 {
        self.cli(&["sip-account", ext], &format!("phone-{ext}-secret\n"));
        let u = self.http.ok(
            "POST",
            "/api/users",
            Some(&self.admin),
            json!({"username": name, "display_name": name, "role": role,
                   "password": "agent's password"}),
        );
        self.http.ok(
            "PUT",
            &format!("/api/agents/{name}"),
            Some(&self.admin),
            json!({"sip_username": ext, "queues": queues}),
        );
        u["id"].as_i64().unwrap()
    }

    /// The Call-ID of the call `agent` is on, once the snapshot shows it (up to 10 s).
    pub fn on_call(&self, agent: i64) -> String {
        for _ in 0..100 {
            let snap = self
                .http
                .ok("GET", "/api/acd/snapshot", Some(&self.admin), Value::Null);
            let me = snap["agents"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["id"] == json!(agent)).cloned());
            if let Some(me) = me
                && me["state"] == "on_call"
                && let Some(id) = me["call_id"].as_str()
            {
                return id.to_string();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agent {agent} never on a call")
    }

    /// Registers `ext` (digest) for a phone listening on `port`. The node learns a new SIP
    /// account on the database's NOTIFY, which a busy machine may delay: up to four tries
    /// (a fifth failure within a minute would have the registrar block the address).
    pub fn register(&self, ext: &str, port: u16) {
        for attempt in 1.. {
            match self.try_register(ext, port) {
                Ok(()) => return,
                Err(errors) if attempt >= 4 => panic!("{ext} registers: {errors}"),
                Err(_) => std::thread::sleep(Duration::from_millis(1500)),
            }
        }
    }

    pub fn try_register(&self, ext: &str, port: u16) -> Result<(), String> {
        let password = format!("phone-{ext}-secret");
        let port = port.to_string();
        let (code, errors) = sipp_in(
            self.work.path(),
            self.node.udp,
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
                &port,
            ],
        );
        if code == 0 { Ok(()) } else { Err(errors) }
    }

    /// The agent logs in (or `action`s: pause, logout) through the API.
    pub fn agent_does(&self, name: &str, action: &str, body: Value) {
        let token = self.http.login(name, "agent's password");
        self.http.ok(
            "POST",
            &format!("/api/agents/me/{action}"),
            Some(&token),
            body,
        );
    }

    /// The SIPp error logs written so far.
    pub fn sipp_errors(&self) -> String {
        errors_in(self.work.path())
    }
}
