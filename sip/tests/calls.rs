//! Calls between two endpoints on a virtual clock, through a simulated network that can lose
//! chosen messages: answer and ACK, lost ACKs, CANCEL before and racing the answer, BYE from
//! either side, BYE racing a re-INVITE, re-INVITE glare, INFO, out-of-order requests.
//! Nothing sleeps; `Net::run_for` jumps from one deadline to the next.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::time::{Duration, Instant};

use hotline_sip::auth::{Algorithm, CredentialStore};
use hotline_sip::endpoint::{DialogId, EndReason, Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{Delivery, HeaderName, Message, Method};
use hotline_sip::transaction::{Peer, TransportKind, TxId};

struct NoUsers;
impl CredentialStore for NoUsers {
    fn ha1(&self, _: &str, _: &str, _: Algorithm) -> Option<String> {
        None
    }
}

const HOTLINE: &str = "192.0.2.1:5060";
const AGENT: &str = "192.0.2.2:5060";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n";

fn peer(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

#[derive(Clone)]
struct Wire {
    at: Instant,
    from_hotline: bool,
    msg: Message,
}

/// Decides each message's copies and their delays.
type Shaper = Box<dyn FnMut(&Wire) -> Vec<Duration>>;

struct Net {
    now: Instant,
    hotline: Endpoint,
    agent: Endpoint,
    in_flight: Vec<(Instant, Wire)>,
    filter: Box<dyn FnMut(&Wire) -> bool>,
    /// Extra copies and delays: each message may be duplicated and each copy delayed by its
    /// own amount, so copies overtake each other (reordering).
    shaper: Shaper,
    wire: Vec<Wire>,
    hotline_events: Vec<EndpointEvent>,
    agent_events: Vec<EndpointEvent>,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let mut hotline = Endpoint::new(EndpointConfig::default(), now);
        hotline.set_local_addr(HOTLINE.parse().unwrap());
        let mut agent = Endpoint::new(EndpointConfig::default(), now);
        agent.set_local_addr(AGENT.parse().unwrap());
        Net {
            now,
            hotline,
            agent,
            in_flight: Vec::new(),
            filter: Box::new(|_| true),
            shaper: Box::new(|_| vec![Duration::from_millis(20)]),
            wire: Vec::new(),
            hotline_events: Vec::new(),
            agent_events: Vec::new(),
        }
    }

    fn collect(&mut self) {
        for (from_hotline, ep) in [(true, &mut self.hotline), (false, &mut self.agent)] {
            while let Some(t) = ep.poll_transmit() {
                let msg =
                    Message::parse(&t.bytes, Delivery::Datagram).expect("we send what we parse");
                let w = Wire {
                    at: self.now,
                    from_hotline,
                    msg,
                };
                self.wire.push(w.clone());
                if (self.filter)(&w) {
                    self.in_flight
                        .push((self.now + Duration::from_millis(20), w));
                }
            }
        }
        while let Some(e) = self.hotline.poll_event() {
            self.hotline_events.push(e);
        }
        while let Some(e) = self.agent.poll_event() {
            self.agent_events.push(e);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.collect();
            let next = self
                .in_flight
                .iter()
                .map(|(at, _)| *at)
                .chain(self.hotline.poll_timeout())
                .chain(self.agent.poll_timeout())
                .min();
            let Some(next) = next.filter(|n| *n <= until) else {
                self.now = until;
                self.collect();
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, _)| *at <= now);
            self.in_flight = later;
            for (_, w) in due {
                let bytes = w.msg.to_bytes();
                if w.from_hotline {
                    self.agent
                        .handle_input(now, peer(HOTLINE), &bytes, &NoUsers);
                } else {
                    self.hotline
                        .handle_input(now, peer(AGENT), &bytes, &NoUsers);
                }
            }
            self.hotline.handle_timeout(now, &NoUsers);
            self.agent.handle_timeout(now, &NoUsers);
        }
    }

    fn count(&self, pred: impl Fn(&Wire) -> bool) -> usize {
        self.wire.iter().filter(|w| pred(w)).count()
    }

    /// The agent's side of the INVITE: its transaction and the request.
    fn agent_invite(&self) -> (TxId, Message) {
        self.agent_events
            .iter()
            .find_map(|e| match e {
                EndpointEvent::Request { tx, request, .. }
                    if request.method() == Some(&Method::Invite) =>
                {
                    Some((*tx, request.clone()))
                }
                _ => None,
            })
            .expect("the agent was offered the call")
    }

    /// The hotline places a call to the agent; the agent answers 180 then 200 with SDP.
    fn call_and_answer(&mut self) -> (TxId, DialogId, DialogId) {
        let tx = self
            .hotline
            .invite(
                self.now,
                peer(AGENT),
                "sip:1001@192.0.2.2:5060",
                "12345",
                Some(SDP),
            )
            .unwrap();
        self.run_for(Duration::from_millis(50));
        let (atx, inv) = self.agent_invite();
        self.agent
            .respond(self.now, atx, answer(&inv, 180, None))
            .unwrap();
        self.agent
            .respond(self.now, atx, answer(&inv, 200, Some(SDP)))
            .unwrap();
        self.run_for(Duration::from_millis(100));
        let hd = self
            .hotline_events
            .iter()
            .find_map(|e| match e {
                EndpointEvent::Answered { dialog, .. } => Some(dialog.clone()),
                _ => None,
            })
            .expect("answered");
        let ad = self
            .agent_events
            .iter()
            .find_map(|e| match e {
                EndpointEvent::CallConfirmed { dialog, .. } => Some(dialog.clone()),
                _ => None,
            })
            .expect("confirmed");
        (tx, hd, ad)
    }
}

