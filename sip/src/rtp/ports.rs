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
}
