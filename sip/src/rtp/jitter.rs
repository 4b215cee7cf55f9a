//! A jitter buffer for G.711 streams, sans-IO: packets go in as they arrive, and the media
//! clock takes one 20 ms frame out every tick. Playout follows sequence numbers (so timestamp
//! jumps, which some gateways make at a re-INVITE, do not disturb it), starts once `depth`
//! packets are buffered, puts reordered packets back in order, drops duplicates and packets
//! that arrive after their turn (counted as late), and conceals a lost packet by repeating the
//! previous frame once, then by silence. A new SSRC (a new source after a transfer) resets it.
//!
//! The sender's clock is not ours (a browser's sound card, a phone's crystal): when the next
//! packet has not arrived and nothing after it has either, the buffer has run dry, and
//! playout waits for it (concealing meanwhile) instead of moving on and finding every later
//! packet "late" for ever; when packets pile up beyond `depth` plus [`SLACK`] (a faster
//! sender), one frame is skipped a tick until the delay is back. A stream that renumbers
//! (a jump of more than the buffer either way) starts playout afresh.
//!
//! Frames are kept in a fixed ring of slots: nothing is allocated per packet.

/// Samples per frame (20 ms at 8 kHz, one byte each in G.711).
pub const FRAME: usize = 160;
/// Most frames the buffer holds ahead of playout (1.28 s).
const SLOTS: usize = 64;
/// Frames beyond `depth` a faster sender may get ahead before frames are skipped.
pub const SLACK: u16 = 6;

/// What the media clock gets for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Playout has not started (still filling to `depth`).
    Waiting,
    /// The next frame.
    Frame(&'a [u8]),
    /// The packet was lost: a concealment frame (the previous one repeated, or silence).
    Concealed(&'a [u8]),
}

/// Counters for RTCP reports and the wall board.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Packets that arrived after their turn had been played (concealed).
    pub late: u64,
    /// Frames concealed because their packet never came in time.
    pub concealed: u64,
    /// Packets too far ahead of playout to hold (the sender jumped or the buffer is full).
    pub overflow: u64,
    /// Times a new SSRC restarted the stream.
    pub resets: u64,
    /// Frames skipped to bring a faster sender's delay back down.
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u16,
    filled: bool,
    len: usize,
    data: [u8; FRAME],
}

/// The buffer of one received stream.
#[derive(Debug)]
pub struct JitterBuffer {
    depth: u16,
    silence: u8,
    slots: Box<[Slot; SLOTS]>,
    ssrc: Option<u32>,
    /// The next sequence number to play, once playout started.
    next: Option<u16>,
    /// The lowest sequence number buffered before playout starts.
    first: Option<u16>,
    buffered: u16,
    /// The highest sequence number accepted since playout (re)started.
    newest: Option<u16>,
    last: [u8; FRAME],
    repeated: bool,
    out: [u8; FRAME],
    stats: JitterStats,
}

