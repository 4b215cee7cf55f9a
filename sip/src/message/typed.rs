//! Typed header values, parsed from the (unfolded) header text without allocating. The same
//! functions validate a message when it is parsed and give typed access afterwards.

use std::fmt;

use super::scan::{
    Class, Cursor, TOKEN, WORD, is_token, is_wsp, quoted_end, run_of, run_of_octets, split_commas,
    trim_wsp,
};
use super::uri::{
    Host, Params, SeenHosts, Uri, UriError, host_at, parse_host, parse_ipv6, parse_port,
};

/// Why a header value is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError(pub &'static str);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl From<UriError> for HeaderError {
    fn from(e: UriError) -> Self {
        HeaderError(e.0)
    }
}

type Result<T> = std::result::Result<T, HeaderError>;

/// Most parameters one header value may carry.
pub const MAX_PARAMS: usize = 64;

/// `*( SEMI generic-param )`: consumes parameters and returns them as written. A name given
/// twice (two tags, two branches) makes the value ambiguous and is refused. `check` sees each
/// parameter as it is read (a header's own rules for its parameters).
fn generic_params<'a>(
    c: &mut Cursor<'a>,
    mut check: impl FnMut(&'a str, Option<&'a str>) -> Result<()>,
) -> Result<Params<'a>> {
    let s = c.s;
    let b = s.as_bytes();
    let start = c.pos;
    if b.get(skip_wsp(b, start)) != Some(&b';') {
        return Ok(Params::from_raw(""));
    }
    let mut i = c.pos;
    // Names seen so far: the first few inline, the rest (rare) on the heap.
    let mut names: [&str; 8] = [""; 8];
    let mut more: Vec<&str> = Vec::new();
    let mut n = 0;
    loop {
        let mut j = skip_wsp(b, i);
        if b.get(j) != Some(&b';') {
            break;
        }
        j = skip_wsp(b, j + 1);
        let ns = j;
        while j < b.len() && is_token(b[j]) {
            j += 1;
        }
        if j == ns {
            return Err(HeaderError("empty or invalid parameter name"));
        }
        let name = &s[ns..j];
        if n == MAX_PARAMS {
            return Err(HeaderError("too many parameters"));
        }
        let seen = &names[..n.min(8)];
        if seen
            .iter()
            .chain(more.iter())
            .any(|p| p.eq_ignore_ascii_case(name))
        {
            return Err(HeaderError("parameter given twice"));
        }
        if n < 8 {
            names[n] = name;
        } else {
            more.push(name);
        }
        n += 1;
        let k = skip_wsp(b, j);
        let value = if b.get(k) == Some(&b'=') {
            let mut v = Cursor {
                s,
                pos: skip_wsp(b, k + 1),
            };
            let value = gen_value(&mut v)?;
            j = v.pos;
            Some(value)
        } else {
            None
        };
        check(name, value)?;
        i = j;
    }
    c.pos = i;
    Ok(Params::from_raw(&s[start..i]))
}

/// The first position at or after `i` that is not a space or tab.
#[inline]
fn skip_wsp(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_wsp(b[i]) {
        i += 1;
    }
    i
}

/// Whether a parameter's name is `n` (names are case-insensitive).
#[inline]
fn is_named(name: &str, n: &str) -> bool {
    name.len() == n.len() && name.eq_ignore_ascii_case(n)
}

/// Octets of an unquoted `gen-value`: token characters, and `[]:` of an IPv6 host.
static GEN_VALUE: Class = super::scan::table(&[b"-.!%*_+`'~[]:"]);

/// `gen-value = token / host / quoted-string`.
fn gen_value<'a>(c: &mut Cursor<'a>) -> Result<&'a str> {
    if c.peek() == Some(b'"') {
        return c.quoted().ok_or(HeaderError("unterminated quoted string"));
    }
    let v = c.take_while(|b| GEN_VALUE[b as usize]);
    if v.is_empty() {
        Err(HeaderError("empty parameter value"))
    } else {
        Ok(v)
    }
}

fn expect_end(c: &mut Cursor<'_>) -> Result<()> {
    c.sws();
    if c.at_end() {
        Ok(())
    } else {
        Err(HeaderError("unexpected characters after the value"))
    }
}

// ---------------------------------------------------------------------------------------------
// Via

/// One Via value (RFC 3261 20.42, RFC 3581 rport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name (`SIP`).
    pub protocol: &'a str,
    /// Protocol version (`2.0`).
    pub version: &'a str,
    /// Transport (`UDP`, `TCP`, `TLS`, `WS`, ...), as written.
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
    /// The branch parameter, found while the parameters were read.
    branch: Option<&'a str>,
}

