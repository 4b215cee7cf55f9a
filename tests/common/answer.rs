//! A call handler for tests: answers calls with a minimal SDP until the media engine exists.
//! It lives in the tests, never in the product. The Request-URI user picks what it does, as
//! the drachtio-srf scenarios expect of their test apps:
//! - `ring`: 180 and wait (the caller cancels);
//! - `reinvite-bye`: answer, then send a re-INVITE, then hang up;
//! - `bye-later`: answer, then hang up 200 ms later from a task of its own, through the
//!   engine handle (as a call's media task does when the IVR ends the call);
//! - anything else: 180, 200, and answer re-INVITEs and INFO.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hotline::engine::{CallHandler, EngineHandle};
use hotline_sip::endpoint::{DialogId, Endpoint, EndpointEvent};
use hotline_sip::message::{HeaderName, Message, Method};
use hotline_sip::transaction::TxId;

const TEST_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Answers calls for tests; what happened is written to `log`.
#[derive(Default)]
pub struct AnswerCalls {
    /// Dialogs whose script is "re-INVITE, then BYE", with the re-INVITE's transaction.
    scripted: Vec<(DialogId, Option<TxId>)>,
    /// One line per event: `registered 1001 1`, `confirmed`, `ended RemoteBye`, `refused 403`,
    /// `info <body>`, `bye sent`.
    pub log: Arc<Mutex<Vec<String>>>,
    engine: Option<EngineHandle<()>>,
}

pub fn with_tag(req: &Message, code: u16, tx: TxId) -> Message {
    let mut r = Message::response_to(req, code);
    if req.to_header().is_some_and(|t| t.tag().is_none())
        && let Some(to) = req.header(&HeaderName::To)
    {
        r.replace_first_value(&HeaderName::To, &format!("{to};tag=t{tx}"));
    }
    r
}

impl CallHandler for AnswerCalls {
    type Msg = ();

    fn attach(&mut self, engine: EngineHandle<()>) {
        self.engine = Some(engine);
    }

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
                self.log.lock().unwrap().push("confirmed".into());
                // The ACK's Request-URI is our Contact; the script rides on the To user.
                let to_user = ack
                    .to_header()
                    .and_then(|t| t.uri.as_sip().and_then(|s| s.user).map(str::to_string));
                if to_user.as_deref() == Some("bye-later")
                    && let Some(engine) = self.engine.clone()
                {
                    let log = Arc::clone(&self.log);
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        engine
                            .run(move |ep, now| {
                                if ep.bye(now, &dialog).is_ok() {
                                    log.lock().unwrap().push("bye sent".into());
                                }
                            })
                            .await;
                    });
                } else if to_user.as_deref() == Some("reinvite-bye") {
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
                self.log.lock().unwrap().push(format!("info {body}"));
            }
            EndpointEvent::CallEnded { reason, .. } => {
                self.log.lock().unwrap().push(format!("ended {reason:?}"));
            }
            EndpointEvent::Registration { aor, contacts } => {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("registered {aor} {contacts}"));
            }
            EndpointEvent::Refused { status, .. } => {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("refused {}", status.unwrap_or(0)));
            }
            EndpointEvent::Request { tx, request, .. } => {
                let mut r = Message::response_to(&request, 481);
                r.set_body(None, Vec::new());
                let _ = ep.respond(now, tx, r);
            }
            _ => {}
        }
    }
}