/// `a` comes after `b` in 16-bit sequence space.
fn after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl JitterBuffer {
    /// A buffer that starts playing after `depth` packets (2 = 40 ms of delay), filling gaps
    /// with `silence` (0xFF for PCMU, 0xD5 for PCMA).
    pub fn new(depth: u16, silence: u8) -> Self {
        JitterBuffer {
            depth: depth.clamp(1, (SLOTS / 2) as u16),
            silence,
            slots: Box::new(
                [Slot {
                    seq: 0,
                    filled: false,
                    len: 0,
                    data: [0; FRAME],
                }; SLOTS],
            ),
            ssrc: None,
            next: None,
            first: None,
            buffered: 0,
            newest: None,
            last: [silence; FRAME],
            repeated: false,
            out: [silence; FRAME],
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn reset(&mut self) {
        for s in self.slots.iter_mut() {
            s.filled = false;
        }
        self.next = None;
        self.first = None;
        self.buffered = 0;
        self.newest = None;
        self.last = [self.silence; FRAME];
        self.repeated = false;
    }

    /// A packet's payload arrives.
    pub fn push(&mut self, ssrc: u32, seq: u16, payload: &[u8]) {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.stats.resets += 1;
            }
            self.ssrc = Some(ssrc);
            self.reset();
        }
        if let Some(next) = self.next {
            if seq != next && !after(seq, next) {
                if (next.wrapping_sub(seq) as usize) < SLOTS {
                    self.stats.late += 1;
                    return;
                }
                // Far behind: the sender renumbered its stream.
                self.stats.resets += 1;
                self.reset();
            } else if seq.wrapping_sub(next) as usize >= SLOTS {
                // Far ahead: a jump, or a sender that went on while we did not play.
                self.stats.overflow += 1;
                self.reset();
            }
        }
        if self.next.is_none()
            && let Some(first) = self.first
            && after(first, seq)
        {
            self.first = Some(seq);
        }
        let slot = &mut self.slots[seq as usize % SLOTS];
        if slot.filled && slot.seq == seq {
            self.stats.duplicates += 1;
            return;
        }
        slot.seq = seq;
        slot.filled = true;
        slot.len = payload.len().min(FRAME);
        slot.data[..slot.len].copy_from_slice(&payload[..slot.len]);
        self.stats.received += 1;
        if self.newest.is_none_or(|n| after(seq, n)) {
            self.newest = Some(seq);
        }
        if self.next.is_none() {
            self.first.get_or_insert(seq);
            self.buffered += 1;
            if self.buffered >= self.depth {
                self.next = self.first;
            }
        }
    }

    /// The media clock's tick: the next 20 ms frame.
    pub fn pop(&mut self) -> Playout<'_> {
        let Some(next) = self.next else {
            return Playout::Waiting;
        };
        let slot = &mut self.slots[next as usize % SLOTS];
        if slot.filled && slot.seq == next {
            self.next = Some(next.wrapping_add(1));
            self.trim();
            let slot = &mut self.slots[next as usize % SLOTS];
            slot.filled = false;
            self.out[..slot.len].copy_from_slice(&slot.data[..slot.len]);
            self.out[slot.len..].fill(self.silence);
            self.last = self.out;
            self.repeated = false;
            return Playout::Frame(&self.out);
        }
        // Missing: lost if something after it came (move on), else the buffer ran dry (wait).
        if self.newest.is_some_and(|n| after(n, next)) {
            self.next = Some(next.wrapping_add(1));
        }
        self.stats.concealed += 1;
        if self.repeated {
            self.out = [self.silence; FRAME];
        } else {
            self.out = self.last;
            self.repeated = true;
        }
        Playout::Concealed(&self.out)
    }

    /// Skips the frame due next when more than `depth` + [`SLACK`] frames wait.
    fn trim(&mut self) {
        let (Some(next), Some(newest)) = (self.next, self.newest) else {
            return;
        };
        if after(newest, next) && newest.wrapping_sub(next) > self.depth + SLACK {
            let slot = &mut self.slots[next as usize % SLOTS];
            if slot.seq == next {
                slot.filled = false;
            }
            self.next = Some(next.wrapping_add(1));
            self.stats.skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose bytes all say which packet it was.
    fn frame(n: u16) -> [u8; FRAME] {
        [(n % 200) as u8; FRAME]
    }

    /// Plays `ticks` frames; returns the packet number of each (None for concealment or
    /// waiting; Some(255) for silence).
    fn play(jb: &mut JitterBuffer, ticks: usize) -> Vec<Option<u8>> {
        (0..ticks)
            .map(|_| match jb.pop() {
                Playout::Frame(f) => Some(f[0]),
                Playout::Concealed(f) if f[0] == 0xFF => Some(255),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reordered_and_duplicated_packets_play_in_order_once() {
        let mut jb = JitterBuffer::new(2, 0xFF);
        for seq in [10u16, 12, 11, 11, 13, 12] {
            jb.push(7, seq, &frame(seq));
        }
        assert_eq!(play(&mut jb, 4), [Some(10), Some(11), Some(12), Some(13)]);
        assert_eq!(jb.stats().duplicates, 2);
        assert_eq!(jb.stats().received, 4);
    }

    #[test]
    fn a_lost_packet_is_concealed_by_repetition_then_silence() {
        let mut jb = JitterBuffer::new(1, 0xFF);
        jb.push(7, 1, &frame(1));
        assert_eq!(play(&mut jb, 1), [Some(1)]);
        // 2 and 3 lost; 4 arrives.
        jb.push(7, 4, &frame(4));
        match jb.pop() {
            Playout::Concealed(f) => assert_eq!(f[0], 1, "the previous frame repeated"),
            other => panic!("{other:?}"),
        }
        assert_eq!(play(&mut jb, 2), [Some(255), Some(4)]);
        assert_eq!(jb.stats().concealed, 2);
    }

    #[test]
    fn a_late_packet_is_counted_and_dropped() {
        let mut jb = JitterBuffer::new(1, 0xFF);
        jb.push(7, 1, &frame(1));
        jb.push(7, 3, &frame(3));
        assert_eq!(play(&mut jb, 2), [Some(1), None]);
        jb.push(7, 2, &frame(2)); // too late: its turn was concealed
        assert_eq!(jb.stats().late, 1);
        assert_eq!(play(&mut jb, 1), [Some(3)]);
    }

    #[test]
    fn sequence_numbers_wrap_and_timestamps_do_not_matter() {
        let mut jb = JitterBuffer::new(2, 0xFF);
        for seq in [65534u16, 65535, 0, 1] {
            jb.push(7, seq, &frame(seq));
        }
        assert_eq!(
            play(&mut jb, 4),
            [
                Some((65534 % 200) as u8),
                Some((65535 % 200) as u8),
                Some(0),
                Some(1)
            ]
        );
    }

    #[test]
    fn a_new_ssrc_restarts_the_stream() {
        let mut jb = JitterBuffer::new(1, 0xFF);
        jb.push(7, 100, &frame(100));
        assert_eq!(play(&mut jb, 1), [Some(100)]);
        jb.push(8, 5000, &frame(5000));
        assert_eq!(jb.stats().resets, 1);
        assert_eq!(play(&mut jb, 1), [Some((5000 % 200) as u8)]);
    }

    #[test]
    fn playout_waits_for_the_depth_and_a_far_jump_starts_afresh() {
        let mut jb = JitterBuffer::new(3, 0xFF);
        jb.push(7, 1, &frame(1));
        jb.push(7, 2, &frame(2));
        assert_eq!(jb.pop(), Playout::Waiting);
        jb.push(7, 3, &frame(3));
        assert_eq!(play(&mut jb, 1), [Some(1)]);
        jb.push(7, 2000, &frame(2000));
        assert_eq!(jb.stats().overflow, 1);
        assert_eq!(jb.pop(), Playout::Waiting, "refilling from the jump");
        jb.push(7, 2001, &frame(2001));
        jb.push(7, 2002, &frame(2002));
        assert_eq!(play(&mut jb, 3), [Some(0), Some(1), Some(2)]);
    }

    /// Drives `jb` for `ticks` 20 ms ticks with a sender that sends a packet every `period`
    /// tenths of a millisecond (200 = on time); `tick` sees the buffer after each pop, and
    /// what played. Returns how many packets were sent.
    fn run_sender(
        jb: &mut JitterBuffer,
        ticks: u32,
        period: u32,
        mut tick: impl FnMut(&JitterBuffer, u32, Option<u8>, u16),
    ) -> u16 {
        let (mut seq, mut next_packet) = (0u16, 0u32);
        for t in 0..ticks {
            while next_packet <= t * 200 {
                jb.push(7, seq, &frame(seq));
                seq = seq.wrapping_add(1);
                next_packet += period;
            }
            let played = match jb.pop() {
                Playout::Frame(f) => Some(f[0]),
                _ => None,
            };
            tick(jb, t, played, seq);
        }
        seq
    }

    /// A sender whose clock runs 2 % slow (49 packets a second against our 50 ticks): every
    /// packet still plays, the gaps are concealed, none is dropped as late.
    #[test]
    fn a_slower_sender_is_waited_for_not_dropped() {
        let mut jb = JitterBuffer::new(2, 0xFF);
        let mut played = Vec::new();
        // Over 30 s: a packet every 20.4 ms.
        let sent = run_sender(&mut jb, 1500, 204, |_, _, p, _| played.extend(p));
        assert_eq!(jb.stats().late, 0, "{:?}", jb.stats());
        assert!(
            played.len() + 3 >= sent as usize,
            "{} of {sent} played",
            played.len()
        );
        let in_order = played
            .windows(2)
            .all(|w| w[1] == ((w[0] as u16 + 1) % 200) as u8);
        assert!(in_order, "frames play in order");
    }

    /// A sender 5 % fast: the delay stays bounded (frames skipped), nothing overflows.
    #[test]
    fn a_faster_sender_keeps_a_bounded_delay() {
        let mut jb = JitterBuffer::new(2, 0xFF);
        run_sender(&mut jb, 3000, 190, |jb, t, _, seq| {
            let backlog = seq.wrapping_sub(jb.next.unwrap_or(0));
            assert!(backlog <= 2 + SLACK + 2, "backlog {backlog} at tick {t}");
        });
        let st = jb.stats();
        assert_eq!(st.overflow, 0);
        assert!(st.skipped > 100, "{st:?}");
    }

    /// A sender that stops (on hold) and goes on with the next number plays on at once.
    #[test]
    fn a_pause_in_the_stream_does_not_make_the_rest_late() {
        let mut jb = JitterBuffer::new(1, 0xFF);
        jb.push(7, 1, &frame(1));
        assert_eq!(play(&mut jb, 1), [Some(1)]);
        let _ = play(&mut jb, 500); // 10 s of nothing
        jb.push(7, 2, &frame(2));
        assert_eq!(play(&mut jb, 1), [Some(2)]);
        assert_eq!(jb.stats().late, 0);
    }
}
