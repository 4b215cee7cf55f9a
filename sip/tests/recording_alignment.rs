//! The recording path under an emulated network, on a virtual clock: a caller's packets lost,
//! reordered, duplicated and jittered go through the jitter buffer into the stereo recorder on
//! our 20 ms tick, next to what we sent. The caller's side must stay aligned with ours (a fixed
//! delay of the buffer's depth), each packet played once and in order, a loss concealed in
//! place and never shifting what follows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use hotline_sip::media::g711::{ulaw_decode, ulaw_encode};
use hotline_sip::media::recorder::Recorder;
use hotline_sip::rtp::jitter::{JitterBuffer, Playout};
use hotline_sip::sdp::Codec;

/// The level that marks frame `n` (distinct after G.711 rounding).
fn level(n: u16) -> i16 {
    200 * (n as i16 + 1)
}

#[test]
fn the_callers_side_stays_aligned_through_loss_reorder_duplication_and_jitter() {
    const FRAMES: u16 = 60;
    const DEPTH: u16 = 3;
    // When each of the caller's packets arrives, in ticks of 20 ms: on time, except 10 lost,
    // 20 and 21 swapped, 30 twice, 40 held 2 ticks (jitter within the buffer's depth).
    let mut arrivals: Vec<(u16, u16)> = (0..FRAMES)
        .filter(|n| *n != 10)
        .map(|n| match n {
            20 => (21, n),
            21 => (20, n),
            40 => (42, n),
            _ => (n, n),
        })
        .collect();
    arrivals.push((31, 30));
    arrivals.sort();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let mut rec = Recorder::create(&path, 250).unwrap();
    let mut jb = JitterBuffer::new(DEPTH, 0xFF);
    let ours = [ulaw_encode(-1000); 160];
    let mut next = 0;
    // Until the last frame has played (at tick FRAMES + DEPTH - 2).
    for tick in 0..FRAMES + DEPTH - 1 {
        while next < arrivals.len() && arrivals[next].0 <= tick {
            let n = arrivals[next].1;
            jb.push(0xCA11, 1000 + n, &[ulaw_encode(level(n)); 160]);
            next += 1;
        }
        let caller: Option<Vec<u8>> = match jb.pop() {
            Playout::Frame(f) | Playout::Concealed(f) => Some(f.to_vec()),
            Playout::Waiting => None,
        };
        rec.push(caller.as_deref(), Codec::Pcmu, Some(&ours), Codec::Pcmu)
            .unwrap();
    }
    let path = rec.finish().unwrap();
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .into_samples::<i16>()
        .map(Result::unwrap)
        .collect();
    // One stereo frame per tick, ours on the right every time.
    assert_eq!(samples.len(), usize::from(FRAMES + DEPTH - 1) * 160 * 2);
    assert!(
        samples
            .iter()
            .skip(1)
            .step_by(2)
            .all(|s| *s == ulaw_decode(ulaw_encode(-1000)))
    );
    let left_frame = |tick: u16| samples[usize::from(tick) * 320];
    // Playout starts once DEPTH packets are in: frame n is heard at tick n + DEPTH - 1.
    for tick in 0..DEPTH - 1 {
        assert_eq!(left_frame(tick), 0, "silence before playout starts");
    }
    for n in 0..FRAMES {
        let heard = left_frame(n + DEPTH - 1);
        let expected = if n == 10 {
            ulaw_decode(ulaw_encode(level(9))) // the loss, concealed by repeating 9
        } else {
            ulaw_decode(ulaw_encode(level(n)))
        };
        assert_eq!(heard, expected, "frame {n} at tick {}", n + DEPTH - 1);
    }
    let stats = jb.stats();
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.concealed, 1);
}
