//! The registrar (RFC 3261 10.3): agents' softphones REGISTER with digest credentials and the
//! engine learns where to ring them.
//!
//! Sans-IO like the rest of the engine: time is seconds passed in, the request comes in as a
//! [`Message`], the response goes out as one. Credentials come from the application through
//! [`CredentialStore`]. Failed authentications count only when they are real guesses (a wrong
//! password or user against a nonce this registrar issued and still holds: a spoofed or
//! half-written Authorization counts nothing), per source address and account: an account
//! guessed too often from one address is refused there for a while without a challenge, and an
//! address guessing many accounts is refused as a whole. The answer to a failure never says
//! whether the account exists.
//!
//! The address of record is the user part of the To URI: one hotline serves one domain.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::auth::{Algorithm, Challenger, CredentialStore, Verdict};
use crate::message::{ContactValue, HeaderName, Message, parse_delta_seconds};
use crate::transaction::Peer;

/// Limits and timings of the registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Digest realm.
    pub realm: String,
    /// Shortest registration accepted (423 below it).
    pub min_expires: u32,
    /// Longest registration granted (longer requests are shortened).
    pub max_expires: u32,
    /// Used when the request names no expiry.
    pub default_expires: u32,
    /// Seconds a nonce stays valid.
    pub nonce_ttl: u64,
    /// Failed authentications from one address within `failure_window` before it is blocked.
    pub max_failures: u32,
    /// Seconds over which failures are counted.
    pub failure_window: u64,
    /// Seconds an address stays blocked.
    pub block_for: u64,
    /// Most contacts one agent may bind.
    pub max_bindings: usize,
    /// Digest algorithms offered, most preferred first (one WWW-Authenticate each).
    pub algorithms: Vec<Algorithm>,
    /// Challenges (nonces issued) to one address within `challenge_window`; past it the
    /// address gets 503 with Retry-After and no nonce is stored.
    pub max_challenges: u32,
    /// Seconds over which challenges are counted.
    pub challenge_window: u64,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "hotline".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_ttl: 300,
            max_failures: 5,
            failure_window: 60,
            block_for: 300,
            max_bindings: 5,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            // A call center behind one NAT re-registers a few hundred phones an hour, and all
            // of them at once after a restart: 200 in 10 s lets them in within a minute.
            max_challenges: 200,
            challenge_window: 10,
        }
    }
}

/// Where an agent can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The agent (user part of the address of record).
    pub aor: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// When the binding lapses (seconds, the registrar's clock).
    pub expires_at: u64,
    /// Call-ID and CSeq of the REGISTER that made it (RFC 3261 10.3 step 7 ordering).
    pub call_id: String,
    /// See `call_id`.
    pub cseq: u32,
    /// Where the REGISTER came from: behind NAT, requests go here, not to the Contact host.
    pub source: Peer,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: u64,
    count: u32,
    blocked_until: u64,
}

/// Bindings of every agent.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    challenger: Challenger,
    bindings: HashMap<String, Vec<Binding>>,
    /// Guesses by source address and account.
    failures: HashMap<(IpAddr, String), Failures>,
    /// Guesses by source address, all accounts together.
    address_failures: HashMap<IpAddr, Failures>,
    /// Challenges by source address: (start of the window, challenges in it).
    challenges: HashMap<IpAddr, (u64, u32)>,
    tag_counter: u64,
}

/// An address is blocked as a whole after this many times `max_failures` guesses (many
/// agents share one NAT, and one of them mistyping must not block the rest).
const ADDRESS_FACTOR: u32 = 4;

impl Registrar {
    /// A registrar with a random nonce secret.
    pub fn new(config: RegistrarConfig) -> Self {
        let challenger = Challenger::new(&config.realm, config.nonce_ttl);
        Registrar {
            config,
            challenger,
            bindings: HashMap::new(),
            failures: HashMap::new(),
            address_failures: HashMap::new(),
            challenges: HashMap::new(),
            tag_counter: 0,
        }
    }

    /// A registrar whose nonces derive from a fixed secret (tests).
    pub fn with_secret(config: RegistrarConfig, secret: [u8; 32]) -> Self {
        let mut r = Registrar::new(config);
        r.challenger = Challenger::with_secret(&r.config.realm, r.config.nonce_ttl, secret);
        r
    }

