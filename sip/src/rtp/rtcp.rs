//! RTCP (RFC 3550 section 6): sender and receiver reports, BYE, and the receiver statistics
//! that fill a report block (fraction lost, cumulative lost, extended highest sequence,
//! interarrival jitter). Compound packets are walked packet by packet; anything malformed is
//! an error, never a panic.

/// Why an RTCP packet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Shorter than a header, or than its own length field says.
    #[error("RTCP packet truncated")]
    Short,
    /// Not version 2.
    #[error("RTCP version is not 2")]
    Version,
    /// The first packet of a compound is not SR or RR (RFC 3550 6.1).
    #[error("compound RTCP does not start with SR or RR")]
    NotReportFirst,
}

/// One report block (about one source we receive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rtcp {
    /// Sender report.
    SenderReport {
        /// Sender.
        ssrc: u32,
        /// NTP timestamp (64-bit fixed point).
        ntp: u64,
        /// RTP timestamp matching `ntp`.
        rtp_ts: u32,
        /// Packets sent.
        packets: u32,
        /// Payload octets sent.
        octets: u32,
        /// Report blocks.
        reports: Vec<ReportBlock>,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter.
        ssrc: u32,
        /// Report blocks.
        reports: Vec<ReportBlock>,
    },
    /// The sources are leaving.
    Bye {
        /// The sources.
        ssrcs: Vec<u32>,
    },
    /// Any other type (SDES, APP, feedback), kept as its type number.
    Other(u8),
}

fn u32_at(b: &[u8], i: usize) -> Result<u32, RtcpError> {
    b.get(i..i + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(RtcpError::Short)
}

fn blocks(b: &[u8], at: usize, count: u8) -> Result<Vec<ReportBlock>, RtcpError> {
    (0..usize::from(count))
        .map(|i| {
            let p = at + 24 * i;
            let word = u32_at(b, p + 4)?;
            let lost = (word & 0x00FF_FFFF) as i32;
            Ok(ReportBlock {
                ssrc: u32_at(b, p)?,
                fraction_lost: (word >> 24) as u8,
                cumulative_lost: if lost & 0x80_0000 != 0 {
                    lost - 0x100_0000
                } else {
                    lost
                },
                highest_seq: u32_at(b, p + 8)?,
                jitter: u32_at(b, p + 12)?,
                last_sr: u32_at(b, p + 16)?,
                delay_since_last_sr: u32_at(b, p + 20)?,
            })
        })
        .collect()
}

/// Parses a compound RTCP packet.
pub fn parse(b: &[u8]) -> Result<Vec<Rtcp>, RtcpError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let h = b.get(pos..pos + 4).ok_or(RtcpError::Short)?;
        if h[0] >> 6 != 2 {
            return Err(RtcpError::Version);
        }
        let count = h[0] & 0x1F;
        let pt = h[1];
        let len = 4 * (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1);
        let p = b.get(pos..pos + len).ok_or(RtcpError::Short)?;
        if out.is_empty() && pt != 200 && pt != 201 {
            return Err(RtcpError::NotReportFirst);
        }
        out.push(match pt {
            200 => Rtcp::SenderReport {
                ssrc: u32_at(p, 4)?,
                ntp: (u64::from(u32_at(p, 8)?) << 32) | u64::from(u32_at(p, 12)?),
                rtp_ts: u32_at(p, 16)?,
                packets: u32_at(p, 20)?,
                octets: u32_at(p, 24)?,
                reports: blocks(p, 28, count)?,
            },
            201 => Rtcp::ReceiverReport {
                ssrc: u32_at(p, 4)?,
                reports: blocks(p, 8, count)?,
            },
            203 => Rtcp::Bye {
                ssrcs: (0..usize::from(count))
                    .map(|i| u32_at(p, 4 + 4 * i))
                    .collect::<Result<_, _>>()?,
            },
            other => Rtcp::Other(other),
        });
        pos += len;
    }
    Ok(out)
}