fn answer(req: &Message, code: u16, sdp: Option<&[u8]>) -> Message {
    let mut r = Message::response_to(req, code);
    if req.to_header().unwrap().tag().is_none() {
        let to = format!("{};tag=agent1", req.header(&HeaderName::To).unwrap());
        r.replace_first_value(&HeaderName::To, &to);
    }
    r.push_header(HeaderName::Contact, "<sip:1001@192.0.2.2:5060>");
    match sdp {
        Some(b) => r.set_body(Some("application/sdp"), b.to_vec()),
        None => r.set_body(None, Vec::new()),
    }
    r
}

fn is(w: &Wire, method: Method) -> bool {
    w.msg.method() == Some(&method)
}

fn status(w: &Wire) -> Option<u16> {
    w.msg.status()
}

#[test]
fn a_call_is_answered_acked_and_hung_up_by_the_agent() {
    let mut net = Net::new();
    let (_, hd, ad) = net.call_and_answer();
    assert_eq!(hd.call_id, ad.call_id);
    assert_eq!(
        (hd.local_tag.as_str(), ad.local_tag.as_str()),
        (ad.remote_tag.as_str(), "agent1")
    );
    assert!(
        net.hotline_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::Progress { .. }))
    );
    assert_eq!(net.count(|w| is(w, Method::Ack)), 1);
    // The agent hangs up.
    net.agent.bye(net.now, &ad).unwrap();
    net.run_for(Duration::from_secs(1));
    assert!(net.hotline_events.iter().any(|e| matches!(
        e,
        EndpointEvent::CallEnded {
            reason: EndReason::RemoteBye,
            ..
        }
    )));
    assert_eq!(
        net.count(|w| status(w) == Some(200) && w.msg.cseq().unwrap().method == "BYE"),
        1
    );
    assert_eq!(net.hotline.dialog_count() + net.agent.dialog_count(), 0);
    // No 2xx retransmission after the ACK.
    net.run_for(Duration::from_secs(40));
    assert_eq!(
        net.count(|w| status(w) == Some(200) && w.msg.cseq().unwrap().method == "INVITE"),
        1
    );
}

