//! Digest authentication for SIP (RFC 3261 22.4, RFC 7616, RFC 8760): SHA-256 for current
//! phones, MD5 for old ones, `qop=auth` only.
//!
//! Passwords never reach the engine: the application hands over HA1 hashes through
//! [`CredentialStore`]. Nonces are issued by a [`Challenger`], expire after a configured time,
//! and every nonce-count is accepted once only, so a captured REGISTER cannot be replayed.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::message::Auth;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 2617; what old phones speak).
    Md5,
    /// SHA-256 (RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token in `algorithm=`.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm=` token (`MD5`, `SHA-256`, any case).
    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hex(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            Algorithm::Md5 => Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// `H(username:realm:password)`, what the application stores instead of the password.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hex(&format!("{username}:{realm}:{password}"))
}

/// The expected `response` for `qop=auth` (RFC 7616 3.4.1).
#[allow(clippy::too_many_arguments)]
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hex(&format!("{method}:{uri}"));
    alg.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

/// Where HA1 hashes come from (the application keeps them in PostgreSQL and caches them).
pub trait CredentialStore {
    /// HA1 of `username` in `realm` for `alg`, if the user exists.
    fn ha1(&self, username: &str, realm: &str, alg: Algorithm) -> Option<String>;
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    Ok(String),
    /// Right password, but the nonce expired: challenge again with `stale=true`.
    Stale,
    /// No usable credentials (none, another scheme, another realm): challenge.
    Challenge,
    /// Wrong password, unknown user, replayed nonce-count, or forged nonce.
    Fail(&'static str),
}

#[derive(Debug, Clone, Copy)]
struct NonceState {
    issued: u64,
    last_nc: u32,
}

/// Issues and checks nonces for one realm. Time is seconds, passed in.
#[derive(Debug)]
pub struct Challenger {
    realm: String,
    secret: [u8; 32],
    counter: u64,
    ttl: u64,
    nonces: HashMap<String, NonceState>,
    /// Nonces in the order they were issued (time order): expiry and eviction take from the
    /// front, so a challenge costs the same with one nonce held or with the table full.
    issued: VecDeque<(u64, String)>,
    max_nonces: usize,
}

impl Challenger {
    /// A challenger with a random secret; nonces live `ttl_secs`.
    pub fn new(realm: &str, ttl_secs: u64) -> Self {
        let mut secret = [0u8; 32];
        // Without OS randomness the nonces are still unique (the counter), only guessable.
        let _ = getrandom::fill(&mut secret);
        Self::with_secret(realm, ttl_secs, secret)
    }

    /// A challenger with a fixed secret (tests).
    pub fn with_secret(realm: &str, ttl_secs: u64, secret: [u8; 32]) -> Self {
        Challenger {
            realm: realm.to_string(),
            secret,
            counter: 0,
            ttl: ttl_secs,
            nonces: HashMap::new(),
            issued: VecDeque::new(),
            max_nonces: 100_000,
        }
    }

    /// Nonces held (issued, not yet expired or evicted).
    pub fn held(&self) -> usize {
        self.nonces.len()
    }

    /// A challenger holding at most `max` nonces at once (default 100,000).
    pub fn set_max_nonces(&mut self, max: usize) {
        self.max_nonces = max.max(1);
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn new_nonce(&mut self, now: u64) -> String {
        // Expired nonces first, then (under a flood of unanswered challenges) the oldest; a
        // nonce already dropped by `verify` is skipped when its turn comes.
        while let Some((issued, _)) = self.issued.front() {
            let expired = now.saturating_sub(*issued) > self.ttl;
            if !expired && self.issued.len() < self.max_nonces {
                break;
            }
            if let Some((_, nonce)) = self.issued.pop_front() {
                self.nonces.remove(&nonce);
            }
        }
        self.counter += 1;
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(self.counter.to_be_bytes());
        h.update(now.to_be_bytes());
        let digest = h.finalize();
        let mut nonce = String::with_capacity(40);
        for b in &digest[..16] {
            let _ = write!(nonce, "{b:02x}");
        }
        self.nonces.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                last_nc: 0,
            },
        );
        self.issued.push_back((now, nonce.clone()));
        nonce
    }

