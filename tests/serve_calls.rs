//! `hotline serve` answers calls with its IVR script: SIPp calls a running node, keys a
//! ticket number with RFC 2833 while waiting in the queue, and hangs up; the call record in
//! PostgreSQL shows the keys in order, the variable collected, the path through the script
//! and how the call ended, and the log shows the caller's number masked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::sipp::sipp;
use common::*;
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
digits = { "2" = "ask" }

[nodes.ask]
type = "collect"
prompt = { text = "请输入工单编号" }
var = "ticket"
min = 6
max = 20
terminator = "#"
next = "status"
default = "queue"

[nodes.status]
type = "ticket_status"
next = "queue"
"##;

#[test]
fn a_served_call_walks_the_script_and_leaves_its_record() {
    let dir = shared_tempdir();
    let script = dir.path().join("ivr.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    let mut node = start_sip_node_env("", &[("HOTLINE_IVR__SCRIPT", script.as_os_str())]);
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_keys.xml");
    let (code, errors) = sipp(node.udp, &scenario, "12345");
    assert_eq!(code, 0, "the call failed:\n{errors}");

    // The record is completed when the call ends (its row exists from the answer on).
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = node.db.rows(
            "SELECT caller, called, end_reason, codec, ivr_path, ivr_keys, ivr_vars::text AS vars, \
             queue, answered_at IS NOT NULL AS answered, packets_sent FROM calls \
             WHERE ended_at IS NOT NULL",
        );
        if !rows.is_empty() || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rows.len(), 1, "one call, one record");
    let r = &rows[0];
    assert_eq!(r.get::<String, _>("caller"), "13812345678");
    assert_eq!(r.get::<String, _>("called"), "12345");
    assert_eq!(r.get::<String, _>("end_reason"), "caller hung up");
    assert_eq!(r.get::<Option<String>, _>("codec").as_deref(), Some("PCMU"));
    assert!(r.get::<bool, _>("answered"));
    assert_eq!(
        r.get::<String, _>("ivr_keys"),
        "2123456#",
        "RFC 2833 keys, in order"
    );
    assert_eq!(r.get::<String, _>("vars"), r#"{"ticket": "123456"}"#);
    // Without the phone's last four digits the look-up says no such ticket (and the caller
    // hangs up while it does).
    assert_eq!(
        r.get::<Vec<String>, _>("ivr_path")[..4],
        ["hello", "queue", "ask", "status"]
    );
    assert_eq!(
        r.get::<Option<String>, _>("queue").as_deref(),
        Some("general")
    );
    // About 10.5 s of a call at 50 packets a second.
    let sent = r.get::<i64, _>("packets_sent");
    assert!((400..700).contains(&sent), "{sent} RTP packets sent");

    let line = node
        .node
        .wait_for_line("call ended", Duration::from_secs(5));
    assert!(line.contains("138****5678"), "{line}");
    assert!(!line.contains("13812345678"), "{line}");
}

/// Issue 22, item 7: below `recordings.min_free_mb` of free disk a call is answered and runs
/// its script as ever, but is not recorded: no file, no recording in its record, the skip
/// logged and counted.
#[test]
fn below_the_free_space_watermark_a_call_goes_on_unrecorded() {
    let dir = shared_tempdir();
    let script = dir.path().join("ivr.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    // More free space than any disk has: the watermark is crossed from the start.
    let recordings = dir.path().join("recordings");
    let mut node = start_sip_node_env(
        "",
        &[
            ("HOTLINE_IVR__SCRIPT", script.as_os_str()),
            ("HOTLINE_RECORDINGS__DIR", recordings.as_os_str()),
            ("HOTLINE_RECORDINGS__MIN_FREE_MB", "1000000000".as_ref()),
        ],
    );
    // Said at start, before SIP listens.
    assert!(
        node.node.log.iter().any(|l| l.contains("recordings stop")),
        "{:#?}",
        node.node.log
    );
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_keys.xml");
    let (code, errors) = sipp(node.udp, &scenario, "12345");
    assert_eq!(code, 0, "the call failed:\n{errors}");
    let rows = node.ended_calls(1, "recording, end_reason, ivr_keys");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<Option<String>, _>("recording"), None);
    assert_eq!(rows[0].get::<String, _>("end_reason"), "caller hung up");
    assert_eq!(
        rows[0].get::<String, _>("ivr_keys"),
        "2123456#",
        "the script ran"
    );
    node.node
        .wait_for_line("call not recorded", Duration::from_secs(5));
    let http = node.node.wait_http();
    let metrics = reqwest::blocking::get(format!("{http}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hotline_recordings_skipped_total") && l.ends_with(" 1")),
        "{metrics}"
    );
    let wavs = walk_files(&recordings);
    assert!(wavs.is_empty(), "no recording written: {wavs:?}");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// The admin API pauses and resumes a call's recording (personal data read aloud): the file
/// keeps its time line with silence on both channels while paused, and both switches are
/// audited.
#[test]
fn a_recording_paused_through_the_admin_api_holds_silence_for_the_pause() {
    const TOKEN: &str = "an-admin-token-for-tests";
    let dir = shared_tempdir();
    let script = dir.path().join("ivr.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    let mut node = start_sip_node_env(
        "",
        &[
            ("HOTLINE_IVR__SCRIPT", script.as_os_str()),
            ("HOTLINE_HTTP__ADMIN_TOKEN", std::ffi::OsStr::new(TOKEN)),
        ],
    );
    let base = node.node.wait_http();
    // The caller streams 300 Hz for 5 s.
    let voice: Vec<u8> = (0..80_000)
        .map(|i| {
            hotline_sip::media::g711::ulaw_encode(
                (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * f64::from(i) / 8000.0).sin())
                    as i16,
            )
        })
        .collect();
    std::fs::write(dir.path().join("voice.ulaw"), voice).unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp/uac_media_load.xml");
    let (udp, work) = (node.udp, dir.path().to_path_buf());
    let caller = std::thread::spawn(move || {
        common::sipp::sipp_in(&work, udp, &scenario, "12345", &["-d", "5000"])
    });
    // The call's row appears when it is answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    let call_id = loop {
        let rows = node.db.rows("SELECT call_id FROM calls");
        if let Some(r) = rows.first() {
            break r.get::<String, _>("call_id");
        }
        assert!(Instant::now() < deadline, "the call was not answered");
        std::thread::sleep(Duration::from_millis(20));
    };
    let answered = Instant::now();
    let http = reqwest::blocking::Client::new();
    let post = |what: &str| {
        http.post(format!("{base}/api/admin/calls/{call_id}/recording/{what}"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(1000).saturating_sub(answered.elapsed()));
    assert_eq!(post("pause").status(), 200);
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(answered.elapsed()));
    assert_eq!(post("resume").status(), 200);
    let r = http
        .post(format!(
            "{base}/api/admin/calls/no-such-call/recording/pause"
        ))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let (code, errors) = caller.join().unwrap();
    assert_eq!(code, 0, "{errors}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let path = loop {
        let rows = node
            .db
            .rows("SELECT recording FROM calls WHERE ended_at IS NOT NULL");
        if let Some(r) = rows.first() {
            break r.get::<Option<String>, _>("recording").expect("recorded");
        }
        assert!(Instant::now() < deadline, "the call did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&path).is_file() {
        assert!(Instant::now() < deadline, "the recording was not finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut reader = hound::WavReader::open(&path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let loud = |from: f64, to: f64| {
        let s = &left[(from * 8000.0) as usize..(to * 8000.0) as usize];
        s.iter().filter(|x| x.abs() > 1000).count() as f64 / s.len() as f64
    };
    assert!(loud(0.3, 0.8) > 0.3, "the caller is heard before the pause");
    assert!(
        loud(1.4, 2.2) < 0.01,
        "silence while paused ({})",
        loud(1.4, 2.2)
    );
    let quiet_right = samples[(1.4 * 8000.0) as usize * 2..(2.2 * 8000.0) as usize * 2]
        .iter()
        .skip(1)
        .step_by(2)
        .all(|x| x.abs() < 100);
    assert!(quiet_right, "both channels are silent while paused");
    assert!(
        loud(3.0, 4.0) > 0.3,
        "the caller is heard again after the resume"
    );
    let actions: Vec<String> = node
        .db
        .rows("SELECT action FROM audit_log ORDER BY id")
        .iter()
        .map(|r| r.get::<String, _>("action"))
        .collect();
    assert_eq!(actions, ["recording.pause", "recording.resume"]);
}

/// The demo flow's self-service: while waiting in the queue the caller presses 2, keys a
/// ticket number and its access code, and hears the ticket's status (Art. 13), checked
/// against PostgreSQL exactly as the public API checks it, and audited; the call record keeps
/// the code masked.
#[test]
fn a_caller_keys_a_ticket_and_hears_its_status() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
    let mut node = start_sip_node_env("", &[("HOTLINE_IVR__SCRIPT", script.as_os_str())]);
    node.db.execute(
        "INSERT INTO units (code, name, kind) VALUES ('huaiyin', '槐荫区人民政府', 'county');
         INSERT INTO categories (code, name) VALUES ('noise', '施工噪音');
         INSERT INTO tickets (number, channel, request_type, category, description,
                              caller_phone, status, lead_unit, due_at, created_by, access_code)
         VALUES ('2026030200042', 'phone', 'complaint', 'noise', '夜间施工噪音',
                 '13812345678', 'handling', 1, '2026-03-09T16:00:00Z', 'intake', '246810');"
            .into(),
    );
    // The demo's greeting (with the emergency numbers) lasts about 18 s and takes no keys;
    // then 2, the number, and the six-digit code after the second prompt.
    let (code, errors) = demo_call(
        &node,
        r#"<pause milliseconds="20000"/>
  <nop><action><exec play_dtmf="22026030200042#,100"/></action></nop>
  <pause milliseconds="6000"/>
  <nop><action><exec play_dtmf="246810#,100"/></action></nop>
  <pause milliseconds="14000"/>"#,
    );
    assert_eq!(code, 0, "the call failed:\n{errors}");

    let line = node
        .node
        .wait_for_line("ticket's status", Duration::from_secs(5));
    assert!(line.contains("2026030200042"), "{line}");
    let seconds = seconds_in(&line);
    assert!(
        seconds > 4.0,
        "a status, unit and deadline take more than {seconds} s: {line}"
    );
    let audit = node.db.rows(
        "SELECT actor, action, subject FROM audit_log WHERE subject = 'ticket:2026030200042'",
    );
    assert_eq!(audit.len(), 1, "one look-up, audited");
    assert_eq!(audit[0].get::<String, _>("actor"), "ivr");
    assert_eq!(audit[0].get::<String, _>("action"), "public.read");
    let rows = node.ended_calls(1, "ivr_path, ivr_keys, ivr_vars::text AS vars");
    // The caller hangs up while the status is still being read out.
    let path: Vec<String> = rows[0].get("ivr_path");
    assert_eq!(
        path[..5],
        ["greeting", "queue", "ask_ticket", "ask_code", "status"]
    );
    assert_eq!(
        rows[0].get::<String, _>("vars"),
        r#"{"code": "******", "ticket": "2026030200042"}"#
    );
    let keys: String = rows[0].get("ivr_keys");
    assert!(
        keys.contains("2026030200042#******") && !keys.contains("246810"),
        "the code's keys are not kept: {keys}"
    );
}

/// The `seconds=` field of a log line (0 when there is none).
fn seconds_in(line: &str) -> f64 {
    line.split("seconds=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// Places one SIPp call to the node running the demo script: `uac_keys.xml` with its keys
/// and pauses replaced by `steps`.
fn demo_call(node: &SipNode, steps: &str) -> (i32, String) {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_keys.xml"),
    )
    .unwrap();
    let keys = r#"<pause milliseconds="1500"/>
  <nop><action><exec play_dtmf="2123456#,100"/></action></nop>
  <pause milliseconds="9000"/>"#;
    assert!(template.contains(keys));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.xml");
    std::fs::write(&file, template.replace(keys, steps)).unwrap();
    sipp(node.udp, &file, "12345")
}

/// The demo flow's other self-service: while waiting the caller presses 1, hears the menu
/// of the script's category built from the knowledge base (Art. 31), presses 1 again and
/// hears that answer, read from PostgreSQL; then is back in the queue.
#[test]
fn a_caller_presses_1_and_hears_knowledge_base_answers() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
    let mut node = start_sip_node_env("", &[("HOTLINE_IVR__SCRIPT", script.as_os_str())]);
    node.db.execute(
        "INSERT INTO kb_articles (title, body, spoken_answer, category, status, updated_by)
         VALUES ('停水报修', '拨打96606报修。', '突然停水请拨打供水服务热线96606报修，抢修人员二十四小时值守。',
                 '常见问题', 'published', 'test'),
                ('草稿不读', '正文', '这一条还是草稿。', '常见问题', 'draft', 'test');"
            .into(),
    );
    let (code, errors) = demo_call(
        &node,
        r#"<pause milliseconds="20000"/>
  <nop><action><exec play_dtmf="1,100"/></action></nop>
  <pause milliseconds="3000"/>
  <nop><action><exec play_dtmf="1,100"/></action></nop>
  <pause milliseconds="17000"/>"#,
    );
    assert_eq!(code, 0, "the call failed:\n{errors}");
    // The menu offers the published article only.
    let line = node
        .node
        .wait_for_line("IVR knowledge-base look-up", Duration::from_secs(5));
    assert!(
        line.contains("常见问题") && line.contains("choice=None"),
        "{line}"
    );
    assert!(
        line.contains("answers=1"),
        "the published one, not the draft: {line}"
    );
    // The key chose it, and its answer was read.
    let line = node
        .node
        .wait_for_line("IVR knowledge-base look-up", Duration::from_secs(5));
    assert!(line.contains("choice=Some(1)"), "{line}");
    let line = node
        .node
        .wait_for_line("Some(1) seconds=", Duration::from_secs(5));
    let seconds = seconds_in(&line);
    assert!(seconds > 3.0, "title and spoken answer: {line}");
    let rows = node.ended_calls(1, "ivr_path, ivr_keys");
    let path: Vec<String> = rows[0].get("ivr_path");
    assert_eq!(path, ["greeting", "queue", "self_service", "queue"]);
    assert_eq!(rows[0].get::<String, _>("ivr_keys"), "11");
}

/// Reads datagrams until a SIP response with `code` arrives (provisional ones skipped).
fn sip_answer(sock: &std::net::UdpSocket, code: u16) -> String {
    let mut buf = [0u8; 65536];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .expect("an answer within the timeout");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(&format!("SIP/2.0 {code} ")) {
            return text;
        }
        assert!(text.starts_with("SIP/2.0 1"), "wanted {code}, got:\n{text}");
    }
}

