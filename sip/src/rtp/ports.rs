//! RTP port allocation from the configured range: RTP on an even port, RTCP on the odd port
//! above it (or nothing above it with rtcp-mux). When every pair is taken the caller is told
//! so the call can be answered 503 with Retry-After, never a crash.

use std::collections::BTreeSet;

/// Hands out port pairs.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    pairs: u16,
    next: u16,
    in_use: BTreeSet<u16>,
}

/// Every pair is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no free RTP port pair in the configured range")]
pub struct Exhausted;

impl PortAllocator {
    /// Pairs from `min` (rounded up to even) to `max`.
    pub fn new(min: u16, max: u16) -> Self {
        let first = min.saturating_add(min % 2);
        let pairs = if max > first {
            (max - first).div_ceil(2)
        } else {
            0
        };
        PortAllocator {
            first,
            pairs,
            next: 0,
            in_use: BTreeSet::new(),
        }
    }

    /// How many pairs the range holds.
    pub fn capacity(&self) -> usize {
        usize::from(self.pairs)
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// The next free even port, going round the range so a port just released is reused
    /// last (late packets of the old call do not land in the new one).
    pub fn allocate(&mut self) -> Result<u16, Exhausted> {
        for _ in 0..self.pairs {
            let i = self.next;
            self.next = (self.next + 1) % self.pairs.max(1);
            let port = self.first + 2 * i;
            if self.in_use.insert(port) {
                return Ok(port);
            }
        }
        Err(Exhausted)
    }

    /// Gives a pair back.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }
}

/// Symmetric RTP (RFC 4961 practice for callers behind NAT): the address to send to is the
/// one the first valid packet came from, not the one in the SDP; a later change of source is
/// followed only after several packets agree (a stray packet cannot hijack the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latch {
    target: std::net::SocketAddr,
    latched: bool,
    candidate: Option<(std::net::SocketAddr, u8)>,
}

impl Latch {
    /// Starts with the SDP's address.
    pub fn new(sdp_addr: std::net::SocketAddr) -> Self {
        Latch {
            target: sdp_addr,
            latched: false,
            candidate: None,
        }
    }

    /// Where to send now.
    pub fn target(&self) -> std::net::SocketAddr {
        self.target
    }

    /// A valid RTP packet (right SSRC and payload type) came from `source`.
    pub fn on_packet(&mut self, source: std::net::SocketAddr) {
        if !self.latched {
            self.target = source;
            self.latched = true;
            return;
        }
        if source == self.target {
            self.candidate = None;
            return;
        }
        let count = match self.candidate {
            Some((addr, n)) if addr == source => n + 1,
            _ => 1,
        };
        if count >= 5 {
            self.target = source;
            self.candidate = None;
        } else {
            self.candidate = Some((source, count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_exhaustion() {
        let mut a = PortAllocator::new(20001, 20010);
        assert_eq!(
            a.capacity(),
            4,
            "20002, 20004, 20006, 20008 (20010 has no room for RTCP)"
        );
        let ports: Vec<u16> = (0..4).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(ports, [20002, 20004, 20006, 20008]);
        assert_eq!(a.allocate(), Err(Exhausted));
        a.release(20004);
        assert_eq!(a.allocate(), Ok(20004));
        a.release(20002);
        a.release(20006);
        // Round robin: the next search starts after the last one given.
        assert_eq!(a.allocate(), Ok(20006));
        assert_eq!(a.in_use(), 3, "20004, 20006 and 20008; 20002 is free");
        assert_eq!(PortAllocator::new(30000, 30000).allocate(), Err(Exhausted));
    }

    #[test]
    fn the_first_packet_latches_and_a_move_needs_agreement() {
        let sdp: std::net::SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let nat: std::net::SocketAddr = "198.51.100.7:61000".parse().unwrap();
        let stray: std::net::SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let mut l = Latch::new(sdp);
        assert_eq!(l.target(), sdp);
        l.on_packet(nat);
        assert_eq!(l.target(), nat);
        l.on_packet(stray);
        l.on_packet(nat);
        l.on_packet(stray);
        assert_eq!(l.target(), nat, "one stray packet does not move the stream");
        for _ in 0..5 {
            l.on_packet(stray);
        }
        assert_eq!(
            l.target(),
            stray,
            "a source that keeps sending is followed (NAT rebinding)"
        );
    }
}