#[test]
fn the_hotline_hangs_up_too() {
    let mut net = Net::new();
    let (_, hd, _) = net.call_and_answer();
    net.hotline.bye(net.now, &hd).unwrap();
    net.run_for(Duration::from_secs(1));
    assert!(
        net.agent_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::CallEnded { .. }))
    );
    let bye = net.wire.iter().find(|w| is(w, Method::Bye)).unwrap();
    assert_eq!(
        bye.msg.request_uri_str(),
        Some("sip:1001@192.0.2.2:5060"),
        "sent to the remote target"
    );
    assert_eq!(bye.msg.cseq().unwrap().seq, 2, "CSeq rises in the dialog");
}

#[test]
fn a_lost_ack_brings_the_2xx_again_and_the_same_ack() {
    let mut net = Net::new();
    let mut lost = false;
    net.filter = Box::new(move |w| {
        if is(w, Method::Ack) && !lost {
            lost = true;
            return false;
        }
        true
    });
    let (_, _, _) = {
        let tx = net
            .hotline
            .invite(
                net.now,
                peer(AGENT),
                "sip:1001@192.0.2.2:5060",
                "12345",
                Some(SDP),
            )
            .unwrap();
        net.run_for(Duration::from_millis(50));
        let (atx, inv) = net.agent_invite();
        net.agent
            .respond(net.now, atx, answer(&inv, 200, Some(SDP)))
            .unwrap();
        net.run_for(Duration::from_secs(2));
        (tx, (), ())
    };
    let invite_200s = net.count(|w| status(w) == Some(200) && !w.from_hotline);
    assert_eq!(invite_200s, 2, "one retransmission at T1");
    assert_eq!(
        net.count(|w| is(w, Method::Ack)),
        2,
        "the ACK repeated for the repeated 2xx"
    );
    let answered = net
        .hotline_events
        .iter()
        .filter(|e| matches!(e, EndpointEvent::Answered { .. }))
        .count();
    assert_eq!(answered, 1, "the application hears the answer once");
    assert!(
        net.agent_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::CallConfirmed { .. }))
    );
}

#[test]
fn no_ack_at_all_ends_the_call_with_a_bye_after_64_t1() {
    let mut net = Net::new();
    net.filter = Box::new(|w| !is(w, Method::Ack));
    net.hotline
        .invite(
            net.now,
            peer(AGENT),
            "sip:1001@192.0.2.2:5060",
            "12345",
            Some(SDP),
        )
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let (atx, inv) = net.agent_invite();
    let t0 = net.now;
    net.agent
        .respond(net.now, atx, answer(&inv, 200, Some(SDP)))
        .unwrap();
    net.run_for(Duration::from_secs(31));
    assert!(
        !net.agent_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::CallEnded { .. }))
    );
    net.run_for(Duration::from_secs(2));
    assert!(net.agent_events.iter().any(|e| matches!(
        e,
        EndpointEvent::CallEnded {
            reason: EndReason::NoAck,
            ..
        }
    )));
    let gaps: Vec<u64> = net
        .wire
        .iter()
        .filter(|w| status(w) == Some(200) && !w.from_hotline)
        .map(|w| (w.at - t0).as_millis() as u64)
        .collect();
    assert_eq!(
        &gaps[..6],
        &[0, 500, 1500, 3500, 7500, 11500],
        "T1 doubling to T2"
    );
    assert!(
        net.wire
            .iter()
            .any(|w| is(w, Method::Bye) && !w.from_hotline)
    );
}

