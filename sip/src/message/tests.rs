//! Parser and serializer tests on hand-written messages; the public corpora are exercised by
//! `sip/tests/corpus.rs`.

use super::*;

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(s.as_bytes(), Delivery::Datagram)
}

const INVITE: &str = "INVITE sip:12345@hotline.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:12345@hotline.example.com>\r\n\
From: \"Citizen\" <sip:13812345678@carrier.example.net>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@192.0.2.10\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:13812345678@192.0.2.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

#[test]
fn a_typical_invite_gives_typed_access() {
    let m = parse(INVITE).unwrap();
    assert!(m.is_request());
    assert_eq!(m.method(), Some(&Method::Invite));
    let uri = m.request_uri().unwrap();
    assert_eq!(uri.as_sip().unwrap().user, Some("12345"));
    let via = m.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(via.port, Some(5060));
    assert_eq!(m.from_header().unwrap().tag(), Some("1928301774"));
    assert_eq!(
        m.from_header().unwrap().display_name().as_deref(),
        Some("Citizen")
    );
    assert_eq!(m.to_header().unwrap().tag(), None);
    assert_eq!(m.call_id(), Some("a84b4c76e66710@192.0.2.10"));
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 314159,
            method: "INVITE"
        }
    );
    assert_eq!(m.max_forwards(), Some(70));
    assert!(m.content_type().unwrap().is("application", "SDP"));
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.contacts().count(), 1);
}

#[test]
fn serialization_round_trips() {
    let m = parse(INVITE).unwrap();
    let bytes = m.to_bytes();
    assert_eq!(bytes, INVITE.as_bytes());
    let again = Message::parse(&bytes, Delivery::Stream).unwrap();
    assert_eq!(again, m);
}

#[test]
fn folded_and_compact_headers_come_out_unfolded() {
    let raw = "OPTIONS sip:a@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1\r\n ;branch=z9hG4bKx\r\n\
f: <sip:b@example.com>;tag=1\r\n\
t: sip:a@example.com\r\n\
i: abc\r\n\
CSeq: 1\r\n\tOPTIONS\r\n\
X-Note: one\r\n   two  \r\n\
l: 0\r\n\r\n";
    let m = parse(raw).unwrap();
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKx"));
    assert_eq!(m.header_by_name("x-note"), Some("one two"));
    assert_eq!(m.header_by_name("Call-ID"), Some("abc"));
    assert_eq!(m.cseq().unwrap().method, "OPTIONS");
    let out = String::from_utf8(m.to_bytes()).unwrap();
    assert!(out.contains("CSeq: 1 OPTIONS\r\n"), "{out}");
    assert!(
        out.contains("v: SIP/2.0/UDP 192.0.2.1 ;branch=z9hG4bKx\r\n"),
        "{out}"
    );
    assert_eq!(parse(&out).unwrap().headers().count(), m.headers().count());
}

#[test]
fn unknown_headers_are_kept_in_order() {
    let raw = INVITE.replace(
        "Max-Forwards: 70\r\n",
        "X-B: 2\r\nMax-Forwards: 70\r\nX-A: 1\r\n",
    );
    let m = parse(&raw).unwrap();
    let unknown: Vec<&str> = m
        .headers()
        .filter(|(n, _, _)| matches!(n, HeaderName::Other(_)))
        .map(|(_, name, _)| name)
        .collect();
    assert_eq!(unknown, vec!["X-B", "X-A"]);
}

#[test]
fn refusals_carry_the_right_status() {
    let cases: &[(&str, &str, u16)] = &[
        ("SIP/2.0\r\n", "SIP/3.0\r\n", 505),
        ("INVITE sip:12345", "INVITE  sip:12345", 400),
        ("CSeq: 314159 INVITE", "CSeq: 314159 BYE", 400),
        ("Content-Length: 4", "Content-Length: 40", 400),
        ("Content-Length: 4", "Content-Length: -4", 400),
        (
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nMax-Forwards: 69",
            400,
        ),
        ("Call-ID: a84b4c76e66710@192.0.2.10\r\n", "", 400),
        (
            "To: <sip:12345@hotline.example.com>",
            "To: <sip:12345@hotline.example.com",
            400,
        ),
        ("Max-Forwards: 70", "Max-Forwards 70", 400),
        (
            "To: <sip:12345@hotline.example.com>",
            "To: <sip:12345@hotline.example.com>;tag",
            400,
        ),
    ];
    for (from, to, status) in cases {
        let raw = INVITE.replacen(from, to, 1);
        let err = parse(&raw).unwrap_err();
        assert_eq!(err.status, Some(*status), "{to}: {err}");
        let reply = String::from_utf8(err.reply().expect("a request gets an answer")).unwrap();
        assert!(reply.starts_with(&format!("SIP/2.0 {status} ")), "{reply}");
        assert!(reply.contains("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport"));
        assert!(reply.contains("Warning: 399 hotline"));
    }
}

