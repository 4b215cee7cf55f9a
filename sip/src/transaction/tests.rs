//! Transactions on a virtual clock: two endpoints joined by a simulated network that can lose
//! or delay chosen messages. `Pair::run` jumps from one deadline to the next; nothing sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::message::{Delivery, HeaderName, Message, Method};

const ALICE: &str = "192.0.2.1:5060";
const BOB: &str = "192.0.2.2:5060";

fn peer(addr: &str, transport: TransportKind) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport,
    }
}

/// What a test decides about each message on the wire.
type Filter = Box<dyn FnMut(&Sent) -> bool>;

/// One message on the wire, for filters and for counting.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    from_alice: bool,
    msg: Message,
}

impl Sent {
    fn is(&self, method: Method) -> bool {
        self.msg.method() == Some(&method)
    }
    fn status(&self) -> Option<u16> {
        self.msg.status()
    }
}

struct Pair {
    now: Instant,
    start: Instant,
    alice: Transactions,
    bob: Transactions,
    transport: TransportKind,
    latency: Duration,
    in_flight: Vec<(Instant, Sent)>,
    /// Return false to lose the message.
    filter: Filter,
    wire: Vec<Sent>,
    alice_events: Vec<Event>,
    bob_events: Vec<Event>,
}

impl Pair {
    fn new(transport: TransportKind) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            start: now,
            alice: Transactions::new(TimerConfig::default()),
            bob: Transactions::new(TimerConfig::default()),
            transport,
            latency: Duration::from_millis(10),
            in_flight: Vec::new(),
            filter: Box::new(|_| true),
            wire: Vec::new(),
            alice_events: Vec::new(),
            bob_events: Vec::new(),
        }
    }

    fn alice_peer(&self) -> Peer {
        peer(ALICE, self.transport)
    }
    fn bob_peer(&self) -> Peer {
        peer(BOB, self.transport)
    }

    fn collect(&mut self) {
        for (from_alice, ep) in [(true, &mut self.alice), (false, &mut self.bob)] {
            while let Some(t) = ep.poll_transmit() {
                let msg =
                    Message::parse(&t.bytes, Delivery::Datagram).expect("we send what we parse");
                let sent = Sent {
                    at: self.now,
                    from_alice,
                    msg,
                };
                self.wire.push(sent.clone());
                if (self.filter)(&sent) {
                    self.in_flight.push((self.now + self.latency, sent));
                }
            }
        }
        while let Some(e) = self.alice.poll_event() {
            self.alice_events.push(e);
        }
        while let Some(e) = self.bob.poll_event() {
            self.bob_events.push(e);
        }
    }

    /// Delivers and fires everything up to `until`, one deadline at a time.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.collect();
            let next_delivery = self.in_flight.iter().map(|(at, _)| *at).min();
            let next = [
                next_delivery,
                self.alice.poll_timeout(),
                self.bob.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|n| *n <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, _)| *at <= now);
            self.in_flight = later;
            for (_, sent) in due {
                let (to, from) = if sent.from_alice {
                    (&mut self.bob, peer(ALICE, self.transport))
                } else {
                    (&mut self.alice, peer(BOB, self.transport))
                };
                to.handle_input(now, from, &sent.msg.to_bytes());
            }
            self.alice.handle_timeout(now);
            self.bob.handle_timeout(now);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn count(&self, pred: impl Fn(&Sent) -> bool) -> usize {
        self.wire.iter().filter(|s| pred(s)).count()
    }

    fn bob_request(&self, method: Method) -> Option<(TxId, Message)> {
        self.bob_events.iter().rev().find_map(|e| match e {
            Event::Request { tx, request, .. } if request.method() == Some(&method) => {
                Some((*tx, request.clone()))
            }
            _ => None,
        })
    }

    fn alice_statuses(&self) -> Vec<u16> {
        self.alice_events
            .iter()
            .filter_map(|e| match e {
                Event::Response { response, .. } => response.status(),
                _ => None,
            })
            .collect()
    }
}

