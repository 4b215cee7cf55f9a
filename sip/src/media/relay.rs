//! One direction of a bridge between two call legs, sans-IO: RTP from one leg rewritten for
//! the other. The output is one continuous stream of ours (our SSRC, sequence numbers and
//! timestamps shifted by fixed offsets, so the receiver still sees the sender's gaps,
//! reordering and timing), the audio transcoded when the legs chose different G.711 laws, and
//! RFC 4733 events passed through with the other leg's payload type (dropped when that leg
//! has no telephone-event). A new source on the input (the caller's phone restarted its
//! stream) continues the output without a jump, with the marker set.

use super::g711::{alaw_to_ulaw, ulaw_to_alaw};
use crate::rtp::{RtpPacket, write_packet};
use crate::sdp::Codec;

/// One leg's agreed media, as the relay needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegFormat {
    /// The G.711 law.
    pub codec: Codec,
    /// The telephone-event payload type, if agreed.
    pub dtmf: Option<u8>,
}

/// Rewrites one leg's packets for the other.
#[derive(Debug)]
pub struct Relay {
    from: LegFormat,
    to: LegFormat,
    ssrc: u32,
    /// The input source, and the offsets that map its numbering onto ours.
    source: Option<(u32, u16, u32)>,
    /// The last sequence number and timestamp sent (to continue across a source change).
    last: Option<(u16, u32)>,
    seed: u64,
    buf: Vec<u8>,
    payload: Vec<u8>,
}

impl Relay {
    /// A relay from a leg speaking `from` to one speaking `to`, sending as `ssrc`; `seed`
    /// gives the random origin of our numbering (RFC 3550 5.1).
    pub fn new(from: LegFormat, to: LegFormat, ssrc: u32, seed: u64) -> Self {
        Relay {
            from,
            to,
            ssrc,
            source: None,
            last: None,
            seed,
            buf: Vec::with_capacity(12 + 480),
            payload: Vec::with_capacity(480),
        }
    }

    /// The packet to send for `packet` received from the input leg, or `None` when it has no
    /// place on the output (another payload type, an event the output cannot carry).
    pub fn relay(&mut self, packet: &RtpPacket<'_>) -> Option<&[u8]> {
        let (pt, audio) = if packet.payload_type == self.from.codec.payload_type() {
            (self.to.codec.payload_type(), true)
        } else if Some(packet.payload_type) == self.from.dtmf {
            (self.to.dtmf?, false)
        } else {
            return None;
        };
        let mut marker = packet.marker;
        let (seq_off, ts_off) = match self.source {
            Some((ssrc, s, t)) if ssrc == packet.ssrc => (s, t),
            _ => {
                // A first or a new source: line its numbering up after what we sent last.
                let (next_seq, next_ts) = match self.last {
                    Some((s, t)) => (s.wrapping_add(1), t.wrapping_add(160)),
                    None => ((self.seed & 0xFFFF) as u16, (self.seed >> 16) as u32),
                };
                let offsets = (
                    next_seq.wrapping_sub(packet.sequence),
                    next_ts.wrapping_sub(packet.timestamp),
                );
                self.source = Some((packet.ssrc, offsets.0, offsets.1));
                marker = true;
                offsets
            }
        };
        let seq = packet.sequence.wrapping_add(seq_off);
        let ts = packet.timestamp.wrapping_add(ts_off);
        self.payload.clear();
        self.payload.extend_from_slice(packet.payload);
        if audio {
            match (self.from.codec, self.to.codec) {
                (Codec::Pcmu, Codec::Pcma) => ulaw_to_alaw(&mut self.payload),
                (Codec::Pcma, Codec::Pcmu) => alaw_to_ulaw(&mut self.payload),
                _ => {}
            }
        }
        // Keep the newest numbers as "last" (a late packet does not move it back).
        match self.last {
            Some((s, _)) if s.wrapping_sub(seq) < 0x8000 => {}
            _ => self.last = Some((seq, ts)),
        }
        write_packet(&mut self.buf, marker, pt, seq, ts, self.ssrc, &self.payload);
        Some(&self.buf)
    }
}

impl Relay {
    /// Takes over a stream whose last packet had `seq` and `ts` (the IVR's, before a
    /// transfer): the output continues from there under the same SSRC, with no jump.
    pub fn continue_after(&mut self, seq: u16, ts: u32) {
        self.last = Some((seq, ts));
        self.source = None;
    }