#[test]
fn an_unknown_method_with_a_mismatched_cseq_is_501() {
    let raw = INVITE.replacen("INVITE sip:", "NEWMETHOD sip:", 1);
    assert_eq!(parse(&raw).unwrap_err().status, Some(501));
}

#[test]
fn the_answer_adds_a_to_tag_and_ack_gets_none() {
    let raw = INVITE.replacen("Max-Forwards: 70", "Max-Forwards: 700", 1);
    let reply = String::from_utf8(parse(&raw).unwrap_err().reply().unwrap()).unwrap();
    assert!(
        reply.contains("To: <sip:12345@hotline.example.com>;tag=sl"),
        "{reply}"
    );
    let ack = INVITE
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replacen("314159 INVITE", "314159 ACK", 1)
        .replacen("Max-Forwards: 70", "Max-Forwards: 700", 1);
    let err = parse(&ack).unwrap_err();
    assert_eq!(err.status, Some(400));
    assert!(err.reply().is_none());
}

#[test]
fn broken_responses_are_dropped() {
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    assert!(parse(resp).is_ok());
    let broken = resp.replace("CSeq: 1 INVITE", "CSeq: 99999999999 INVITE");
    let err = parse(&broken).unwrap_err();
    assert_eq!(err.status, None);
    assert!(err.reply().is_none());
}

#[test]
fn datagram_extra_bytes_are_ignored_but_noted() {
    let raw = format!("{INVITE}garbage after the body");
    let m = parse(&raw).unwrap();
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.framing().trailing_bytes, "garbage after the body".len());
    assert!(Message::parse(raw.as_bytes(), Delivery::Stream).is_err());
}