fn request(method: Method, branch: &str, cseq: u32) -> Message {
    let mut m = Message::request(method.clone(), "sip:12345@192.0.2.2");
    m.push_header(
        HeaderName::Via,
        &format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"),
    );
    m.push_header(HeaderName::MaxForwards, "70");
    m.push_header(HeaderName::From, "<sip:caller@192.0.2.1>;tag=a1");
    m.push_header(HeaderName::To, "<sip:12345@192.0.2.2>");
    m.push_header(HeaderName::CallId, "call-1@192.0.2.1");
    m.push_header(HeaderName::CSeq, &format!("{cseq} {method}"));
    m.set_body(None, Vec::new());
    m
}

fn answer(req: &Message, code: u16) -> Message {
    let mut r = Message::response_to(req, code);
    if code > 100 {
        let to = format!("{};tag=b1", req.header(&HeaderName::To).unwrap());
        r.replace_first_value(&HeaderName::To, &to);
    }
    r.set_body(None, Vec::new());
    r
}

#[test]
fn invite_rejected_is_acked_and_everything_ends() {
    let mut p = Pair::new(TransportKind::Udp);
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv1", 1))
        .unwrap();
    p.run_for(Duration::from_millis(50));
    let (tx, inv) = p.bob_request(Method::Invite).expect("bob got the INVITE");
    assert_eq!(
        p.count(|s| s.status() == Some(100)),
        1,
        "100 Trying at once"
    );
    p.bob.respond(p.now, tx, answer(&inv, 180)).unwrap();
    p.bob.respond(p.now, tx, answer(&inv, 486)).unwrap();
    assert_eq!(
        p.bob.respond(p.now, tx, answer(&inv, 200)),
        Err(TxError::State)
    );
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.alice_statuses(), vec![100, 180, 486]);
    assert_eq!(p.count(|s| s.is(Method::Ack)), 1);
    assert_eq!(
        p.count(|s| s.status() == Some(486)),
        1,
        "no retransmission once ACKed"
    );
    assert!(
        p.bob_events
            .iter()
            .all(|e| !matches!(e, Event::Ack { .. } | Event::AckTimeout { .. }))
    );
    assert!(
        p.alice.is_empty() && p.bob.is_empty(),
        "timers D and I ended both"
    );
}

#[test]
fn a_lost_invite_is_retransmitted_and_delivered_once() {
    let mut p = Pair::new(TransportKind::Udp);
    let mut lost = 0;
    p.filter = Box::new(move |s| {
        if s.is(Method::Invite) && lost < 2 {
            lost += 1;
            return false;
        }
        true
    });
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv2", 1))
        .unwrap();
    p.run_for(Duration::from_millis(1600));
    let sends: Vec<Duration> = p
        .wire
        .iter()
        .filter(|s| s.is(Method::Invite))
        .map(|s| s.at - p.start)
        .collect();
    assert_eq!(
        sends,
        vec![
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_millis(1500)
        ],
        "timer A doubles from T1"
    );
    let requests = p
        .bob_events
        .iter()
        .filter(|e| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(requests, 1);
    // The 100 stopped timer A: no more INVITEs.
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.count(|s| s.is(Method::Invite)), 3);
}

#[test]
fn an_unanswered_invite_times_out_after_64_t1() {
    let mut p = Pair::new(TransportKind::Udp);
    p.filter = Box::new(|s| !s.from_alice);
    let bob = p.bob_peer();
    let tx = p
        .alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv3", 1))
        .unwrap();
    p.run_for(Duration::from_secs(31));
    assert!(p.alice_events.is_empty());
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.alice_events, vec![Event::Timeout { tx }]);
    // Sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s.
    assert_eq!(p.count(|s| s.is(Method::Invite)), 7);
    assert!(p.alice.is_empty());
}

#[test]
fn non_invite_retransmissions_cap_at_t2() {
    let mut p = Pair::new(TransportKind::Udp);
    p.filter = Box::new(|s| !s.from_alice);
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Options, "z9hG4bKopt1", 1))
        .unwrap();
    p.run_for(Duration::from_secs(33));
    let gaps: Vec<u64> = p
        .wire
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis() as u64)
        .collect();
    assert_eq!(
        gaps,
        vec![500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
    );
    assert!(matches!(p.alice_events.as_slice(), [Event::Timeout { .. }]));
}