/// RFC 4475 3.4.1: a caller whose stack speaks RFC 2543 (no branch cookie, no From tag, no
/// Max-Forwards, no Content-Length) and ends its lines with a bare LF is answered, hears the
/// greeting, and hangs up with a BYE that is matched to its call; the record says so.
#[test]
fn an_rfc_2543_caller_with_bare_line_ends_is_answered_and_hangs_up() {
    let dir = shared_tempdir();
    let script = dir.path().join("ivr.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    let node = start_sip_node_env("", &[("HOTLINE_IVR__SCRIPT", script.as_os_str())]);
    let sip = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (me, media) = (sip.local_addr().unwrap(), rtp.local_addr().unwrap().port());
    let head = |method: &str, cseq: u32, to_tag: &str| {
        format!(
            "{method} sip:12345@{udp} SIP/2.0\nVia: SIP/2.0/UDP {me}\n\
             From: \"Old\" <sip:13912340000@127.0.0.1>\nTo: <sip:12345@{udp}>{to_tag}\n\
             Call-ID: rfc2543-1@127.0.0.1\nCSeq: {cseq} {method}\n",
            udp = node.udp
        )
    };
    let sdp = format!(
        "v=0\no=old 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n\
         m=audio {media} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    );
    let invite = format!(
        "{}Contact: <sip:13912340000@{me}>\nContent-Type: application/sdp\n\n{sdp}",
        head("INVITE", 1, "")
    );
    sip.send_to(invite.as_bytes(), node.udp).unwrap();
    let ok = sip_answer(&sip, 200);
    assert!(ok.contains("m=audio "), "the answer carries SDP:\n{ok}");
    let to = ok
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap();
    let tag = &to[to.find(";tag=").expect("a To tag")..];
    sip.send_to(format!("{}\n", head("ACK", 1, tag)).as_bytes(), node.udp)
        .unwrap();
    // The greeting plays to the address in the SDP.
    let mut buf = [0u8; 2048];
    let (n, _) = rtp.recv_from(&mut buf).expect("RTP from the node");
    assert!(n > 12 && buf[0] >> 6 == 2, "an RTP packet");

    sip.send_to(format!("{}\n", head("BYE", 2, tag)).as_bytes(), node.udp)
        .unwrap();
    sip_answer(&sip, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        let rows = node
            .db
            .rows("SELECT end_reason FROM calls WHERE ended_at IS NOT NULL");
        if let Some(r) = rows.first() {
            break r.get::<String, _>("end_reason");
        }
        assert!(Instant::now() < deadline, "the call never ended");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reason, "caller hung up");
}
