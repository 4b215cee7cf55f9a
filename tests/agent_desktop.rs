//! The agent desktop in a real headless Chromium (Debian's, driven by playwright-core from
//! `web/tests/`): the agent logs in, the page registers its JsSIP softphone over SIP over
//! WebSocket with the agent's digest credentials, the agent goes available and answers a call
//! a SIPp caller places on loopback. The browser's media runs through the WebRTC gateway
//! (ICE-lite, DTLS-SRTP, PCMU) and is bridged and recorded like a SIP phone's: the recording's
//! left channel carries the caller's 300 Hz and the right the browser's fake microphone at
//! 700 Hz. The agent files the ticket from the page, holds the caller for 2 s (the agent's
//! side of the recording falls silent) and takes the call back; in PostgreSQL the ticket
//! links the call and its recording. Screenshots at ringing and in call land in `ci-artifacts/agent-desktop/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use common::browser::*;
use common::center::*;
use common::*;
use serde_json::json;
use sqlx::Row;

#[test]
fn a_browser_agent_answers_a_call_with_audio_both_ways_and_files_the_ticket() {
    // Over HTTPS at a name that is not loopback's (the browser maps it to the node on
    // loopback and trusts only the node's certificate): the page is a secure context there,
    // and the same page over plain HTTP at that name gets no microphone at all.
    let center = Center::start_https(QUEUE_SCRIPT, HOST);
    let agent = center.agent("alice", "1001");
    // The catalogue the form offers.
    center.http.ok(
        "POST",
        "/api/categories",
        Some(&center.admin),
        json!({"code": "noise", "name": "施工噪音", "time_limit_days": 5}),
    );
    // The browser's microphone: 700 Hz.
    let tone = microphone(&center, 700.0);

    let mut browser = Browser::start(
        &center,
        "agent_call.mjs",
        "agent-desktop",
        &[
            ("AGENT", "alice"),
            ("PASSWORD", "agent's password"),
            ("TONE", tone.to_str().unwrap()),
            ("CATEGORY", "noise"),
            ("DESCRIPTION", "夜间施工噪音扰民"),
            ("PLAIN_ORIGIN", HOST),
            ("CHROMIUM_ARGS", &chromium_trusts(&center.cert())),
        ],
    );
    let plain = browser.expect("plain", 60);
    assert_eq!(plain, r#"plain {"secure":false,"microphone":false}"#);
    let secure = browser.expect("secure", 30);
    assert_eq!(secure, r#"secure {"secure":true,"microphone":true}"#);
    browser.expect("ready", 60);

    // The caller speaks 300 Hz for 16 s after the answer: the greeting, the ring, the
    // answer, then the agent on the line.
    let caller = caller(&center, 16000);
    browser.expect("ringing", 30);
    // The page shows the caller (alice is intake: the full number), queue and IVR path.
    let facts: serde_json::Value =
        serde_json::from_str(browser.expect("facts", 5).trim_start_matches("facts ")).unwrap();
    assert_eq!(facts["caller"], "sipp", "{facts}");
    assert_eq!(facts["queue"], "general", "{facts}");
    assert!(facts["path"].as_str().unwrap().contains("hello"), "{facts}");
    browser.expect("in-call", 15);
    let stats = browser.expect("stats", 20);
    let ticket = browser.expect("ticket", 30);
    // "ticket N code C": the page shows the access code the agent reads out to the caller.
    let mut words = ticket.split_whitespace().skip(1);
    let number = words.next().unwrap_or_default().to_string();
    let shown_code = words.nth(1).unwrap_or_default().to_string();
    browser.expect("held", 10);
    browser.expect("resumed", 10);
    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    browser.expect("ended", 30);
    eprintln!("browser {stats}");

    // The call record: answered by alice, recorded.
    let rows = center
        .node
        .ended_calls(1, "call_id, agent_id, outcome, recording, rings");
    let row = &rows[0];
    assert_eq!(row.get::<Option<i64>, _>("agent_id"), Some(agent));
    assert_eq!(
        row.get::<Option<String>, _>("outcome").as_deref(),
        Some("answered")
    );
    let call_id: String = row.get("call_id");
    let recording: String = row.get::<Option<String>, _>("recording").unwrap();

    // Audio both ways: the last 2 s of the recording, caller left, browser right.
    let (left, right) = channels(&recording);
    let n = left.len();
    assert!(n > 8000 * 4, "recording of {n} samples");
    assert_tone(&left[n - 16000..], 300.0, CALLER, "the caller (left)");
    assert_tone(
        &right[n - 16000..],
        700.0,
        0.06,
        "the browser agent (right)",
    );
    // On hold the agent's audio stopped: after the agent's tone began, a second without it.
    let seconds: Vec<usize> = right.chunks_exact(8000).map(crossings).collect();
    let began = seconds.iter().position(|&c| c > 1300).unwrap();
    assert!(
        seconds[began..].iter().any(|&c| c < 50),
        "no silence on the agent's side while held: {seconds:?}"
    );

    // The ticket filed from the page links the call and its recording.
    assert!(
        number.chars().all(|c| c.is_ascii_digit()),
        "ticket {number:?}"
    );
    let rows = center.node.db.rows(&format!(
        "SELECT call_id, recording, category, description, channel, access_code FROM tickets WHERE number = '{number}'"
    ));
    let t = &rows[0];
    assert_eq!(
        shown_code,
        t.get::<String, _>("access_code"),
        "the page shows the ticket's access code in its text"
    );
    assert_eq!(
        t.get::<Option<String>, _>("call_id").as_deref(),
        Some(call_id.as_str())
    );
    assert_eq!(
        t.get::<Option<String>, _>("recording").as_deref(),
        Some(recording.as_str())
    );
    assert_eq!(t.get::<String, _>("category"), "noise");
    assert_eq!(t.get::<String, _>("description"), "夜间施工噪音扰民");
    assert_eq!(t.get::<String, _>("channel"), "phone");
    // Hold refuses what it cannot do: a call that is over, a body that is not `{"hold": bool}`.
    let token = center.http.login("alice", "agent's password");
    let hold = format!("/api/calls/{call_id}/hold");
    let (s, b) = center
        .http
        .send("POST", &hold, Some(&token), json!({"hold": true}));
    assert_eq!(s, 404, "{b}");
    let (s, b) = center
        .http
        .send("POST", &hold, Some(&token), json!({"hold": "yes"}));
    assert_eq!(s, 422, "{b}");
    for shot in ["agent-ringing.png", "agent-in-call.png"] {
        let len = std::fs::metadata(artifacts("agent-desktop").join(shot))
            .unwrap()
            .len();
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
}

/// The host name the HTTPS test serves the agent desktop at.
const HOST: &str = "hotline.test";

/// Chromium's arguments to reach [`HOST`] on loopback and trust only `cert` (by the SHA-256 of
/// its public key, as `--ignore-certificate-errors-spki-list` takes it), one per line.
fn chromium_trusts(cert: &std::path::Path) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let der = CertificateDer::from_pem_file(cert).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let spki = sha2::Sha256::digest(x509.public_key().raw);
    format!(
        "--host-resolver-rules=MAP {HOST} 127.0.0.1\n--ignore-certificate-errors-spki-list={}",
        base64(&spki)
    )
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A port free on loopback now (for an HTTP address that must survive a restart).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_agent_desktop_recovers_after_the_server_restarts() {
    let listen = format!("127.0.0.1:{}", free_tcp_port());
    let mut center = Center::start_with(QUEUE_SCRIPT, &[("HOTLINE_HTTP__LISTEN", listen.as_ref())]);
    let agent = center.agent("alice", "1001");
    let tone = microphone(&center, 700.0);
    let mut browser = Browser::start(
        &center,
        "agent_restart.mjs",
        "agent-desktop",
        &[
            ("AGENT", "alice"),
            ("PASSWORD", "agent's password"),
            ("TONE", tone.to_str().unwrap()),
        ],
    );
    browser.expect("ready", 60);

    // The server dies (SIGKILL) and comes back: no registration, nobody logged in to a queue.
    center.node.restart();
    browser.expect("lost", 30);
    let snapshot = |c: &Center| {
        c.http.ok(
            "GET",
            "/api/acd/snapshot",
            Some(&c.admin),
            serde_json::Value::Null,
        )
    };
    // The page reconnects, registers again and puts alice back to available by itself.
    browser.expect("recovered", 60);
    let snap = snapshot(&center);
    let alice = snap["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"].as_i64() == Some(agent))
        .cloned()
        .unwrap_or_default();
    assert_eq!(alice["state"], "available", "{snap}");

    // And takes calls again: the restarted server rings the browser, which answers.
    let caller = caller(&center, 4000);
    browser.expect("ringing", 30);
    browser.expect("in-call", 15);
    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "the caller's call failed: {errors}");
    browser.expect("ended", 30);
    let rows = center.node.ended_calls(1, "agent_id, outcome");
    assert_eq!(rows[0].get::<Option<i64>, _>("agent_id"), Some(agent));
    assert_eq!(
        rows[0].get::<Option<String>, _>("outcome").as_deref(),
        Some("answered")
    );
}
