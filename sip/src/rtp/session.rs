//! One call leg's RTCP, sans-IO (RFC 3550 section 6): counts what we send and what the peer
//! sends, emits our compound report (SR when we sent since the last report, else RR, with a
//! report block about the peer and an SDES CNAME) every few seconds, reads the peer's reports,
//! and keeps the call's quality: packets, loss, jitter both ways, and the round-trip time from
//! the peer's LSR/DLSR.
//!
//! Time comes in as `Instant` (for scheduling) and the wall clock as NTP (for the SR and the
//! round trip), both from the driver, so tests run on a virtual clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::rtcp::{self, ReceiverStats, ReportBlock, Rtcp};

/// Seconds between 1900 (NTP) and 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The wall clock as a 64-bit NTP timestamp.
pub fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ((d.as_secs() + NTP_UNIX_OFFSET) << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// The middle 32 bits of an NTP timestamp (what LSR and DLSR are counted in: 1/65536 s).
fn middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// The call's quality as RTCP saw it, for the call record.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quality {
    /// RTP packets we received.
    pub received: u64,
    /// Packets of the peer's we never received (its sequence numbers' gaps).
    pub lost: i64,
    /// Interarrival jitter of what we received, in ms.
    pub jitter_ms: f64,
    /// Packets of ours the peer reports lost (from its last report).
    pub peer_lost: Option<i64>,
    /// Jitter the peer reports of what we send, in ms.
    pub peer_jitter_ms: Option<f64>,
    /// Round-trip time from the peer's last report about our SR, in ms.
    pub rtt_ms: Option<f64>,
    /// RTCP reports received from the peer.
    pub reports_received: u64,
    /// RTCP reports we sent.
    pub reports_sent: u64,
}

/// One leg's RTCP state.
#[derive(Debug)]
pub struct RtcpSession {
    ssrc: u32,
    cname: String,
    interval: Duration,
    first_after: Duration,
    next_report: Option<Instant>,
    // What we send.
    sent_packets: u32,
    sent_octets: u32,
    sent_since_report: bool,
    last_rtp_ts: u32,
    // What we receive.
    peer_ssrc: Option<u32>,
    stats: ReceiverStats,
    /// The peer's last SR (middle NTP bits) and when it arrived, for our LSR/DLSR.
    last_sr: Option<(u32, Instant)>,
    quality: Quality,
}

impl RtcpSession {
    /// RTCP for a leg sending as `ssrc`, reporting every `interval` (RFC 3550's 5 s minimum
    /// for a two-party call); `seed` spreads the first report over half an interval so calls
    /// set up together do not report together.
    pub fn new(ssrc: u32, cname: &str, interval: Duration, seed: u64) -> Self {
        RtcpSession {
            ssrc,
            cname: cname.chars().take(255).collect(),
            interval,
            first_after: interval.mul_f64(0.5 + (seed % 1000) as f64 / 2000.0),
            next_report: None,
            sent_packets: 0,
            sent_octets: 0,
            sent_since_report: false,
            last_rtp_ts: 0,
            peer_ssrc: None,
            stats: ReceiverStats::default(),
            last_sr: None,
            quality: Quality::default(),
        }
    }

    /// The media starts: reports are due from now on.
    pub fn start(&mut self, now: Instant) {
        self.next_report.get_or_insert(now + self.first_after);
    }

    /// We sent an RTP packet with `payload_len` bytes and RTP timestamp `rtp_ts`.
    pub fn on_sent(&mut self, payload_len: usize, rtp_ts: u32) {
        self.sent_packets = self.sent_packets.wrapping_add(1);
        self.sent_octets = self
            .sent_octets
            .wrapping_add(u32::try_from(payload_len).unwrap_or(u32::MAX));
        self.sent_since_report = true;
        self.last_rtp_ts = rtp_ts;
    }