impl<'a> Via<'a> {
    /// Parses one Via value of SIP/2.0.
    pub fn parse(s: &'a str) -> Result<Via<'a>> {
        Self::parse_inner(s, true)
    }

    /// Parses one Via value of any protocol version (to answer a SIP/7.0 request with 505).
    pub fn parse_any_version(s: &'a str) -> Result<Via<'a>> {
        Self::parse_inner(s, false)
    }

    #[inline]
    fn parse_inner(s: &'a str, sip_2_0: bool) -> Result<Via<'a>> {
        let mut c = Cursor::new(s);
        let via = Self::parse_at(&mut c, sip_2_0)?;
        expect_end(&mut c)?;
        Ok(via)
    }

    /// One Via value from the cursor, up to the end of its parameters.
    fn parse_at(c: &mut Cursor<'a>, sip_2_0: bool) -> Result<Via<'a>> {
        let s = c.s;
        c.sws();
        let protocol = c.token().ok_or(HeaderError("Via without a protocol"))?;
        if !c.sep(b'/') {
            return Err(HeaderError("Via protocol without a version"));
        }
        let version = c.token().ok_or(HeaderError("Via without a version"))?;
        if !c.sep(b'/') {
            return Err(HeaderError("Via without a transport"));
        }
        let transport = c.token().ok_or(HeaderError("Via without a transport"))?;
        // The grammar admits any token; a SIP/2.0 element takes only SIP/2.0.
        if sip_2_0 && (!protocol.eq_ignore_ascii_case("SIP") || version != "2.0") {
            return Err(HeaderError("Via protocol is not SIP/2.0"));
        }
        if !c.sws() {
            return Err(HeaderError("Via: no space before sent-by"));
        }
        let (host, end) = host_at(s, c.pos)?;
        c.pos = end;
        let port = if c.sep(b':') {
            Some(parse_port(c.take_while(|b| b.is_ascii_digit()))?)
        } else {
            None
        };
        let mut branch = None;
        let params = generic_params(c, |name, value| {
            check_via_param(name, value)?;
            if branch.is_none() && is_named(name, "branch") {
                branch = value;
            }
            Ok(())
        })?;
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
            branch,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// The received parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `None`: no rport; `Some(None)`: rport asked for; `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// Whether the branch carries the RFC 3261 magic cookie (`z9hG4bK`) and something after it.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }
}

/// A Via parameter's own rules: received an IP address, rport a port, ttl 0-255, branch a
/// token, maddr a host.
fn check_via_param(name: &str, value: Option<&str>) -> Result<()> {
    let is = |n: &str| is_named(name, n);
    if is("branch") {
        let v = value.ok_or(HeaderError("Via branch without a value"))?;
        if !v.bytes().all(is_token) {
            return Err(HeaderError("Via branch is not a token"));
        }
    } else if is("rport") {
        if let Some(v) = value {
            parse_port(v)?;
        }
    } else if is("received") {
        let v = value.ok_or(HeaderError("Via received without a value"))?;
        let bare = v
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(v);
        // RFC 5118 4.5: a bracketed IPv6 address must be tolerated.
        if bare.parse::<std::net::Ipv4Addr>().is_err() && parse_ipv6(bare).is_none() {
            return Err(HeaderError("Via received is not an IP address"));
        }
    } else if is("ttl") {
        if value.and_then(|v| v.parse::<u8>().ok()).is_none() {
            return Err(HeaderError("Via ttl is not 0-255"));
        }
    } else if is("maddr") {
        parse_host(value.ok_or(HeaderError("Via maddr without a value"))?)?;
    }
    Ok(())
}

/// Parses every Via value of one header line.
pub fn parse_via_list(value: &str) -> impl Iterator<Item = Result<Via<'_>>> {
    parse_list(value, |c| Via::parse_at(c, true))
}

/// A comma list read in one pass: each item's parser stops where its grammar ends, then
/// `SWS "," SWS` or the end of the value must follow. The first error ends the list.
fn parse_list<'a, T>(
    s: &'a str,
    mut item: impl FnMut(&mut Cursor<'a>) -> Result<T> + 'a,
) -> impl Iterator<Item = Result<T>> + 'a {
    let mut c = Cursor::new(s);
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let r = item(&mut c).and_then(|v| {
            c.sws();
            if c.at_end() {
                done = true;
                Ok(v)
            } else if c.eat(b',') {
                Ok(v)
            } else {
                Err(HeaderError("unexpected characters after the value"))
            }
        });
        done |= r.is_err();
        Some(r)
    })
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec (From, To, Contact, Route, Record-Route, ...)

/// A name-addr or addr-spec with its header parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted, with its quotes, or tokens).
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Whether the URI was in angle brackets.
    pub bracketed: bool,
    /// Header parameters after the address (`tag`, `q`, `expires`, ...).
    pub params: Params<'a>,
    /// The tag parameter as read: `Some(None)` when it has no value.
    tag: Option<Option<&'a str>>,
}

impl<'a> NameAddr<'a> {
    /// Parses `(name-addr / addr-spec) *(SEMI param)`; with `brackets_required` only a
    /// name-addr is accepted (Route, Record-Route).
    #[inline]
    pub fn parse(s: &'a str, brackets_required: bool) -> Result<NameAddr<'a>> {
        let mut c = Cursor::new(s);
        let a = Self::parse_at(&mut c, brackets_required)?;
        expect_end(&mut c)?;
        Ok(a)
    }

    /// One address from the cursor, up to the end of its parameters.
    fn parse_at(c: &mut Cursor<'a>, brackets_required: bool) -> Result<NameAddr<'a>> {
        let s = c.s;
        c.sws();
        let mut display = None;
        if c.peek() == Some(b'"') {
            display = Some(
                c.quoted()
                    .ok_or(HeaderError("unterminated quoted display name"))?,
            );
            c.sws();
            if c.peek() != Some(b'<') {
                return Err(HeaderError("display name not followed by <URI>"));
            }
        } else if c.peek() != Some(b'<') {
            // Tokens then '<' make a display name (RFC 4475 3.1.1.6: no LWS before '<' is
            // accepted); anything else is an addr-spec.
            let save = c.pos;
            let start = c.pos;
            let mut end = c.pos;
            while c.token().is_some() {
                end = c.pos;
                c.sws();
            }
            if end > start && c.peek() == Some(b'<') {
                display = Some(&s[start..end]);
            } else {
                c.pos = save;
            }
        }
        let (uri, bracketed) = if c.eat(b'<') {
            let start = c.pos;
            let close =
                memchr::memchr(b'>', &s.as_bytes()[start..]).ok_or(HeaderError("< without >"))?;
            let text = &s[start..start + close];
            c.pos = start + close + 1;
            let uri = Uri::parse(text).map_err(|e| {
                // No URI character is white space; say so when that is the fault.
                if text.is_empty() || text.bytes().any(is_wsp) {
                    HeaderError("white space inside <URI>")
                } else {
                    e.into()
                }
            })?;
            (uri, true)
        } else {
            if brackets_required {
                return Err(HeaderError("URI must be in angle brackets"));
            }
            let text = c.take_while(|b| !matches!(b, b';' | b',' | b' ' | b'\t'));
            let uri = Uri::parse(text)?;
            if matches!(uri, Uri::Sip(_)) && super::scan::find(text, b'?').is_some() {
                // RFC 3261 20.10: a SIP URI with headers must be enclosed in <> (RFC 4475
                // 3.1.2.13). Another scheme's query is part of its opaque text.
                return Err(HeaderError("SIP URI with headers outside angle brackets"));
            }
            (uri, false)
        };
        let mut tag = None;
        let params = generic_params(c, |name, value| {
            if tag.is_none() && is_named(name, "tag") {
                tag = Some(value);
            }
            Ok(())
        })?;
        Ok(NameAddr {
            display,
            uri,
            bracketed,
            params,
            tag,
        })
    }

    /// The tag parameter (From, To).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag.flatten()
    }

    /// Whether a tag parameter is written without a value (`;tag`), which RFC 3261 25.1
    /// does not allow.
    pub fn tag_without_value(&self) -> bool {
        self.tag == Some(None)
    }

    /// The display name without quotes or escapes.
    pub fn display_name(&self) -> Option<String> {
        let d = self.display?;
        match d.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            Some(inner) => {
                let mut out = String::with_capacity(inner.len());
                let mut chars = inner.chars();
                while let Some(ch) = chars.next() {
                    if ch == '\\' {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    } else {
                        out.push(ch);
                    }
                }
                Some(out)
            }
            None => Some(d.to_string()),
        }
    }
}

/// The common shape of a From, To or single Contact value, checked in one loop without
/// building it: `["display"] SWS "<sip:" user "@" host [":" port] *(";" uri-param) ">"
/// *(SWS ";" SWS name [SWS "=" SWS value])`, with no escapes, quoted pairs or quoted values
/// and at most four header parameters. `Some(tag)` when the whole value has that shape and is
/// well formed, which [`NameAddr::parse`] would then accept with the same tag; `None` leaves
/// the verdict to it (another shape, or a fault it will name).
pub(crate) fn plain_name_addr<'a>(
    s: &'a str,
    hosts: &mut SeenHosts<'a>,
) -> Option<Option<&'a str>> {
    use super::scan::QDTEXT;
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'"') {
        i = run_of(b, 1, &QDTEXT);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i = skip_wsp(b, i + 1);
    }
    if b.get(i) != Some(&b'<') {
        return None;
    }
    i = plain_sip_uri(s, i + 1, hosts)?;
    if b.get(i) != Some(&b'>') {
        return None;
    }
    let mut tag = None;
    let end = plain_params(s, i + 1, |name, value, _| {
        if is_named(name, "tag") {
            tag = Some(value?); // no value: the full parser says what is wrong
        }
        Some(())
    })?;
    (end == b.len()).then_some(tag)
}

