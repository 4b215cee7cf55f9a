//! RFC 4028 session timers on the UAS side: the caller refreshes, the engine watches, and a
//! session nobody refreshes is ended with a BYE before it expires. Virtual clock, no sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::time::{Duration, Instant};

use hotline_sip::auth::{Algorithm, CredentialStore};
use hotline_sip::endpoint::{EndReason, Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{Delivery, HeaderName, Message, Method};
use hotline_sip::transaction::{Peer, TransportKind};

struct NoUsers;
impl CredentialStore for NoUsers {
    fn ha1(&self, _: &str, _: &str, _: Algorithm) -> Option<String> {
        None
    }
}

fn caller() -> Peer {
    Peer {
        addr: "192.0.2.10:5060".parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

fn invite(se: u32) -> String {
    format!(
        "INVITE sip:12345@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKst{se}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:13812345678@192.0.2.10>;tag=c1\r\nTo: <sip:12345@192.0.2.1>\r\n\
         Call-ID: st-{se}\r\nCSeq: 1 INVITE\r\nContact: <sip:13812345678@192.0.2.10>\r\n\
         Supported: timer\r\nSession-Expires: {se}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn in_dialog(method: &str, se: u32, seq: u32, to_tag: &str) -> String {
    format!(
        "{method} sip:12345@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKst{se}m{seq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:13812345678@192.0.2.10>;tag=c1\r\nTo: <sip:12345@192.0.2.1>;tag={to_tag}\r\n\
         Call-ID: st-{se}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Answers the INVITE and ACKs it; returns the endpoint, the 200 sent, our tag and the start.
fn answered(se: u32) -> (Endpoint, Message, String, Instant) {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), t0);
    ep.handle_input(t0, caller(), invite(se).as_bytes(), &NoUsers);
    let Some(EndpointEvent::Request { tx, request, .. }) = ep.poll_event() else {
        panic!("no INVITE event")
    };
    let mut ok = Message::response_to(&request, 200);
    ok.replace_first_value(&HeaderName::To, "<sip:12345@192.0.2.1>;tag=hl1");
    ok.set_body(None, Vec::new());
    ep.respond(t0, tx, ok).unwrap();
    let sent: Vec<Message> = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| Message::parse(&t.bytes, Delivery::Datagram).unwrap())
        .collect();
    let ok = sent.into_iter().find(|m| m.status() == Some(200)).unwrap();
    ep.handle_input(
        t0,
        caller(),
        in_dialog("ACK", se, 1, "hl1").as_bytes(),
        &NoUsers,
    );
    assert!(matches!(
        ep.poll_event(),
        Some(EndpointEvent::CallConfirmed { .. })
    ));
    (ep, ok, "hl1".into(), t0)
}

fn byes_after(ep: &mut Endpoint, at: Instant) -> (usize, Vec<EndpointEvent>) {
    ep.handle_timeout(at, &NoUsers);
    let byes = std::iter::from_fn(|| ep.poll_transmit())
        .filter(|t| t.bytes.starts_with(b"BYE "))
        .count();
    (byes, std::iter::from_fn(|| ep.poll_event()).collect())
}

#[test]
fn the_answer_grants_the_interval_and_makes_the_caller_refresh() {
    let (_, ok, _, _) = answered(120);
    assert_eq!(
        ok.header(&HeaderName::SessionExpires),
        Some("120;refresher=uac")
    );
    assert!(ok.tokens(&HeaderName::Require).any(|t| t == "timer"));
}

#[test]
fn an_unrefreshed_session_is_ended_before_it_expires() {
    let (mut ep, _, _, t0) = answered(90);
    // 90 s minus min(32 s, 30 s): the BYE goes at 60 s.
    let (byes, _) = byes_after(&mut ep, t0 + Duration::from_secs(59));
    assert_eq!(byes, 0);
    let (byes, events) = byes_after(&mut ep, t0 + Duration::from_secs(61));
    assert_eq!(byes, 1);
    assert!(events.iter().any(|e| matches!(
        e,
        EndpointEvent::CallEnded {
            reason: EndReason::SessionExpired,
            ..
        }
    )));
    assert_eq!(ep.dialog_count(), 0);
}

#[test]
fn a_refresh_restarts_the_clock() {
    let (mut ep, _, tag, t0) = answered(90);
    let at = t0 + Duration::from_secs(40);
    ep.handle_input(
        at,
        caller(),
        in_dialog("UPDATE", 90, 2, &tag).as_bytes(),
        &NoUsers,
    );
    let Some(EndpointEvent::Modify { tx, request, .. }) = ep.poll_event() else {
        panic!("UPDATE not delivered")
    };
    assert_eq!(request.method(), Some(&Method::Update));
    let mut ok = Message::response_to(&request, 200);
    ok.set_body(None, Vec::new());
    ep.respond(at, tx, ok).unwrap();
    while ep.poll_transmit().is_some() {}
    let (byes, _) = byes_after(&mut ep, t0 + Duration::from_secs(61));
    assert_eq!(byes, 0, "refreshed at 40 s");
    let (byes, _) = byes_after(&mut ep, t0 + Duration::from_secs(101));
    assert_eq!(byes, 1, "40 s + 60 s later, no second refresh");
}

#[test]
fn too_short_an_interval_is_422_with_min_se() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), t0);
    ep.handle_input(t0, caller(), invite(60).as_bytes(), &NoUsers);
    let r = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| Message::parse(&t.bytes, Delivery::Datagram).unwrap())
        .find(|m| m.status().is_some_and(|s| s >= 200))
        .unwrap();
    assert_eq!(r.status(), Some(422));
    assert_eq!(r.header(&HeaderName::MinSe), Some("90"));
}

#[test]
fn a_callee_that_refreshes_itself_is_watched_too() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), t0);
    let agent = Peer {
        addr: "192.0.2.20:5060".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    ep.invite(t0, agent, "sip:1001@192.0.2.20:5060", "12345", None)
        .unwrap();
    let invite = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| Message::parse(&t.bytes, Delivery::Datagram).unwrap())
        .find(|m| m.method() == Some(&Method::Invite))
        .unwrap();
    let mut ok = Message::response_to(&invite, 200);
    let to = format!("{};tag=agent", invite.header(&HeaderName::To).unwrap());
    ok.replace_first_value(&HeaderName::To, &to);
    ok.push_header(HeaderName::Contact, "<sip:1001@192.0.2.20:5060>");
    ok.push_header(HeaderName::SessionExpires, "90;refresher=uas");
    ok.set_body(None, Vec::new());
    ep.handle_input(t0, agent, &ok.to_bytes(), &NoUsers);
    assert!(matches!(
        ep.poll_event(),
        Some(EndpointEvent::Answered { .. })
    ));
    while ep.poll_transmit().is_some() {}
    let (byes, _) = byes_after(&mut ep, t0 + Duration::from_secs(59));
    assert_eq!(byes, 0);
    let (byes, events) = byes_after(&mut ep, t0 + Duration::from_secs(61));
    assert_eq!(byes, 1);
    assert!(events.iter().any(|e| matches!(
        e,
        EndpointEvent::CallEnded {
            reason: EndReason::SessionExpired,
            ..
        }
    )));
}
