//! Random numbers from the operating system's entropy source: RTP's SSRCs, sequence and
//! timestamp origins and SDP session ids (RFC 3550 wants them unpredictable), ICE
//! credentials, session tokens and API keys. It imports no other module of the application.

/// A random 64-bit number. Without an entropy source the clock's nanoseconds stand in (media
/// identifiers need to differ, not to be secret).
pub fn u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return u64::from(t.subsec_nanos()) ^ t.as_secs().rotate_left(32);
    }
    u64::from_le_bytes(b)
}

/// `bytes` random bytes as lower-case hex, for secrets (session tokens, API keys, ICE
/// passwords); an error when the system has no entropy to give, never a weaker stand-in.
pub fn hex_secret(bytes: usize) -> Result<String, getrandom::Error> {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}
