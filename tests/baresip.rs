//! baresip, a real softphone (Debian package), against the signaling service on loopback: it
//! registers with digest authentication and places a call that the engine answers and that
//! baresip then ends; with a wrong password it is refused and nothing is bound.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::answer::AnswerCalls;
use common::baresip::{command, start};
use hotline::config::{Port, SipConfig};
use hotline::engine::{Credentials, start_with_handler};
use hotline_sip::auth::{Algorithm, ha1};
use tokio_util::sync::CancellationToken;

/// A headless baresip with one account; audio from a sine generator, none played.
fn baresip(dir: &Path, server_port: u16, password: &str) -> (Child, u16) {
    let (child, ctrl, _) = start(
        dir,
        &format!(
            "<sip:1001@127.0.0.1:{server_port}>;auth_pass={password};regint=60;answermode=manual;audio_codecs=PCMU"
        ),
        "audio_source ausine,440\nrtp_ports 44000-44999\nmodule ausine.so\n",
        &["-s", "-t", "20"],
    );
    (child, ctrl)
}

fn wait_for(log: &Arc<Mutex<Vec<String>>>, what: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if log.lock().unwrap().iter().any(|l| l.starts_with(what)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn baresip_registers_calls_and_hangs_up_and_a_wrong_password_binds_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let creds = Arc::new(Credentials::default());
    creds.set(
        "1001",
        &ha1(Algorithm::Md5, "1001", "hotline", "pw-1001"),
        &ha1(Algorithm::Sha256, "1001", "hotline", "pw-1001"),
    );
    let handler = AnswerCalls::default();
    let log = Arc::clone(&handler.log);
    // baresip 1.0 (like SIPp 3.6) answers only the first challenge and speaks MD5 only.
    let cfg = SipConfig {
        listen: "127.0.0.1".parse().unwrap(),
        udp_port: Port(0),
        tcp_port: Port(0),
        digest_algorithms: vec!["MD5".into()],
        ..SipConfig::default()
    };
    let (addrs, task) = rt
        .block_on(start_with_handler(
            &cfg,
            creds,
            Box::new(handler),
            shutdown.clone(),
        ))
        .unwrap();
    let port = addrs.udp.port();

    // The right password: registered, then a call answered, confirmed, and ended by baresip.
    let dir = tempfile::tempdir().unwrap();
    let (mut phone, ctrl) = baresip(dir.path(), port, "pw-1001");
    let registered = wait_for(&log, "registered 1001 1", Duration::from_secs(10));
    if registered {
        command(ctrl, "dial", &format!("sip:12345@127.0.0.1:{port}"));
    }
    let confirmed = registered && wait_for(&log, "confirmed", Duration::from_secs(10));
    if confirmed {
        command(ctrl, "hangup", "");
    }
    let ended = confirmed && wait_for(&log, "ended RemoteBye", Duration::from_secs(10));
    command(ctrl, "quit", "");
    let _ = phone.wait();

    // A wrong password: challenged, refused with 403, and nothing bound.
    let before = log.lock().unwrap().len();
    let dir2 = tempfile::tempdir().unwrap();
    let (mut bad, ctrl2) = baresip(dir2.path(), port, "not-the-password");
    let refused = wait_for(&log, "refused 403", Duration::from_secs(10));
    command(ctrl2, "quit", "");
    let _ = bad.wait();

    shutdown.cancel();
    rt.block_on(task).unwrap();
    let log = log.lock().unwrap().clone();
    let phone_log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert!(registered, "baresip did not register: {log:?}\n{phone_log}");
    assert!(
        confirmed,
        "the call was not answered and ACKed: {log:?}\n{phone_log}"
    );
    assert!(ended, "baresip's BYE did not end the call: {log:?}");
    assert!(refused, "the wrong password was not refused: {log:?}");
    assert!(
        !log[before..].iter().any(|l| l.starts_with("registered")),
        "a wrong password bound something: {log:?}"
    );
}