#[test]
fn built_messages_serialize_and_reparse() {
    let req = parse(INVITE).unwrap();
    let mut resp = Message::response_to(&req, 180);
    resp.push_header(HeaderName::Contact, "<sip:agent@10.0.0.5>");
    resp.set_body(None, Vec::new());
    let bytes = resp.to_bytes();
    let back = Message::parse(&bytes, Delivery::Stream).unwrap();
    assert_eq!(back.status(), Some(180));
    assert_eq!(back.reason(), Some("Ringing"));
    assert_eq!(back.call_id(), req.call_id());
    assert_eq!(back.top_via(), req.top_via());

    let mut opt = Message::request(Method::Options, "sip:agent@10.0.0.5");
    opt.push_header(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc");
    opt.push_header(HeaderName::From, "<sip:hotline@10.0.0.1>;tag=9");
    opt.push_header(HeaderName::To, "<sip:agent@10.0.0.5>");
    opt.push_header(HeaderName::CallId, "opt1");
    opt.push_header(HeaderName::CSeq, "1 OPTIONS");
    opt.set_body(None, Vec::new());
    let back = Message::parse(&opt.to_bytes(), Delivery::Stream).unwrap();
    assert_eq!(
        back,
        Message::parse(&back.to_bytes(), Delivery::Stream).unwrap()
    );
    assert_eq!(back.method(), Some(&Method::Options));
}

#[test]
fn a_start_line_beginning_with_multibyte_text_is_refused_not_a_panic() {
    // Fuzzer finding: slicing the first 4 bytes of "Bев..." cut a character in two.
    let raw = "B\u{435}\u{432}\u{44f}\u{442}\u{44c} - sip:a@b SIP/2.0\nCSeq: 321 BYE\nContent-Length: 0\n\n";
    assert!(parse(raw).is_err());
    assert!(parse("\u{432}IP/2.0 200 OK\r\n\r\n").is_err());
    assert!(parse("SI\u{432} 200 OK\r\n\r\n").is_err());
}

#[test]
fn the_keys_kept_at_parse_follow_changes_to_the_headers() {
    let mut m = parse(INVITE).unwrap();
    assert_eq!(m.top_branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(m.from_tag(), Some("1928301774"));
    assert_eq!(m.to_tag(), None);
    assert_eq!(
        m.cseq().map(|c| (c.seq, c.method)),
        Some((314159, "INVITE"))
    );
    // A proxy-style change to the top Via, a To tag added by a UAS: read from the new text.
    assert!(m.replace_first_value(&HeaderName::Via, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKnew"));
    assert_eq!(m.top_branch(), Some("z9hG4bKnew"));
    m.remove_headers(&HeaderName::To);
    m.push_header(HeaderName::To, "<sip:12345@hotline.example.com>;tag=abc");
    assert_eq!(m.to_tag(), Some("abc"));
    // Folded and bare-LF heads (the general path) keep them too.
    let folded = INVITE
        .replace("\r\n", "\n")
        .replace("From: \"Citizen\"", "From:\n \"Citizen\"");
    let f = parse(&folded).unwrap();
    assert!(f.framing().bare_line_ends);
    assert_eq!(
        (f.top_branch(), f.from_tag(), f.to_tag()),
        (Some("z9hG4bK776asdhds"), Some("1928301774"), None)
    );
}

#[test]
fn the_one_pass_cut_agrees_with_the_general_one_or_declines() {
    // Every octet class at every position of a head: where the word-at-a-time cut accepts,
    // it must cut exactly as the line-by-line path does (same start line, same fields, same
    // body); everything else it must leave to the general path.
    let base = INVITE.as_bytes();
    let head_len = INVITE.find("\r\n\r\n").unwrap() + 4;
    let view = |text: &str, fields: &[Field], first_len: usize| {
        let fields: Vec<(HeaderName, String)> = fields
            .iter()
            .map(|f| {
                let v = &text[f.value_span.0 as usize..f.value_span.1 as usize];
                (f.name.clone(), v.to_string())
            })
            .collect();
        (text[..first_len].to_string(), fields)
    };
    let mut plain = 0;
    for at in 0..head_len {
        for octet in [
            b'\t', b'\r', b'\n', 0u8, 0x1f, 0x7f, 0x80, 0xc3, b' ', b':', b'a',
        ] {
            for replace in [true, false] {
                let mut data = base.to_vec();
                if replace {
                    data[at] = octet;
                } else {
                    data.insert(at, octet);
                }
                let Some(p) = split_plain(&data, 0) else {
                    continue;
                };
                plain += 1;
                let g = split_general(&data, 0).expect("the general path cuts it too");
                assert!(g.error.is_none(), "{:?}", String::from_utf8_lossy(&data));
                assert_eq!(p.body_start, g.body_start);
                assert_eq!(
                    view(&p.text, &p.fields, p.first_len),
                    view(&g.text, &g.fields, g.first_len),
                    "{:?}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }
    // Ordinary octets (tab, space, letters, colons) keep most variants on the fast path.
    assert!(plain > 1000, "only {plain} variants were plain");
}

#[test]
fn the_control_scan_stops_where_a_byte_by_byte_reading_stops() {
    // Sixteen octets at a time (SSE2) must land on the first control, DEL or non-ASCII octet
    // wherever it sits in its block, and at the end when there is none.
    let reference = |b: &[u8], from: usize| {
        (from..b.len())
            .find(|&i| !(0x20..0x7f).contains(&b[i]))
            .unwrap_or(b.len())
    };
    for len in 0..50 {
        for at in 0..=len {
            for octet in [
                b'\t', b'\r', b'\n', 0, 0x1f, 0x7f, 0x80, 0xe4, 0xff, b' ', b'~',
            ] {
                let mut b = vec![b'a'; len];
                if at < len {
                    b[at] = octet;
                }
                for from in [0, 1, 7, 8, 9, 16] {
                    let from = from.min(len);
                    let want = reference(&b, from);
                    assert_eq!(next_control(&b, from), want, "{b:?} from {from}");
                }
            }
        }
    }
}

#[test]
fn a_host_seen_earlier_in_the_message_changes_no_verdict() {
    // The Request-URI's host is remembered; the same host later, or one that only starts
    // like it, must get the verdict it gets in a message of its own.
    for (to, ok) in [
        ("<sip:a@hotline.example.com>", true),
        ("<sip:a@hotline.example.com.>", true),
        ("<sip:a@hotline.example.com->", false),
        ("<sip:a@hotline.example.com-x.cn>", true),
        ("<sip:a@hotline.example.co>", true),
        ("<sip:a@hotline.example.com..>", false),
        ("<sip:a@10.0.0.21>", true),
        ("<sip:a@10.0.0.211>", true),
        ("<sip:a@10.0.0.2111>", false),
        ("<sip:a@10.0.0.21.5>", false),
    ] {
        for ruri in ["sip:12345@hotline.example.com", "sip:12345@10.0.0.21"] {
            let msg = format!(
                "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.21;branch=z9hG4bKx\r\n\
                 From: <sip:b@10.0.0.21>;tag=1\r\nTo: {to}\r\nCall-ID: c\r\n\
                 CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            assert_eq!(parse(&msg).is_ok(), ok, "{to} after {ruri}");
        }
    }
}