    /// Answers one REGISTER.
    pub fn handle(
        &mut self,
        now: u64,
        req: &Message,
        peer: Peer,
        store: &dyn CredentialStore,
    ) -> Message {
        let ip = peer.addr.ip();
        let account = req
            .to_header()
            .and_then(|t| t.uri.as_sip().and_then(|u| u.user).map(str::to_string))
            .unwrap_or_default();
        let blocked = |f: Option<&Failures>| f.is_some_and(|f| f.blocked_until > now);
        if blocked(self.failures.get(&(ip, account.clone())))
            || blocked(self.address_failures.get(&ip))
        {
            return self.reply(req, 403, Some("too many failed attempts; try later"));
        }
        let creds = req
            .auths(&HeaderName::Authorization)
            .find(|a| {
                a.scheme.eq_ignore_ascii_case("Digest")
                    && a.param("realm").as_deref() == Some(self.challenger.realm())
            })
            .or_else(|| req.auths(&HeaderName::Authorization).next());
        let method = req.method().map_or("REGISTER", |m| m.as_str());
        let user = match self.challenger.verify(now, method, creds.as_ref(), store) {
            Verdict::Ok(user) => user,
            Verdict::Challenge => return self.challenge(now, req, peer, false),
            Verdict::Stale => return self.challenge(now, req, peer, true),
            Verdict::Fail(why) => {
                let guess = matches!(why, "wrong credentials" | "unknown user")
                    && creds
                        .as_ref()
                        .and_then(|c| c.param("nonce"))
                        .is_some_and(|n| self.challenger.is_live(now, &n));
                if guess {
                    self.note_failure(now, ip, &account);
                }
                // One answer for a wrong password and an account that does not exist.
                let said = if matches!(why, "wrong credentials" | "unknown user") {
                    "authentication failed"
                } else {
                    why
                };
                return self.reply(req, 403, Some(said));
            }
        };
        self.failures.remove(&(ip, account));
        let Some(aor) = req
            .to_header()
            .and_then(|t| t.uri.as_sip().and_then(|u| u.user).map(str::to_string))
        else {
            return self.reply(req, 404, Some("the To URI names no user"));
        };
        if aor != user {
            return self.reply(
                req,
                403,
                Some("the authenticated user may not register this address"),
            );
        }
        self.update(now, req, peer, &aor)
    }

    fn update(&mut self, now: u64, req: &Message, peer: Peer, aor: &str) -> Message {
        let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) else {
            return self.reply(req, 400, Some("no Call-ID or CSeq"));
        };
        let header_expires = req.expires();
        let contacts: Vec<ContactValue<'_>> = req.contacts().collect();
        let star = contacts.iter().any(|c| matches!(c, ContactValue::Star));
        if star {
            if contacts.len() != 1 || header_expires != Some(0) {
                return self.reply(
                    req,
                    400,
                    Some("Contact: * needs Expires: 0 and no other contact"),
                );
            }
            self.bindings.remove(aor);
            return self.ok(now, req, aor);
        }
        // Work out every change first; apply them only if all are acceptable.
        let mut changes: Vec<(String, u32)> = Vec::new();
        for c in &contacts {
            let ContactValue::Addr(a) = c else { continue };
            let expires = match a.params.get("expires") {
                Some(Some(v)) => parse_delta_seconds(v).unwrap_or(self.config.default_expires),
                _ => header_expires.unwrap_or(self.config.default_expires),
            };
            if expires != 0 && expires < self.config.min_expires {
                let mut r = self.reply(req, 423, None);
                r.push_header(HeaderName::MinExpires, &self.config.min_expires.to_string());
                return r;
            }
            let existing = self
                .bindings
                .get(aor)
                .and_then(|bs| bs.iter().find(|b| b.contact == a.uri.raw()));
            if let Some(b) = existing
                && b.call_id == call_id
                && cseq.seq <= b.cseq
            {
                return self.reply(req, 400, Some("REGISTER out of order (CSeq not higher)"));
            }
            changes.push((
                a.uri.raw().to_string(),
                expires.min(self.config.max_expires),
            ));
        }
        let list = self.bindings.entry(aor.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        let mut after: Vec<Binding> = list.clone();
        for (contact, expires) in changes {
            after.retain(|b| b.contact != contact);
            if expires > 0 {
                after.push(Binding {
                    aor: aor.to_string(),
                    contact,
                    expires_at: now + u64::from(expires),
                    call_id: call_id.to_string(),
                    cseq: cseq.seq,
                    source: peer,
                });
            }
        }
        if after.len() > self.config.max_bindings {
            return self.reply(req, 403, Some("too many contacts for one agent"));
        }
        if after.is_empty() {
            self.bindings.remove(aor);
        } else {
            self.bindings.insert(aor.to_string(), after);
        }
        self.ok(now, req, aor)
    }

