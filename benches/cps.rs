//! Calls per second through the real signaling service, driven by SIPp on loopback
//! (INVITE/100/200/ACK/BYE/200, `benches/sipp/uac_cps.xml`, adapted from ../shared/load).
//!
//! The node answers every INVITE at once with a minimal SDP (a handler of this benchmark's
//! own; the product has no such path). For each rate, SIPp places `rate * seconds` calls; the
//! run reports successful and failed calls, retransmissions and the CPU time the engine used.
//!
//! Run: `cargo bench --bench cps -- [seconds] [rate ...]` (default: 5 s at 1000 2000 3000 4000).

#![allow(clippy::expect_used)] // a benchmark that cannot start has nothing to report

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use hotline::config::{Port, SipConfig};
use hotline::engine::{CallHandler, Credentials, start_with_handler};
use hotline_sip::endpoint::{Endpoint, EndpointEvent};
use hotline_sip::message::{HeaderName, Message, Method};
use tokio_util::sync::CancellationToken;

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

struct AnswerAtOnce;

impl CallHandler for AnswerAtOnce {
    type Msg = ();

    fn handle(&mut self, ep: &mut Endpoint, now: Instant, event: EndpointEvent) {
        if let EndpointEvent::Request { tx, request, .. } = event
            && request.method() == Some(&Method::Invite)
        {
            let mut ok = Message::response_to(&request, 200);
            if let Some(to) = request.header(&HeaderName::To) {
                ok.replace_first_value(&HeaderName::To, &format!("{to};tag=b{tx}"));
            }
            ok.set_body(Some("application/sdp"), SDP.to_vec());
            let _ = ep.respond(now, tx, ok);
        }
    }
}

/// User plus system CPU seconds of this process (the engine runs in it; SIPp does not).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` and test listers do not: a
    // benchmark has nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let seconds: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rates: Vec<u32> = args.iter().skip(1).filter_map(|s| s.parse().ok()).collect();
    if rates.is_empty() {
        rates = vec![1000, 2000, 3000, 4000];
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let shutdown = CancellationToken::new();
    let cfg = SipConfig {
        listen: "127.0.0.1".parse().expect("ip"),
        udp_port: Port(0),
        tcp_port: Port(0),
        ..SipConfig::default()
    };
    let (addrs, task) = rt
        .block_on(start_with_handler(
            &cfg,
            Arc::new(Credentials::default()),
            Box::new(AnswerAtOnce),
            shutdown.clone(),
        ))
        .expect("signaling");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp/uac_cps.xml");
    println!(
        "| rate (calls/s) | calls | successful | failed | retransmissions | engine CPU (s) | engine CPU per call (us) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for rate in rates {
        let calls = rate * seconds;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(45999);
        let cpu0 = cpu_seconds();
        let out = Command::new("sipp")
            .current_dir(dir.path())
            .arg(addrs.udp.to_string())
            .arg("-sf")
            .arg(&scenario)
            .args(["-s", "12345", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
            .args(["-l", &(rate * 2).to_string(), "-buff_size", "4194304"])
            .args(["-nostdin", "-trace_stat", "-stf", "stats.csv", "-fd", "1"])
            .args(["-timeout", &format!("{}s", seconds * 4 + 30)])
            .output()
            .expect("sipp");
        let cpu = cpu_seconds() - cpu0;
        let csv = std::fs::read_to_string(dir.path().join("stats.csv")).unwrap_or_default();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
        let last: Vec<&str> = lines.last().unwrap_or("").split(';').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| last.get(i))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (ok, failed, retrans) = (
            col("SuccessfulCall(C)"),
            col("FailedCall(C)"),
            col("Retransmissions(C)"),
        );
        println!(
            "| {rate} | {calls} | {ok} | {failed} | {retrans} | {cpu:.2} | {:.1} |",
            cpu * 1e6 / f64::from(calls.max(1))
        );
        if !out.status.success() && ok == 0 {
            eprintln!("sipp: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    shutdown.cancel();
    let _ = rt.block_on(task);
}
