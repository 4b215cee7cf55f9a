//! SDP bodies of the corpora: the RFC 4475/5118 INVITEs' offers are answered; the WebRTC and
//! broadcast descriptions of sdp-transform parse (or, for the one labelled invalid, do not);
//! descriptions we cannot serve get 488, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::path::PathBuf;

use hotline_sip::message::{Delivery, Message};
use hotline_sip::sdp::{Codec, Local, Sdp, answer};

fn corpora() -> PathBuf {
    std::env::var_os("HOTLINE_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"))
}

fn local() -> Local {
    Local {
        addr: "192.0.2.1:20000".parse().unwrap(),
        session_id: 1,
        version: 1,
    }
}

#[test]
fn torture_invites_offer_g711_and_get_an_answer() {
    for (file, codec) in [
        ("rfc4475/wsinv.dat", Some(Codec::Pcmu)),
        ("rfc4475/longreq.dat", Some(Codec::Pcmu)),
        ("rfc5118/mult-ip-in-sdp.dat", Some(Codec::Pcmu)),
        // G.726 audio and H.263 video only: nothing we speak.
        ("rfc5118/ipv6-in-sdp.dat", None),
    ] {
        let bytes = std::fs::read(corpora().join(file)).unwrap();
        let m = Message::parse(&bytes, Delivery::Datagram).unwrap();
        let offer = Sdp::parse(std::str::from_utf8(m.body()).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        match (answer(&offer, local()), codec) {
            (Ok((_, n)), Some(c)) => assert_eq!(n.codec, c, "{file}"),
            (Err(e), None) => assert_eq!(e.status(), 488, "{file}"),
            (other, _) => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn sdp_transform_descriptions() {
    let manifest = std::fs::read_to_string(corpora().join("manifest.tsv")).unwrap();
    let mut checked = 0;
    for row in manifest.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        if !cols[0].ends_with(".sdp") {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(corpora().join(cols[0])).unwrap();
        let parsed = Sdp::parse(&text);
        match cols[4] {
            "invalid" => assert!(parsed.is_err(), "{} accepted", cols[0]),
            _ => {
                let sdp = parsed.unwrap_or_else(|e| panic!("{}: {e}", cols[0]));
                // Round trip.
                assert_eq!(Sdp::parse(&sdp.to_string()).unwrap(), sdp, "{}", cols[0]);
                // Offer/answer: G.711 audio gets an answer, anything else a 488.
                if let Err(e) = answer(&sdp, local()) {
                    assert!(e.status() == 488 || e.status() == 400, "{}: {e}", cols[0]);
                }
            }
        }
    }
    assert!(checked >= 18, "only {checked} SDP files");
}
