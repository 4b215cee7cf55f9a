//! RTP (RFC 3550) packets and RFC 4733 telephone-event payloads, parsed and written without
//! allocating on the receive path, and the jitter buffer of a received stream. Anything a peer sends is checked: a short or inconsistent
//! packet is an error, never a panic.

pub mod dtmf;
pub mod jitter;
pub mod latch;
pub mod ports;
pub mod rtcp;
pub mod session;

/// Why an RTP packet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer bytes than the header needs.
    #[error("packet shorter than its header")]
    Short,
    /// Not RTP version 2.
    #[error("RTP version is not 2")]
    Version,
    /// The padding count or the extension length points outside the packet.
    #[error("padding or extension length inconsistent with the packet size")]
    Length,
}

/// A parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit (start of a talkspurt; first packet of a DTMF event).
    pub marker: bool,
    /// Payload type (0 PCMU, 8 PCMA, dynamic for telephone-event).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp (8 kHz units for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Number of CSRC entries (skipped).
    pub csrc_count: u8,
    /// The header extension's profile id and data, if present.
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses one datagram.
    pub fn parse(b: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::Short);
        }
        if b[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let padding = b[0] & 0x20 != 0;
        let has_ext = b[0] & 0x10 != 0;
        let cc = b[0] & 0x0F;
        let mut pos = 12 + 4 * usize::from(cc);
        if b.len() < pos {
            return Err(RtpError::Short);
        }
        let mut extension = None;
        if has_ext {
            if b.len() < pos + 4 {
                return Err(RtpError::Length);
            }
            let profile = u16::from_be_bytes([b[pos], b[pos + 1]]);
            let words = usize::from(u16::from_be_bytes([b[pos + 2], b[pos + 3]]));
            let end = pos + 4 + 4 * words;
            if b.len() < end {
                return Err(RtpError::Length);
            }
            extension = Some((profile, &b[pos + 4..end]));
            pos = end;
        }
        let mut end = b.len();
        if padding {
            let n = usize::from(b[b.len() - 1]);
            if n == 0 || pos + n > b.len() {
                return Err(RtpError::Length);
            }
            end -= n;
        }
        Ok(RtpPacket {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7F,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            csrc_count: cc,
            extension,
            payload: &b[pos..end],
        })
    }
}

/// Writes a plain RTP packet (no CSRC, extension or padding) into `out`, which is cleared
/// first; the caller reuses one buffer per stream, so sending allocates nothing.
pub fn write_packet(
    out: &mut Vec<u8>,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.push(0x80);
    out.push((u8::from(marker) << 7) | (payload_type & 0x7F));
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_packets_parse_back() {
        let mut buf = Vec::new();
        write_packet(
            &mut buf,
            true,
            0,
            65535,
            0xDEAD_BEEF,
            0x1234_5678,
            &[0xFF; 160],
        );
        assert_eq!(buf.len(), 172);
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (0, 65535, 0xDEAD_BEEF, 0x1234_5678)
        );
        assert_eq!(p.payload.len(), 160);
        assert_eq!(p.extension, None);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0xB1, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        b.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // extension, one word
        b.extend_from_slice(&[0xD5; 4]); // payload
        b.extend_from_slice(&[0, 0, 3]); // padding, count 3
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.csrc_count, 1);
        assert_eq!(p.extension, Some((0xBEDE, &[9u8, 9, 9, 9][..])));
        assert_eq!(p.payload, &[0xD5; 4]);
        assert_eq!(p.payload_type, 8);
    }

    #[test]
    fn broken_packets_are_refused() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Short));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version));
        // CSRC count 15 with no room for them.
        assert_eq!(
            RtpPacket::parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Short)
        );
        // Padding count larger than the packet.
        let mut b = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200];
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::Length));
        b[13] = 0;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::Length));
        // Extension length beyond the end.
        let b = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::Length));
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of a valid packet, and every first-byte variant, parses or errs.
        let mut buf = Vec::new();
        write_packet(&mut buf, false, 101, 1, 2, 3, &[1, 2, 3, 4]);
        for n in 0..=buf.len() {
            let _ = RtpPacket::parse(&buf[..n]);
        }
        for first in 0..=255u8 {
            buf[0] = first;
            let _ = RtpPacket::parse(&buf);
        }
    }
}

/// The sending side of one RTP stream: sequence numbers, timestamps and the marker bit, with
/// sending times computed from the stream's start (`start + n * ptime`), never from the
/// previous send, so a long call does not drift.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    samples_per_frame: u32,
    frames_sent: u64,
    start: Option<std::time::Instant>,
    ptime: std::time::Duration,
    marker: bool,
    buf: Vec<u8>,
}

