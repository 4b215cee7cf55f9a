//! Which source a call's RTP and RTCP are taken from, and where ours go (symmetric RTP, RFC
//! 4961, under RFC 3550 section 8.2's source rules). Anyone who can reach a port of the RTP
//! range can send to it; only the call's own peer may be heard, recorded or followed.
//!
//! - The SDP's address is the peer: a packet from it is always taken, and takes the stream
//!   back from any source learned before.
//! - Another source is learned only where the SDP address cannot be the real one (the peer is
//!   behind NAT: the SDP names a private or link-local address, or the packets come from the
//!   SDP's host on another port), and only after [`PROBATION`] packets of one SSRC in sequence
//!   (as RFC 3550 appendix A.1 validates a new source). Until then, and from any other
//!   address, packets are dropped.
//! - Once latched, the stream moves to another source only with the same SSRC and after the
//!   latched source has been silent for [`MOVE_AFTER`] (a NAT rebinding): a third party that
//!   does not know the SSRC, or a burst while the peer talks, moves nothing.
//! - RTCP is taken from the latched host (or the SDP's) only.
//!
//! Sans-IO: the packet's source, SSRC and sequence number and the time come in; whether to
//! take the packet comes out.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Packets of one SSRC in sequence before a source other than the SDP's is learned.
pub const PROBATION: u8 = 4;

/// How long the latched source must have been silent before the stream moves (same SSRC).
pub const MOVE_AFTER: Duration = Duration::from_secs(1);

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the peer: take it.
    Take,
    /// From another source, or not yet learned: drop it.
    Drop,
}

impl Verdict {
    /// Whether the packet is taken.
    pub fn taken(self) -> bool {
        self == Verdict::Take
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Learning {
    source: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u8,
}

/// The source of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latch {
    sdp: SocketAddr,
    target: SocketAddr,
    /// The SSRC and last arrival of the latched source, once a packet was taken.
    latched: Option<(u32, Instant)>,
    learning: Option<Learning>,
}

/// Addresses that cannot be reached from outside their own network: an SDP naming one comes
/// from behind NAT.
fn behind_nat(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

impl Latch {
    /// Starts with the SDP's address.
    pub fn new(sdp_addr: SocketAddr) -> Self {
        Latch {
            sdp: sdp_addr,
            target: sdp_addr,
            latched: None,
            learning: None,
        }
    }

    /// Where to send now.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Whether a valid RTP packet (the agreed payload types) from `source` with `ssrc` and
    /// `seq`, arriving at `now`, is the peer's.
    pub fn on_packet(&mut self, now: Instant, source: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        if source == self.target || source == self.sdp {
            self.target = source;
            self.latched = Some((ssrc, now));
            self.learning = None;
            return Verdict::Take;
        }
        match self.latched {
            // Latched: only the same SSRC, after the latched source fell silent.
            Some((latched_ssrc, heard)) => {
                if ssrc == latched_ssrc && now.saturating_duration_since(heard) >= MOVE_AFTER {
                    self.target = source;
                    self.latched = Some((ssrc, now));
                    return Verdict::Take;
                }
                Verdict::Drop
            }
            None => self.learn(now, source, ssrc, seq),
        }
    }

    /// A source other than the SDP's before anything was latched: learned after probation,
    /// where NAT is evident.
    fn learn(&mut self, now: Instant, source: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        if !(behind_nat(self.sdp.ip()) || source.ip() == self.sdp.ip()) {
            return Verdict::Drop;
        }
        let count = match self.learning {
            Some(l) if l.source == source && l.ssrc == ssrc && seq == l.seq.wrapping_add(1) => {
                l.count + 1
            }
            _ => 1,
        };
        if count >= PROBATION {
            self.target = source;
            self.latched = Some((ssrc, now));
            self.learning = None;
            return Verdict::Take;
        }
        self.learning = Some(Learning {
            source,
            ssrc,
            seq,
            count,
        });
        Verdict::Drop
    }

    /// Whether RTCP from `source` is the peer's: from the latched host or the SDP's.
    pub fn rtcp_from(&self, source: SocketAddr) -> bool {
        source.ip() == self.target.ip() || source.ip() == self.sdp.ip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_sdp_address_is_taken_and_others_are_dropped() {
        let sdp = addr("198.51.100.20:4000");
        let stranger = addr("203.0.113.9:5000");
        let t = Instant::now();
        let mut l = Latch::new(sdp);
        // A stranger first, in sequence and for long: never learned (the SDP is reachable).
        for i in 0..50 {
            assert_eq!(l.on_packet(t, stranger, 99, i), Verdict::Drop);
        }
        assert_eq!(l.target(), sdp);
        assert_eq!(l.on_packet(t, sdp, 7, 1), Verdict::Take);
        // A stranger with the peer's SSRC while the peer talks: dropped, not followed.
        for i in 0..50 {
            assert_eq!(l.on_packet(t, stranger, 7, 100 + i), Verdict::Drop);
        }
        assert_eq!(l.target(), sdp);
        assert!(l.rtcp_from(addr("198.51.100.20:4001")));
        assert!(!l.rtcp_from(addr("203.0.113.9:4001")));
    }

    #[test]
    fn behind_nat_a_source_is_learned_after_probation_and_the_sdp_takes_it_back() {
        let sdp = addr("10.0.0.5:4000");
        let nat = addr("198.51.100.7:61000");
        let t = Instant::now();
        let mut l = Latch::new(sdp);
        // Out of sequence or mixed SSRCs never complete the probation.
        assert_eq!(l.on_packet(t, nat, 5, 10), Verdict::Drop);
        assert_eq!(l.on_packet(t, nat, 5, 12), Verdict::Drop);
        assert_eq!(l.on_packet(t, nat, 6, 13), Verdict::Drop);
        assert_eq!(l.target(), sdp);
        let verdicts: Vec<Verdict> = (20..24).map(|s| l.on_packet(t, nat, 5, s)).collect();
        assert_eq!(
            verdicts,
            [Verdict::Drop, Verdict::Drop, Verdict::Drop, Verdict::Take]
        );
        assert_eq!(l.target(), nat);
        assert!(l.rtcp_from(addr("198.51.100.7:61001")));
        // The SDP's own address is always the peer.
        assert_eq!(l.on_packet(t, sdp, 8, 1), Verdict::Take);
        assert_eq!(l.target(), sdp);
    }

    #[test]
    fn the_stream_moves_only_with_its_ssrc_after_a_silence() {
        let sdp = addr("10.0.0.5:4000");
        let first = addr("198.51.100.7:61000");
        let rebound = addr("198.51.100.7:62000");
        let t = Instant::now();
        let mut l = Latch::new(sdp);
        for s in 0..4 {
            l.on_packet(t, first, 42, s);
        }
        assert_eq!(l.target(), first);
        // A new port with the SSRC while the old one still talks: not followed.
        let soon = t + Duration::from_millis(200);
        assert_eq!(l.on_packet(soon, first, 42, 4), Verdict::Take);
        assert_eq!(l.on_packet(soon, rebound, 42, 5), Verdict::Drop);
        // Another SSRC after a silence: not followed either.
        let later = soon + MOVE_AFTER;
        assert_eq!(l.on_packet(later, rebound, 43, 6), Verdict::Drop);
        assert_eq!(l.target(), first);
        // The same SSRC after the silence: the NAT rebound, the stream follows.
        assert_eq!(l.on_packet(later, rebound, 42, 6), Verdict::Take);
        assert_eq!(l.target(), rebound);
        assert_eq!(l.on_packet(later, first, 42, 7), Verdict::Drop);
    }
}