/// The common shape of a SIP URI starting at `i`: `"sip:" [user "@"] host [":" port]
/// *(";" name ["=" value])`, without escapes, a password or headers. Where it ends when it is
/// well formed up to there (what follows is the caller's to check); `None` for anything else.
pub(crate) fn plain_sip_uri<'a>(s: &'a str, i: usize, hosts: &mut SeenHosts<'a>) -> Option<usize> {
    use super::uri::{PARAM, USER};
    let b = s.as_bytes();
    if b.get(i..i + 4) != Some(b"sip:") {
        return None;
    }
    let mut i = i + 4;
    let user = run_of(b, i, &USER);
    if b.get(user) == Some(&b'@') {
        if user == i {
            return None;
        }
        i = user + 1;
    }
    i = hosts.host_end(s, i)?;
    if b.get(i) == Some(&b':') {
        let digits = run_of(b, i + 1, &DIGITS);
        parse_port(&s[i + 1..digits]).ok()?;
        i = digits;
    }
    while b.get(i) == Some(&b';') {
        let name = run_of(b, i + 1, &PARAM);
        if name == i + 1 {
            return None;
        }
        i = name;
        if b.get(i) == Some(&b'=') {
            let value = run_of(b, i + 1, &PARAM);
            if value == i + 1 {
                return None;
            }
            i = value;
        }
    }
    Some(i)
}

