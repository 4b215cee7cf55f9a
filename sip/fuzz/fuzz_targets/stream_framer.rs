//! Any byte stream, in any chunking: the framer must not panic, never wait holding more than
//! its limit, and every unit it cuts must parse or be refused cleanly.
#![no_main]

use hotline_sip::message::{Delivery, FrameEvent, Message, StreamFramer};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut framer = StreamFramer::new(LIMIT);
    for piece in rest.chunks(chunk) {
        framer.push(piece);
        loop {
            match framer.next_event() {
                Ok(Some(FrameEvent::Message(m))) => {
                    assert!(m.len() <= LIMIT);
                    let _ = Message::parse(&m, Delivery::Stream);
                }
                Ok(Some(FrameEvent::KeepAlive)) => {}
                Ok(None) => {
                    // Waiting for more never holds more than one message's worth.
                    assert!(framer.buffered() <= LIMIT);
                    break;
                }
                Err(_) => return,
            }
        }
    }
});
