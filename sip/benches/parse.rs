//! Parse throughput, side by side in one run: our parser, ezk-sip-types and rsipstack's parser
//! on a typical INVITE with SDP and a REGISTER. Two measures per parser:
//! - `parse`: the library's own message parse (ours validates every header it knows; ezk splits
//!   header lines; rsipstack builds its header list);
//! - `parse+read`: plus reading what a UAS reads of every request: top Via branch, From tag,
//!   To tag, Call-ID and CSeq.
//!
//! Run: `cargo bench -p hotline-sip --bench parse`; results in benches/RESULTS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // fixed inputs: a panic is a broken benchmark

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline_sip::message::{Delivery, Message};

#[path = "messages.rs"]
mod messages;
use messages::{INVITE, REGISTER};

fn ours(data: &[u8], read: bool) {
    let m = Message::parse(data, Delivery::Datagram).expect("ours");
    if read {
        black_box(m.top_branch());
        black_box(m.from_tag());
        black_box(m.to_tag());
        black_box(m.call_id());
        black_box(m.cseq());
    }
    black_box(&m);
}

fn ezk(data: &[u8], read: bool) {
    use bytes::Bytes;
    use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::{Headers, Name};
    let src = Bytes::copy_from_slice(data);
    let mut lines = PullParser::new(&src, 0);
    let first = std::str::from_utf8(lines.next().expect("line").expect("complete")).expect("utf8");
    let line = MessageLine::from_str(first).expect("start line");
    let mut headers = Headers::new();
    for l in lines {
        let l = std::str::from_utf8(l.expect("complete")).expect("utf8");
        let (_, parsed) = Line::parse(&src, l).expect("line");
        headers.insert(parsed.name, parsed.value);
    }
    if read {
        black_box(headers.get_named::<Vec<Via>>().ok());
        black_box(headers.get::<FromTo>(Name::FROM).ok());
        black_box(headers.get::<FromTo>(Name::TO).ok());
        black_box(headers.get_named::<CallID>().ok());
        black_box(headers.get_named::<CSeq>().ok());
    }
    black_box((&line, &headers));
}

fn rsipstack(data: &[u8], read: bool) {
    use rsipstack::sip::headers::ToTypedHeader;
    use rsipstack::sip::message::{HeadersExt, SipMessage};
    let m = rsipstack::sip::parser::parse_message(data).expect("rsipstack");
    if read && let SipMessage::Request(r) = &m {
        black_box(
            r.top_via_header()
                .ok()
                .and_then(|v| v.typed().ok())
                .map(|v| v.branch().cloned()),
        );
        black_box(r.from_header().ok().map(|f| f.tag().ok()));
        black_box(r.to_header().ok().map(|t| t.tag().ok()));
        black_box(r.call_id_header().ok());
        black_box(r.cseq_header().ok());
    }
    black_box(&m);
}

fn bench(c: &mut Criterion) {
    for (name, data) in [("invite_sdp", INVITE), ("register", REGISTER)] {
        for read in [false, true] {
            let label = if read { "parse+read" } else { "parse" };
            let mut g = c.benchmark_group(format!("{name}/{label}"));
            g.throughput(Throughput::Bytes(data.len() as u64));
            g.bench_function("hotline", |b| b.iter(|| ours(black_box(data), read)));
            g.bench_function("ezk-sip-types", |b| b.iter(|| ezk(black_box(data), read)));
            g.bench_function("rsipstack", |b| b.iter(|| rsipstack(black_box(data), read)));
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