    /// An RTP packet of the peer's arrived: `arrival` is its arrival time in the stream's
    /// timestamp units (8 kHz), from any fixed origin; `timed` is false for packets whose
    /// timestamp is not their sampling instant (RFC 4733 events), which count for loss only.
    pub fn on_received(&mut self, ssrc: u32, seq: u16, rtp_ts: u32, arrival: u32, timed: bool) {
        if self.peer_ssrc != Some(ssrc) {
            // A new source (the peer restarted its stream): statistics start over.
            self.peer_ssrc = Some(ssrc);
            self.stats = ReceiverStats::default();
        }
        if timed {
            self.stats.on_packet(seq, rtp_ts, arrival);
        } else {
            self.stats.on_sequence(seq);
        }
        self.quality.received += 1;
    }

    /// A datagram on the RTCP port (or an RTCP packet on a muxed RTP port) at `now`, with
    /// the wall clock `ntp`. Malformed ones are ignored.
    pub fn on_rtcp(&mut self, datagram: &[u8], now: Instant, ntp: u64) {
        let Ok(packets) = rtcp::parse(datagram) else {
            return;
        };
        self.quality.reports_received += 1;
        for p in packets {
            let blocks = match p {
                Rtcp::SenderReport {
                    ntp: their,
                    reports,
                    ..
                } => {
                    self.last_sr = Some((middle(their), now));
                    reports
                }
                Rtcp::ReceiverReport { reports, .. } => reports,
                _ => continue,
            };
            for b in blocks.iter().filter(|b| b.ssrc == self.ssrc) {
                self.quality.peer_lost = Some(i64::from(b.cumulative_lost));
                self.quality.peer_jitter_ms = Some(f64::from(b.jitter) / 8.0);
                if b.last_sr != 0 {
                    // RFC 3550 6.4.1: RTT = arrival - LSR - DLSR, in 1/65536 s.
                    let rtt = middle(ntp)
                        .wrapping_sub(b.last_sr)
                        .wrapping_sub(b.delay_since_last_sr) as i32;
                    // On a short path the peer's rounding of DLSR can make the result a hair
                    // below zero: up to 10 ms below counts as no delay; more is a bogus report.
                    if rtt >= -655 {
                        self.quality.rtt_ms = Some(f64::from(rtt.max(0)) * 1000.0 / 65536.0);
                    }
                }
            }
        }
    }

