//! Memory per established dialog: answers N calls (INVITE, 200 with SDP, ACK) in one
//! endpoint, lets the transactions end (64*T1 on the virtual clock), and divides the heap bytes
//! still held by N. A counting global allocator measures exactly what the engine holds.
//!
//! Run: `cargo bench -p hotline-sip --bench dialog_memory -- [N]` (default 10000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use hotline_sip::auth::{Algorithm, CredentialStore};
use hotline_sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{HeaderName, Message};
use hotline_sip::transaction::{Peer, TransportKind};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; the wrapper only adds to or subtracts from an atomic counter.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct NoUsers;
impl CredentialStore for NoUsers {
    fn ha1(&self, _: &str, _: &str, _: Algorithm) -> Option<String> {
        None
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn invite(i: usize) -> String {
    format!(
        "INVITE sip:12345@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKm{i}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:1381234{i:04}@carrier.example.net>;tag=f{i}\r\n\
         To: <sip:12345@192.0.2.1>\r\nCall-ID: mem-{i}@192.0.2.10\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:1381234{i:04}@192.0.2.10:5060>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn ack(i: usize, to_tag: &str) -> String {
    format!(
        "ACK sip:12345@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa{i}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:1381234{i:04}@carrier.example.net>;tag=f{i}\r\n\
         To: <sip:12345@192.0.2.1>;tag={to_tag}\r\nCall-ID: mem-{i}@192.0.2.10\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn bye(i: usize) -> String {
    format!(
        "BYE sip:12345@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb{i}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:1381234{i:04}@carrier.example.net>;tag=f{i}\r\n\
         To: <sip:12345@192.0.2.1>;tag=t{i}\r\nCall-ID: mem-{i}@192.0.2.10\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` and test listers do not: a
    // benchmark has nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let start = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), start);
    ep.set_local_addr("192.0.2.1:5060".parse().unwrap_or_else(|_| unreachable!()));
    let peer = Peer {
        addr: "192.0.2.10:5060".parse().unwrap_or_else(|_| unreachable!()),
        transport: TransportKind::Udp,
    };
    let before = LIVE.load(Ordering::Relaxed);
    let mut now = start;
    for i in 0..n {
        ep.handle_input(now, peer, invite(i).as_bytes(), &NoUsers);
        while let Some(ev) = ep.poll_event() {
            if let EndpointEvent::Request { tx, request, .. } = ev {
                let mut ok = Message::response_to(&request, 200);
                let tag = format!("t{i}");
                let to = format!(
                    "{};tag={tag}",
                    request.header(&HeaderName::To).unwrap_or("")
                );
                ok.replace_first_value(&HeaderName::To, &to);
                ok.set_body(Some("application/sdp"), SDP.as_bytes().to_vec());
                let _ = ep.respond(now, tx, ok);
                ep.handle_input(now, peer, ack(i, &tag).as_bytes(), &NoUsers);
            }
        }
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }
    let with_transactions = LIVE.load(Ordering::Relaxed) - before;
    now += Duration::from_secs(40);
    ep.handle_timeout(now, &NoUsers);
    while ep.poll_transmit().is_some() {}
    let dialogs_only = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{n} dialogs: {} confirmed; {} transactions live",
        ep.dialog_count(),
        ep.transactions()
    );
    println!(
        "heap per call with its INVITE transaction still live: {} bytes",
        with_transactions / n as isize
    );
    println!(
        "heap per established dialog (transactions ended): {} bytes",
        dialogs_only / n as isize
    );
    // Every call hung up, every transaction ended: what is left is the maps' spare capacity.
    for i in 0..n {
        ep.handle_input(now, peer, bye(i).as_bytes(), &NoUsers);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }
    now += Duration::from_secs(40);
    ep.handle_timeout(now, &NoUsers);
    while ep.poll_transmit().is_some() {}
    println!(
        "after every BYE: {} dialogs, {} transactions, {} bytes per former call still held",
        ep.dialog_count(),
        ep.transactions(),
        (LIVE.load(Ordering::Relaxed) - before) / n as isize
    );
}