#[test]
fn a_lost_ack_brings_the_failure_again_and_the_ack_again() {
    let mut p = Pair::new(TransportKind::Udp);
    let mut acks_lost = 0;
    p.filter = Box::new(move |s| {
        if s.is(Method::Ack) && acks_lost < 1 {
            acks_lost += 1;
            return false;
        }
        true
    });
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv4", 1))
        .unwrap();
    p.run_for(Duration::from_millis(50));
    let (tx, inv) = p.bob_request(Method::Invite).unwrap();
    p.bob.respond(p.now, tx, answer(&inv, 603)).unwrap();
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.count(|s| s.status() == Some(603)), 2, "timer G once");
    assert_eq!(
        p.count(|s| s.is(Method::Ack)),
        2,
        "the ACK is repeated from Completed"
    );
    assert_eq!(
        p.alice_statuses(),
        vec![100, 603],
        "the TU hears the failure once"
    );
    assert!(
        p.bob_events
            .iter()
            .all(|e| !matches!(e, Event::AckTimeout { .. }))
    );
    assert!(p.alice.is_empty() && p.bob.is_empty());
}

#[test]
fn no_ack_at_all_gives_up_after_64_t1_with_g_capped_at_t2() {
    let mut p = Pair::new(TransportKind::Udp);
    p.filter = Box::new(|s| !s.is(Method::Ack));
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv5", 1))
        .unwrap();
    p.run_for(Duration::from_millis(50));
    let (tx, inv) = p.bob_request(Method::Invite).unwrap();
    let t0 = p.now;
    p.bob.respond(p.now, tx, answer(&inv, 480)).unwrap();
    p.run_for(Duration::from_secs(33));
    let sends: Vec<u64> = p
        .wire
        .iter()
        .filter(|s| s.status() == Some(480))
        .map(|s| (s.at - t0).as_millis() as u64)
        .collect();
    assert_eq!(
        sends,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(p.bob_events.contains(&Event::AckTimeout { tx }));
}

#[test]
fn cancel_before_the_answer_gets_200_and_the_invite_487() {
    let mut p = Pair::new(TransportKind::Udp);
    let bob = p.bob_peer();
    let invite = request(Method::Invite, "z9hG4bKinv6", 1);
    p.alice.send_request(p.now, bob, invite.clone()).unwrap();
    p.run_for(Duration::from_millis(50));
    let (tx, inv) = p.bob_request(Method::Invite).unwrap();
    p.bob.respond(p.now, tx, answer(&inv, 180)).unwrap();
    p.run_for(Duration::from_millis(50));
    // CANCEL: same branch, Request-URI, Call-ID, From, To and CSeq number as the INVITE.
    let cancel = request(Method::Cancel, "z9hG4bKinv6", 1);
    p.alice.send_request(p.now, bob, cancel).unwrap();
    p.run_for(Duration::from_secs(40));
    assert!(p.bob_events.contains(&Event::Cancelled { tx }));
    assert_eq!(p.count(|s| s.status() == Some(487)), 1);
    let r487 = p.wire.iter().find(|s| s.status() == Some(487)).unwrap();
    assert_eq!(
        r487.msg.to_header().unwrap().tag(),
        Some("b1"),
        "the 487 keeps the tag of the 180"
    );
    let cancel_200 = p
        .wire
        .iter()
        .any(|s| s.status() == Some(200) && s.msg.cseq().unwrap().method == "CANCEL");
    assert!(cancel_200);
    assert_eq!(p.count(|s| s.is(Method::Ack)), 1, "the 487 is ACKed");
    assert_eq!(
        p.bob.respond(p.now, tx, answer(&inv, 200)),
        Err(TxError::Unknown)
    );
}

#[test]
fn cancel_racing_the_200_cancels_nothing() {
    let mut p = Pair::new(TransportKind::Udp);
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv7", 1))
        .unwrap();
    p.run_for(Duration::from_millis(50));
    let (tx, inv) = p.bob_request(Method::Invite).unwrap();
    // Bob answers while Alice's CANCEL is already on the wire.
    p.bob.respond(p.now, tx, answer(&inv, 200)).unwrap();
    p.alice
        .send_request(p.now, bob, request(Method::Cancel, "z9hG4bKinv7", 1))
        .unwrap();
    p.run_for(Duration::from_secs(1));
    assert!(
        !p.bob_events
            .iter()
            .any(|e| matches!(e, Event::Cancelled { .. }))
    );
    assert_eq!(p.count(|s| s.status() == Some(487)), 0);
    assert!(p.alice_statuses().contains(&200));
    // The 200 to the INVITE is for the dialog to ACK; the transaction sent no ACK itself.
    assert_eq!(p.count(|s| s.is(Method::Ack)), 0);
}

#[test]
fn cancel_without_an_invite_is_481() {
    let mut p = Pair::new(TransportKind::Udp);
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Cancel, "z9hG4bKnothing", 1))
        .unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.alice_statuses(), vec![481]);
}

