use std::path::Path;
use std::time::Duration;

use hotline_sip::rtp::dtmf::TelephoneEvent;
use hotline_sip::rtp::write_packet;

use super::*;
use crate::ivr::facts::CallFacts;
use crate::ivr::script::{Context, PromptRef, parse, prompt_key};

fn day() -> CallFacts {
    CallFacts {
        caller: "13812345678".into(),
        minute_of_day: 600,
        workday: true,
        waiting: Default::default(),
        may_call_back: true,
    }
}

const SCRIPT: &str = r##"
start = "greeting"

[nodes.greeting]
type = "play"
prompt = { text = "greeting" }
next = "menu"
barge_in = true

[nodes.menu]
type = "menu"
prompt = { text = "menu" }
choices = { "0" = "queue" }
timeout = 3
retries = 1
default = "queue"

[nodes.queue]
type = "queue"
queue = "general"
"##;

/// Prompts of known sound: the greeting 3 frames of a level, the menu 2 frames of another.
fn script() -> Arc<Script> {
    let mut s = parse(Path::new("t.toml"), SCRIPT, &Context::default()).unwrap();
    for (text, frames, level) in [("greeting", 3, 1000), ("menu", 2, -2000)] {
        let key = prompt_key(&PromptRef {
            file: None,
            text: Some(text.into()),
        });
        let samples = vec![level; FRAME * frames];
        s.prompts
            .insert(key, Arc::new(Prompt::from_linear(text, &samples)));
    }
    Arc::new(s)
}

fn greeting_byte() -> u8 {
    hotline_sip::media::g711::ulaw_encode(1000)
}

fn menu_byte() -> u8 {
    hotline_sip::media::g711::ulaw_encode(-2000)
}

/// Runs the call's clock from `from` to `to`, returning (time, packet) for what it sent.
fn run(call: &mut IvrCall, from: Instant, to: Instant) -> Vec<(Duration, Vec<u8>)> {
    let mut out = Vec::new();
    // What is already queued went out at `from`.
    while let Some(p) = call.poll_transmit() {
        out.push((Duration::ZERO, p));
    }
    let mut now = from;
    while let Some(due) = call.poll_timeout() {
        if due > to {
            break;
        }
        now = now.max(due);
        call.handle_timeout(now, &day());
        while let Some(p) = call.poll_transmit() {
            out.push((now - from, p));
        }
    }
    out
}

fn payload_byte(p: &[u8]) -> u8 {
    RtpPacket::parse(p).unwrap().payload[0]
}

fn digit(call: &mut IvrCall, now: Instant, key: char, ts: u32) {
    let code = hotline_sip::rtp::dtmf::TelephoneEvent::code_of(key).unwrap();
    // The start, two updates and three end packets of one press, as a phone sends them.
    for (i, end) in [false, false, false, true, true, true]
        .into_iter()
        .enumerate()
    {
        let ev = TelephoneEvent {
            event: code,
            end,
            volume: 10,
            duration: 160 * (i as u16 + 1),
        };
        let mut b = Vec::new();
        write_packet(
            &mut b,
            i == 0,
            101,
            7 + i as u16,
            ts,
            0xCAFE,
            &ev.to_bytes(),
        );
        call.handle_rtp(now, &b, &day());
    }
}

#[test]
fn prompts_go_out_frame_by_frame_on_the_media_clock_then_the_menu_waits() {
    let t0 = Instant::now();
    let mut call = IvrCall::new(script(), Codec::Pcmu, Some(101), 0x1234, 99);
    call.start(t0, &day());
    let sent = run(&mut call, t0, t0 + Duration::from_millis(190));
    // 0, 20, ..., 180 ms: ten packets, one every 20 ms.
    let times: Vec<u128> = sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, (0..10).map(|i| i * 20).collect::<Vec<u128>>());
    let bytes: Vec<u8> = sent.iter().map(|(_, p)| payload_byte(p)).collect();
    let (g, m) = (greeting_byte(), menu_byte());
    // Greeting (3 frames), menu (2 frames), then silence while the menu waits.
    assert_eq!(&bytes[..5], &[g, g, g, m, m]);
    assert!(bytes[5..].iter().all(|&b| b == 0xFF), "{bytes:x?}");
    // Each prompt starts a talkspurt: the marker is on the first packet of each.
    let markers: Vec<bool> = sent
        .iter()
        .map(|(_, p)| RtpPacket::parse(p).unwrap().marker)
        .collect();
    assert_eq!(&markers[..5], &[true, false, false, true, false]);
    // Sequence numbers and timestamps run on without gaps.
    for w in sent.windows(2) {
        let (a, b) = (
            RtpPacket::parse(&w[0].1).unwrap(),
            RtpPacket::parse(&w[1].1).unwrap(),
        );
        assert_eq!(b.sequence, a.sequence.wrapping_add(1));
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(160));
    }
    assert_eq!(call.poll_action(), None);
}

