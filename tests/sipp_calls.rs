//! SIPp call scenarios from ../shared/corpora/sipp-scenarios against the real signaling
//! service on loopback. Until the media engine exists, a test call handler (here, in the test,
//! never in the product) answers with a minimal SDP. The Request-URI user picks what the
//! handler does, as the drachtio-srf scenarios expect of their test apps:
//! - `ring`: 180 and wait (the caller cancels);
//! - `reinvite-bye`: answer, then send a re-INVITE, then hang up;
//! - anything else: 180, 200, and answer re-INVITEs and INFO.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use hotline::config::{Port, SipConfig};
use hotline::signaling::{CallHandler, Credentials, log_event, start_with_handler};
use hotline_sip::endpoint::{DialogId, Endpoint, EndpointEvent};
use hotline_sip::message::{HeaderName, Message, Method};
use hotline_sip::transaction::TxId;
use tokio_util::sync::CancellationToken;

const TEST_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

#[derive(Default)]
struct AnswerCalls {
    /// Dialogs whose script is "re-INVITE, then BYE", with the re-INVITE's transaction.
    scripted: Vec<(DialogId, Option<TxId>)>,
    infos: Arc<std::sync::Mutex<Vec<String>>>,
}

fn with_tag(req: &Message, code: u16, tx: TxId) -> Message {
    let mut r = Message::response_to(req, code);
    if req.to_header().is_some_and(|t| t.tag().is_none())
        && let Some(to) = req.header(&HeaderName::To)
    {
        r.replace_first_value(&HeaderName::To, &format!("{to};tag=t{tx}"));
    }
    r.push_header(HeaderName::Contact, "<sip:12345@127.0.0.1>");
    r
}

impl CallHandler for AnswerCalls {
    fn handle(&mut self, ep: &mut Endpoint, now: Instant, event: EndpointEvent) {
        match event {
            EndpointEvent::Request { tx, request, .. }
                if request.method() == Some(&Method::Invite) =>
            {
                let user = request
                    .request_uri()
                    .and_then(|u| u.as_sip().and_then(|s| s.user).map(str::to_string))
                    .unwrap_or_default();
                let mut ringing = with_tag(&request, 180, tx);
                ringing.set_body(None, Vec::new());
                ep.respond(now, tx, ringing).unwrap();
                if user != "ring" {
                    let mut ok = with_tag(&request, 200, tx);
                    ok.set_body(Some("application/sdp"), TEST_SDP.as_bytes().to_vec());
                    ep.respond(now, tx, ok).unwrap();
                }
            }
            EndpointEvent::CallConfirmed { dialog, ack } => {
                // The ACK's Request-URI is our Contact; the script rides on the To user.
                let to_user = ack
                    .to_header()
                    .and_then(|t| t.uri.as_sip().and_then(|s| s.user).map(str::to_string));
                if to_user.as_deref() == Some("reinvite-bye") {
                    let tx = ep.reinvite(now, &dialog, TEST_SDP.as_bytes()).ok();
                    self.scripted.push((dialog, tx));
                }
            }
            EndpointEvent::Response { tx, response } => {
                if let Some(pos) = self.scripted.iter().position(|(_, t)| *t == Some(tx))
                    && response.status() == Some(200)
                {
                    let (dialog, _) = self.scripted.remove(pos);
                    ep.bye(now, &dialog).unwrap();
                }
            }
            EndpointEvent::Modify { tx, request, .. } => {
                let mut ok = with_tag(&request, 200, tx);
                ok.set_body(Some("application/sdp"), TEST_SDP.as_bytes().to_vec());
                ep.respond(now, tx, ok).unwrap();
            }
            EndpointEvent::Info { request, .. } => {
                let body = String::from_utf8_lossy(request.body()).into_owned();
                self.infos.lock().unwrap().push(body);
            }
            EndpointEvent::Request { tx, request, .. } => {
                let mut r = Message::response_to(&request, 481);
                r.set_body(None, Vec::new());
                let _ = ep.respond(now, tx, r);
            }
            other => log_event(other),
        }
    }
}

fn corpus(path: &str) -> PathBuf {
    let dir = std::env::var_os("HOTLINE_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora"));
    let p = dir.join("sipp-scenarios").join(path);
    assert!(p.is_file(), "scenario {} not found", p.display());
    p
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sipp(target: std::net::SocketAddr, scenario: &PathBuf, service: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sipp")
        .current_dir(dir.path())
        .arg(target.to_string())
        .arg("-sf")
        .arg(scenario)
        .args(["-s", service, "-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args(["-timeout", "30s", "-nostdin", "-trace_err"])
        .output()
        .expect("SIPp is installed (scripts/test.sh installs the sip-tester package)");
    let errors = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    (out.status.code().unwrap_or(-1), errors)
}

#[test]
fn corpus_call_scenarios_complete_against_the_engine() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let handler = AnswerCalls::default();
    let infos = Arc::clone(&handler.infos);
    let cfg = SipConfig {
        listen: "127.0.0.1".parse().unwrap(),
        udp_port: Port(0),
        tcp_port: Port(0),
        ..SipConfig::default()
    };
    let (addrs, task) = rt
        .block_on(start_with_handler(
            &cfg,
            Arc::new(Credentials::default()),
            Box::new(handler),
            shutdown.clone(),
        ))
        .unwrap();
    let scenarios = [
        ("sipp/uac.xml", "12345"), // basic call, caller hangs up
        ("pbertera-SIPp-by-example/Basic/uac.xml", "12345"), // the same from another author
        ("drachtio-srf/uac-cancel.xml", "ring"), // CANCEL before the answer
        ("drachtio-srf/uac-drop-one-200.xml", "12345"), // 200s lost: retransmitted
        ("pbertera-SIPp-by-example/Hold-UAC/uac-hold.xml", "12345"), // hold and unhold re-INVITEs
        ("siphon-rs/info.xml", "12345"), // INFO DTMF
        ("drachtio-srf/uac-recv-reinvite.xml", "reinvite-bye"), // re-INVITE and BYE from us
    ];
    let mut failures = Vec::new();
    for (file, service) in scenarios {
        let (code, errors) = sipp(addrs.udp, &corpus(file), service);
        if code != 0 {
            failures.push(format!("{file} (exit {code}):\n{errors}"));
        }
    }
    shutdown.cancel();
    rt.block_on(task).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let infos = infos.lock().unwrap();
    assert!(
        infos.iter().any(|b| b.contains("Signal=1")),
        "the INFO DTMF reached the application: {infos:?}"
    );
}