    fn ok(&mut self, now: u64, req: &Message, aor: &str) -> Message {
        let mut r = self.reply(req, 200, None);
        for b in self.lookup(now, aor) {
            let left = b.expires_at.saturating_sub(now);
            r.push_header(
                HeaderName::Contact,
                &format!("<{}>;expires={left}", b.contact),
            );
        }
        r
    }

    /// Counts a challenge to `ip`; the seconds to wait when it is one too many.
    fn challenge_refused(&mut self, now: u64, ip: IpAddr) -> Option<u64> {
        let window = self.config.challenge_window.max(1);
        if self.challenges.len() >= 100_000 {
            self.challenges
                .retain(|_, (start, _)| now.saturating_sub(*start) < window);
        }
        let (start, count) = self.challenges.entry(ip).or_insert((now, 0));
        if now.saturating_sub(*start) >= window {
            *start = now;
            *count = 0;
        }
        if *count >= self.config.max_challenges {
            return Some((*start + window).saturating_sub(now).max(1));
        }
        *count += 1;
        None
    }

    fn challenge(&mut self, now: u64, req: &Message, peer: Peer, stale: bool) -> Message {
        if let Some(wait) = self.challenge_refused(now, peer.addr.ip()) {
            let mut r = self.reply(req, 503, Some("too many registrations; try later"));
            r.push_header(HeaderName::RetryAfter, &wait.to_string());
            return r;
        }
        let mut r = self.reply(req, 401, None);
        // JsSIP (the browser softphones' library, 3.x) reads only the first WWW-Authenticate
        // and gives up unless it is MD5: it gets MD5 first when MD5 is offered at all.
        let jssip = req
            .header(&HeaderName::UserAgent)
            .is_some_and(|ua| ua.starts_with("JsSIP"));
        let mut algorithms = self.config.algorithms.clone();
        if jssip {
            algorithms.sort_by_key(|a| *a != Algorithm::Md5);
        }
        for c in self.challenger.challenge(now, stale, &algorithms) {
            r.push_header(HeaderName::WwwAuthenticate, &c);
        }
        r
    }

    fn note_failure(&mut self, now: u64, ip: IpAddr, account: &str) {
        let cfg = self.config.clone();
        let bump = |f: &mut Failures, max: u32| {
            if now.saturating_sub(f.window_start) > cfg.failure_window {
                f.window_start = now;
                f.count = 0;
            }
            f.count += 1;
            if f.count >= max {
                f.blocked_until = now + cfg.block_for;
            }
        };
        let fresh = Failures {
            window_start: now,
            count: 0,
            blocked_until: 0,
        };
        bump(
            self.failures
                .entry((ip, account.to_string()))
                .or_insert(fresh),
            cfg.max_failures,
        );
        bump(
            self.address_failures.entry(ip).or_insert(fresh),
            cfg.max_failures.saturating_mul(ADDRESS_FACTOR),
        );
        if self.failures.len() + self.address_failures.len() > 100_000 {
            let live = |f: &Failures| {
                f.blocked_until > now || now.saturating_sub(f.window_start) <= cfg.failure_window
            };
            self.failures.retain(|_, f| live(f));
            self.address_failures.retain(|_, f| live(f));
        }
    }