#[test]
fn a_key_during_the_greeting_stops_it_and_picks_from_the_menu() {
    let t0 = Instant::now();
    let mut call = IvrCall::new(script(), Codec::Pcma, Some(101), 1, 2);
    call.start(t0, &day());
    let first = run(&mut call, t0, t0 + Duration::from_millis(20));
    assert_eq!(first.len(), 2);
    digit(&mut call, t0 + Duration::from_millis(30), '0', 4000);
    match call.poll_action() {
        Some(Action::Enqueue { queue, .. }) => assert_eq!(queue, "general"),
        other => panic!("{other:?}"),
    }
    // One press is one key, however many packets carried it.
    assert_eq!(call.poll_action(), None);
    // The greeting stopped: what follows is silence, in A-law.
    let rest = run(
        &mut call,
        t0 + Duration::from_millis(30),
        t0 + Duration::from_millis(100),
    );
    assert!(!rest.is_empty());
    assert!(rest.iter().all(|(_, p)| payload_byte(p) == 0xD5));
    assert_eq!(call.session().path(), ["greeting", "menu", "queue"]);
}

#[test]
fn the_menu_timer_runs_on_the_same_clock() {
    let t0 = Instant::now();
    let mut call = IvrCall::new(script(), Codec::Pcmu, Some(101), 1, 2);
    call.start(t0, &day());
    // The menu prompt's last frame (sent at 80 ms) has played at 100 ms; 3 s later it is
    // replayed once, then the caller goes to the default queue 3 s after that replay ends.
    let sent = run(&mut call, t0, t0 + Duration::from_millis(3_200));
    let menu_starts: Vec<u128> = sent
        .iter()
        .filter(|(_, p)| RtpPacket::parse(p).unwrap().marker && payload_byte(p) == menu_byte())
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(menu_starts, [60, 3_100]);
    assert_eq!(call.poll_action(), None);
    run(
        &mut call,
        t0 + Duration::from_millis(3_200),
        t0 + Duration::from_millis(6_200),
    );
    assert!(matches!(call.poll_action(), Some(Action::Enqueue { .. })));
}

#[test]
fn garbage_and_voice_packets_are_ignored() {
    let t0 = Instant::now();
    let mut call = IvrCall::new(script(), Codec::Pcmu, Some(101), 1, 2);
    call.start(t0, &day());
    for junk in [&b""[..], b"\x80", b"hello world, not rtp", &[0xFF; 200]] {
        call.handle_rtp(t0, junk, &day());
    }
    let mut voice = Vec::new();
    write_packet(&mut voice, true, 0, 1, 1, 9, &[0x10; 160]);
    call.handle_rtp(t0, &voice, &day());
    assert_eq!(call.poll_action(), None);
    assert_eq!(call.session().node(), Some("greeting"));
}

/// Packets of G.711 carrying the DTMF tone of "1" (697 + 1209 Hz) for 100 ms, then
/// 100 ms of silence.
fn tone_packets(seq: u16) -> Vec<Vec<u8>> {
    let samples: Vec<u8> = (0..1600)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            let s = if i < 800 {
                5000.0
                    * ((2.0 * std::f64::consts::PI * 697.0 * t).sin()
                        + (2.0 * std::f64::consts::PI * 1209.0 * t).sin())
            } else {
                0.0
            };
            hotline_sip::media::g711::ulaw_encode(s as i16)
        })
        .collect();
    samples
        .chunks(160)
        .enumerate()
        .map(|(i, frame)| {
            let mut b = Vec::new();
            write_packet(&mut b, i == 0, 0, seq + i as u16, 160 * i as u32, 9, frame);
            b
        })
        .collect()
}

#[test]
fn tones_in_the_audio_are_keys_only_without_telephone_event() {
    let t0 = Instant::now();
    // No telephone-event agreed: the tone is the key (it barges into the greeting).
    let mut call = IvrCall::new(script(), Codec::Pcmu, None, 1, 2);
    call.start(t0, &day());
    for p in tone_packets(1) {
        call.handle_rtp(t0, &p, &day());
    }
    assert_eq!(call.keys(), "1");
    // With telephone-event agreed the same tone is just voice: a key is never heard twice
    // (once as an event and once as its tone).
    let mut call = IvrCall::new(script(), Codec::Pcmu, Some(101), 1, 2);
    call.start(t0, &day());
    for p in tone_packets(1) {
        call.handle_rtp(t0, &p, &day());
    }
    assert_eq!(call.keys(), "");
}