    /// When our next report is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_report
    }

    /// Our compound report if it is due at `now` (wall clock `ntp`): SR or RR, then SDES.
    pub fn poll_report(&mut self, now: Instant, ntp: u64) -> Option<Vec<u8>> {
        let due = self.next_report?;
        if now < due {
            return None;
        }
        // On time, the next one an interval later; after a long stall, an interval from now
        // (no burst of reports to catch up).
        self.next_report = Some(if now - due > self.interval {
            now + self.interval
        } else {
            due + self.interval
        });
        let mut blocks = Vec::new();
        if let Some(peer) = self.peer_ssrc {
            let mut b = self.stats.report(peer);
            if let Some((lsr, at)) = self.last_sr {
                b.last_sr = lsr;
                let since = now.saturating_duration_since(at);
                b.delay_since_last_sr = (since.as_secs_f64() * 65536.0) as u32;
            }
            self.quality.lost = i64::from(b.cumulative_lost);
            self.quality.jitter_ms = f64::from(b.jitter) / 8.0;
            blocks.push(b);
        }
        let mut out = Vec::with_capacity(128);
        if self.sent_since_report {
            rtcp::write_sender_report(
                &mut out,
                self.ssrc,
                ntp,
                self.last_rtp_ts,
                self.sent_packets,
                self.sent_octets,
                &blocks,
            );
        } else {
            rtcp::write_receiver_report(&mut out, self.ssrc, &blocks);
        }
        rtcp::write_sdes_cname(&mut out, self.ssrc, &self.cname);
        self.sent_since_report = false;
        self.quality.reports_sent += 1;
        Some(out)
    }

    /// The quality so far (loss and jitter of what we receive as of the last report we
    /// made, or as of now with [`RtcpSession::final_quality`]).
    pub fn quality(&self) -> Quality {
        self.quality
    }

    /// The quality at the end of the call: our receive statistics brought up to date.
    pub fn final_quality(&mut self) -> Quality {
        if let Some(peer) = self.peer_ssrc {
            let b: ReportBlock = self.stats.report(peer);
            self.quality.lost = i64::from(b.cumulative_lost);
            self.quality.jitter_ms = f64::from(b.jitter) / 8.0;
        }
        self.quality
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn ntp_at(base: u64, after: Duration) -> u64 {
        base + ((after.as_nanos() as u64) << 32) / 1_000_000_000
    }

    #[test]
    fn reports_come_every_interval_as_sr_while_sending_else_rr() {
        let t0 = Instant::now();
        let mut s = RtcpSession::new(0xAAAA, "hotline@test", T, 0);
        assert_eq!(s.poll_timeout(), None, "nothing before the media starts");
        s.start(t0);
        let first = s.poll_timeout().unwrap();
        assert_eq!(
            first,
            t0 + T / 2,
            "seed 0: the first report half an interval in"
        );
        assert_eq!(s.poll_report(t0, 0), None, "not due yet");
        s.on_sent(160, 1000);
        let sr = s.poll_report(first, 1 << 32).unwrap();
        let parsed = rtcp::parse(&sr).unwrap();
        assert!(matches!(
            parsed[0],
            Rtcp::SenderReport {
                ssrc: 0xAAAA,
                packets: 1,
                octets: 160,
                ..
            }
        ));
        assert!(
            matches!(parsed[1], Rtcp::Other(202)),
            "SDES follows: {parsed:?}"
        );
        assert_eq!(s.poll_timeout(), Some(first + T));
        // Nothing sent since: a receiver report.
        let rr = s.poll_report(first + T, 2 << 32).unwrap();
        assert!(matches!(
            rtcp::parse(&rr).unwrap()[0],
            Rtcp::ReceiverReport { ssrc: 0xAAAA, .. }
        ));
        // A late wake-up does not make a burst of reports.
        let late = first + T * 10;
        assert!(s.poll_report(late, 3 << 32).is_some());
        assert!(s.poll_report(late, 3 << 32).is_none());
        assert_eq!(s.poll_timeout(), Some(late + T));
        assert_eq!(s.quality().reports_sent, 3);
    }

    #[test]
    fn loss_and_jitter_of_what_we_receive_go_in_our_report_and_the_quality() {
        let t0 = Instant::now();
        let mut s = RtcpSession::new(1, "c", T, 0);
        s.start(t0);
        // 100 packets, 20 ms apart, the 10th and 50th lost, on time.
        for n in 0..100u16 {
            if n == 10 || n == 50 {
                continue;
            }
            s.on_received(
                0xBEEF,
                500 + n,
                160 * u32::from(n),
                160 * u32::from(n),
                true,
            );
        }
        let rr = s.poll_report(t0 + T, 0).unwrap();
        let Rtcp::ReceiverReport { reports, .. } = &rtcp::parse(&rr).unwrap()[0] else {
            panic!("an RR");
        };
        assert_eq!(reports[0].ssrc, 0xBEEF);
        assert_eq!(reports[0].cumulative_lost, 2);
        assert_eq!(reports[0].jitter, 0, "every packet on time");
        let q = s.final_quality();
        assert_eq!((q.received, q.lost), (98, 2));
        assert!(q.jitter_ms.abs() < 1e-9);
    }

    #[test]
    fn the_round_trip_comes_from_the_peers_lsr_and_dlsr() {
        let t0 = Instant::now();
        let base = 3_900_000_000u64 << 32;
        let mut s = RtcpSession::new(0x1111, "c", T, 0);
        s.start(t0);
        s.on_sent(160, 0);
        // Our SR goes out at t0 + 2.5 s.
        let at = t0 + T / 2;
        let sr_ntp = ntp_at(base, Duration::from_millis(2500));
        let _ = s.poll_report(at, sr_ntp).unwrap();
        // The peer holds it 100 ms, the network takes 30 ms each way: its RR reaches us
        // 160 ms after we sent.
        let mut rr = Vec::new();
        rtcp::write_receiver_report(
            &mut rr,
            0x2222,
            &[ReportBlock {
                ssrc: 0x1111,
                fraction_lost: 0,
                cumulative_lost: 3,
                highest_seq: 100,
                jitter: 16,
                last_sr: middle(sr_ntp),
                delay_since_last_sr: (0.1 * 65536.0) as u32,
            }],
        );
        let arrival = ntp_at(base, Duration::from_millis(2660));
        s.on_rtcp(&rr, at + Duration::from_millis(160), arrival);
        let q = s.quality();
        let rtt = q.rtt_ms.unwrap();
        assert!((rtt - 60.0).abs() < 0.1, "{rtt} ms");
        assert_eq!(q.peer_lost, Some(3));
        assert_eq!(q.peer_jitter_ms, Some(2.0));
        assert_eq!(q.reports_received, 1);
        // Garbage is ignored.
        s.on_rtcp(b"\x00\x01junk", at, arrival);
        assert_eq!(s.quality().reports_received, 1);
    }

    #[test]
    fn our_report_echoes_the_peers_last_sr_for_its_round_trip() {
        let t0 = Instant::now();
        let mut s = RtcpSession::new(1, "c", T, 0);
        s.start(t0);
        s.on_received(0xBEEF, 1, 0, 0, true);
        let mut sr = Vec::new();
        rtcp::write_sender_report(&mut sr, 0xBEEF, 0x0001_2345_6789_0000, 0, 1, 160, &[]);
        s.on_rtcp(&sr, t0 + Duration::from_secs(1), 0);
        let rr = s.poll_report(t0 + Duration::from_millis(2500), 0).unwrap();
        let Rtcp::ReceiverReport { reports, .. } = &rtcp::parse(&rr).unwrap()[0] else {
            panic!("an RR");
        };
        assert_eq!(reports[0].last_sr, 0x2345_6789);
        assert_eq!(reports[0].delay_since_last_sr, (1.5 * 65536.0) as u32);
    }

    #[test]
    fn a_round_trip_rounded_below_zero_on_a_short_path_is_zero_and_a_bogus_one_is_ignored() {
        let t0 = Instant::now();
        let base = 3_900_000_000u64 << 32;
        let mut s = RtcpSession::new(0x1111, "c", T, 0);
        s.start(t0);
        s.on_sent(160, 0);
        let sr_ntp = ntp_at(base, Duration::from_millis(2500));
        let _ = s.poll_report(t0 + T / 2, sr_ntp).unwrap();
        let rr = |dlsr_ms: f64| {
            let mut rr = Vec::new();
            rtcp::write_receiver_report(
                &mut rr,
                0x2222,
                &[ReportBlock {
                    ssrc: 0x1111,
                    last_sr: middle(sr_ntp),
                    delay_since_last_sr: (dlsr_ms / 1000.0 * 65536.0) as u32,
                    ..ReportBlock::default()
                }],
            );
            rr
        };
        // Arrives 100 ms after our SR; the peer says it held it 100.2 ms.
        let arrival = ntp_at(base, Duration::from_millis(2600));
        s.on_rtcp(&rr(100.2), t0, arrival);
        assert_eq!(s.quality().rtt_ms, Some(0.0));
        // A report claiming it held our SR for 2 s more than there was: ignored.
        s.on_rtcp(&rr(2100.0), t0, arrival);
        assert_eq!(s.quality().rtt_ms, Some(0.0));
    }
}
