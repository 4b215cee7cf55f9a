//! What the endpoint answers to the RFC 4475 messages that parse but call for an answer from
//! the UAS core (RFC 4475 section 3.3 and the manifest's notes), fed in-process: nothing
//! leaves the test, whatever hosts the messages name.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::path::PathBuf;
use std::time::Instant;

use hotline_sip::auth::{Algorithm, CredentialStore};
use hotline_sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{Delivery, HeaderName, Message};
use hotline_sip::transaction::{Peer, TransportKind};

fn corpora() -> PathBuf {
    std::env::var_os("HOTLINE_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"))
}

struct NoUsers;
impl CredentialStore for NoUsers {
    fn ha1(&self, _: &str, _: &str, _: Algorithm) -> Option<String> {
        None
    }
}

fn peer() -> Peer {
    Peer {
        addr: "192.0.2.77:5060".parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

/// The status code of a response on the wire (a refusal copies the request's headers, broken
/// ones included, so it need not parse).
fn status_of(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes.get(8..11)?).ok()?.parse().ok()
}

/// Feeds one message; returns the final status sent (if any) and the events.
fn answer(bytes: &[u8]) -> (Option<Message>, Vec<EndpointEvent>) {
    let (resp, events, _) = answer_status(bytes);
    (resp, events)
}

fn answer_status(bytes: &[u8]) -> (Option<Message>, Vec<EndpointEvent>, Option<u16>) {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), now);
    ep.handle_input(now, peer(), bytes, &NoUsers);
    let (mut last, mut status) = (None, None);
    while let Some(t) = ep.poll_transmit() {
        if status_of(&t.bytes).is_some_and(|s| s >= 200) {
            status = status_of(&t.bytes);
            last = Message::parse(&t.bytes, Delivery::Datagram).ok();
        }
    }
    let events = std::iter::from_fn(|| ep.poll_event()).collect();
    (last, events, status)
}

fn rfc4475(name: &str) -> Vec<u8> {
    std::fs::read(corpora().join("rfc4475").join(name)).unwrap()
}