#[test]
fn a_40_ms_packet_time_sends_two_frames_per_packet_every_40_ms() {
    let t0 = Instant::now();
    let mut call = IvrCall::new(script(), Codec::Pcmu, Some(101), 1, 2).with_ptime(40);
    call.start(t0, &day());
    let sent = run(&mut call, t0, t0 + Duration::from_millis(200));
    let times: Vec<u128> = sent.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, [0, 40, 80, 120, 160, 200]);
    let first = RtpPacket::parse(&sent[0].1).unwrap();
    let second = RtpPacket::parse(&sent[1].1).unwrap();
    assert_eq!(first.payload.len(), 320);
    assert_eq!(second.timestamp.wrapping_sub(first.timestamp), 320);
    // The greeting's three frames, then the menu's two, with no gap: 1+2 in the first
    // packet, 3 and the menu's first in the second.
    assert!(first.payload.iter().all(|b| *b == greeting_byte()));
    assert!(second.payload[..160].iter().all(|b| *b == greeting_byte()));
    assert!(second.payload[160..].iter().all(|b| *b == menu_byte()));
    // 30 ms is not whole frames: taken as 20.
    let mut odd = IvrCall::new(script(), Codec::Pcmu, Some(101), 1, 2).with_ptime(30);
    odd.start(t0, &day());
    let sent = run(&mut odd, t0, t0 + Duration::from_millis(40));
    assert_eq!(RtpPacket::parse(&sent[0].1).unwrap().payload.len(), 160);
}

#[test]
fn a_queued_caller_hears_music_and_the_bridge_silences_the_ivr() {
    let t0 = Instant::now();
    let level = 1500;
    let music = vec![Arc::new(Prompt::from_linear("moh", &[level; FRAME * 2]))];
    let mut call =
        IvrCall::new(script(), Codec::Pcmu, Some(101), 1, 2).with_hold_music(music.clone());
    call.start(t0, &day());
    run(&mut call, t0, t0 + Duration::from_millis(20));
    digit(&mut call, t0 + Duration::from_millis(30), '0', 4000);
    assert!(matches!(call.poll_action(), Some(Action::Enqueue { .. })));
    // Waiting: the music, looped (2 frames, then again), never silence.
    let t1 = t0 + Duration::from_millis(40);
    let waiting = run(&mut call, t1, t1 + Duration::from_millis(200));
    let moh = hotline_sip::media::g711::ulaw_encode(level);
    assert!(waiting.len() >= 9, "{}", waiting.len());
    assert!(
        waiting.iter().all(|(_, p)| payload_byte(p) == moh),
        "music on hold throughout"
    );
    // An agent answers: the bridge carries the caller's stream; the IVR sends nothing.
    call.set_connected();
    assert_eq!(call.poll_timeout(), None);
    let t2 = t1 + Duration::from_millis(300);
    call.handle_timeout(t2, &day());
    assert_eq!(call.poll_transmit(), None);
    // The agent hangs up: this script has no after-agent node, so the IVR hangs up.
    call.agent_hung_up(t2 + Duration::from_secs(5), Some((5000, 90_000)), &day());
    assert_eq!(call.poll_action(), Some(Action::Hangup));
}

#[test]
fn after_the_agent_the_survey_continues_the_bridges_stream() {
    // The test script with an after-agent node: a prompt, then hang up.
    let text = SCRIPT.replacen(
        "start = \"greeting\"",
        "start = \"greeting\"\nafter_agent = \"bye\"",
        1,
    ) + "\n[nodes.bye]\ntype = \"play\"\nprompt = { text = \"menu\" }\nnext = \"end\"\n\
         [nodes.end]\ntype = \"hangup\"\n";
    let mut s = parse(Path::new("t.toml"), &text, &Context::default()).unwrap();
    let key = prompt_key(&PromptRef {
        file: None,
        text: Some("menu".into()),
    });
    s.prompts.insert(
        key,
        Arc::new(Prompt::from_linear("menu", &[-2000; FRAME * 2])),
    );
    let t0 = Instant::now();
    let mut call = IvrCall::new(Arc::new(s), Codec::Pcmu, Some(101), 1, 2);
    call.start(t0, &day());
    run(&mut call, t0, t0);
    digit(&mut call, t0 + Duration::from_millis(10), '0', 4000);
    assert!(matches!(call.poll_action(), Some(Action::Enqueue { .. })));
    call.set_connected();
    let t1 = t0 + Duration::from_secs(3);
    call.agent_hung_up(t1, Some((5000, 90_000)), &day());
    let sent = run(&mut call, t1, t1 + Duration::from_millis(100));
    let first = RtpPacket::parse(&sent[0].1).unwrap();
    assert_eq!(
        (first.sequence, first.timestamp, first.marker),
        (5001, 90_160, true)
    );
    assert_eq!(
        payload_byte(&sent[0].1),
        menu_byte(),
        "the after-agent node"
    );
    let path = call.session().path();
    assert_eq!(&path[path.len() - 2..], ["bye", "end"]);
    assert_eq!(call.poll_action(), Some(Action::Hangup));
}