/// `*(SWS ";" SWS name [SWS "=" SWS value])` from `i` to the end of `s`, in the plain form:
/// unquoted values, at most four parameters, no name twice. `check` sees each parameter
/// (name, value, whether the value is a token) and may decline it. Returns where the
/// parameters end, or `None` to leave the verdict to the full parser.
fn plain_params<'a>(
    s: &'a str,
    mut i: usize,
    mut check: impl FnMut(&'a str, Option<&'a str>, bool) -> Option<()>,
) -> Option<usize> {
    let b = s.as_bytes();
    let mut names: [&str; 4] = [""; 4];
    let mut n = 0;
    loop {
        let semi = skip_wsp(b, i);
        if b.get(semi) != Some(&b';') {
            return Some(semi);
        }
        let start = skip_wsp(b, semi + 1);
        let end = run_of(b, start, &TOKEN);
        let name = &s[start..end];
        if end == start || n == names.len() || names[..n].iter().any(|m| is_named(m, name)) {
            return None;
        }
        names[n] = name;
        n += 1;
        let equal = skip_wsp(b, end);
        if b.get(equal) == Some(&b'=') {
            let vs = skip_wsp(b, equal + 1);
            let token_end = run_of(b, vs, &TOKEN);
            let ve = run_of(b, token_end, &GEN_VALUE);
            if ve == vs {
                return None;
            }
            check(name, Some(&s[vs..ve]), token_end == ve)?;
            i = ve;
        } else {
            check(name, None, false)?;
            i = end;
        }
    }
}

/// The common shape of a Via value, checked in one loop without building it:
/// `"SIP/2.0/" transport LWS host [":" port]` and plain parameters, Via's own checked by the
/// full parser's rules (`check_via_param`). `Some(branch)` when the whole value is one such
/// Via, well formed; `None` leaves the verdict to [`parse_via_list`].
pub(crate) fn plain_via<'a>(s: &'a str, hosts: &mut SeenHosts<'a>) -> Option<Option<&'a str>> {
    let b = s.as_bytes();
    if b.get(..8) != Some(b"SIP/2.0/") {
        return None;
    }
    let mut i = run_of(b, 8, &TOKEN);
    let host = skip_wsp(b, i);
    if i == 8 || host == i {
        return None;
    }
    i = hosts.host_end(s, host)?;
    if b.get(i) == Some(&b':') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        parse_port(&s[start..i]).ok()?;
    }
    let mut branch = None;
    let end = plain_params(s, i, |name, value, token| {
        let is_branch = is_named(name, "branch");
        // A branch that is a token is what `check_via_param` asks of it.
        if !(is_branch && token) {
            check_via_param(name, value).ok()?;
        }
        if is_branch {
            branch = value;
        }
        Some(())
    })?;
    (end == b.len()).then_some(branch)
}

/// Decimal digits.
static DIGITS: Class = Class::of({
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    t
});

/// A Contact header value: `*` or a list of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactValue<'a> {
    /// `Contact: *` (REGISTER with Expires: 0 removes every binding).
    Star,
    /// One contact address.
    Addr(NameAddr<'a>),
}