    /// A response with a To tag (8.2.6.2) and, for failures, a Warning with the reason.
    fn reply(&mut self, req: &Message, code: u16, why: Option<&str>) -> Message {
        self.tag_counter += 1;
        let mut r = Message::response_to(req, code);
        if let Some(to) = req.header(&HeaderName::To)
            && req.to_header().is_some_and(|t| t.tag().is_none())
        {
            r.replace_first_value(
                &HeaderName::To,
                &format!("{to};tag=reg{:x}", self.tag_counter),
            );
        }
        if let Some(w) = why {
            r.push_header(
                HeaderName::Other("Warning".into()),
                &format!("399 hotline \"{w}\""),
            );
        }
        r.set_body(None, Vec::new());
        r
    }

    /// The live bindings of an agent, most recently refreshed first.
    pub fn lookup(&self, now: u64, aor: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings
            .get(aor)
            .map(|bs| bs.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
        v
    }

    /// Drops lapsed bindings and returns them.
    pub fn expire(&mut self, now: u64) -> Vec<Binding> {
        let mut gone = Vec::new();
        self.bindings.retain(|_, bs| {
            let (dead, live): (Vec<Binding>, Vec<Binding>) =
                bs.drain(..).partition(|b| b.expires_at <= now);
            gone.extend(dead);
            *bs = live;
            !bs.is_empty()
        });
        gone
    }

    /// The agents with at least one binding (lapsed ones not yet expired included).
    pub fn aors(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }

    /// Nonces the registrar holds for challenges not yet answered or expired.
    pub fn nonces_held(&self) -> usize {
        self.challenger.held()
    }

    /// Number of agents with at least one binding.
    pub fn registered_agents(&self) -> usize {
        self.bindings.len()
    }

    /// Takes back a binding kept from before a restart (its `expires_at` on this registrar's
    /// clock). A lapsed one, or one past the agent's `max_bindings`, is not taken: false.
    pub fn restore(&mut self, now: u64, binding: Binding) -> bool {
        if binding.expires_at <= now {
            return false;
        }
        let max = self.config.max_bindings;
        let list = self.bindings.entry(binding.aor.clone()).or_default();
        list.retain(|b| b.contact != binding.contact);
        if list.len() >= max {
            return false;
        }
        list.push(binding);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{authorization, ha1};
    use crate::message::{Auth, Delivery};
    use crate::transaction::TransportKind;

    struct Agents;
    impl CredentialStore for Agents {
        fn ha1(&self, user: &str, realm: &str, alg: Algorithm) -> Option<String> {
            (user == "1001").then(|| ha1(alg, user, realm, "pw1001"))
        }
    }

    fn peer(ip: &str) -> Peer {
        Peer {
            addr: format!("{ip}:5060").parse().unwrap(),
            transport: TransportKind::Udp,
        }
    }

    fn register(cseq: u32, contact: &str, expires: Option<&str>, auth: Option<&str>) -> Message {
        let mut text = format!(
            "REGISTER sip:hotline SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKr{cseq}\r\n\
             From: <sip:1001@hotline>;tag=f1\r\nTo: <sip:1001@hotline>\r\nCall-ID: reg-1\r\n\
             CSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\nContact: {contact}\r\n"
        );
        if let Some(e) = expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(text.as_bytes(), Delivery::Datagram).unwrap()
    }

    /// Registers through the 401 challenge with `password`; returns the final response.
    fn register_with(
        r: &mut Registrar,
        now: u64,
        cseq: u32,
        contact: &str,
        expires: Option<&str>,
        password: &str,
        from: &str,
    ) -> Message {
        let first = r.handle(
            now,
            &register(cseq, contact, expires, None),
            peer(from),
            &Agents,
        );
        assert_eq!(first.status(), Some(401));
        let challenge = first
            .auths(&HeaderName::WwwAuthenticate)
            .next()
            .map(|a: Auth<'_>| a.param("nonce").unwrap())
            .unwrap();
        let cred = authorization(
            Algorithm::Sha256,
            "1001",
            "hotline",
            password,
            &challenge,
            1,
            "cn",
            "REGISTER",
            "sip:hotline",
        );
        r.handle(
            now,
            &register(cseq + 1, contact, expires, Some(&cred)),
            peer(from),
            &Agents,
        )
    }

    #[test]
    fn challenge_then_bind_then_lookup_then_expire() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [1; 32]);
        let ok = register_with(
            &mut r,
            100,
            1,
            "<sip:1001@10.0.0.5:5062>",
            Some("600"),
            "pw1001",
            "10.0.0.5",
        );
        assert_eq!(ok.status(), Some(200));
        assert!(ok.to_header().unwrap().tag().is_some());
        let contact = ok.contacts().next().unwrap();
        let ContactValue::Addr(a) = contact else {
            panic!()
        };
        assert_eq!(a.params.get("expires"), Some(Some("600")));
        let b = r.lookup(200, "1001");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact, "sip:1001@10.0.0.5:5062");
        assert_eq!(b[0].source, peer("10.0.0.5"));
        assert!(r.lookup(701, "1001").is_empty());
        assert_eq!(r.expire(701).len(), 1);
        assert_eq!(r.registered_agents(), 0);
    }