#[test]
fn after_a_2xx_invite_retransmissions_are_absorbed_and_the_ack_reaches_the_tu() {
    let mut p = Pair::new(TransportKind::Udp);
    // Lose the 100 and the 200 once, so Alice retransmits the INVITE into Bob's Accepted state.
    let mut lost = 0;
    p.filter = Box::new(move |s| {
        if !s.from_alice && lost < 2 {
            lost += 1;
            return false;
        }
        true
    });
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKinv8", 1))
        .unwrap();
    p.run_for(Duration::from_millis(50));
    let (tx, inv) = p.bob_request(Method::Invite).unwrap();
    p.bob.respond(p.now, tx, answer(&inv, 200)).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(
        p.bob_events
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        1,
        "retransmitted INVITEs never reach the TU twice"
    );
    // The 100 and the 200 were lost, and Alice's INVITE retransmissions were absorbed in Bob's
    // Accepted state (RFC 6026): the 2xx must come again from the UAS core's own
    // retransmission (13.3.1.4), the dialog layer's job, done by hand here.
    p.bob.send_stateless(p.alice_peer(), &answer(&inv, 200));
    p.run_for(Duration::from_millis(50));
    assert!(p.alice_statuses().contains(&200));
    let mut ack = request(Method::Ack, "z9hG4bKack8", 1);
    let to = format!("{};tag=b1", ack.header(&HeaderName::To).unwrap());
    ack.replace_first_value(&HeaderName::To, &to);
    p.alice.send_stateless(bob, &ack);
    p.run_for(Duration::from_millis(50));
    assert!(p.bob_events.iter().any(|e| matches!(e, Event::Ack { .. })));
    p.run_for(Duration::from_secs(40));
    assert!(
        p.alice.is_empty() && p.bob.is_empty(),
        "timers L and M ended both"
    );
}

#[test]
fn a_merged_request_gets_482() {
    let mut p = Pair::new(TransportKind::Udp);
    let bob = p.bob_peer();
    // The same INVITE reaching Bob twice through two forking proxies: new branch each time.
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKpath1", 1))
        .unwrap();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKpath2", 1))
        .unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(
        p.bob_events
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        1
    );
    assert_eq!(p.count(|s| s.status() == Some(482)), 1);
}

