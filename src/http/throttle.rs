//! Login throttling (issue 22, item 4), sans-IO: failed logins counted per source address and
//! per user name, each with a growing back-off (not a lock-out: the real owner waits seconds,
//! a guesser waits longer and longer), and a bound on how many password hashes (argon2id,
//! 19 MiB and tens of milliseconds each) run at once, so a flood of logins cannot take every
//! core and gigabytes of memory ([`crate::users`] bounds the hashing itself).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one user name before its back-off starts.
const FREE_TRIES_PER_USER: u32 = 5;
/// Failures from one address before its back-off starts (many agents share a NAT).
const FREE_TRIES_PER_ADDRESS: u32 = 20;
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Entries kept before the oldest quiet ones are forgotten.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next try may come: free tries first, then 1 s, 2 s, 4 s ... up to 15 min.
    fn next_allowed(&self, free: u32) -> Option<Instant> {
        let over = self.count.checked_sub(free)?;
        let secs = 1u64.checked_shl(over.min(20)).unwrap_or(u64::MAX);
        Some(self.last + Duration::from_secs(secs).min(MAX_BACKOFF))
    }
}

/// Failed logins by address and by user name.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    state: Mutex<(HashMap<IpAddr, Failures>, HashMap<String, Failures>)>,
}

impl LoginThrottle {
    /// `Err(wait)` when a login from `ip` for `user` must wait that long (no password is
    /// checked for it).
    pub fn check(&self, ip: Option<IpAddr>, user: &str, now: Instant) -> Result<(), Duration> {
        let Ok(s) = self.state.lock() else {
            return Ok(());
        };
        let by_ip = ip
            .and_then(|ip| s.0.get(&ip))
            .and_then(|f| f.next_allowed(FREE_TRIES_PER_ADDRESS));
        let by_user =
            s.1.get(user)
                .and_then(|f| f.next_allowed(FREE_TRIES_PER_USER));
        match by_ip.into_iter().chain(by_user).max() {
            Some(at) if at > now => Err(at - now),
            _ => Ok(()),
        }
    }

    /// A login failed.
    pub fn failed(&self, ip: Option<IpAddr>, user: &str, now: Instant) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let bump = |f: &mut Failures| {
            f.count = f.count.saturating_add(1);
            f.last = now;
        };
        let fresh = Failures {
            count: 0,
            last: now,
        };
        if let Some(ip) = ip {
            bump(s.0.entry(ip).or_insert(fresh));
        }
        bump(s.1.entry(user.to_string()).or_insert(fresh));
        if s.0.len() + s.1.len() > MAX_ENTRIES {
            let quiet = |f: &Failures| now.saturating_duration_since(f.last) < MAX_BACKOFF;
            s.0.retain(|_, f| quiet(f));
            s.1.retain(|_, f| quiet(f));
        }
    }

    /// A login succeeded: the user's count starts over (the address's too).
    pub fn succeeded(&self, ip: Option<IpAddr>, user: &str) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(ip) = ip {
                s.0.remove(&ip);
            }
            s.1.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guessed_user_waits_longer_and_longer_and_its_owner_starts_over_on_success() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let ip: Option<IpAddr> = "192.0.2.9".parse().ok();
        for i in 0..5 {
            assert_eq!(t.check(ip, "alice", at(i)), Ok(()));
            t.failed(ip, "alice", at(i));
        }
        // The sixth try waits 1 s after the fifth failure, then 2 s, 4 s ...
        assert_eq!(t.check(ip, "alice", at(4)), Err(Duration::from_secs(1)));
        assert_eq!(t.check(ip, "alice", at(5)), Ok(()));
        t.failed(ip, "alice", at(5));
        assert_eq!(t.check(ip, "alice", at(6)), Err(Duration::from_secs(1)));
        assert_eq!(t.check(ip, "alice", at(7)), Ok(()));
        // Another user from the same address is not held back by alice's failures.
        assert_eq!(t.check(ip, "bob", at(5)), Ok(()));
        for i in 0..30 {
            t.failed(ip, "alice", at(8 + i));
        }
        assert_eq!(
            t.check(ip, "alice", at(40)),
            Err(MAX_BACKOFF - Duration::from_secs(3)),
            "capped at 15 minutes"
        );
        // Past 20 failures the address waits too, for any user.
        assert!(t.check(ip, "bob", at(40)).is_err());
        t.succeeded(ip, "alice");
        assert_eq!(t.check(ip, "alice", at(40)), Ok(()));
        assert_eq!(t.check(ip, "bob", at(40)), Ok(()));
    }
}
