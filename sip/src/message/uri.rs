//! URIs: `sip:` and `sips:` (RFC 3261 19.1), `tel:` (RFC 3966), and any other scheme kept
//! opaque (RFC 3986 `absoluteURI`). Parsing borrows from the text; nothing is allocated.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::scan::{Class, MARKS, escaped_run, is_token, table};

/// A parsed URI, borrowing from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other scheme: checked for URI characters only, kept whole.
    Other {
        /// The scheme, as written.
        scheme: &'a str,
        /// The whole URI.
        raw: &'a str,
    },
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:`.
    pub secure: bool,
    /// The user part, still escaped (`%40` stays `%40`).
    pub user: Option<&'a str>,
    /// The password, if any (deprecated but legal).
    pub password: Option<&'a str>,
    /// The host.
    pub host: Host<'a>,
    /// The port, if written.
    pub port: Option<u16>,
    /// `;name=value` URI parameters.
    pub params: Params<'a>,
    /// The `?h=v&...` headers part, without the `?`.
    pub headers: Option<&'a str>,
    /// The whole URI as written.
    pub raw: &'a str,
}

/// A `tel:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number with its visual separators (`+1-201-555-0123`).
    pub number: &'a str,
    /// `;name=value` parameters (`phone-context`, `ext`, ...).
    pub params: Params<'a>,
    /// The whole URI as written.
    pub raw: &'a str,
}

/// A host: a domain name, or an IP address (an IPv6 address is written in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name, as written.
    Name(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written as a bracketed reference).
    V6(Ipv6Addr),
}