#[test]
fn cancel_before_the_answer_fails_the_call_with_487() {
    let mut net = Net::new();
    let tx = net
        .hotline
        .invite(
            net.now,
            peer(AGENT),
            "sip:1001@192.0.2.2:5060",
            "12345",
            Some(SDP),
        )
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let (atx, inv) = net.agent_invite();
    net.agent
        .respond(net.now, atx, answer(&inv, 180, None))
        .unwrap();
    net.run_for(Duration::from_millis(50));
    net.hotline.cancel(net.now, tx).unwrap();
    net.run_for(Duration::from_secs(1));
    assert!(
        net.agent_events
            .contains(&EndpointEvent::Cancelled { tx: atx })
    );
    assert!(
        net.hotline_events
            .contains(&EndpointEvent::Failed { tx, status: 487 })
    );
    // Too late to answer now.
    assert!(
        net.agent
            .respond(net.now, atx, answer(&inv, 200, Some(SDP)))
            .is_err()
    );
    assert_eq!(net.hotline.dialog_count() + net.agent.dialog_count(), 0);
}

#[test]
fn cancel_racing_the_answer_leaves_an_answered_call() {
    let mut net = Net::new();
    let tx = net
        .hotline
        .invite(
            net.now,
            peer(AGENT),
            "sip:1001@192.0.2.2:5060",
            "12345",
            Some(SDP),
        )
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let (atx, inv) = net.agent_invite();
    net.agent
        .respond(net.now, atx, answer(&inv, 200, Some(SDP)))
        .unwrap();
    net.hotline.cancel(net.now, tx).unwrap(); // crosses the 200 on the wire
    net.run_for(Duration::from_secs(1));
    assert!(
        !net.agent_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::Cancelled { .. }))
    );
    let hd = net
        .hotline_events
        .iter()
        .find_map(|e| match e {
            EndpointEvent::Answered { dialog, .. } => Some(dialog.clone()),
            _ => None,
        })
        .expect("the 200 won");
    // The caller who cancelled hangs up the answered call.
    net.hotline.bye(net.now, &hd).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.hotline.dialog_count() + net.agent.dialog_count(), 0);
}

#[test]
fn reinvites_that_cross_both_get_491() {
    let mut net = Net::new();
    let (_, hd, ad) = net.call_and_answer();
    net.hotline.reinvite(net.now, &hd, SDP).unwrap();
    net.agent.reinvite(net.now, &ad, SDP).unwrap();
    net.run_for(Duration::from_secs(2));
    assert!(
        net.hotline_events
            .contains(&EndpointEvent::Glare { dialog: hd.clone() })
    );
    assert!(
        net.agent_events
            .contains(&EndpointEvent::Glare { dialog: ad.clone() })
    );
    assert_eq!(net.count(|w| status(w) == Some(491)), 2);
    // After the glare, one side tries again and it goes through (hold).
    net.hotline
        .reinvite(net.now, &hd, b"v=0\r\na=sendonly\r\n")
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let (mtx, req) = net
        .agent_events
        .iter()
        .find_map(|e| match e {
            EndpointEvent::Modify { tx, request, .. } => Some((*tx, request.clone())),
            _ => None,
        })
        .expect("the agent is asked to modify");
    assert!(req.body().ends_with(b"a=sendonly\r\n"));
    net.agent
        .respond(net.now, mtx, answer(&req, 200, Some(SDP)))
        .unwrap();
    net.run_for(Duration::from_secs(40));
    let acks_for_reinvite = net.count(|w| is(w, Method::Ack) && w.msg.cseq().unwrap().seq == 3);
    assert_eq!(acks_for_reinvite, 1);
    let reinvite_200s = net.count(|w| status(w) == Some(200) && w.msg.cseq().unwrap().seq == 3);
    assert_eq!(reinvite_200s, 1, "the ACK stopped the retransmissions");
}

#[test]
fn bye_racing_a_reinvite_ends_the_call_and_the_reinvite_gets_481() {
    let mut net = Net::new();
    let (_, hd, ad) = net.call_and_answer();
    let re = net.hotline.reinvite(net.now, &hd, SDP).unwrap();
    net.agent.bye(net.now, &ad).unwrap();
    net.run_for(Duration::from_secs(1));
    assert!(
        net.hotline_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::CallEnded { .. }))
    );
    assert_eq!(net.count(|w| status(w) == Some(481)), 1);
    assert!(net.hotline_events.iter().any(|e| matches!(
        e,
        EndpointEvent::Response { tx, response } if *tx == re && response.status() == Some(481)
    )));
    assert_eq!(net.hotline.dialog_count() + net.agent.dialog_count(), 0);
}