/// Writes a receiver report (no blocks when nothing was received yet) into `out`.
pub fn write_receiver_report(out: &mut Vec<u8>, ssrc: u32, reports: &[ReportBlock]) {
    let n = reports.len().min(31);
    out.push(0x80 | n as u8);
    out.push(201);
    out.extend_from_slice(&((1 + 6 * n) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    for r in &reports[..n] {
        write_block(out, r);
    }
}

/// Writes a sender report into `out`.
#[allow(clippy::too_many_arguments)]
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    reports: &[ReportBlock],
) {
    let n = reports.len().min(31);
    out.push(0x80 | n as u8);
    out.push(200);
    out.extend_from_slice(&((6 + 6 * n) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
    for r in &reports[..n] {
        write_block(out, r);
    }
}

/// Writes an SDES packet with one chunk: `ssrc` and its CNAME (RFC 3550 6.5; every compound
/// carries one). The CNAME is cut to 255 bytes.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // Chunk: SSRC, CNAME item (type 1, length, text), then a null item ending the list,
    // padded to a 32-bit boundary.
    let chunk_len = 4 + 2 + name.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    out.push(0x81);
    out.push(202);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend(std::iter::repeat_n(0u8, padded - (4 + 2 + name.len())));
}

fn write_block(out: &mut Vec<u8>, r: &ReportBlock) {
    out.extend_from_slice(&r.ssrc.to_be_bytes());
    let lost = (r.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
    out.extend_from_slice(&((u32::from(r.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&r.highest_seq.to_be_bytes());
    out.extend_from_slice(&r.jitter.to_be_bytes());
    out.extend_from_slice(&r.last_sr.to_be_bytes());
    out.extend_from_slice(&r.delay_since_last_sr.to_be_bytes());
}

/// What a receiver counts of one source to fill its report block (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: Option<i64>,
    jitter: f64,
    started: bool,
}

impl ReceiverStats {
    /// A packet with `seq` and RTP `timestamp` arrived at `arrival` (in timestamp units).
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, arrival: u32) {
        self.on_sequence(seq);
        let transit = i64::from(arrival) - i64::from(timestamp);
        if let Some(prev) = self.transit {
            let d = (transit - prev).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// A packet that counts for loss but not for jitter (an RFC 4733 event: its timestamp is
    /// the event's start, repeated across its packets, not its sampling instant).
    pub fn on_sequence(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else if seq.wrapping_sub(self.max_seq) < 0x8000 && seq != self.max_seq {
            if seq < self.max_seq {
                self.cycles += 1 << 16; // wrapped
            }
            self.max_seq = seq;
        }
        self.received += 1;
    }

    /// The report block for `ssrc`, and the interval counters reset for the next one.
    pub fn report(&mut self, ssrc: u32) -> ReportBlock {
        let extended = self.cycles + u32::from(self.max_seq);
        let expected = extended.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        ReportBlock {
            ssrc,
            fraction_lost: fraction,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: extended,
            jitter: self.jitter as u32,
            last_sr: 0,
            delay_since_last_sr: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_in_a_compound() {
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 0x0001_0005,
            jitter: 12,
            last_sr: 0xAABB_CCDD,
            delay_since_last_sr: 65536,
        };
        let mut b = Vec::new();
        write_sender_report(&mut b, 1, 0x0102_0304_0506_0708, 160, 50, 8000, &[block]);
        write_receiver_report(&mut b, 1, &[]);
        b.extend_from_slice(&[0x81, 203, 0, 1, 0, 0, 0, 1]); // BYE for SSRC 1
        let parsed = parse(&b).unwrap();
        assert_eq!(
            parsed[0],
            Rtcp::SenderReport {
                ssrc: 1,
                ntp: 0x0102_0304_0506_0708,
                rtp_ts: 160,
                packets: 50,
                octets: 8000,
                reports: vec![block]
            }
        );
        assert_eq!(
            parsed[1],
            Rtcp::ReceiverReport {
                ssrc: 1,
                reports: vec![]
            }
        );
        assert_eq!(parsed[2], Rtcp::Bye { ssrcs: vec![1] });
    }

    #[test]
    fn malformed_compounds_are_refused() {
        assert_eq!(parse(&[0x80, 200, 0]), Err(RtcpError::Short));
        assert_eq!(
            parse(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Version)
        );
        assert_eq!(
            parse(&[0x81, 203, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::NotReportFirst)
        );
        // Report count says one block; the length has none.
        assert_eq!(parse(&[0x81, 201, 0, 1, 0, 0, 0, 1]), Err(RtcpError::Short));
        // Length field beyond the data.
        assert_eq!(parse(&[0x80, 201, 0, 9, 0, 0, 0, 1]), Err(RtcpError::Short));
        // No input panics: every prefix of a valid compound.
        let mut b = Vec::new();
        write_sender_report(&mut b, 1, 2, 3, 4, 5, &[ReportBlock::default()]);
        for n in 0..b.len() {
            let _ = parse(&b[..n]);
        }
    }

    #[test]
    fn receiver_statistics_count_loss_wrap_and_jitter() {
        let mut s = ReceiverStats::default();
        // 65530..=65535, then 0..=9 with 3 and 4 lost: 16 expected, 14 received.
        let seqs: Vec<u16> = (65530..=65535)
            .chain(0..=9)
            .filter(|q| *q != 3 && *q != 4)
            .collect();
        for (i, seq) in seqs.iter().enumerate() {
            let ts = 160 * u32::from(seq.wrapping_sub(65530));
            s.on_packet(*seq, ts, ts + 400 + (i as u32 % 2) * 80);
        }
        let r = s.report(99);
        assert_eq!(r.highest_seq, 0x0001_0009, "one wrap");
        assert_eq!(r.cumulative_lost, 2);
        assert_eq!(r.fraction_lost, (2 * 256 / 16) as u8);
        assert!(r.jitter > 0 && r.jitter < 80, "{}", r.jitter);
        // Nothing new: nothing lost in the next interval.
        assert_eq!(s.report(99).fraction_lost, 0);
    }
}