#[test]
fn received_and_rport_are_stamped_and_the_answer_goes_to_the_source() {
    let mut ep = Transactions::new(TimerConfig::default());
    let now = Instant::now();
    let nat: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let mut m = request(Method::Options, "z9hG4bKnat", 1);
    m.replace_first_value(
        &HeaderName::Via,
        "SIP/2.0/UDP 10.1.1.5:5060;rport;branch=z9hG4bKnat",
    );
    ep.handle_input(
        now,
        Peer {
            addr: nat,
            transport: TransportKind::Udp,
        },
        &m.to_bytes(),
    );
    let Some(Event::Request {
        tx, request: req, ..
    }) = ep.poll_event()
    else {
        panic!("no request");
    };
    let via = req.top_via().unwrap();
    assert_eq!(via.received(), Some("198.51.100.7"));
    assert_eq!(via.rport(), Some(Some(40000)));
    assert_eq!(via.branch(), Some("z9hG4bKnat"));
    ep.respond(now, tx, answer(&req, 200)).unwrap();
    let t = ep.poll_transmit().unwrap();
    assert_eq!(t.peer.addr, nat);
    let resp = Message::parse(&t.bytes, Delivery::Datagram).unwrap();
    assert_eq!(resp.top_via().unwrap().received(), Some("198.51.100.7"));

    // Without rport: the source IP, but the sent-by port (18.2.2).
    let mut m = request(Method::Options, "z9hG4bKnort", 2);
    m.replace_first_value(
        &HeaderName::Via,
        "SIP/2.0/UDP 10.1.1.5:5070;branch=z9hG4bKnort",
    );
    ep.handle_input(
        now,
        Peer {
            addr: nat,
            transport: TransportKind::Udp,
        },
        &m.to_bytes(),
    );
    let Some(Event::Request {
        tx, request: req, ..
    }) = ep.poll_event()
    else {
        panic!("no request");
    };
    ep.respond(now, tx, answer(&req, 200)).unwrap();
    assert_eq!(
        ep.poll_transmit().unwrap().peer.addr,
        "198.51.100.7:5070".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn over_tcp_nothing_is_retransmitted() {
    let mut p = Pair::new(TransportKind::Tcp);
    p.filter = Box::new(|s| !s.from_alice);
    let bob = p.bob_peer();
    p.alice
        .send_request(p.now, bob, request(Method::Options, "z9hG4bKtcp", 1))
        .unwrap();
    p.alice
        .send_request(p.now, bob, request(Method::Invite, "z9hG4bKtcpinv", 2))
        .unwrap();
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.wire.len(), 2, "one send each, no timer A or E");
    assert_eq!(p.alice_events.len(), 2, "timers B and F still fire");
}

#[test]
fn a_malformed_request_is_answered_400_and_reported() {
    let mut ep = Transactions::new(TimerConfig::default());
    let bad = request(Method::Options, "z9hG4bKbad", 1)
        .to_bytes()
        .into_iter()
        .collect::<Vec<u8>>();
    let text = String::from_utf8(bad)
        .unwrap()
        .replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    let from = peer(ALICE, TransportKind::Udp);
    ep.handle_input(Instant::now(), from, text.as_bytes());
    let t = ep.poll_transmit().expect("an answer");
    assert!(t.bytes.starts_with(b"SIP/2.0 400 "));
    assert!(matches!(ep.poll_event(), Some(Event::Malformed { .. })));
    assert!(ep.is_empty(), "no transaction for a refused request");
}

#[test]
fn many_transactions_keep_the_timer_queue_bounded() {
    let mut ep = Transactions::new(TimerConfig::default());

    let mut now = Instant::now();
    let from = peer(ALICE, TransportKind::Udp);
    for i in 0..1000 {
        let m = request(Method::Options, &format!("z9hG4bKmany{i}"), i + 1);
        let mut m = m;
        m.replace_first_value(&HeaderName::CallId, &format!("many-{i}"));
        ep.handle_input(now, from, &m.to_bytes());
        if let Some(Event::Request {
            tx, request: req, ..
        }) = ep.poll_event()
        {
            ep.respond(now, tx, answer(&req, 200)).unwrap();
        }
    }
    assert_eq!(ep.len(), 1000);
    now += Duration::from_secs(33);
    ep.handle_timeout(now);
    assert_eq!(ep.len(), 0, "timer J ended every one");
    assert_eq!(ep.queued_timers(), 0);
}

#[test]
fn one_source_cannot_hold_more_than_its_share_of_transactions() {
    let mut ep = Transactions::new(TimerConfig::default());
    ep.set_max_per_source(10);
    let now = Instant::now();
    let flood = peer("198.51.100.9:5060", TransportKind::Udp);
    for i in 0..15u32 {
        let mut m = request(Method::Options, &format!("z9hG4bKflood{i}"), i + 1);
        m.replace_first_value(&HeaderName::CallId, &format!("flood-{i}"));
        ep.handle_input(now, flood, &m.to_bytes());
    }
    assert_eq!(ep.len(), 10);
    let busy: Vec<Vec<u8>> = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| t.bytes)
        .collect();
    assert_eq!(busy.len(), 5);
    assert!(busy.iter().all(|b| b.starts_with(b"SIP/2.0 503 ")));
    // Another address is still served.
    let m = request(Method::Options, "z9hG4bKother", 1);
    ep.handle_input(now, peer(ALICE, TransportKind::Udp), &m.to_bytes());
    assert_eq!(ep.len(), 11);
    // Answered requests no longer count against the address.
    let pending: Vec<(TxId, Message)> = std::iter::from_fn(|| ep.poll_event())
        .filter_map(|e| match e {
            Event::Request { tx, request, .. } => Some((tx, request)),
            _ => None,
        })
        .collect();
    let (tx, req) = pending[0].clone();
    ep.respond(now, tx, answer(&req, 200)).unwrap();
    let _ = ep.poll_transmit();
    let m = request(Method::Options, "z9hG4bKafter", 50);
    ep.handle_input(now, flood, &m.to_bytes());
    assert!(
        ep.poll_transmit()
            .is_none_or(|t| !t.bytes.starts_with(b"SIP/2.0 503")),
        "one answered, one more admitted"
    );
    // Requests nobody answers do not hold their place for ever: after 64*T1 they are dropped,
    // and the address is served again.
    while ep.poll_event().is_some() {}
    let later = now + Duration::from_secs(33);
    ep.handle_timeout(later);
    assert_eq!(ep.len(), 0, "unanswered dropped, answered ended by timer J");
    let m = request(Method::Options, "z9hG4bKlater", 99);
    ep.handle_input(later, flood, &m.to_bytes());
    assert!(ep.poll_transmit().is_none(), "served, not refused");
    assert_eq!(ep.len(), 1);
}