/// Parses every value of one Contact header line.
pub fn parse_contact_list(value: &str) -> impl Iterator<Item = Result<ContactValue<'_>>> {
    let star = value.trim() == "*";
    parse_list(value, move |c| {
        if star {
            c.pos = c.s.len();
            Ok(ContactValue::Star)
        } else {
            NameAddr::parse_at(c, false).map(ContactValue::Addr)
        }
    })
}

/// Parses every value of one Route or Record-Route line (name-addrs only).
pub fn parse_route_list(value: &str) -> impl Iterator<Item = Result<NameAddr<'_>>> {
    parse_list(value, |c| NameAddr::parse_at(c, true))
}

// ---------------------------------------------------------------------------------------------
// Scalars

/// CSeq: a sequence number below 2^31 and a method (RFC 3261 8.1.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number.
    pub seq: u32,
    /// Method, as written.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'a str) -> Result<CSeq<'a>> {
        let mut c = Cursor::new(s);
        c.sws();
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seq = parse_bounded(digits, (1 << 31) - 1)
            .ok_or(HeaderError("CSeq number is not a number below 2**31"))?
            as u32;
        if !c.sws() {
            return Err(HeaderError("CSeq: no space before the method"));
        }
        let method = c.token().ok_or(HeaderError("CSeq without a method"))?;
        expect_end(&mut c)?;
        Ok(CSeq { seq, method })
    }
}

/// Digits only, at most `max`; leading zeros allowed.
fn parse_bounded(digits: &str, max: u64) -> Option<u64> {
    let b = digits.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        // Past `max` the value only grows: stop before it can overflow.
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    (v <= max).then_some(v)
}

/// `1*DIGIT` up to `max` (Max-Forwards: 255; Content-Length).
pub fn parse_number(s: &str, max: u64) -> Result<u64> {
    parse_bounded(trim_wsp(s), max).ok_or(HeaderError("not a number in range"))
}

/// `delta-seconds`: digits; values above 2^32-1 are read as 2^32-1 (RFC 3261 20.19).
pub fn parse_delta_seconds(s: &str) -> Result<u32> {
    let t = trim_wsp(s);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError("not a number of seconds"));
    }
    Ok(parse_bounded(t, u64::MAX).map_or(u32::MAX, |v| v.min(u32::MAX as u64) as u32))
}

/// `delta-seconds *(SEMI generic-param)` (Session-Expires, Min-SE, Retry-After without comment).
pub fn parse_delta_with_params(s: &str) -> Result<(u32, Params<'_>)> {
    let mut c = Cursor::new(s);
    c.sws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    let secs = parse_delta_seconds(digits)?;
    let params = generic_params(&mut c, |_, _| Ok(()))?;
    expect_end(&mut c)?;
    Ok((secs, params))
}

/// Call-ID: `word ["@" word]`.
pub fn check_call_id(s: &str) -> Result<()> {
    let b = s.as_bytes();
    let first = run_of(b, 0, &WORD);
    let mut i = first;
    if b.get(i) == Some(&b'@') {
        let second = i + 1;
        i = run_of(b, second, &WORD);
        if i == second {
            i = usize::MAX; // "a@" has no second word
        }
    }
    if first > 0 && i == b.len() {
        Ok(())
    } else {
        Err(HeaderError("Call-ID is not word[@word]"))
    }
}

/// A comma list of tokens (Require, Supported, Allow, ...); `allow_empty` for the headers
/// whose ABNF permits an empty value.
pub fn parse_token_list(s: &str, allow_empty: bool) -> Result<impl Iterator<Item = &str>> {
    // One pass: `token *(SWS "," SWS token)` with white space around; no quotes or brackets
    // can occur in a token list, so the quote-aware splitter is not needed to check it.
    let b = s.as_bytes();
    let mut i = 0;
    let mut items = 0;
    loop {
        while i < b.len() && is_wsp(b[i]) {
            i += 1;
        }
        let start = i;
        i = run_of(b, i, &TOKEN);
        if i == start {
            if items > 0 {
                return Err(HeaderError("empty list item")); // after a comma
            }
            break;
        }
        items += 1;
        while i < b.len() && is_wsp(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] == b',' {
            i += 1;
            continue;
        }
        break;
    }
    if i != b.len() || (items == 0 && !trim_wsp(s).is_empty()) {
        return Err(HeaderError("list item is not a token"));
    }
    if items == 0 && !allow_empty {
        return Err(HeaderError("empty list"));
    }
    Ok(split_commas(s).filter(|t: &&str| !t.is_empty()))
}

// ---------------------------------------------------------------------------------------------
// Media types

