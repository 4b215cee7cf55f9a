//! SDP parsing and offer/answer on hand-written offers; the corpora's SDP bodies are read by
//! `sip/tests/sdp_corpus.rs`.

use super::*;

fn local() -> Local {
    Local {
        addr: "192.0.2.1:20000".parse().unwrap(),
        session_id: 42,
        version: 1,
    }
}

const CARRIER: &str = "v=0\r\no=gw 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n";

#[test]
fn the_callers_preferred_law_and_telephone_event_are_answered() {
    let offer = Sdp::parse(CARRIER).unwrap();
    let (ans, n) = answer(&offer, local()).unwrap();
    assert_eq!(n.codec, Codec::Pcma, "PCMA came first in the offer");
    assert_eq!(n.dtmf, Some(101));
    assert_eq!(n.remote, "192.0.2.10:49170".parse().unwrap());
    assert_eq!(n.direction, Direction::SendRecv);
    let text = ans.to_string();
    assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{text}");
    assert!(
        text.contains("a=rtpmap:101 telephone-event/8000\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP4 192.0.2.1\r\n"), "{text}");
    // The answer parses and, read back by the offerer, says the same.
    let back = accept_answer(&Sdp::parse(&text).unwrap()).unwrap();
    assert_eq!((back.codec, back.dtmf), (Codec::Pcma, Some(101)));
}

#[test]
fn no_g711_is_488_and_other_streams_are_refused_in_place() {
    let g729 = CARRIER.replace("m=audio 49170 RTP/AVP 8 0 101", "m=audio 49170 RTP/AVP 18");
    let e = answer(&Sdp::parse(&g729).unwrap(), local()).unwrap_err();
    assert_eq!(e.status(), 488);
    let with_video = format!("{CARRIER}m=video 3227 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n");
    let (ans, _) = answer(&Sdp::parse(&with_video).unwrap(), local()).unwrap();
    assert_eq!(ans.media.len(), 2);
    assert_eq!(
        ans.media[1].port, 0,
        "video refused in the answer, order kept"
    );
}

#[test]
fn hold_and_unhold_change_the_direction() {
    let hold = format!("{}a=sendonly\r\n", CARRIER);
    let (_, n) = answer(&Sdp::parse(&hold).unwrap(), local()).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    let old_style = CARRIER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
    let (_, n) = answer(&Sdp::parse(&old_style).unwrap(), local()).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly, "c=0.0.0.0 is hold");
    let inactive = format!("{}a=inactive\r\n", CARRIER);
    assert_eq!(
        answer(&Sdp::parse(&inactive).unwrap(), local())
            .unwrap()
            .1
            .direction,
        Direction::Inactive
    );
    let unhold = format!("{}a=sendrecv\r\n", CARRIER);
    assert_eq!(
        answer(&Sdp::parse(&unhold).unwrap(), local())
            .unwrap()
            .1
            .direction,
        Direction::SendRecv
    );
}

#[test]
fn ptime_and_rtcp_mux_are_honoured() {
    // 40 ms is two of our frames: honoured.
    let o = CARRIER.replace("a=ptime:20", "a=ptime:40\r\na=rtcp-mux");
    let (ans, n) = answer(&Sdp::parse(&o).unwrap(), local()).unwrap();
    assert_eq!((n.ptime, n.rtcp_mux), (40, true));
    assert!(ans.to_string().contains("a=ptime:40\r\na=rtcp-mux\r\n"));
    // 30 ms is not a whole number of 20 ms frames: answered with 20.
    let o = CARRIER.replace("a=ptime:20", "a=ptime:30");
    let (ans, n) = answer(&Sdp::parse(&o).unwrap(), local()).unwrap();
    assert_eq!(n.ptime, 20);
    assert!(ans.to_string().contains("a=ptime:20\r\n"));
}

#[test]
fn our_offer_and_static_types_without_rtpmap() {
    let o = offer(local(), Direction::SendRecv);
    let parsed = Sdp::parse(&o.to_string()).unwrap();
    assert_eq!(parsed, o);
    let bare = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(
        answer(&Sdp::parse(bare).unwrap(), local()).unwrap().1.codec,
        Codec::Pcmu
    );
}

#[test]
fn malformed_descriptions_are_400() {
    for bad in [
        "",
        "o=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=1\r\n",
        "v=0\r\nthis is not sdp\r\n",
        "v=0\r\nf=invalid:yes\r\n",
        "v=0\r\nm=audio\r\n",
        "v=0\r\nm=audio port RTP/AVP 0\r\n",
        "v=0\r\nc=IN IP7 X\r\n",
        "v=0\r\nc=IN IP4 host.example.com\r\n",
    ] {
        assert_eq!(Sdp::parse(bad).map_err(|e| e.status()), Err(400), "{bad:?}");
    }
}