#[test]
fn info_is_delivered_and_answered_and_old_cseqs_get_500() {
    let mut net = Net::new();
    let (_, _, ad) = net.call_and_answer();
    // The agent's dialog holds the hotline's CSeq 1; an INFO with CSeq 5, then a stale 4.
    let d = net.agent.dialog(&ad).unwrap().clone();
    let info = |seq: u32| {
        format!(
            "INFO sip:1001@192.0.2.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinfo{seq}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} INFO\r\nMax-Forwards: 70\r\n\
             Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n",
            d.remote, d.local, d.id.call_id
        )
    };
    net.agent
        .handle_input(net.now, peer(HOTLINE), info(5).as_bytes(), &NoUsers);
    net.agent
        .handle_input(net.now, peer(HOTLINE), info(4).as_bytes(), &NoUsers);
    net.collect();
    let infos: Vec<&Message> = net
        .agent_events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::Info { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 1);
    assert!(infos[0].body().starts_with(b"Signal=5"));
    let statuses: Vec<u16> = net
        .wire
        .iter()
        .filter(|w| !w.from_hotline && w.msg.cseq().unwrap().method == "INFO")
        .filter_map(status)
        .collect();
    assert_eq!(statuses, [200, 500]);
}

#[test]
fn duplicated_and_reordered_messages_change_nothing_the_application_sees() {
    let mut net = Net::new();
    // Every message arrives twice; the copies take 5 to 85 ms, so later messages often
    // overtake earlier ones.
    let mut n: u64 = 7;
    net.shaper = Box::new(move |_| {
        let mut delay = || {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_millis(5 + (n >> 33) % 80)
        };
        vec![delay(), delay()]
    });
    let (_, hd, ad) = net.call_and_answer();
    net.run_for(Duration::from_secs(1));
    net.hotline.reinvite(net.now, &hd, SDP).unwrap();
    net.run_for(Duration::from_millis(300));
    let (mtx, req) = net
        .agent_events
        .iter()
        .find_map(|e| match e {
            EndpointEvent::Modify { tx, request, .. } => Some((*tx, request.clone())),
            _ => None,
        })
        .expect("re-INVITE delivered");
    net.agent
        .respond(net.now, mtx, answer(&req, 200, Some(SDP)))
        .unwrap();
    net.run_for(Duration::from_secs(1));
    net.agent.bye(net.now, &ad).unwrap();
    net.run_for(Duration::from_secs(40));
    let count = |events: &[EndpointEvent], f: fn(&EndpointEvent) -> bool| {
        events.iter().filter(|e| f(e)).count()
    };
    assert_eq!(
        count(&net.agent_events, |e| matches!(
            e,
            EndpointEvent::Request { .. }
        )),
        1
    );
    assert_eq!(
        count(&net.agent_events, |e| matches!(
            e,
            EndpointEvent::CallConfirmed { .. }
        )),
        1
    );
    assert_eq!(
        count(&net.agent_events, |e| matches!(
            e,
            EndpointEvent::Modify { .. }
        )),
        1
    );
    assert_eq!(
        count(&net.hotline_events, |e| matches!(
            e,
            EndpointEvent::Answered { .. }
        )),
        1
    );
    assert_eq!(
        count(&net.hotline_events, |e| matches!(
            e,
            EndpointEvent::CallEnded { .. }
        )),
        1
    );
    assert_eq!(net.hotline.dialog_count() + net.agent.dialog_count(), 0);
    assert_eq!(net.hotline.transactions() + net.agent.transactions(), 0);
}
