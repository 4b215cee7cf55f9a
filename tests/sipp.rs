//! SIPp, a real SIP peer, against the running node on loopback: OPTIONS, REGISTER with digest
//! authentication (right and wrong password), and a refused INVITE. The scenarios are in
//! tests/sipp/; scripts/test.sh installs SIPp (Debian package sip-tester).
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use hotline_sip::auth::{Algorithm, ha1};
use nix::sys::signal::Signal;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs one scenario once; returns SIPp's exit code and its error log.
fn sipp(target: std::net::SocketAddr, scenario: &str, password: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let out = Command::new("sipp")
        .current_dir(dir.path())
        .arg(target.to_string())
        .arg("-sf")
        .arg(&path)
        .args(["-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args(["-key", "user", "1001", "-au", "1001", "-ap", password])
        .args(["-timeout", "15s", "-nostdin", "-trace_err"])
        .output()
        .expect("SIPp is installed (scripts/test.sh installs the sip-tester package)");
    let errors = common::sipp::errors_in(dir.path());
    (
        out.status.code().unwrap_or(-1),
        format!("{errors}\n{}", String::from_utf8_lossy(&out.stdout)),
    )
}

#[test]
fn sipp_scenarios_pass_against_the_node() {
    // SIPp 3.6 reads only the first challenge and speaks MD5 only: offer MD5 alone.
    let mut n = start_sip_node(r#"digest_algorithms = ["MD5"]"#);
    let (md5, sha) = (
        ha1(Algorithm::Md5, "1001", "hotline", "pw-1001"),
        ha1(Algorithm::Sha256, "1001", "hotline", "pw-1001"),
    );
    n.db.execute(format!(
        "INSERT INTO sip_accounts (username, realm, ha1_md5, ha1_sha256) VALUES ('1001', 'hotline', '{md5}', '{sha}')"
    ));
    // The node reloads its accounts on the NOTIFY; on a busy machine that can take a moment, so
    // the first registration is tried until the account is there (a 403 until then). Four
    // tries a second and a half apart: a fifth failure from one address within a minute would
    // have the registrar block it (brute-force throttling), which no later try could pass.
    for attempt in 1.. {
        std::thread::sleep(Duration::from_millis(if attempt == 1 { 300 } else { 1500 }));
        let (code, log) = sipp(n.udp, "register.xml", "pw-1001");
        if code == 0 {
            break;
        }
        assert!(attempt < 4, "register.xml failed:\n{log}");
    }
    for (scenario, password) in [
        ("options.xml", "x"),
        ("register.xml", "pw-1001"),
        ("register_denied.xml", "wrong"),
        ("invite_refused.xml", "x"),
    ] {
        let (code, log) = sipp(n.udp, scenario, password);
        assert_eq!(code, 0, "{scenario} failed:\n{log}");
    }
    assert_eq!(
        n.node
            .signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)),
        0
    );
}
