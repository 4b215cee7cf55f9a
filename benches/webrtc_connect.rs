//! Shift start: N browser agents' legs connect to the WebRTC gateway at the same moment.
//!
//! The gateway ([`hotline::engine::webrtc::Gateway`], one UDP port for everyone) makes N offers; N
//! str0m clients (full ICE, controlling, DTLS client, as a browser is), each on its own UDP
//! socket and task, answer them all at once. Every client must reach `Connected` (ICE and
//! DTLS done, SRTP keyed) and then receive audio the gateway sends it from the media engine's
//! side; the time from the start to each connection gives p50/p99 (str0m issue #932 reports
//! most DTLS handshakes failing with many clients at once: this is the check).
//!
//! `cargo bench --bench webrtc_connect [-- N]` (N = 100 by default). Results in
//! benches/RESULTS.md.
#![allow(clippy::expect_used)] // a benchmark's set-up failing is a failed run

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::percentile;
use hotline::engine::webrtc::Gateway;
use hotline_sip::sdp::Codec;
use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// What one client saw.
struct Outcome {
    connected: Option<Duration>,
    audio: Option<Duration>,
}

async fn client(
    offer: String,
    answers: tokio::sync::oneshot::Sender<String>,
    start: Instant,
) -> Outcome {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = socket.local_addr().expect("addr");
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_pcmu(true, false)
        .enable_pcma(true, false)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let offer = SdpOffer::from_sdp_string(&offer).expect("the gateway's offer parses");
    let answer = rtc.sdp_api().accept_offer(offer).expect("offer accepted");
    let _ = answers.send(answer.to_sdp_string());
    let mut out = Outcome {
        connected: None,
        audio: None,
    };
    let deadline = start + Duration::from_secs(30);
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => out.connected = Some(start.elapsed()),
                Ok(Output::Event(Event::MediaData(_))) => {
                    out.audio.get_or_insert(start.elapsed());
                }
                Ok(Output::Event(_)) => {}
                Err(_) => return out,
            }
        };
        if out.audio.is_some() || Instant::now() > deadline {
            return out;
        }
        let wake = timeout.min(Instant::now() + Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                if let Ok(r) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), r));
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}

/// Plays the media engine for one leg: sends 20 ms PCMU frames to the leg's plain side.
async fn engine_side(plain: SocketAddr, until: Instant) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let (mut seq, mut ts) = (0u16, 0u32);
    while Instant::now() < until {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(&[0xFFu8; 160]);
        let _ = socket.send_to(&p, plain).await;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let gw = Gateway::start(
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1".parse().expect("ip"),
            shutdown.clone(),
        )
        .await
        .expect("gateway");
        // The offers first (as rings go out), timed: each makes a DTLS certificate.
        let offers_started = Instant::now();
        let mut legs = Vec::new();
        for _ in 0..n {
            let engine: SocketAddr = "127.0.0.1:9".parse().expect("addr");
            legs.push(gw.offer(Codec::Pcmu, engine).expect("offer"));
        }
        let offers_took = offers_started.elapsed();
        // Then every agent answers at once.
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (leg, offer) in legs {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(client(offer, tx, start)));
            tokio::spawn(async move {
                if let Ok(answer) = rx.await {
                    leg.answer(&answer);
                    tokio::spawn(engine_side(leg.plain, start + Duration::from_secs(30)));
                    // Keep the leg open until the bench ends.
                    tokio::time::sleep(Duration::from_secs(35)).await;
                    leg.close();
                }
            });
        }
        let mut connected = Vec::new();
        let mut audio = Vec::new();
        for t in tasks {
            if let Ok(o) = t.await {
                connected.extend(o.connected);
                audio.extend(o.audio);
            }
        }
        connected.sort();
        audio.sort();
        println!("legs: {n}");
        println!(
            "offers: {:.1} ms in all, {:.2} ms each",
            offers_took.as_secs_f64() * 1e3,
            offers_took.as_secs_f64() * 1e3 / n as f64
        );
        println!(
            "connected (ICE + DTLS): {}/{n}, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            connected.len(),
            percentile(&connected, 0.5).as_secs_f64() * 1e3,
            percentile(&connected, 0.99).as_secs_f64() * 1e3,
            connected.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        let slow = connected.iter().filter(|d| d.as_millis() > 400).count();
        println!("connected after more than 400 ms: {slow}");
        println!(
            "first audio received: {}/{n}, p50 {:.0} ms, p99 {:.0} ms",
            audio.len(),
            percentile(&audio, 0.5).as_secs_f64() * 1e3,
            percentile(&audio, 0.99).as_secs_f64() * 1e3
        );
        shutdown.cancel();
        if connected.len() < n || audio.len() < n {
            std::process::exit(1);
        }
    });
}
