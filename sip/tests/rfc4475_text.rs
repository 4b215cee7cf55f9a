//! RFC 4475 torture messages that are not in the shared corpus half, typed in from the RFC's
//! text (IETF, distribution unlimited), with the outcome the RFC gives each one. Together with
//! `corpus.rs` they cover every message of RFC 4475 section 3.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use hotline_sip::message::{Delivery, Message, ParseError};

/// The RFC's messages end their lines with CRLF.
fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn parse(text: &str) -> Result<Message, ParseError> {
    Message::parse(&crlf(text), Delivery::Datagram)
}

/// RFC 4475 `esc01.dat`.
const ESC01: &str = r#"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `esc02.dat`.
const ESC02: &str = r#"RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

"#;

/// RFC 4475 `dblreq.dat`.
const DBLREQ: &str = r#"REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.15
s=-
c=IN IP4 192.0.2.15
t=0 0
m=audio 49217 RTP/AVP 0 12
m =video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `semiuri.dat`.
const SEMIURI: &str = r#"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

"#;

/// RFC 4475 `transports.dat`.
const TRANSPORTS: &str = r#"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

"#;

/// RFC 4475 `clerr.dat`.
const CLERR: &str = r#"INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.155
s=-
c=IN IP4 192.0.2.155
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `lwsstart.dat`.
const LWSSTART: &str = r#"INVITE  sip:user@example.com  SIP/2.0
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `trws.dat`.
const TRWS: &str = r#"OPTIONS sip:remote-target@example.com SIP/2.0  
Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093
To: <sip:remote-target@example.com>
From: <sip:local-resource@example.com>;tag=329429089
Call-ID: trws.oicu34958239neffasdhr2345r
Accept: application/sdp
CSeq: 238923 OPTIONS
Max-Forwards: 70
Content-Length: 0

"#;

/// RFC 4475 `baddate.dat`.
const BADDATE: &str = r#"INVITE sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=2234923
Max-Forwards: 70
Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234
CSeq: 1392934 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
Date: Fri, 01 Jan 2010 16:00:00 EST
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `regbadct.dat`.
const REGBADCT: &str = r#"REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=998332
Max-Forwards: 70
Call-ID: regbadct.k345asrl3fdbv@10.0.0.1
CSeq: 1 REGISTER
Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw
Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E
l: 0

"#;

/// RFC 4475 `badvers.dat`.
const BADVERS: &str = r#"OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0

"#;

/// RFC 4475 `mismatch01.dat`.
const MISMATCH01: &str = r#"OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0

"#;

/// RFC 4475 `multi01.dat`.
const MULTI01: &str = r#"INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: 154
Contact: <sip:caller@host36.example.net>
Max-Forwards: 5

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.25
s=-
c=IN IP4 192.0.2.25
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `bcast.dat`.
const BCAST: &str = r#"SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host28.example.com>

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.198
s=-
c=IN IP4 192.0.2.198
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// RFC 4475 `inv2543.dat`.
const INV2543: &str = r#"INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0
"#;

/// RFC 4475 `unkscm.dat`.
const UNKSCM: &str = r#"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

"#;

/// RFC 4475 `unksm2.dat`.
const UNKSM2: &str = r#"REGISTER sip:example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0

"#;

#[test]
fn the_valid_ones_parse() {
    for (name, text) in [
        ("esc01", ESC01),
        ("esc02", ESC02),
        ("dblreq", DBLREQ),
        ("semiuri", SEMIURI),
        ("transports", TRANSPORTS),
        ("bcast", BCAST),
        ("inv2543", INV2543),
        ("unkscm", UNKSCM),
        ("unksm2", UNKSM2),
    ] {
        if let Err(e) = parse(text) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn the_invalid_ones_get_the_rfc_status_and_an_answer() {
    for (name, text, status) in [
        ("clerr", CLERR, 400),
        ("lwsstart", LWSSTART, 400),
        ("trws", TRWS, 400),
        ("baddate", BADDATE, 400),
        ("regbadct", REGBADCT, 400),
        ("badvers", BADVERS, 505),
        ("mismatch01", MISMATCH01, 400),
        ("multi01", MULTI01, 400),
    ] {
        let e = parse(text).expect_err(name);
        assert_eq!(e.status, Some(status), "{name}: {e}");
        let reply = String::from_utf8(e.reply().expect(name)).unwrap();
        assert!(
            reply.starts_with(&format!("SIP/2.0 {status} ")),
            "{name}: {reply}"
        );
    }
}

#[test]
fn what_the_rfc_says_of_each_valid_one() {
    // 3.1.1.8: the INVITE after the REGISTER is noise to ignore.
    let m = parse(DBLREQ).unwrap();
    assert_eq!(m.method().map(|m| m.as_str()), Some("REGISTER"));
    assert!(m.body().is_empty());
    assert!(m.framing().trailing_bytes > 100);
    // 3.1.1.9: the user part is "user;par=u%40example.net".
    let m = parse(SEMIURI).unwrap();
    let uri = m.request_uri().unwrap();
    assert_eq!(uri.as_sip().unwrap().user, Some("user;par=u%40example.net"));
    assert_eq!(
        hotline_sip::message::unescape(uri.as_sip().unwrap().user.unwrap()),
        b"user;par=u@example.net"
    );
    // 3.1.1.3: escapes stay escaped in the parsed URI and decode on comparison.
    let m = parse(ESC01).unwrap();
    assert_eq!(
        hotline_sip::message::unescape(m.request_uri().unwrap().as_sip().unwrap().user.unwrap()),
        b"sips:user@example.com"
    );
    // 3.1.1.5: an unknown method (a UAS then answers 501); C%6Fntact is another header.
    let m = parse(ESC02).unwrap();
    assert!(m.method().unwrap().is_extension());
    assert_eq!(m.contacts().count(), 2);
    // 3.1.1.10: every transport token is accepted.
    let m = parse(TRANSPORTS).unwrap();
    let transports: Vec<&str> = m.vias().map(|v| v.transport).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // 3.4.1: RFC 2543 syntax, no branch, no tags, no Max-Forwards, no Content-Length.
    let m = parse(INV2543).unwrap();
    assert_eq!(m.top_via().unwrap().branch(), None);
    assert_eq!(m.from_header().unwrap().tag(), None);
    assert_eq!(m.max_forwards(), None);
    assert!(m.body().starts_with(b"v=0"));
    // 3.3.2/3.3.4: unknown schemes are kept opaque.
    let m = parse(UNKSM2).unwrap();
    assert_eq!(m.to_header().unwrap().uri.raw(), "isbn:2983792873");
    let m = parse(UNKSCM).unwrap();
    assert!(matches!(
        m.request_uri(),
        Some(hotline_sip::message::Uri::Other {
            scheme: "nobodyKnowsThisScheme",
            ..
        })
    ));
    // 3.3.10: a response whose second Via is a broadcast address still parses (and, having
    // no transaction, is dropped by the transaction layer).
    assert_eq!(parse(BCAST).unwrap().vias().count(), 2);
}
