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

    // The record is written when the call ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = node.db.rows(
            "SELECT caller, called, end_reason, codec, ivr_path, ivr_keys, ivr_vars::text AS vars, \
             queue, answered_at IS NOT NULL AS answered, packets_sent FROM calls",
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
    assert_eq!(
        r.get::<Vec<String>, _>("ivr_path"),
        ["hello", "queue", "ask", "status", "queue"]
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