impl Host<'_> {
    /// The address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parameters `;name[=value]...`, validated at parse time and iterated lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    pub(crate) fn from_raw(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The parameters as written, starting with `;` (or empty).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Each `(name, value)`, names as written, values without surrounding white space.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        split_params(self.raw).map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim_matches(is_ws), Some(v.trim_matches(is_ws))),
            None => (p.trim_matches(is_ws), None),
        })
    }

    /// The value of the first parameter named `name` (case-insensitive); `Some(None)` for a
    /// parameter without a value. (Via's branch and an address's tag are kept as they are
    /// parsed: [`super::Via::branch`], [`super::NameAddr::tag`].)
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a parameter named `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.trim_matches(is_ws).is_empty()
    }
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits `;a=1;b;c="x;y"` into `a=1`, `b`, `c="x;y"` (quotes protect semicolons).
fn split_params(raw: &str) -> impl Iterator<Item = &str> {
    let b = raw.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < b.len() && (b[pos] == b';' || b[pos] == b' ' || b[pos] == b'\t') {
            pos += 1;
        }
        if pos >= b.len() {
            return None;
        }
        let start = pos;
        let mut in_quote = false;
        while pos < b.len() {
            match b[pos] {
                b'\\' if in_quote => pos += 1,
                b'"' => in_quote = !in_quote,
                b';' if !in_quote => break,
                _ => {}
            }
            pos += 1;
        }
        let end = pos.min(b.len());
        Some(raw[start..end].trim_end_matches(is_ws))
    })
}

/// Why a URI is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError(pub &'static str);

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

// Unreserved characters plus each class's own (RFC 3261 25.1, RFC 3986 for `uric`).
pub(crate) static USER: Class = table(&[MARKS, b"&=+$,;?/"]);
static PASSWORD: Class = table(&[MARKS, b"&=+$,"]);
pub(crate) static PARAM: Class = table(&[MARKS, b"[]/:&+$"]);
static HNV: Class = table(&[MARKS, b"[]/?:+$"]);
static URIC: Class = table(&[MARKS, b";/?:@&=+$,[]#"]);

#[cfg(test)]
fn user_unreserved(b: u8) -> bool {
    USER[b as usize]
}

#[cfg(test)]
fn password_char(b: u8) -> bool {
    PASSWORD[b as usize]
}

fn param_char(b: u8) -> bool {
    PARAM[b as usize]
}

#[cfg(test)]
fn hnv_char(b: u8) -> bool {
    HNV[b as usize]
}

/// RFC 3986 characters of an opaque URI: reserved, unreserved and `%` (escapes checked).
fn uric(b: u8) -> bool {
    URIC[b as usize]
}

impl<'a> Uri<'a> {
    /// Parses a whole URI (no angle brackets, no surrounding white space).
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        if let Some(rest) = s.get(4..)
            && s.as_bytes()[..4].eq_ignore_ascii_case(b"sip:")
        {
            return parse_sip(s, false, rest).map(Uri::Sip);
        }
        let colon = super::scan::find(s, b':').ok_or(UriError("URI without a scheme"))?;
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let valid_scheme = scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError("invalid URI scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            parse_sip(s, scheme.len() == 4, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(s, rest).map(Uri::Tel)
        } else if rest.is_empty() || !escaped_run(rest, uric) {
            Err(UriError("invalid characters in URI"))
        } else {
            Ok(Uri::Other { scheme, raw: s })
        }
    }

    /// The URI as written.
    pub fn raw(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other { raw, .. } => raw,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The URI's parameters (an opaque URI has none that we read).
    pub fn params(&self) -> Params<'a> {
        match self {
            Uri::Sip(u) => u.params,
            Uri::Tel(u) => u.params,
            Uri::Other { .. } => Params::default(),
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw())
    }
}

fn parse_sip<'a>(raw: &'a str, secure: bool, rest: &'a str) -> Result<SipUri<'a>, UriError> {
    // One pass over each part: the user part (and a password) up to '@', the host, the port,
    // the parameters, the headers.
    let b = rest.as_bytes();
    let (user, password, i) = userinfo(rest)?;
    let (host, mut i) = host_at(rest, i)?;
    let port = if b.get(i) == Some(&b':') {
        let ps = i + 1;
        i = ps;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        Some(parse_port(&rest[ps..i])?)
    } else {
        None
    };
    // *( ";" pname ["=" pvalue] )
    let params_start = i;
    while b.get(i) == Some(&b';') {
        i += 1;
        let n = escaped_len(&b[i..], &PARAM);
        if n == 0 {
            return Err(UriError("invalid SIP URI parameter"));
        }
        i += n;
        if b.get(i) == Some(&b'=') {
            i += 1;
            let v = escaped_len(&b[i..], &PARAM);
            if v == 0 {
                return Err(UriError("invalid SIP URI parameter"));
            }
            i += v;
        }
    }
    let params = &rest[params_start..i];
    // ["?" hname "=" [hvalue] *("&" ...)]
    let headers = match b.get(i) {
        None => None,
        Some(b'?') => {
            let hs = i + 1;
            loop {
                i += 1;
                let n = escaped_len(&b[i..], &HNV);
                if n == 0 || b.get(i + n) != Some(&b'=') {
                    return Err(UriError("invalid SIP URI header"));
                }
                i += n + 1;
                i += escaped_len(&b[i..], &HNV);
                match b.get(i) {
                    None => break,
                    Some(b'&') => {}
                    Some(_) => return Err(UriError("invalid SIP URI header")),
                }
            }
            Some(&rest[hs..])
        }
        Some(_) if params_start == i && port.is_none() => {
            return Err(UriError("invalid host name"));
        }
        Some(_) => return Err(UriError("invalid SIP URI parameter")),
    };
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: Params::from_raw(params),
        headers,
        raw,
    })
}

/// `[user [":" password] "@"]` at the start of a SIP URI's text after the scheme: the user,
/// the password and where the host starts. Without an '@' there is no user part; an '@' after
/// a malformed one is an error.
#[allow(clippy::type_complexity)]
fn userinfo(rest: &str) -> Result<(Option<&str>, Option<&str>, usize), UriError> {
    let b = rest.as_bytes();
    let n = escaped_len(b, &USER);
    match b.get(n) {
        Some(b'@') if n > 0 => return Ok((Some(&rest[..n]), None, n + 1)),
        Some(b':') if n > 0 => {
            let p = n + 1 + escaped_len(&b[n + 1..], &PASSWORD);
            if b.get(p) == Some(&b'@') {
                return Ok((Some(&rest[..n]), Some(&rest[n + 1..p]), p + 1));
            }
        }
        _ => {}
    }
    if super::scan::find(&rest[n..], b'@').is_some() {
        return Err(UriError("invalid user part in SIP URI"));
    }
    Ok((None, None, 0))
}

/// The length of the longest prefix of `allowed` bytes and well-formed `%HH` escapes; a
/// malformed escape ends the run (so a caller expecting more sees a stray '%').
#[inline]
fn escaped_len(b: &[u8], allowed: &Class) -> usize {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if allowed[c as usize] {
            i += 1;
        } else if c == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            i += 3;
        } else {
            break;
        }
    }
    i
}

pub(crate) fn parse_port(p: &str) -> Result<u16, UriError> {
    let b = p.as_bytes();
    if b.is_empty() || b.len() > 5 {
        return Err(UriError("invalid port"));
    }
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return Err(UriError("invalid port"));
        }
        v = v * 10 + (c - b'0') as u32;
    }
    u16::try_from(v).map_err(|_| UriError("port out of range"))
}

/// `hostname / IPv4address / IPv6reference`, the whole of `s`.
pub(crate) fn parse_host(s: &str) -> Result<Host<'_>, UriError> {
    match host_at(s, 0)? {
        (host, end) if end == s.len() => Ok(host),
        _ => Err(UriError("invalid host name")),
    }
}

/// Letters and digits: the body of a host name's labels.
static ALNUM: Class = table(&[]);

/// The host starting at `i` of `s` and where it ends, in one pass: a bracketed IPv6
/// reference, an IPv4 address (digits and dots only), or a host name
/// (`*( domainlabel "." ) toplabel [ "." ]`: labels of alphanumerics and inner hyphens, the
/// last starting with a letter, 253 octets at most). The host ends at the first octet that
/// cannot be in one; what follows is the caller's to check.
pub(crate) fn host_at(s: &str, start: usize) -> Result<(Host<'_>, usize), UriError> {
    let b = s.as_bytes();
    if b.get(start) == Some(&b'[') {
        let close = start
            + super::scan::find(&s[start..], b']').ok_or(UriError("unclosed IPv6 reference"))?;
        let host = parse_ipv6(&s[start + 1..close])
            .map(Host::V6)
            .ok_or(UriError("invalid IPv6 address"))?;
        return Ok((host, close + 1));
    }
    // An IPv4 address read directly when nothing that could continue a host name follows it
    // (else the general reading below decides).
    if b.get(start).is_some_and(u8::is_ascii_digit)
        && let Some((addr, end)) = ipv4_at(b, start)
        && !b.get(end).is_some_and(|&c| HOST_NAME[c as usize])
    {
        return Ok((Host::V4(addr), end));
    }
    let mut i = start;
    let (mut label, mut top) = (start, start);
    let mut labels_ok = true;
    loop {
        while i < b.len() && ALNUM[b[i] as usize] {
            i += 1;
        }
        match b.get(i) {
            Some(b'-') => labels_ok &= i != label,
            Some(b'.') => {
                labels_ok &= i != label && b[i - 1] != b'-';
                top = label;
                label = i + 1;
            }
            _ => break,
        }
        i += 1;
    }
    let text = &s[start..i];
    if i == start {
        return Err(UriError("empty host"));
    }
    // The top label: the last one, or the one before a final dot. A host name's starts with
    // a letter; one starting with a digit makes the whole an IPv4 address or nothing.
    let (top, end) = if label == i { (top, i - 1) } else { (label, i) };
    if top < end && b[top].is_ascii_digit() {
        return dotted_quad(text.as_bytes()).map(|a| (Host::V4(a), i));
    }
    let top_ok = top < end && b[end - 1] != b'-' && b[top].is_ascii_alphabetic();
    if labels_ok && top_ok && end - start <= 253 {
        Ok((Host::Name(text), i))
    } else {
        Err(UriError("invalid host name"))
    }
}

/// Octets a host name or IPv4 address may contain: where one of them follows, the host goes on.
static HOST_NAME: Class = table(&[b"-."]);

/// The hosts already found well formed in one message. The Request-URI, Via, From, To and
/// Contact of a request mostly name one or two hosts (the server's, the sender's address), so
/// a host text equal to one of the last two, and ending where it ended, is not read again.
/// A host that differs in any way, or continues, is read by [`host_at`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SeenHosts<'a> {
    hosts: [&'a str; 2],
    next: usize,
}

impl<'a> SeenHosts<'a> {
    /// Where the well-formed host starting at `i` of `s` ends (what [`host_at`] returns), or
    /// `None` when there is no well-formed host there.
    #[inline]
    pub(crate) fn host_end(&mut self, s: &'a str, i: usize) -> Option<usize> {
        let rest = s.as_bytes().get(i..)?;
        for h in self.hosts {
            if !h.is_empty()
                && starts_with(rest, h.as_bytes())
                && !rest.get(h.len()).is_some_and(|&c| HOST_NAME[c as usize])
            {
                return Some(i + h.len());
            }
        }
        let end = host_at(s, i).ok()?.1;
        self.hosts[self.next] = &s[i..end];
        self.next ^= 1;
        Some(end)
    }
}

/// Whether `b` starts with `prefix`, compared a word at a time (host names are short: a call
/// of `memcmp` would cost more than the comparison).
#[inline]
fn starts_with(b: &[u8], prefix: &[u8]) -> bool {
    let n = prefix.len();
    if b.len() < n {
        return false;
    }
    if n < 8 {
        return b[..n] == *prefix;
    }
    let word = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let mut i = 0;
    while i + 8 < n {
        if word(b, i) != word(prefix, i) {
            return false;
        }
        i += 8;
    }
    word(b, n - 8) == word(prefix, n - 8)
}

/// Text as an IPv4 address: four octets of digits, each 0..=255 without leading zeros (as
/// RFC 3986 and the standard library read them), separated by dots.
fn dotted_quad(b: &[u8]) -> Result<Ipv4Addr, UriError> {
    match ipv4_at(b, 0) {
        Some((addr, end)) if end == b.len() => Ok(addr),
        _ => Err(UriError("invalid IPv4 address")),
    }
}

/// The IPv4 address written from `i` (as [`dotted_quad`] reads one) and where it ends.
fn ipv4_at(b: &[u8], mut i: usize) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v = 0u32;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || v > 255 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        *octet = v as u8;
        if n < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some((Ipv4Addr::from(octets), i))
}

/// An IPv6 address. RFC 5118 4.10: RFC 3261's ABNF also admits `2001:db8:::192.0.2.1`
/// (three colons before an embedded IPv4 part); implementations must accept both forms.
pub(crate) fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some(a);
    }
    if let Some(i) = s.find(":::")
        && s.rfind(":::") == Some(i)
        && super::scan::find(&s[i + 3..], b'.').is_some()
    {
        let fixed = format!("{}::{}", &s[..i], &s[i + 3..]);
        return fixed.parse::<Ipv6Addr>().ok();
    }
    None
}

/// Whether all of `s` is a host name (not an address).
#[cfg(test)]
fn is_hostname(s: &str) -> bool {
    matches!(parse_host(s), Ok(Host::Name(_)))
}

/// RFC 3966: a global number `+` digits with visual separators, or a local number of hex
/// digits, `*`, `#` and separators, then parameters.
fn parse_tel<'a>(raw: &'a str, rest: &'a str) -> Result<TelUri<'a>, UriError> {
    let (number, params) = match super::scan::find(rest, b';') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let visual = |b: u8| matches!(b, b'-' | b'.' | b'(' | b')');
    let ok = if let Some(digits) = number.strip_prefix('+') {
        digits.bytes().any(|b| b.is_ascii_digit())
            && digits.bytes().all(|b| b.is_ascii_digit() || visual(b))
    } else {
        number
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
            && number
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#' || visual(b))
    };
    if !ok {
        return Err(UriError("invalid telephone number"));
    }
    let tel_param = |b: u8| param_char(b) || is_token(b) || b == b'=';
    for p in params.split(';').skip(1) {
        if !escaped_run(p, tel_param) {
            return Err(UriError("invalid tel URI parameter"));
        }
    }
    Ok(TelUri {
        number,
        params: Params::from_raw(params),
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_classes_have_their_nibble_tables() {
        for class in [&USER, &PASSWORD, &PARAM, &HNV, &URIC, &ALNUM, &HOST_NAME] {
            assert!(class.nibbles_agree());
        }
    }

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn sip_uri_parts() {
        let u = sip("sip:alice:pw@atlanta.example.com:5070;transport=tcp;lr?Subject=hi&X=1");
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Host::Name("atlanta.example.com"));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.get("TRANSPORT"), Some(Some("tcp")));
        assert!(u.params.has("lr"));
        assert_eq!(u.headers, Some("Subject=hi&X=1"));
        assert!(!u.secure);
        assert!(sip("sips:example.com").secure);
    }

    #[test]
    fn escaped_and_unusual_user_parts() {
        assert_eq!(sip("sip:%00@host5.example.com").user, Some("%00"));
        assert_eq!(
            sip("sip:sips%3Auser%40example.com@example.net").user,
            Some("sips%3Auser%40example.com")
        );
        assert_eq!(
            sip("sip:user;par=u%40example.net@example.com").user,
            Some("user;par=u%40example.net")
        );
        assert!(Uri::parse("sip:us er@example.com").is_err());
        assert!(Uri::parse("sip:user%4@example.com").is_err());
    }

    #[test]
    fn ipv6_references() {
        assert_eq!(
            sip("sip:[2001:db8::10]:5070").host,
            Host::V6("2001:db8::10".parse().unwrap())
        );
        assert_eq!(sip("sip:[2001:db8::10:5070]").port, None);
        assert_eq!(
            sip("sip:user@[2001:db8:::192.0.2.1]").host.ip(),
            Some("2001:db8::192.0.2.1".parse().unwrap())
        );
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert_eq!(
            sip("sip:[::ffff:192.0.2.2]").host.ip(),
            Some("::ffff:192.0.2.2".parse().unwrap())
        );
    }

    #[test]
    fn hosts_and_ports_are_checked() {
        assert_eq!(
            sip("sip:192.0.2.1:5060").host,
            Host::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert!(Uri::parse("sip:999.0.2.1").is_err());
        assert!(Uri::parse("sip:example.com:70000").is_err());
        assert!(Uri::parse("sip:example.com:").is_err());
        assert!(Uri::parse("sip:-bad.example.com").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert_eq!(sip("sip:example.com.").host, Host::Name("example.com."));
    }

    #[test]
    fn addresses_are_told_from_names_that_start_with_digits() {
        // The direct IPv4 reading must agree with the label-by-label one wherever an address
        // is followed by something that could continue a host name.
        let v4 = |a, b, c, d| Ok(Host::V4(Ipv4Addr::new(a, b, c, d)));
        for (text, want, end) in [
            ("192.0.2.10:5060", v4(192, 0, 2, 10), 10),
            ("192.0.2.10;lr", v4(192, 0, 2, 10), 10),
            ("192.0.2.10", v4(192, 0, 2, 10), 10),
            (
                "1.2.3.4-x.example.com",
                Ok(Host::Name("1.2.3.4-x.example.com")),
                21,
            ),
            (
                "1.2.3.4.example.com>",
                Ok(Host::Name("1.2.3.4.example.com")),
                19,
            ),
            ("1and1.com", Ok(Host::Name("1and1.com")), 9),
        ] {
            assert_eq!(host_at(text, 0).map(|(h, _)| h), want, "{text}");
            assert_eq!(host_at(text, 0).map(|(_, e)| e).ok(), Some(end), "{text}");
        }
        for bad in [
            "192.0.2.10a",
            "192.0.2.10.",
            "192.0.2.1000",
            "010.0.0.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
        ] {
            assert!(host_at(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn class_tables_match_the_abnf() {
        for b in 0u8..=255 {
            let unreserved = b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b);
            assert_eq!(
                user_unreserved(b),
                unreserved || b"&=+$,;?/".contains(&b),
                "user {b}"
            );
            assert_eq!(
                password_char(b),
                unreserved || b"&=+$,".contains(&b),
                "password {b}"
            );
            assert_eq!(
                param_char(b),
                unreserved || b"[]/:&+$".contains(&b),
                "param {b}"
            );
            assert_eq!(
                hnv_char(b),
                unreserved || b"[]/?:+$".contains(&b),
                "hnv {b}"
            );
            assert_eq!(
                uric(b),
                unreserved || b";/?:@&=+$,[]#".contains(&b),
                "uric {b}"
            );
        }
    }

    #[test]
    fn host_names_follow_the_abnf() {
        for good in [
            "example.com",
            "a",
            "x1.example-host.org",
            "example.com.",
            "h-1.b",
        ] {
            assert!(is_hostname(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "-a.com",
            "a-.com",
            "a..com",
            "a.1com",
            "a.com-",
            "ex_ample.com",
            "a.-b",
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn tel_and_other_schemes() {
        match Uri::parse("tel:+1-201-555-0123;ext=1") {
            Ok(Uri::Tel(t)) => {
                assert_eq!(t.number, "+1-201-555-0123");
                assert_eq!(t.params.get("ext"), Some(Some("1")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Uri::parse("tel:12345"), Ok(Uri::Tel(_))));
        assert!(Uri::parse("tel:+").is_err());
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other {
                scheme: "soap.beep",
                ..
            })
        ));
        assert!(matches!(
            Uri::parse("isbn:2983792873"),
            Ok(Uri::Other { .. })
        ));
        assert!(Uri::parse("no-colon").is_err());
        assert!(Uri::parse("1abc:foo").is_err());
        assert!(Uri::parse("http://exa mple.com").is_err());
    }

    #[test]
    fn params_iterate_and_quote_protects_semicolons() {
        let p = Params::from_raw(r#";a=1; b ;c="x;y";lr"#);
        let all: Vec<_> = p.iter().collect();
        assert_eq!(
            all,
            vec![
                ("a", Some("1")),
                ("b", None),
                ("c", Some(r#""x;y""#)),
                ("lr", None)
            ]
        );
    }
}
