//! Any datagram: the parser must not panic; what it accepts must serialize to something it
//! accepts again, saying the same thing; what it refuses must give an answer whose syntax
//! parses (it may lack From or To when the request did, and keeps a broken Via as it came).
#![no_main]

use hotline_sip::message::{Delivery, HeaderName, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Message::parse(data, Delivery::Datagram) {
        Ok(m) => {
            let again = Message::parse(&m.to_bytes(), Delivery::Stream)
                .expect("a serialized message must parse again");
            // The serializer adds a Content-Length when there was none; nothing else changes.
            let fields = |x: &Message| {
                x.headers()
                    .filter(|(n, _, _)| **n != HeaderName::ContentLength)
                    .count()
            };
            assert_eq!(fields(&again), fields(&m));
            assert_eq!(again.body(), m.body());
            assert_eq!(again.method(), m.method());
            assert_eq!(again.status(), m.status());
            assert_eq!(again.call_id(), m.call_id());
            // The keys kept at parse are what a second reading of the headers says.
            assert_eq!(m.top_branch(), m.top_via().and_then(|v| v.branch()));
            assert_eq!(m.from_tag(), m.from_header().and_then(|f| f.tag()));
            assert_eq!(m.to_tag(), m.to_header().and_then(|t| t.tag()));
            let _ = (m.vias().count(), m.contacts().count(), m.routes().count());
            let _ = (m.from_header(), m.to_header(), m.cseq(), m.request_uri());
        }
        Err(e) => {
            if let Some(reply) = e.reply() {
                if let Err(e) = Message::parse_syntax(&reply, Delivery::Stream) {
                    assert!(e.detail.contains("Via"), "the answer does not parse: {e}");
                }
            }
        }
    }
});
