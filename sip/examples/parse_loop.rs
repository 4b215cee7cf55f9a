//! A parse loop for counting instructions (benches/RESULTS.md):
//! `cargo build --release -p hotline-sip --example parse_loop` then
//! `valgrind --tool=callgrind target/release/examples/parse_loop invite 10000` (or `register`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixed inputs: a panic is a broken loop
use hotline_sip::message::{Delivery, Message};
use std::hint::black_box;
#[path = "../benches/messages.rs"]
mod messages;
use messages::{INVITE, REGISTER};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = if args.get(1).map(String::as_str) == Some("register") {
        REGISTER
    } else {
        INVITE
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10000);
    for _ in 0..n {
        let m = Message::parse(black_box(data), Delivery::Datagram).expect("parse");
        black_box(&m);
    }
}