/// `type/subtype *(SEMI param)` (Content-Type; Accept allows `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// The type (`application`).
    pub kind: &'a str,
    /// The subtype (`sdp`).
    pub subtype: &'a str,
    /// Parameters (`charset=...`).
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses one media type.
    pub fn parse(s: &'a str) -> Result<MediaType<'a>> {
        let mut c = Cursor::new(s);
        c.sws();
        let kind = c.token().ok_or(HeaderError("media type without a type"))?;
        if !c.sep(b'/') {
            return Err(HeaderError("media type without /subtype"));
        }
        let subtype = c
            .token()
            .ok_or(HeaderError("media type without a subtype"))?;
        let params = generic_params(&mut c, |_, _| Ok(()))?;
        expect_end(&mut c)?;
        Ok(MediaType {
            kind,
            subtype,
            params,
        })
    }

    /// Case-insensitive `type/subtype` comparison.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication (RFC 3261 22, RFC 7616/8760)

/// A challenge (WWW-Authenticate) or credentials (Authorization): a scheme and its
/// `name=value` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// The scheme (`Digest`).
    pub scheme: &'a str,
    /// The parameters as written (`realm="x", nonce="y"`).
    pub params_raw: &'a str,
}

impl<'a> Auth<'a> {
    /// Parses `scheme LWS auth-param *(COMMA auth-param)`, in one pass by index: these are
    /// the longest values of a REGISTER.
    pub fn parse(s: &'a str) -> Result<Auth<'a>> {
        let b = s.as_bytes();
        let start = skip_wsp(b, 0);
        let scheme_end = run_of_octets(b, start, &TOKEN);
        if scheme_end == start {
            return Err(HeaderError("authentication without a scheme"));
        }
        let params_start = skip_wsp(b, scheme_end);
        if params_start == scheme_end {
            return Err(HeaderError("authentication scheme without parameters"));
        }
        let mut i = params_start;
        loop {
            let name_end = run_of_octets(b, i, &TOKEN);
            if name_end == i {
                return Err(HeaderError("authentication parameter without a name"));
            }
            // Mostly `=` right after the name, and the value right after it.
            i = name_end;
            if b.get(i) != Some(&b'=') {
                i = skip_wsp(b, i);
                if b.get(i) != Some(&b'=') {
                    return Err(HeaderError("authentication parameter without ="));
                }
            }
            i += 1;
            if b.get(i).is_some_and(|&c| is_wsp(c)) {
                i = skip_wsp(b, i);
            }
            if b.get(i) == Some(&b'"') {
                i = quoted_end(b, i)
                    .ok_or(HeaderError("unterminated quoted authentication value"))?;
            } else {
                let value_end = run_of_octets(b, i, &TOKEN);
                if value_end == i {
                    return Err(HeaderError("authentication value is not a token"));
                }
                i = value_end;
            }
            // Mostly ", " or the end.
            match b.get(i) {
                None => break,
                Some(b',') => {
                    i += 1;
                    if b.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if b.get(i).is_some_and(|&c| is_wsp(c)) {
                        i = skip_wsp(b, i);
                    }
                }
                Some(&c) if is_wsp(c) => {
                    i = skip_wsp(b, i);
                    match b.get(i) {
                        None => break,
                        Some(b',') => i = skip_wsp(b, i + 1),
                        Some(_) => {
                            return Err(HeaderError("unexpected characters after the value"));
                        }
                    }
                }
                Some(_) => return Err(HeaderError("unexpected characters after the value")),
            }
        }
        Ok(Auth {
            scheme: &s[start..scheme_end],
            params_raw: trim_wsp(&s[params_start..]),
        })
    }

    /// The value of parameter `name` (case-insensitive), unquoted.
    pub fn param(&self, name: &str) -> Option<String> {
        split_commas(self.params_raw).find_map(|item| {
            let (n, v) = item.split_once('=')?;
            if !n.trim().eq_ignore_ascii_case(name) {
                return None;
            }
            let v = v.trim();
            Some(
                match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                    Some(inner) => unquote(inner),
                    None => v.to_string(),
                },
            )
        })
    }
}

