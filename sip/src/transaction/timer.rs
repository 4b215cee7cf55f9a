//! RFC 3261 timer values and the endpoint's timer queue. Time is always passed in: nothing
//! here reads a clock, so tests jump from deadline to deadline without sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// T1, T2 and T4 (RFC 3261 17.1.1.1, table 4). Every other timer derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate: 500 ms.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses: 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network: 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The timers of RFC 3261 section 17 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Client INVITE: retransmit the INVITE (UDP).
    A,
    /// Client INVITE: give up waiting for a response.
    B,
    /// Client INVITE: wait for response retransmissions after a failure.
    D,
    /// Client non-INVITE: retransmit the request (UDP).
    E,
    /// Client non-INVITE: give up waiting for a final response.
    F,
    /// Server INVITE: retransmit the final failure response (UDP).
    G,
    /// Server INVITE: give up waiting for the ACK.
    H,
    /// Server INVITE: absorb ACK retransmissions.
    I,
    /// Server non-INVITE: absorb request retransmissions.
    J,
    /// Client non-INVITE: absorb response retransmissions.
    K,
    /// Server INVITE (RFC 6026): absorb INVITE retransmissions after a 2xx.
    L,
    /// Client INVITE (RFC 6026): pass 2xx retransmissions to the TU.
    M,
    /// Server non-INVITE (ours, not RFC 3261's): the TU never answered within 64*T1, by
    /// when the client gave up (its timer F); the transaction is dropped so it cannot linger.
    Unanswered,
}

/// Deadlines of all transactions, earliest first. Entries are not removed when a timer is
/// cancelled or re-armed: a popped entry counts only if the transaction still holds that
/// deadline for that timer (lazy deletion keeps every operation O(log n)).
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
}

impl TimerQueue {
    pub fn push(&mut self, at: Instant, tx: u64, timer: Timer) {
        self.heap.push(Reverse((at, tx, timer)));
    }

    pub fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64, Timer)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