#[test]
fn the_table_of_transactions_has_a_global_cap() {
    let mut ep = Transactions::new(TimerConfig::default());
    ep.set_max_transactions(20);
    let now = Instant::now();
    // Spoofed sources, each far under the per-address share, answered at once (held by
    // timer J for 32 s).
    for i in 0..30u32 {
        let from = peer(&format!("198.51.100.{}:5060", i + 1), TransportKind::Udp);
        let mut m = request(Method::Options, &format!("z9hG4bKspoof{i}"), i + 1);
        m.replace_first_value(&HeaderName::CallId, &format!("spoof-{i}"));
        ep.handle_input(now, from, &m.to_bytes());
        while let Some(e) = ep.poll_event() {
            if let Event::Request { tx, request, .. } = e {
                ep.respond(now, tx, answer(&request, 200)).unwrap();
            }
        }
    }
    assert_eq!(ep.len(), 20);
    let sent: Vec<Vec<u8>> = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| t.bytes)
        .collect();
    assert_eq!(
        sent.iter()
            .filter(|b| b.starts_with(b"SIP/2.0 200 "))
            .count(),
        20
    );
    let busy: Vec<&Vec<u8>> = sent
        .iter()
        .filter(|b| b.starts_with(b"SIP/2.0 503 "))
        .collect();
    assert_eq!(busy.len(), 10);
    assert!(
        busy.iter()
            .all(|b| String::from_utf8_lossy(b).contains("Retry-After: 5"))
    );
    // Once they end, requests are taken again.
    let later = now + Duration::from_secs(33);
    ep.handle_timeout(later);
    let m = request(Method::Options, "z9hG4bKback", 99);
    ep.handle_input(later, peer(ALICE, TransportKind::Udp), &m.to_bytes());
    assert_eq!(ep.len(), 1);
}