fn unquote(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(ch);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Date (RFC 3261 20.17: RFC 1123 date, GMT only)

/// Checks `wkday "," SP 2DIGIT SP month SP 4DIGIT SP HH:MM:SS SP "GMT"`.
pub fn check_date(s: &str) -> Result<()> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let bad = HeaderError("Date is not an RFC 1123 date in GMT");
    let (wkday, rest) = s.trim().split_once(", ").ok_or(bad.clone())?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, zone] = parts.as_slice() else {
        return Err(bad);
    };
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    let time_ok = {
        let t: Vec<&str> = time.split(':').collect();
        t.len() == 3 && t.iter().all(|x| digits(x, 2))
    };
    if DAYS.contains(&wkday)
        && digits(day, 2)
        && MONTHS.contains(month)
        && digits(year, 4)
        && time_ok
        && *zone == "GMT"
    {
        Ok(())
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_classes_have_their_nibble_tables() {
        assert!(GEN_VALUE.nibbles_agree());
        assert!(DIGITS.nibbles_agree());
    }

    #[test]
    fn via_with_odd_spacing_and_rport() {
        let v = Via::parse("SIP  /   2.0 /UDP     192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK77").unwrap();
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.rport(), Some(None));
        assert!(v.has_rfc3261_branch());
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert!(matches!(v.host, Host::V6(_)));
        let list: Vec<_> = parse_via_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        )
        .collect::<Result<_>>()
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(list[1].branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn broken_vias_are_rejected() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP",
            "SIP/2.0 192.0.2.1",
            "SIP/2.0/UDP 192.0.2.1;received=example.com",
            "SIP/2.0/UDP 192.0.2.1;ttl=300",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP 192.0.2.1 junk",
            "aaaaa/2.0/UDP 192.0.2.1",
            "SIP/99999999999999999.0/UDP 192.0.2.1",
        ] {
            assert!(
                parse_via_list(bad).any(|r| r.is_err()),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
            false,
        )
        .unwrap();
        assert_eq!(a.tag(), Some("98asjd8"));
        assert_eq!(a.display_name().as_deref(), Some("J Rosenberg \\\""));
        let a = NameAddr::parse(
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            false,
        )
        .unwrap();
        assert_eq!(a.tag(), Some("1918181833n"));
        assert!(!a.bracketed);
        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323", false).unwrap();
        assert_eq!(a.display, Some("caller"));
        let a = NameAddr::parse("Fellow User <sip:user@foo.bar.domain.com>", false).unwrap();
        assert_eq!(a.display, Some("Fellow User"));
        // In an addr-spec the parameters belong to the header, not to the URI.
        let a = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam", false).unwrap();
        assert!(a.params.has("unknownparam"));
        assert!(a.uri.params().is_empty());
        let a = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>", false).unwrap();
        assert!(a.uri.params().has("unknownparam"));
        assert!(a.params.is_empty());
    }

    /// `base`, and every octet class of SIP values inserted at, or put in place of, each of
    /// its positions (for the one-loop checks against the full parsers).
    fn variants(base: &str) -> Vec<String> {
        let octets = b" \t\"<>@:;=,.[]?%\\a0-_!&/\x00\x7f";
        let mut out = vec![base.to_string()];
        for at in 0..=base.len() {
            for &o in octets {
                let mut v = base.as_bytes().to_vec();
                v.insert(at, o);
                out.push(String::from_utf8_lossy(&v).into_owned());
                if at < base.len() {
                    let mut v = base.as_bytes().to_vec();
                    v[at] = o;
                    out.push(String::from_utf8_lossy(&v).into_owned());
                }
            }
        }
        out
    }

    #[test]
    fn the_plain_name_addr_check_accepts_only_what_the_parser_accepts() {
        // Every octet class inserted at, or put in place of, every position of common
        // values: where the one-loop check says yes, the full parser must say yes with the
        // same tag; where it declines, the full parser decides.
        let bases = [
            r#""Citizen" <sip:13812345678@carrier.example.net>;tag=1928301774"#,
            "<sip:agent1001@10.0.0.21:5060;transport=udp>;expires=3600",
            "<sip:12345@hotline.example.com>",
            "<sip:u@[2001:db8::1]:5070;lr>;tag=a ; q=0.5",
        ];
        let (mut fast, mut total) = (0, 0);
        for base in bases {
            for v in &variants(base) {
                total += 1;
                let Some(tag) = plain_name_addr(v, &mut SeenHosts::default()) else {
                    continue;
                };
                fast += 1;
                let full = NameAddr::parse(v, false).unwrap_or_else(|e| {
                    panic!("{v:?} passed the plain check but not the parser: {e}")
                });
                assert_eq!(full.tag(), tag, "{v:?}");
                assert!(!full.tag_without_value(), "{v:?}");
            }
            assert!(
                plain_name_addr(base, &mut SeenHosts::default()).is_some(),
                "{base}"
            );
        }
        assert!(
            fast > total / 8,
            "only {fast} of {total} took the plain check"
        );
    }

    #[test]
    fn the_plain_sip_uri_check_accepts_only_what_the_parser_accepts() {
        let bases = [
            "sip:12345@hotline.example.com",
            "sip:hotline.example.com;transport=tcp",
            "sip:agent@10.0.0.21:5060;lr;x=1",
        ];
        let mut fast = 0;
        for base in bases {
            for v in variants(base) {
                // A host seen before in the message (the base's) changes nothing.
                let mut primed = SeenHosts::default();
                assert!(plain_sip_uri(base, 0, &mut primed).is_some());
                let fresh = plain_sip_uri(&v, 0, &mut SeenHosts::default());
                assert_eq!(plain_sip_uri(&v, 0, &mut primed), fresh, "{v:?}");
                if fresh != Some(v.len()) {
                    continue;
                }
                fast += 1;
                match Uri::parse(&v) {
                    Ok(Uri::Sip(u)) => assert!(u.headers.is_none(), "{v:?}"),
                    other => panic!("{v:?} passed the plain check: {other:?}"),
                }
            }
            assert_eq!(
                plain_sip_uri(base, 0, &mut SeenHosts::default()),
                Some(base.len()),
                "{base}"
            );
        }
        assert!(fast > 1000, "only {fast} took the plain check");
    }

    #[test]
    fn the_plain_via_check_accepts_only_what_the_parser_accepts() {
        let bases = [
            "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
            "SIP/2.0/TCP host.example.com ; rport=5060 ;branch=z9hG4bKx;x=1",
            "SIP/2.0/WS [2001:db8::9:1];branch=z9hG4bKa",
        ];
        let (mut fast, mut total) = (0, 0);
        for base in bases {
            let mut variants = variants(base);
            variants.push(base.replace("rport", "received=10.0.0.1"));
            for v in &variants {
                total += 1;
                let Some(branch) = plain_via(v, &mut SeenHosts::default()) else {
                    continue;
                };
                fast += 1;
                let all: Vec<_> = parse_via_list(v)
                    .collect::<Result<_>>()
                    .unwrap_or_else(|e| {
                        panic!("{v:?} passed the plain check but not the parser: {e}")
                    });
                assert_eq!(all.len(), 1, "{v:?}");
                assert_eq!(all[0].branch(), branch, "{v:?}");
            }
            assert!(
                plain_via(base, &mut SeenHosts::default()).is_some(),
                "{base}"
            );
        }
        assert!(
            fast > total / 8,
            "only {fast} of {total} took the plain check"
        );
    }

    #[test]
    fn broken_name_addrs_are_rejected() {
        for (bad, brackets) in [
            (r#""Mr. J. User <sip:j.user@example.com>"#, false),
            ("\"Watson, Thomas\" < sip:t.watson@example.org >", false),
            ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", false),
            (
                "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
                false,
            ),
            ("\"Joe\" <sip:joe@example.org>;;;;", false),
            ("sip:services.example.com;lr", true),
            ("<sip:a@b", false),
            ("<sip:a@b>;tag=1;tag=2", false),
        ] {
            assert!(NameAddr::parse(bad, brackets).is_err(), "{bad}");
        }
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            CSeq::parse("0009   INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: "INVITE"
            }
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("2147483647 INVITE").is_ok());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_number("0068", 255).unwrap(), 68);
        assert!(parse_number("300", 255).is_err());
        assert!(parse_number("-999", u64::MAX).is_err());
        assert_eq!(
            parse_delta_seconds("1000000000000000000000000000").unwrap(),
            u32::MAX
        );
        assert!(check_call_id("wsinv.ndaksdj@192.0.2.1").is_ok());
        assert!(check_call_id("a b").is_err());
        assert!(check_call_id("a@").is_err());
        let (secs, p) = parse_delta_with_params("1800;refresher=uac").unwrap();
        assert_eq!(secs, 1800);
        assert_eq!(p.get("refresher"), Some(Some("uac")));
    }

    #[test]
    fn token_lists() {
        assert_eq!(
            parse_token_list("INVITE, ACK ,CANCEL", false)
                .unwrap()
                .collect::<Vec<_>>(),
            ["INVITE", "ACK", "CANCEL"]
        );
        assert_eq!(parse_token_list("  ", true).unwrap().count(), 0);
        for bad in ["", "a,,b", "a,", ",a", "a b", "a;b", "<a>"] {
            assert!(parse_token_list(bad, false).is_err(), "{bad:?}");
        }
        assert!(parse_token_list("a, b", true).is_ok());
    }

    #[test]
    fn auth_params() {
        let a = Auth::parse(
            r#"Digest username="bob", realm="biloxi.com", nonce="", nc=00000001, qop=auth"#,
        )
        .unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.param("USERNAME").as_deref(), Some("bob"));
        assert_eq!(a.param("nonce").as_deref(), Some(""));
        assert_eq!(a.param("nc").as_deref(), Some("00000001"));
        assert!(Auth::parse("NoOneKnowsThisScheme opaque-data=here").is_ok());
        assert!(Auth::parse(r#"Digest realm="x"#).is_err());
        assert!(Auth::parse("Digest").is_err());
    }

    #[test]
    fn dates_must_be_gmt() {
        assert!(check_date("Thu, 12 Feb 2009 18:32:33 GMT").is_ok());
        assert!(check_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
    }
}