#[test]
fn rfc4475_section_3_3_answers() {
    let cases: &[(&str, u16)] = &[
        ("intmeth.dat", 501),  // 3.1.1.2: unknown method
        ("novelsc.dat", 416),  // 3.3.2: unknown Request-URI scheme
        ("bext01.dat", 420),   // 3.3.5: Require we do not support
        ("invut.dat", 415),    // 3.3.6: unknown body type
        ("regaut01.dat", 401), // 3.3.7: unknown authorization scheme: challenge with ours
        ("zeromf.dat", 200),   // 3.3.11: OPTIONS with Max-Forwards 0 is processed normally
        ("cparam01.dat", 401), // 3.3.12: REGISTER without credentials: challenged
        ("cparam02.dat", 401),
        ("regescrt.dat", 401),
        ("sdp01.dat", 406), // 3.3.15: Accept excludes SDP
        ("wsinv.dat", 481), // 3.1.1.1: To tag for a dialog we do not have
        ("mismatch02.dat", 501),
        ("insuf.dat", 400),
        ("badinv01.dat", 400),
    ];
    let mut wrong = Vec::new();
    for (file, want) in cases {
        let (_, _, got) = answer_status(&rfc4475(file));
        if got != Some(*want) {
            wrong.push(format!("{file}: want {want}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_answers_carry_what_the_rfc_asks() {
    let (resp, _) = answer(&rfc4475("bext01.dat"));
    let resp = resp.unwrap();
    let unsupported: Vec<&str> = resp.tokens(&HeaderName::Unsupported).collect();
    assert_eq!(
        unsupported,
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    assert!(resp.to_header().unwrap().tag().is_some());

    let (resp, _) = answer(&rfc4475("intmeth.dat"));
    assert!(
        resp.unwrap()
            .header(&HeaderName::Allow)
            .unwrap()
            .contains("INVITE")
    );

    let (resp, _) = answer(&rfc4475("regaut01.dat"));
    let resp = resp.unwrap();
    let schemes: Vec<String> = resp
        .auths(&HeaderName::WwwAuthenticate)
        .map(|a| a.param("algorithm").unwrap())
        .collect();
    assert_eq!(schemes, ["SHA-256", "MD5"]);

    let (resp, _) = answer(&rfc4475("invut.dat"));
    assert_eq!(
        resp.unwrap().header(&HeaderName::Accept),
        Some("application/sdp")
    );

    let (resp, _) = answer(&rfc4475("zeromf.dat"));
    let resp = resp.unwrap();
    assert!(resp.header(&HeaderName::Allow).is_some());
}

#[test]
fn requests_for_the_application_reach_it_and_nothing_else_does() {
    // A plain, valid INVITE is for the application; the refused ones are reported.
    let (_, events) = answer(&rfc4475("longreq.dat"));
    assert!(
        matches!(events.as_slice(), [EndpointEvent::Request { .. }]),
        "{events:?}"
    );
    let (_, events) = answer(&rfc4475("novelsc.dat"));
    assert!(matches!(
        events.as_slice(),
        [EndpointEvent::Refused {
            status: Some(416),
            ..
        }]
    ));
}

#[test]
fn an_invite_without_contact_is_400() {
    let invite = String::from_utf8(rfc4475("longreq.dat")).unwrap();
    let start = invite.find("Contact:").unwrap();
    let end = start + invite[start..].find("\r\n").unwrap() + 2;
    let without = format!("{}{}", &invite[..start], &invite[end..]);
    let (_, events, status) = answer_status(without.as_bytes());
    assert_eq!(status, Some(400));
    assert!(matches!(
        events.as_slice(),
        [EndpointEvent::Refused {
            status: Some(400),
            ..
        }]
    ));
}

#[test]
fn invites_with_no_hops_left_and_unwanted_methods() {
    let invite = String::from_utf8(rfc4475("longreq.dat")).unwrap();
    let (resp, _) = answer(
        invite
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
            .as_bytes(),
    );
    assert_eq!(resp.unwrap().status(), Some(483));
    let subscribe = "SUBSCRIBE sip:12345@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKsub\r\n\
        From: <sip:x@192.0.2.77>;tag=1\r\nTo: <sip:12345@192.0.2.2>\r\nCall-ID: s1\r\nCSeq: 1 SUBSCRIBE\r\n\
        Max-Forwards: 70\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n";
    let (resp, _) = answer(subscribe.as_bytes());
    let resp = resp.unwrap();
    assert_eq!(resp.status(), Some(405));
    assert!(resp.header(&HeaderName::Allow).is_some());
}

/// RFC 4475 3.4.1 (`inv2543`): an RFC 2543 INVITE, with no branch, no From tag, no
/// Content-Length and no Max-Forwards, here with the bare LF line ends real stacks send.
const INV2543: &str = "INVITE sip:UserB@biloxi.example.com SIP/2.0\n\
Via: SIP/2.0/UDP iftgw.biloxi.example.com\n\
From: <sip:UserA@atlanta.example.com>\n\
To: <sip:UserB@biloxi.example.com>\n\
Call-ID: 0ha0isndaksdj@10.0.0.1\n\
CSeq: 8 INVITE\n\
Contact: <sip:UserA@iftgw.biloxi.example.com>\n\
Content-Type: application/sdp\n\
\n\
v=0\n\
o=mhandley 29739 7272939 IN IP4 192.0.2.5\n\
s=-\n\
c=IN IP4 192.0.2.5\n\
t=0 0\n\
m=audio 49217 RTP/AVP 0\n";

/// Everything the endpoint sent, as status codes (0 for a request).
fn sent(ep: &mut Endpoint) -> Vec<u16> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| status_of(&t.bytes).unwrap_or(0))
        .collect()
}

#[test]
fn an_rfc_2543_invite_with_bare_line_ends_is_served_as_one_transaction() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), now);
    ep.handle_input(now, peer(), INV2543.as_bytes(), &NoUsers);
    let events: Vec<_> = std::iter::from_fn(|| ep.poll_event()).collect();
    let [EndpointEvent::Request { tx, request, .. }] = events.as_slice() else {
        panic!("the RFC 2543 INVITE did not reach the application: {events:?}");
    };
    assert!(
        request.body().starts_with(b"v=0"),
        "the body is the rest of the datagram"
    );
    let tx = *tx;
    sent(&mut ep);

    // Its retransmission is the same transaction (matched by RFC 3261 17.2.3's legacy rule),
    // not a second call.
    ep.handle_input(now, peer(), INV2543.as_bytes(), &NoUsers);
    assert_eq!(ep.poll_event().map(|e| format!("{e:?}")), None);
    assert_eq!(
        sent(&mut ep),
        [100],
        "the retransmission gets the 100 again"
    );

    let mut busy = Message::response_to(request, 486);
    busy.replace_first_value(&HeaderName::To, "<sip:UserB@biloxi.example.com>;tag=busy1");
    ep.respond(now, tx, busy).unwrap();
    assert_eq!(sent(&mut ep), [486]);
    // A retransmitted INVITE now gets the 486 again; the ACK (no branch either) ends it.
    ep.handle_input(now, peer(), INV2543.as_bytes(), &NoUsers);
    assert_eq!(sent(&mut ep), [486]);
    let ack = "ACK sip:UserB@biloxi.example.com SIP/2.0\n\
Via: SIP/2.0/UDP iftgw.biloxi.example.com\n\
From: <sip:UserA@atlanta.example.com>\n\
To: <sip:UserB@biloxi.example.com>;tag=busy1\n\
Call-ID: 0ha0isndaksdj@10.0.0.1\n\
CSeq: 8 ACK\n\
\n";
    ep.handle_input(now, peer(), ack.as_bytes(), &NoUsers);
    assert_eq!(ep.poll_event().map(|e| format!("{e:?}")), None);
    // Acknowledged: no more 486 retransmissions (timer G) after the ACK.
    let later = now + std::time::Duration::from_secs(8);
    ep.handle_timeout(later, &NoUsers);
    assert_eq!(sent(&mut ep), Vec::<u16>::new());
}

#[test]
fn a_request_that_cannot_be_read_is_answered_400_naming_the_reason() {
    // A CSeq that is not a number, with bare line ends: no meaning to guess, so refused, and
    // the Warning says why (the answer copies the broken CSeq, so it is read as text).
    let broken = INV2543.replace("CSeq: 8 INVITE", "CSeq: eight INVITE");
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), now);
    ep.handle_input(now, peer(), broken.as_bytes(), &NoUsers);
    let answers: Vec<String> = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
        .collect();
    let [answer] = answers.as_slice() else {
        panic!("one answer, not {answers:?}");
    };
    assert!(answer.starts_with("SIP/2.0 400 "), "{answer}");
    let warning = answer
        .lines()
        .find(|l| l.starts_with("Warning: 399 "))
        .unwrap_or_default();
    assert!(warning.contains("CSeq"), "{answer}");
}