    /// WWW-Authenticate values for a 401, one per algorithm in order of preference (RFC 8760
    /// section 2.4: SHA-256 first, then MD5), sharing one fresh nonce.
    pub fn challenge(&mut self, now: u64, stale: bool, algorithms: &[Algorithm]) -> Vec<String> {
        let nonce = self.new_nonce(now);
        algorithms
            .iter()
            .map(|alg| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    alg.token(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Whether `nonce` is one this challenger issued and still holds, unexpired at `now`: a
    /// failure with it is a real guess, not a spoofed or stale request.
    pub fn is_live(&self, now: u64, nonce: &str) -> bool {
        self.nonces
            .get(nonce)
            .is_some_and(|s| now.saturating_sub(s.issued) <= self.ttl)
    }

    /// Checks Authorization credentials of a request with `method`.
    pub fn verify(
        &mut self,
        now: u64,
        method: &str,
        creds: Option<&Auth<'_>>,
        store: &dyn CredentialStore,
    ) -> Verdict {
        let Some(creds) = creds else {
            return Verdict::Challenge;
        };
        if !creds.scheme.eq_ignore_ascii_case("Digest") {
            return Verdict::Challenge;
        }
        let get = |n: &str| creds.param(n);
        if get("realm").as_deref() != Some(self.realm.as_str()) {
            return Verdict::Challenge;
        }
        let (Some(user), Some(nonce), Some(uri), Some(resp)) =
            (get("username"), get("nonce"), get("uri"), get("response"))
        else {
            return Verdict::Fail("incomplete credentials");
        };
        let alg = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::parse(&a) {
                Some(a) => a,
                None => return Verdict::Challenge,
            },
        };
        if get("qop").as_deref() != Some("auth") {
            return Verdict::Fail("qop=auth is required");
        }
        let (Some(nc_text), Some(cnonce)) = (get("nc"), get("cnonce")) else {
            return Verdict::Fail("qop=auth without nc or cnonce");
        };
        let Ok(nc) = u32::from_str_radix(&nc_text, 16) else {
            return Verdict::Fail("nc is not hexadecimal");
        };
        let Some(ha1) = store.ha1(&user, &self.realm, alg) else {
            return Verdict::Fail("unknown user");
        };
        let expected = response(alg, &ha1, &nonce, &nc_text, &cnonce, method, &uri);
        if !constant_time_eq(expected.as_bytes(), resp.to_ascii_lowercase().as_bytes()) {
            return Verdict::Fail("wrong credentials");
        }
        let Some(state) = self.nonces.get_mut(&nonce) else {
            // Our secret made no such nonce, or it expired and was forgotten.
            return Verdict::Stale;
        };
        if now.saturating_sub(state.issued) > self.ttl {
            self.nonces.remove(&nonce);
            return Verdict::Stale;
        }
        if nc <= state.last_nc {
            return Verdict::Fail("nonce-count replayed");
        }
        state.last_nc = nc;
        Verdict::Ok(user)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds an Authorization value answering a challenge (the UAC side, and tests).
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let h1 = ha1(alg, username, realm, password);
    let nc_text = format!("{nc:08x}");
    let resp = response(alg, &h1, nonce, &nc_text, cnonce, method, uri);
    format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", algorithm={}, qop=auth, nc={nc_text}, cnonce=\"{cnonce}\"",
        alg.token()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Users;
    impl CredentialStore for Users {
        fn ha1(&self, user: &str, realm: &str, alg: Algorithm) -> Option<String> {
            (user == "agent1001").then(|| ha1(alg, user, realm, "s3cret"))
        }
    }

    fn nonce_of(challenge: &str) -> String {
        let auth = Auth::parse(challenge).unwrap();
        auth.param("nonce").unwrap()
    }

    fn check(c: &mut Challenger, now: u64, value: &str) -> Verdict {
        let a = Auth::parse(value).unwrap();
        c.verify(now, "REGISTER", Some(&a), &Users)
    }

    #[test]
    fn rfc_2617_md5_example_response() {
        // RFC 2617 3.5 (HTTP): Mufasa / Circle Of Life.
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = response(
            Algorithm::Md5,
            &h1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc_7616_sha256_example_response() {
        // RFC 7616 3.9.1.
        let h1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = response(
            Algorithm::Sha256,
            &h1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn both_algorithms_authenticate_once_per_nonce_count() {
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let mut c = Challenger::with_secret("hotline", 300, [7; 32]);
            let ch = c.challenge(1000, false, &[Algorithm::Sha256, Algorithm::Md5]);
            assert!(ch[0].contains("SHA-256") && ch[1].contains("MD5"));
            let nonce = nonce_of(&ch[0]);
            let cred = |nc| {
                authorization(
                    alg,
                    "agent1001",
                    "hotline",
                    "s3cret",
                    &nonce,
                    nc,
                    "abc",
                    "REGISTER",
                    "sip:hotline",
                )
            };
            assert_eq!(
                check(&mut c, 1001, &cred(1)),
                Verdict::Ok("agent1001".into())
            );
            assert_eq!(
                check(&mut c, 1002, &cred(1)),
                Verdict::Fail("nonce-count replayed")
            );
            assert_eq!(
                check(&mut c, 1003, &cred(2)),
                Verdict::Ok("agent1001".into())
            );
        }
    }

    #[test]
    fn wrong_password_unknown_user_and_expired_nonces() {
        let mut c = Challenger::with_secret("hotline", 300, [7; 32]);
        let nonce = nonce_of(&c.challenge(1000, false, &[Algorithm::Sha256, Algorithm::Md5])[0]);
        let bad = authorization(
            Algorithm::Sha256,
            "agent1001",
            "hotline",
            "guess",
            &nonce,
            1,
            "x",
            "REGISTER",
            "sip:hotline",
        );
        assert_eq!(
            check(&mut c, 1001, &bad),
            Verdict::Fail("wrong credentials")
        );
        let who = authorization(
            Algorithm::Sha256,
            "nobody",
            "hotline",
            "s3cret",
            &nonce,
            1,
            "x",
            "REGISTER",
            "sip:hotline",
        );
        assert_eq!(check(&mut c, 1001, &who), Verdict::Fail("unknown user"));
        let late = authorization(
            Algorithm::Sha256,
            "agent1001",
            "hotline",
            "s3cret",
            &nonce,
            1,
            "x",
            "REGISTER",
            "sip:hotline",
        );
        assert_eq!(check(&mut c, 1301, &late), Verdict::Stale);
        // A nonce we never issued, even with the right password, is not accepted.
        let forged = authorization(
            Algorithm::Sha256,
            "agent1001",
            "hotline",
            "s3cret",
            "feedface",
            1,
            "x",
            "REGISTER",
            "sip:hotline",
        );
        assert_eq!(check(&mut c, 1001, &forged), Verdict::Stale);
    }

    #[test]
    fn other_schemes_and_realms_are_challenged() {
        let mut c = Challenger::with_secret("hotline", 300, [7; 32]);
        assert_eq!(
            check(&mut c, 1, "NoOneKnowsThisScheme opaque-data=here"),
            Verdict::Challenge
        );
        assert_eq!(
            check(
                &mut c,
                1,
                r#"Digest username="a", realm="elsewhere", nonce="n", uri="u", response="r""#
            ),
            Verdict::Challenge
        );
        assert_eq!(c.verify(1, "REGISTER", None, &Users), Verdict::Challenge);
    }

    #[test]
    fn a_full_nonce_table_drops_the_oldest_and_expired_ones_first() {
        let mut c = Challenger::with_secret("hotline", 300, [7; 32]);
        c.set_max_nonces(3);
        let first = nonce_of(&c.challenge(1000, false, &[Algorithm::Md5])[0]);
        let second = nonce_of(&c.challenge(1001, false, &[Algorithm::Md5])[0]);
        let third = nonce_of(&c.challenge(1002, false, &[Algorithm::Md5])[0]);
        let fourth = nonce_of(&c.challenge(1003, false, &[Algorithm::Md5])[0]);
        assert_eq!(c.held(), 3);
        assert!(
            !c.is_live(1003, &first),
            "the oldest goes when the table is full"
        );
        for n in [&second, &third, &fourth] {
            assert!(c.is_live(1003, n));
        }
        // Past the lifetime of the second and third, a new challenge leaves the fourth and
        // itself.
        let fifth = nonce_of(&c.challenge(1303, false, &[Algorithm::Md5])[0]);
        assert_eq!(c.held(), 2);
        assert!(c.is_live(1303, &fourth) && c.is_live(1303, &fifth));
        // A nonce used up as stale by verify is skipped when its turn comes.
        let a = authorization(
            Algorithm::Md5,
            "agent1001",
            "hotline",
            "s3cret",
            &fourth,
            1,
            "c",
            "REGISTER",
            "sip:hotline",
        );
        assert_eq!(check(&mut c, 1400, &a), Verdict::Stale);
        let _ = c.challenge(1401, false, &[Algorithm::Md5]);
        assert_eq!(c.held(), 2);
    }
}