    #[test]
    fn a_wrong_password_binds_nothing_and_repeated_failures_block_the_source() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [1; 32]);
        for i in 0..5 {
            let resp = register_with(
                &mut r,
                100,
                10 * i + 1,
                "<sip:1001@10.0.0.9>",
                None,
                "guess",
                "10.0.0.9",
            );
            assert_eq!(resp.status(), Some(403));
        }
        assert!(r.lookup(100, "1001").is_empty());
        // Blocked: even the right password is refused without a challenge, from that address.
        let blocked = r.handle(
            100,
            &register(99, "<sip:1001@10.0.0.9>", None, None),
            peer("10.0.0.9"),
            &Agents,
        );
        assert_eq!(blocked.status(), Some(403));
        // Another address is not affected, and the block lapses.
        let other = register_with(
            &mut r,
            100,
            200,
            "<sip:1001@10.0.0.8>",
            None,
            "pw1001",
            "10.0.0.8",
        );
        assert_eq!(other.status(), Some(200));
        let later = register_with(
            &mut r,
            401,
            300,
            "<sip:1001@10.0.0.9>",
            None,
            "pw1001",
            "10.0.0.9",
        );
        assert_eq!(later.status(), Some(200));
    }

    /// The REGISTER of `user` with `password` against the nonce of a fresh challenge.
    fn guess(r: &mut Registrar, now: u64, user: &str, password: &str, from: &str) -> Message {
        let text = |auth: Option<&str>| {
            static CSEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
            let cseq = CSEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let m = register(cseq, "<sip:x@10.0.0.9>", None, auth);
            let t = String::from_utf8_lossy(&m.to_bytes())
                .replace("1001@hotline", &format!("{user}@hotline"));
            Message::parse(t.as_bytes(), Delivery::Datagram).unwrap()
        };
        let first = r.handle(now, &text(None), peer(from), &Agents);
        if first.status() != Some(401) {
            return first;
        }
        let nonce = first
            .auths(&HeaderName::WwwAuthenticate)
            .next()
            .map(|a: Auth<'_>| a.param("nonce").unwrap())
            .unwrap();
        let cred = authorization(
            Algorithm::Sha256,
            user,
            "hotline",
            password,
            &nonce,
            1,
            "cn",
            "REGISTER",
            "sip:hotline",
        );
        r.handle(now, &text(Some(&cred)), peer(from), &Agents)
    }

    fn warning(m: &Message) -> String {
        m.header(&HeaderName::Other("Warning".into()))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn only_real_guesses_count_per_account_and_the_answer_hides_which_accounts_exist() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [2; 32]);
        // Spoofed REGISTERs with a made-up nonce or a half-written Authorization: refused, but
        // they block nobody (a spoofer could otherwise lock out a whole NAT).
        for i in 0..10 {
            let forged = authorization(
                Algorithm::Sha256,
                "1001",
                "hotline",
                "guess",
                "not-our-nonce",
                1,
                "cn",
                "REGISTER",
                "sip:hotline",
            );
            let resp = r.handle(
                100,
                &register(i, "<sip:1001@10.0.0.9>", None, Some(&forged)),
                peer("10.0.0.9"),
                &Agents,
            );
            assert_ne!(resp.status(), Some(200));
            let half = "Digest username=\"1001\", realm=\"hotline\"";
            let resp = r.handle(
                100,
                &register(i, "<sip:1001@10.0.0.9>", None, Some(half)),
                peer("10.0.0.9"),
                &Agents,
            );
            assert_eq!(resp.status(), Some(403));
        }
        assert_eq!(
            guess(&mut r, 100, "1001", "pw1001", "10.0.0.9").status(),
            Some(200)
        );

        // A wrong password and an unknown account read the same.
        let wrong = guess(&mut r, 100, "1001", "guess", "10.0.0.9");
        let unknown = guess(&mut r, 100, "1007", "guess", "10.0.0.9");
        assert_eq!((wrong.status(), unknown.status()), (Some(403), Some(403)));
        assert_eq!(warning(&wrong), warning(&unknown));
        assert!(
            warning(&wrong).contains("authentication failed"),
            "{}",
            warning(&wrong)
        );

        // Five real guesses at 1001 block 1001 from that address, not other accounts there.
        for _ in 0..4 {
            guess(&mut r, 101, "1001", "guess", "10.0.0.9");
        }
        assert!(warning(&guess(&mut r, 102, "1001", "pw1001", "10.0.0.9")).contains("too many"));
        assert_eq!(
            guess(&mut r, 102, "1007", "x", "10.0.0.9").status(),
            Some(403)
        );
        assert!(!warning(&guess(&mut r, 102, "1008", "x", "10.0.0.9")).contains("too many"));
        // An address guessing many accounts is blocked as a whole (4 x 5 guesses).
        for i in 0..20 {
            guess(&mut r, 103, &format!("20{i:02}"), "x", "10.0.0.9");
        }
        assert!(warning(&guess(&mut r, 104, "3001", "x", "10.0.0.9")).contains("too many"));
        assert_eq!(
            guess(&mut r, 104, "1001", "pw1001", "10.0.0.8").status(),
            Some(200)
        );
    }

    #[test]
    fn too_brief_is_423_and_zero_unbinds() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [1; 32]);
        let brief = register_with(
            &mut r,
            100,
            1,
            "<sip:1001@10.0.0.5>",
            Some("30"),
            "pw1001",
            "10.0.0.5",
        );
        assert_eq!(brief.status(), Some(423));
        assert_eq!(brief.header(&HeaderName::MinExpires), Some("60"));
        assert!(r.lookup(100, "1001").is_empty());
        register_with(
            &mut r,
            100,
            3,
            "<sip:1001@10.0.0.5>",
            Some("120"),
            "pw1001",
            "10.0.0.5",
        );
        register_with(
            &mut r,
            100,
            5,
            "<sip:1001@10.0.0.6>;expires=300",
            None,
            "pw1001",
            "10.0.0.5",
        );
        assert_eq!(r.lookup(100, "1001").len(), 2, "two contacts for one agent");
        let gone = register_with(
            &mut r,
            110,
            7,
            "<sip:1001@10.0.0.5>",
            Some("0"),
            "pw1001",
            "10.0.0.5",
        );
        assert_eq!(gone.status(), Some(200));
        assert_eq!(r.lookup(110, "1001").len(), 1);
        let all = register_with(&mut r, 120, 9, "*", Some("0"), "pw1001", "10.0.0.5");
        assert_eq!(all.status(), Some(200));
        assert!(r.lookup(120, "1001").is_empty());
    }

    #[test]
    fn long_expiry_is_capped_and_replays_are_refused() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [1; 32]);
        let ok = register_with(
            &mut r,
            100,
            1,
            "<sip:1001@10.0.0.5>",
            Some("99999999"),
            "pw1001",
            "10.0.0.5",
        );
        assert_eq!(ok.status(), Some(200));
        assert_eq!(r.lookup(100, "1001")[0].expires_at, 100 + 3600);
        // The same credentials again (same nonce-count): refused.
        let first = r.handle(
            100,
            &register(50, "<sip:1001@10.0.0.5>", None, None),
            peer("10.0.0.5"),
            &Agents,
        );
        let nonce = first
            .auths(&HeaderName::WwwAuthenticate)
            .next()
            .unwrap()
            .param("nonce")
            .unwrap();
        let cred = authorization(
            Algorithm::Md5,
            "1001",
            "hotline",
            "pw1001",
            &nonce,
            1,
            "c",
            "REGISTER",
            "sip:hotline",
        );
        let once = r.handle(
            100,
            &register(51, "<sip:1001@10.0.0.5>", None, Some(&cred)),
            peer("10.0.0.5"),
            &Agents,
        );
        assert_eq!(once.status(), Some(200));
        let again = r.handle(
            100,
            &register(52, "<sip:1001@10.0.0.5>", None, Some(&cred)),
            peer("10.0.0.5"),
            &Agents,
        );
        assert_eq!(again.status(), Some(403));
    }

    #[test]
    fn a_restored_binding_is_looked_up_until_it_lapses_and_a_lapsed_one_is_not_taken() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let b = |contact: &str, expires_at| Binding {
            aor: "1001".into(),
            contact: contact.into(),
            expires_at,
            call_id: "c1".into(),
            cseq: 7,
            source: peer("192.0.2.7"),
        };
        assert!(r.restore(100, b("sip:1001@192.0.2.7:5062", 400)));
        assert!(!r.restore(100, b("sip:1001@192.0.2.7:5064", 100)), "lapsed");
        let found = r.lookup(100, "1001");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source.addr, peer("192.0.2.7").addr);
        assert_eq!(r.registered_agents(), 1);
        assert_eq!(r.expire(400).len(), 1);
        assert!(r.lookup(400, "1001").is_empty());
    }

    #[test]
    fn another_agents_credentials_cannot_register_this_one() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [1; 32]);
        let first = r.handle(
            1,
            &register(1, "<sip:x@10.0.0.5>", None, None),
            peer("10.0.0.5"),
            &Agents,
        );
        let nonce = first
            .auths(&HeaderName::WwwAuthenticate)
            .next()
            .unwrap()
            .param("nonce")
            .unwrap();
        let cred = authorization(
            Algorithm::Sha256,
            "1001",
            "hotline",
            "pw1001",
            &nonce,
            1,
            "c",
            "REGISTER",
            "sip:hotline",
        );
        let mut req = register(2, "<sip:x@10.0.0.5>", None, Some(&cred));
        req.replace_first_value(&HeaderName::To, "<sip:1002@hotline>");
        assert_eq!(
            r.handle(1, &req, peer("10.0.0.5"), &Agents).status(),
            Some(403)
        );
    }

    #[test]
    fn a_flood_of_challenges_from_one_address_is_refused_without_storing_nonces() {
        let mut r = Registrar::with_secret(RegistrarConfig::default(), [1; 32]);
        let flood = |r: &mut Registrar, now: u64, n: u32| {
            (0..n)
                .map(|i| {
                    let req = register(i + 1, "<sip:1001@10.0.0.66>", None, None);
                    r.handle(now, &req, peer("10.0.0.66"), &Agents)
                })
                .collect::<Vec<_>>()
        };
        let answers = flood(&mut r, 100, 250);
        assert!(answers[..200].iter().all(|a| a.status() == Some(401)));
        let refused = &answers[200..];
        assert!(refused.iter().all(|a| a.status() == Some(503)));
        assert!(
            refused
                .iter()
                .all(|a| a.header(&HeaderName::WwwAuthenticate).is_none())
        );
        assert_eq!(refused[0].header(&HeaderName::RetryAfter), Some("10"));
        assert_eq!(
            r.nonces_held(),
            200,
            "no nonce stored for a refused challenge"
        );
        // Another address is challenged and registers as usual.
        let ok = register_with(
            &mut r,
            101,
            1,
            "<sip:1001@10.0.0.5>",
            None,
            "pw1001",
            "10.0.0.5",
        );
        assert_eq!(ok.status(), Some(200));
        // A few seconds on the wait is shorter; after the window the address is served again.
        let later = flood(&mut r, 105, 1);
        assert_eq!(later[0].header(&HeaderName::RetryAfter), Some("5"));
        let next = flood(&mut r, 110, 1);
        assert_eq!(next[0].status(), Some(401));
    }
}
