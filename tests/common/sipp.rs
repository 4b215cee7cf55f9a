//! Running SIPp scenarios (Debian package sip-tester) against a service on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;

/// A scenario of ../shared/corpora/sipp-scenarios (or `$HOTLINE_CORPORA`).
pub fn corpus(path: &str) -> PathBuf {
    let dir = std::env::var_os("HOTLINE_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora"));
    let p = dir.join("sipp-scenarios").join(path);
    assert!(p.is_file(), "scenario {} not found", p.display());
    p
}

/// A UDP port free on loopback now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs one call of `scenario` against `target` with `-s service`: SIPp's exit code and its
/// error log.
pub fn sipp(target: std::net::SocketAddr, scenario: &PathBuf, service: &str) -> (i32, String) {
    sipp_with(target, scenario, service, &[])
}

/// [`sipp`] with more arguments (`-d 1500` for the length of a `<pause/>`).
pub fn sipp_with(
    target: std::net::SocketAddr,
    scenario: &PathBuf,
    service: &str,
    extra: &[&str],
) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    sipp_in(dir.path(), target, scenario, service, extra)
}

/// [`sipp_with`] run in `dir` (where `rtp_stream` finds its audio files); the error log is
/// read from there too.
pub fn sipp_in(
    dir: &std::path::Path,
    target: std::net::SocketAddr,
    scenario: &PathBuf,
    service: &str,
    extra: &[&str],
) -> (i32, String) {
    let out = Command::new("sipp")
        .current_dir(dir)
        .arg(target.to_string())
        .arg("-sf")
        .arg(scenario)
        .args(["-s", service, "-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args(["-timeout", "30s", "-nostdin", "-trace_err"])
        .args(extra)
        .output()
        .expect("SIPp is installed (scripts/test.sh installs the sip-tester package)");
    (out.status.code().unwrap_or(-1), errors_in(dir))
}

/// The error logs (`-trace_err`) SIPp runs wrote in `dir`.
pub fn errors_in(dir: &std::path::Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

/// pbertera-SIPp-by-example's hold scenario (talk 3 s, re-INVITE sendonly, 3 s, re-INVITE,
/// 3 s, BYE), made runnable in `dir`. As published it does not test hold under SIPp 3.6.1:
/// its `<nop display=...>` before the first re-INVITE ends the call there and SIPp counts it a
/// success; and its BYE carries CSeq 2 after the re-INVITEs' 2 and 3, which RFC 3261 12.2.2
/// answers 500. The copy drops the display, numbers the BYE 4 and points the pcap at the
/// corpus.
pub fn hold_scenario(dir: &std::path::Path) -> PathBuf {
    let original = corpus("pbertera-SIPp-by-example/Hold-UAC/uac-hold.xml");
    let text = std::fs::read_to_string(&original).unwrap();
    let pcap = corpus("pbertera-SIPp-by-example/pcap/g711a.pcap");
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("<nop display=") {
            skipping = !t.ends_with("/>");
            continue;
        }
        if skipping {
            skipping = !t.starts_with("</nop>");
            continue;
        }
        let line = line
            .replace("CSeq: 2 BYE", "CSeq: 4 BYE")
            .replace("../pcap/g711a.pcap", &pcap.display().to_string());
        out.push_str(&line);
        out.push('\n');
    }
    assert!(out.contains("CSeq: 4 BYE") && !out.contains("display="));
    let path = dir.join("uac-hold.xml");
    std::fs::write(&path, out).unwrap();
    path
}