    /// The sequence number and timestamp of the last packet sent (the IVR taking the stream
    /// back after the bridge continues from them).
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        self.last
    }

    /// The legs' formats changed (a re-INVITE chose another law or event type); the output
    /// stream's numbering goes on.
    pub fn set_formats(&mut self, from: LegFormat, to: LegFormat) {
        self.from = from;
        self.to = to;
    }

    /// A key pressed on the input leg by other means (SIP INFO) sent on the output as RFC 4733
    /// events: the packets of one press, all with the next timestamp, the first marked, in
    /// the output's telephone-event payload type; none when the output has no telephone-event.
    pub fn inject_key(&mut self, key: char) -> Vec<Vec<u8>> {
        let (Some(pt), Some(payloads)) = (self.to.dtmf, crate::rtp::dtmf::press(key, 100)) else {
            return Vec::new();
        };
        let (mut seq, ts) = match self.last {
            Some((s, t)) => (s.wrapping_add(1), t.wrapping_add(160)),
            None => ((self.seed & 0xFFFF) as u16, (self.seed >> 16) as u32),
        };
        let mut out = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let mut b = Vec::with_capacity(16);
            write_packet(&mut b, i == 0, pt, seq, ts, self.ssrc, p);
            out.push(b);
            self.last = Some((seq, ts));
            seq = seq.wrapping_add(1);
        }
        self.source = None;
        out
    }

    /// A frame of our own (music on hold while the input leg holds) in the output's law, sent
    /// in the same output stream: numbering goes on from the last packet, and the input's next
    /// packet continues after it.
    pub fn inject(&mut self, frame: &[u8]) -> &[u8] {
        let (seq, ts, marker) = match self.last {
            Some((s, t)) => (
                s.wrapping_add(1),
                t.wrapping_add(160),
                self.source.is_some(),
            ),
            None => ((self.seed & 0xFFFF) as u16, (self.seed >> 16) as u32, true),
        };
        // The input, when it comes back, is lined up after this frame.
        self.source = None;
        self.last = Some((seq, ts));
        write_packet(
            &mut self.buf,
            marker,
            self.to.codec.payload_type(),
            seq,
            ts,
            self.ssrc,
            frame,
        );
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{alaw_encode, ulaw_encode};

    const PCMU_TE: LegFormat = LegFormat {
        codec: Codec::Pcmu,
        dtmf: Some(101),
    };
    const PCMA_TE: LegFormat = LegFormat {
        codec: Codec::Pcma,
        dtmf: Some(96),
    };

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        write_packet(&mut b, false, pt, seq, ts, ssrc, payload);
        b
    }

    fn out(r: &mut Relay, b: &[u8]) -> Option<(u8, u16, u32, u32, bool, Vec<u8>)> {
        let p = RtpPacket::parse(b).unwrap();
        let o = r.relay(&p)?.to_vec();
        let q = RtpPacket::parse(&o).unwrap();
        Some((
            q.payload_type,
            q.sequence,
            q.timestamp,
            q.ssrc,
            q.marker,
            q.payload.to_vec(),
        ))
    }

    #[test]
    fn numbering_is_shifted_so_gaps_and_order_survive() {
        let mut r = Relay::new(PCMU_TE, PCMU_TE, 0x5555, 0x1234_0000_0100);
        let f = [ulaw_encode(1000); 160];
        let a = out(&mut r, &packet(0, 10, 8000, 7, &f)).unwrap();
        assert_eq!(
            (a.0, a.1, a.2, a.3, a.4),
            (0, 0x0100, 0x1234_0000, 0x5555, true)
        );
        // 11 lost, 13 before 12: the same gap and order on the output, timing kept.
        let b = out(&mut r, &packet(0, 13, 8480, 7, &f)).unwrap();
        let c = out(&mut r, &packet(0, 12, 8320, 7, &f)).unwrap();
        assert_eq!((b.1, b.2, b.4), (0x0103, 0x1234_0000 + 480, false));
        assert_eq!((c.1, c.2), (0x0102, 0x1234_0000 + 320));
        assert_eq!(b.5, f.to_vec(), "same law: the audio is untouched");
    }

    #[test]
    fn pcmu_is_transcoded_to_pcma_and_events_change_payload_type() {
        let mut r = Relay::new(PCMU_TE, PCMA_TE, 1, 0);
        let a = out(&mut r, &packet(0, 1, 0, 7, &[ulaw_encode(-3000); 160])).unwrap();
        assert_eq!(a.0, 8);
        assert!(
            a.5.iter().all(|b| *b == alaw_encode(-3000)),
            "{:?}",
            &a.5[..4]
        );
        let ev = out(&mut r, &packet(101, 2, 160, 7, &[5, 0x0A, 0, 160])).unwrap();
        assert_eq!(ev.0, 96);
        assert_eq!(ev.5, [5, 0x0A, 0, 160], "the event itself passes unchanged");
        // Another payload type (comfort noise, video) has no place on the output.
        assert!(out(&mut r, &packet(13, 3, 320, 7, &[0; 1])).is_none());
        // An output without telephone-event drops the events.
        let mut plain = Relay::new(
            PCMU_TE,
            LegFormat {
                codec: Codec::Pcmu,
                dtmf: None,
            },
            1,
            0,
        );
        assert!(out(&mut plain, &packet(101, 1, 0, 7, &[5, 0x0A, 0, 160])).is_none());
    }

    #[test]
    fn a_new_source_continues_the_output_with_the_marker() {
        let mut r = Relay::new(PCMU_TE, PCMU_TE, 1, 0);
        let f = [0xFF; 160];
        out(&mut r, &packet(0, 100, 1000, 7, &f)).unwrap();
        let last = out(&mut r, &packet(0, 101, 1160, 7, &f)).unwrap();
        // The phone restarts its stream: another SSRC, other numbers.
        let next = out(&mut r, &packet(0, 40_000, 9_999_999, 8, &f)).unwrap();
        assert_eq!(next.1, last.1.wrapping_add(1));
        assert_eq!(next.2, last.2.wrapping_add(160));
        assert!(next.4, "a new talkspurt");
        let after = out(&mut r, &packet(0, 40_001, 9_999_999 + 160, 8, &f)).unwrap();
        assert_eq!(after.1, next.1.wrapping_add(1));
        assert!(!after.4);
    }

    #[test]
    fn injected_frames_sit_between_relayed_ones_without_a_jump() {
        let mut r = Relay::new(PCMU_TE, PCMU_TE, 1, 0);
        let f = [0xFF; 160];
        let a = out(&mut r, &packet(0, 500, 7000, 7, &f)).unwrap();
        let moh = r.inject(&[0x55; 160]).to_vec();
        let moh = RtpPacket::parse(&moh).unwrap();
        assert_eq!(moh.sequence, a.1.wrapping_add(1));
        assert_eq!(moh.timestamp, a.2.wrapping_add(160));
        assert!(moh.marker, "music starts a talkspurt");
        assert_eq!(moh.payload, [0x55; 160]);
        let moh2 = r.inject(&[0x55; 160]).to_vec();
        let moh2 = RtpPacket::parse(&moh2).unwrap();
        assert!(!moh2.marker);
        // The input comes back: it continues after the music.
        let b = out(&mut r, &packet(0, 600, 23_000, 7, &f)).unwrap();
        assert_eq!(b.1, moh2.sequence.wrapping_add(1));
        assert_eq!(b.2, moh2.timestamp.wrapping_add(160));
    }

    #[test]
    fn a_key_by_info_goes_out_as_events_of_one_press() {
        let mut r = Relay::new(PCMU_TE, PCMA_TE, 1, 0);
        let a = out(&mut r, &packet(0, 10, 800, 7, &[0xFF; 160])).unwrap();
        let packets = r.inject_key('#');
        assert!(packets.len() >= 4);
        let mut rx = crate::rtp::dtmf::DtmfReceiver::new();
        let mut keys = Vec::new();
        for (i, b) in packets.iter().enumerate() {
            let p = RtpPacket::parse(b).unwrap();
            assert_eq!(p.payload_type, 96, "the output's telephone-event type");
            assert_eq!(p.sequence, a.1.wrapping_add(1 + i as u16));
            assert_eq!(p.timestamp, a.2.wrapping_add(160));
            assert_eq!(p.marker, i == 0);
            keys.extend(
                rx.on_packet(p.ssrc, p.timestamp, p.payload)
                    .map(|d| d.digit),
            );
        }
        assert_eq!(keys, ['#']);
        let mut plain = Relay::new(
            PCMU_TE,
            LegFormat {
                codec: Codec::Pcmu,
                dtmf: None,
            },
            1,
            0,
        );
        assert!(plain.inject_key('1').is_empty());
    }

    #[test]
    fn a_relay_taking_over_a_stream_continues_its_numbering() {
        let mut r = Relay::new(PCMU_TE, PCMU_TE, 0xABCD, 12345);
        r.continue_after(65535, 1_000_000);
        let moh = r.inject(&[0xFF; 160]).to_vec();
        let p = RtpPacket::parse(&moh).unwrap();
        assert_eq!((p.sequence, p.timestamp, p.ssrc), (0, 1_000_160, 0xABCD));
        let next = out(&mut r, &packet(0, 77, 5, 9, &[0xFF; 160])).unwrap();
        assert_eq!((next.1, next.2), (1, 1_000_320));
    }
}