impl RtpSender {
    /// A stream with random-looking initial values taken from `seed` (RFC 3550 asks for random
    /// initial sequence numbers and timestamps).
    pub fn new(ssrc: u32, payload_type: u8, ptime_ms: u32, seed: u64) -> Self {
        RtpSender {
            ssrc,
            payload_type,
            sequence: (seed & 0xFFFF) as u16,
            timestamp: (seed >> 16) as u32,
            samples_per_frame: 8 * ptime_ms,
            frames_sent: 0,
            start: None,
            ptime: std::time::Duration::from_millis(u64::from(ptime_ms)),
            marker: true,
            buf: Vec::with_capacity(12 + 8 * ptime_ms as usize),
        }
    }

    /// When the next frame is due, given the first send happened at `start`.
    pub fn next_due(&self) -> Option<std::time::Instant> {
        self.start.map(|s| s + self.ptime * self.frames_sent as u32)
    }

    /// Builds the next packet around `payload` (one frame) and returns its bytes. The first
    /// packet and the first after [`RtpSender::talkspurt`] carry the marker.
    pub fn packet(&mut self, now: std::time::Instant, payload: &[u8]) -> &[u8] {
        self.start.get_or_insert(now);
        let marker = std::mem::replace(&mut self.marker, false);
        write_packet(
            &mut self.buf,
            marker,
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            payload,
        );
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_frame);
        self.frames_sent += 1;
        &self.buf
    }

    /// Skips a frame (silence suppression): the timestamp moves on, the sequence does not, and
    /// the next packet starts a talkspurt.
    pub fn skip(&mut self) {
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_frame);
        self.frames_sent += 1;
        self.marker = true;
    }

    /// The sequence number and timestamp of the last packet sent, if any (another sender
    /// taking over the stream continues from them).
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        (self.frames_sent > 0).then(|| {
            (
                self.sequence.wrapping_sub(1),
                self.timestamp.wrapping_sub(self.samples_per_frame),
            )
        })
    }

    /// Takes the stream back from another sender (a bridge) whose last packet had `seq`
    /// and `ts`: the next packet follows it, due at `now`, marked as a new talkspurt.
    pub fn resume_after(&mut self, now: std::time::Instant, seq: u16, ts: u32) {
        self.sequence = seq.wrapping_add(1);
        self.timestamp = ts.wrapping_add(160);
        self.start = Some(now);
        self.frames_sent = 0;
        self.marker = true;
    }

    /// Marks the next packet as the start of a talkspurt.
    pub fn talkspurt(&mut self) {
        self.marker = true;
    }

    /// Sends with another payload type from the next packet on (a re-INVITE changed the
    /// codec); the stream's sequence and clock go on.
    pub fn set_payload_type(&mut self, payload_type: u8) {
        if payload_type != self.payload_type {
            self.payload_type = payload_type;
            self.marker = true;
        }
    }
}

#[cfg(test)]
mod sender_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn sequence_timestamp_marker_and_a_schedule_without_drift() {
        let t0 = Instant::now();
        let mut s = RtpSender::new(0xABCD, 0, 20, 0x0001_FFFE);
        let p = RtpPacket::parse(s.packet(t0, &[0xFF; 160]))
            .unwrap()
            .clone_fields();
        assert_eq!((p.0, p.1, p.2), (true, 0xFFFE, 1));
        // Sent late, the schedule still counts from the start: no drift over an hour.
        let p = RtpPacket::parse(s.packet(t0 + Duration::from_millis(27), &[0xFF; 160]))
            .unwrap()
            .clone_fields();
        assert_eq!((p.0, p.1, p.2), (false, 0xFFFF, 161));
        for _ in 0..180_000 - 2 {
            s.packet(t0, &[0xFF; 160]);
        }
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(3600)));
        let p = RtpPacket::parse(s.packet(t0, &[0xFF; 160]))
            .unwrap()
            .clone_fields();
        assert_eq!(
            p.1,
            0xFFFE_u16.wrapping_add(180_000_u32 as u16),
            "sequence wraps"
        );
        assert_eq!(p.2, 1 + 160 * 180_000);
        s.skip();
        let p = RtpPacket::parse(s.packet(t0, &[0xFF; 160]))
            .unwrap()
            .clone_fields();
        assert!(p.0, "a talkspurt after silence is marked");
    }

    impl RtpPacket<'_> {
        fn clone_fields(&self) -> (bool, u16, u32) {
            (self.marker, self.sequence, self.timestamp)
        }
    }
}
