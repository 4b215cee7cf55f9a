//! SIP messages: a strict RFC 3261 parser, typed header access, and a serializer.
//!
//! [`Message::parse`] reads one message from a datagram or from a unit cut by
//! [`StreamFramer`]. Every header the engine understands is validated when the message is
//! parsed, so a [`Message`] in hand is well formed; the typed accessors ([`Message::vias`],
//! [`Message::from_header`], ...) then parse again from the stored text without allocating,
//! except the keys every transaction and dialog reads ([`Message::top_branch`],
//! [`Message::from_tag`], [`Message::to_tag`], [`Message::cseq`]), which the parser keeps as
//! it validates them. Unknown headers are kept, in order, as written.
//!
//! The common head (CRLF line ends, no folding, ASCII) is cut in one pass, sixteen octets at a
//! time (`simd.rs`), and copied once; each header value is then read once, in one pass per
//! element (URI, host, parameters, list items), a host already read in the same message not
//! again. Anything unusual takes the general path, which names the fault or applies the
//! tolerances below. benches/RESULTS.md has the measurements.
//!
//! Tolerances, decided explicitly: line ends may be CRLF, bare LF or bare CR (pjsip's and the
//! RFC 5118 archive's messages use bare ones); a datagram may end without the empty line when
//! it has no body; when a datagram with bare line ends carries a body shorter than its
//! Content-Length (the RFC 5118 archive's known errata), the body is what arrived and
//! [`Framing::short_body`] says by how much. A CRLF message with a short body is refused with
//! 400 (RFC 3261 18.3).

mod class;
mod error;
mod framer;
mod method;
mod name;
pub(crate) mod scan;
mod simd;
mod typed;
mod uri;

use std::fmt::Write as _;

pub use error::ParseError;
use error::ReplyContext;
pub use framer::{FrameEvent, StreamFramer};
pub use method::Method;
pub use name::HeaderName;
use scan::trim_wsp;
pub use scan::unescape;
pub use typed::{
    Auth, CSeq, ContactValue, HeaderError, MediaType, NameAddr, Via, check_call_id, check_date,
    parse_contact_list, parse_delta_seconds, parse_delta_with_params, parse_number,
    parse_route_list, parse_token_list, parse_via_list,
};
use uri::SeenHosts;
pub use uri::{Host, Params, SipUri, TelUri, Uri, UriError};

/// Most header fields one message may carry.
pub const MAX_HEADERS: usize = 256;

/// How the bytes of a message are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One message per datagram (UDP): extra bytes after the body are ignored, a missing
    /// Content-Length means "the rest of the datagram".
    Datagram,
    /// A unit cut from a stream (TCP, TLS, WebSocket) by its Content-Length.
    Stream,
}

/// What the parser noticed about the framing of an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Framing {
    /// Bytes after the body that were ignored (a datagram longer than its Content-Length).
    pub trailing_bytes: usize,
    /// Bytes the body lacked against its Content-Length (tolerated only with bare line ends).
    pub short_body: usize,
    /// Some line ended in a bare LF or CR.
    pub bare_line_ends: bool,
    /// The datagram ended without the empty line after the headers.
    pub unterminated_head: bool,
}

type Span = (u32, u32);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    Request { method: Method, uri: Span },
    Response { code: u16, reason: Span },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: HeaderName,
    name_span: Span,
    value_span: Span,
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Start line and header text, unfolded; spans point into it.
    text: String,
    start: Start,
    fields: Vec<Field>,
    body: Vec<u8>,
    framing: Framing,
    /// What validation read of every transaction's and dialog's keys.
    known: Known,
}

/// The keys every transaction and dialog reads, kept by the parser where it validated them so
/// that reading them costs no second parse. Any change to the header fields clears them (the
/// accessors then parse the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Known {
    valid: bool,
    branch: Option<Span>,
    from_tag: Option<Span>,
    to_tag: Option<Span>,
    cseq: Option<(u32, Span)>,
}

/// The span of `part`, a slice of `value`, which starts at `base` in the message text.
fn sub_span(base: u32, value: &str, part: &str) -> Span {
    let start = base + (part.as_ptr() as usize - value.as_ptr() as usize) as u32;
    (start, start + part.len() as u32)
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match code / 100 {
            1 => "Trying",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Line {
    start: usize,
    end: usize,
    next: usize,
    bare: bool,
}

/// The line starting at `pos`: ends at CRLF, LF or CR.
fn next_line(data: &[u8], pos: usize) -> Option<Line> {
    if pos >= data.len() {
        return None;
    }
    let Some(off) = memchr::memchr2(b'\r', b'\n', &data[pos..]) else {
        return Some(Line {
            start: pos,
            end: data.len(),
            next: data.len(),
            bare: false,
        });
    };
    let i = pos + off;
    let crlf = data[i] == b'\r' && data.get(i + 1) == Some(&b'\n');
    Some(Line {
        start: pos,
        end: i,
        next: if crlf { i + 2 } else { i + 1 },
        bare: !crlf,
    })
}

/// A control character outside a quoted pair. Inside quotes, `\` may escape any octet but CR
/// and LF (RFC 3261 25.1 quoted-pair), so `"BEL:\<0x07>"` is legal (RFC 4475 3.1.1.2).
fn has_control(s: &str) -> bool {
    // Fast path, branch-free so it vectorises: most lines have no control octet at all.
    let any = s.bytes().fold(false, |acc, c| {
        acc | ((c < 0x20) & (c != b'\t')) | (c == 0x7f)
    });
    if !any {
        return false;
    }
    let b = s.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => in_quote = !in_quote,
            b'\\' if in_quote => i += 1,
            c if (c < 0x20 && c != b'\t') || c == 0x7f => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The head of a message cut into its start line and header fields.
struct Split {
    /// The start line and the fields; spans point into it.
    text: String,
    first_len: usize,
    fields: Vec<Field>,
    body_start: usize,
    framing: Framing,
    /// The first fault found in the lines (reported after the start line is read, so that a
    /// request's reply can still be addressed).
    error: Option<ParseError>,
}

/// The common case in one pass: CRLF line ends, no folding, no control character but the line
/// ends, an empty line closing the head. The head is copied as it is and the fields point into
/// it. `None` sends anything else to [`split_general`], which also names the fault.
fn split_plain(data: &[u8], pos: usize) -> Option<Split> {
    // Where the lines end (the position of each CR), up to the empty line.
    let mut ends = [0u32; 64];
    let (lines, body_start) = plain_lines(data, pos, &mut ends)?;
    if lines == 0 {
        return None;
    }
    let head = &data[pos..body_start];
    debug_assert!(head.is_ascii());
    // SAFETY: `plain_lines` accepted every octet of the head (it returns `None` at the first
    // octet outside HT, CRLF and 0x20..=0x7e), so the head is ASCII and thus valid UTF-8.
    #[allow(unsafe_code)]
    let text = unsafe { String::from_utf8_unchecked(head.to_vec()) };
    let first_len = ends[0] as usize;
    let mut fields: Vec<Field> = Vec::with_capacity(lines);
    let t = text.as_bytes();
    let mut start = first_len + 2;
    for &end in &ends[1..lines] {
        let end = end as usize;
        // The name: token octets up to the colon (a space or tab may come before it). Anything
        // else (an empty name, folding's leading space, a space inside a name, a separator)
        // goes to the general path, which names the fault. The run stops at the CR at the
        // latest; a name the engine knows is a token, any other is checked octet by octet.
        let name_end = scan::name_end(t, start);
        let mut colon = name_end;
        if t[colon] != b':' {
            while colon < end && scan::is_wsp(t[colon]) {
                colon += 1;
            }
            if t[colon] != b':' {
                return None;
            }
        }
        if name_end == start {
            return None;
        }
        let name = HeaderName::parse(&text[start..name_end]);
        if matches!(name, HeaderName::Other(_))
            && !t[start..name_end].iter().all(|&c| scan::is_token(c))
        {
            return None;
        }
        // Mostly one space after the colon and none at the end.
        let mut j = colon + 1;
        if t[j] == b' ' {
            j += 1;
        }
        while j < end && scan::is_wsp(t[j]) {
            j += 1;
        }
        let mut k = end;
        while k > j && scan::is_wsp(t[k - 1]) {
            k -= 1;
        }
        fields.push(Field {
            name,
            name_span: (start as u32, name_end as u32),
            value_span: (j as u32, k as u32),
        });
        start = end + 2;
    }
    Some(Split {
        text,
        first_len,
        fields,
        body_start,
        framing: Framing::default(),
        error: None,
    })
}

/// Cuts a plain head into lines in one pass ([`next_control`]: sixteen octets at a time): the
/// positions of the CRs ending the lines (relative to `pos`) go into `ends`; returns how many
/// lines there are and where the body starts. `None` when the head is not plain: a control
/// octet other than HT or a CRLF, a non-ASCII octet, a bare CR or LF, no empty line, more
/// lines than `ends` holds.
fn plain_lines(data: &[u8], pos: usize, ends: &mut [u32; 64]) -> Option<(usize, usize)> {
    let mut lines = 0;
    let mut line_start = pos;
    let mut i = pos;
    loop {
        i = next_control(data, i);
        match data.get(i)? {
            b'\t' => i += 1,
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                if i == line_start {
                    return Some((lines, i + 2));
                }
                *ends.get_mut(lines)? = (i - pos) as u32;
                lines += 1;
                i += 2;
                line_start = i;
            }
            _ => return None,
        }
    }
}

/// The first octet at or after `i` that is a control (HT and the line ends included), DEL or
/// not ASCII, or `data.len()`: sixteen octets at a time (SSE2 on x86-64), then one by one.
#[inline]
fn next_control(data: &[u8], i: usize) -> usize {
    match simd::first_stop(data, i, simd::Stop::Control) {
        Ok(stop) => stop,
        Err(mut rest) => {
            while rest < data.len() && (0x20..0x7f).contains(&data[rest]) {
                rest += 1;
            }
            rest
        }
    }
}

/// values are unfolded into the copied text; a malformed line is reported in `error`.
#[cold]
#[inline(never)]
fn split_general(data: &[u8], mut pos: usize) -> Result<Split, ParseError> {
    let mut framing = Framing::default();
    // Cut the head: lines up to the first empty one.
    let head_start = pos;
    let mut lines: Vec<(usize, usize)> = Vec::with_capacity(24);
    let mut body_start = None;
    while let Some(line) = next_line(data, pos) {
        framing.bare_line_ends |= line.bare;
        pos = line.next;
        if line.start == line.end && line.end < data.len() {
            body_start = Some(line.next);
            break;
        }
        lines.push((line.start, line.end));
        if lines.len() > MAX_HEADERS + 1 {
            return Err(ParseError::status(400, "too many header lines"));
        }
    }
    let body_start = match body_start {
        Some(b) => b,
        None => {
            framing.unterminated_head = true;
            data.len()
        }
    };
    let head_end = lines.last().map_or(head_start, |l| l.1);
    let head = std::str::from_utf8(&data[head_start..head_end])
        .map_err(|_| ParseError::status(400, "header section is not UTF-8"))?;
    let line_str = |(s, e): (usize, usize)| &head[s - head_start..e - head_start];

    let first = line_str(lines[0]);

    // Collect the header fields (unfolded) into the message text.
    let mut text = String::with_capacity(head.len() + 8);
    text.push_str(first);
    text.push_str("\r\n");
    let mut fields: Vec<Field> = Vec::with_capacity(lines.len());
    let mut split_error: Option<ParseError> = None;
    if has_control(first) {
        split_error = Some(ParseError::status(
            400,
            "control character in the start line",
        ));
    }
    for &span in &lines[1..] {
        let line = line_str(span);
        if has_control(line) {
            split_error.get_or_insert(ParseError::status(400, "control character in a header"));
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Folding: the continuation joins the previous field with one space.
            match fields.last_mut() {
                Some(f) => {
                    let cont = trim_wsp(line);
                    if !cont.is_empty() {
                        if f.value_span.1 > f.value_span.0 {
                            text.push(' ');
                        }
                        text.push_str(cont);
                        f.value_span.1 = text.len() as u32;
                    }
                }
                None => {
                    split_error.get_or_insert(ParseError::status(
                        400,
                        "continuation line before any header",
                    ));
                }
            }
            continue;
        }
        let Some(colon) = scan::find(line, b':') else {
            split_error.get_or_insert(ParseError::status(
                400,
                format!("header line without a colon: {:.40}", line),
            ));
            continue;
        };
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(scan::is_token) {
            split_error.get_or_insert(ParseError::status(400, "invalid header name"));
            continue;
        }
        let value = trim_wsp(&line[colon + 1..]);
        if !fields.is_empty() {
            text.push_str("\r\n");
        }
        let ns = text.len() as u32;
        text.push_str(name);
        let ne = text.len() as u32;
        text.push_str(": ");
        let vs = text.len() as u32;
        text.push_str(value);
        fields.push(Field {
            name: HeaderName::parse(name),
            name_span: (ns, ne),
            value_span: (vs, text.len() as u32),
        });
    }
    // Trailing white space left by folding.
    for f in &mut fields {
        let v = &text[f.value_span.0 as usize..f.value_span.1 as usize];
        f.value_span.1 = f.value_span.0 + v.trim_end_matches([' ', '\t']).len() as u32;
    }
    Ok(Split {
        text,
        first_len: first.len(),
        fields,
        body_start,
        framing,
        error: split_error,
    })
}

impl Message {
    /// Parses one message for processing: its syntax, then what RFC 3261 requires of every
    /// message (Via, From, To, Call-ID and CSeq present; the CSeq method matching a request's).
    /// See the module documentation for what is tolerated.
    pub fn parse(data: &[u8], delivery: Delivery) -> Result<Message, ParseError> {
        Self::parse_inner(data, delivery, true)
    }

    /// Parses the syntax only, accepting messages that lack mandatory headers (the abbreviated
    /// examples of RFC call flows, a message under construction). Not for the wire.
    pub fn parse_syntax(data: &[u8], delivery: Delivery) -> Result<Message, ParseError> {
        Self::parse_inner(data, delivery, false)
    }

    fn parse_inner(data: &[u8], delivery: Delivery, complete: bool) -> Result<Message, ParseError> {
        // RFC 3261 7.5: empty lines before the start line are ignored.
        let mut pos = 0;
        while pos < data.len() && (data[pos] == b'\r' || data[pos] == b'\n') {
            pos += 1;
        }
        if pos >= data.len() {
            return Err(ParseError::drop("empty message"));
        }
        let split = match split_plain(data, pos) {
            Some(split) => split,
            None => split_general(data, pos)?,
        };
        let first_len = split.first_len;
        let is_response = starts_with_sip(&split.text[..first_len]);
        let mut msg = Message {
            text: split.text,
            start: Start::Response {
                code: 0,
                reason: (0, 0),
            },
            fields: split.fields,
            body: Vec::new(),
            framing: split.framing,
            known: Known::default(),
        };
        let result = split.error.map_or(Ok(()), Err).and_then(|()| {
            // The hosts checked in the start line and the header fields, for reuse.
            let mut hosts = SeenHosts::default();
            msg.start = Self::parse_start_line(&msg.text[..first_len], &mut hosts)?;
            let (length, known) = msg.validate_headers(complete, &mut hosts)?;
            msg.known = known;
            msg.take_body(data, split.body_start, length, delivery)
        });
        match result {
            Ok(()) => Ok(msg),
            Err(mut e) => {
                if is_response {
                    e.status = None; // a broken response is dropped
                } else {
                    e.context = Some(Box::new(msg.reply_context(&msg.text[..first_len])));
                }
                Err(e)
            }
        }
    }

    fn parse_start_line<'a>(line: &'a str, hosts: &mut SeenHosts<'a>) -> Result<Start, ParseError> {
        let len = line.len();
        if starts_with_sip(line) {
            let (version, rest) = line.split_once(' ').unwrap_or((line, ""));
            if !version.eq_ignore_ascii_case("SIP/2.0") {
                return Err(ParseError::drop("response with another SIP version"));
            }
            let (code_text, reason) = match rest.split_once(' ') {
                Some((c, r)) => (c, Some(r)),
                None => (rest, None),
            };
            let code = match code_text.parse::<u16>() {
                Ok(c) if code_text.len() == 3 && (100..=699).contains(&c) => c,
                _ => return Err(ParseError::drop("response status code is not 100-699")),
            };
            let reason_start = match reason {
                Some(r) => len - r.len(),
                None => len,
            };
            return Ok(Start::Response {
                code,
                reason: (reason_start as u32, len as u32),
            });
        }
        // The common line in one pass: a method, a plain SIP URI (which ends at the space)
        // and the version.
        let b = line.as_bytes();
        let m = scan::run_of(b, 0, &scan::TOKEN);
        if m > 0
            && b.get(m) == Some(&b' ')
            && let Some(end) = typed::plain_sip_uri(line, m + 1, hosts)
            && b.get(end) == Some(&b' ')
            && b[end + 1..].eq_ignore_ascii_case(b"SIP/2.0")
        {
            return Ok(Start::Request {
                method: Method::parse(&line[..m]),
                uri: ((m + 1) as u32, end as u32),
            });
        }
        // METHOD SP Request-URI SP SIP-Version: exactly two spaces.
        let sp1 = scan::find(line, b' ');
        let sp2 = sp1.and_then(|a| scan::find(&line[a + 1..], b' ').map(|b| a + 1 + b));
        let (Some(a), Some(b)) = (sp1, sp2) else {
            return Err(ParseError::status(
                400,
                "request line is not METHOD SP Request-URI SP SIP-Version",
            ));
        };
        let (method, uri, version) = (&line[..a], &line[a + 1..b], &line[b + 1..]);
        if scan::find(version, b' ').is_some() {
            return Err(ParseError::status(
                400,
                "request line is not METHOD SP Request-URI SP SIP-Version",
            ));
        }
        if method.is_empty() || !method.bytes().all(scan::is_token) {
            return Err(ParseError::status(400, "invalid method"));
        }
        if uri.is_empty() {
            return Err(ParseError::status(400, "empty Request-URI"));
        }
        check_version(version)?;
        // A plain URI in a well-formed line took the one-pass reading above.
        check_request_uri(uri)?;
        let uri_start = method.len() + 1;
        Ok(Start::Request {
            method: Method::parse(method),
            uri: (uri_start as u32, (uri_start + uri.len()) as u32),
        })
    }

    /// Checks every header the engine knows; returns the Content-Length, if given, and the
    /// transaction and dialog keys read on the way.
    fn validate_headers<'a>(
        &'a self,
        complete: bool,
        hosts: &mut SeenHosts<'a>,
    ) -> Result<(Option<usize>, Known), ParseError> {
        let mut seen = 0u32;
        let mut count_single = |name: &HeaderName| -> Result<(), ParseError> {
            let Some(bit) = name.single_slot() else {
                return Ok(());
            };
            if seen & bit != 0 {
                return Err(more_than_one(name));
            }
            seen |= bit;
            Ok(())
        };
        let (mut via, mut from, mut to, mut call_id) = (false, false, false, false);
        let mut cseq = None;
        let mut length = None;
        let mut known = Known {
            valid: true,
            ..Known::default()
        };
        for f in &self.fields {
            count_single(&f.name)?;
            let v = self.span(f.value_span);
            let bad = |e: HeaderError| invalid_header(&f.name, e);
            match &f.name {
                HeaderName::Via => {
                    // The branch of the line's first Via.
                    let branch = match typed::plain_via(v, hosts) {
                        Some(branch) => branch,
                        None => full_via_branch(v).map_err(bad)?,
                    };
                    if !via {
                        known.branch = branch.map(|b| sub_span(f.value_span.0, v, b));
                        via = true;
                    }
                }
                HeaderName::From | HeaderName::To => {
                    if f.name == HeaderName::From {
                        from = true;
                    } else {
                        to = true;
                    }
                    let tag = match typed::plain_name_addr(v, hosts) {
                        Some(tag) => tag,
                        None => full_name_addr_tag(v).map_err(bad)?,
                    };
                    let tag = tag.map(|t| sub_span(f.value_span.0, v, t));
                    if f.name == HeaderName::From {
                        known.from_tag = tag;
                    } else {
                        known.to_tag = tag;
                    }
                }
                HeaderName::Contact if typed::plain_name_addr(v, hosts).is_some() => {}
                HeaderName::Contact => full_contacts(v).map_err(bad)?,
                HeaderName::Route | HeaderName::RecordRoute => {
                    for r in parse_route_list(v) {
                        r.map_err(bad)?;
                    }
                }
                HeaderName::CallId => {
                    call_id = true;
                    check_call_id(v).map_err(bad)?;
                }
                HeaderName::CSeq => {
                    let c = CSeq::parse(v).map_err(bad)?;
                    known.cseq = Some((c.seq, sub_span(f.value_span.0, v, c.method)));
                    cseq = Some(c);
                }
                HeaderName::MaxForwards => {
                    parse_number(v, 255).map_err(bad)?;
                }
                HeaderName::ContentLength => {
                    length = Some(parse_number(v, u32::MAX as u64).map_err(bad)? as usize);
                }
                HeaderName::Expires | HeaderName::MinExpires => {
                    parse_delta_seconds(v).map_err(bad)?;
                }
                HeaderName::SessionExpires | HeaderName::MinSe => {
                    parse_delta_with_params(v).map_err(bad)?;
                }
                HeaderName::ContentType => {
                    MediaType::parse(v).map_err(bad)?;
                }
                HeaderName::Accept if !v.trim().is_empty() => {
                    for m in scan::split_commas(v) {
                        MediaType::parse(m).map_err(bad)?;
                    }
                }
                HeaderName::Require | HeaderName::ProxyRequire => {
                    let _ = parse_token_list(v, false).map_err(bad)?;
                }
                HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::ContentEncoding => {
                    let _ = parse_token_list(v, true).map_err(bad)?;
                }
                HeaderName::Authorization
                | HeaderName::ProxyAuthorization
                | HeaderName::WwwAuthenticate
                | HeaderName::ProxyAuthenticate => {
                    Auth::parse(v).map_err(bad)?;
                }
                HeaderName::Date => check_date(v).map_err(bad)?,
                _ => {}
            }
        }
        if !complete {
            return Ok((length, known));
        }
        let missing = [
            (via, "Via"),
            (from, "From"),
            (to, "To"),
            (call_id, "Call-ID"),
            (cseq.is_some(), "CSeq"),
        ];
        if let Some((_, name)) = missing.iter().find(|(present, _)| !present) {
            return Err(ParseError::status(400, format!("missing {name} header")));
        }
        if let Start::Request { method, .. } = &self.start
            && let Some(c) = cseq
            && c.method != method.as_str()
        {
            // An unknown method is answered 501 whatever its CSeq (RFC 4475 3.1.2.18).
            let status = if method.is_extension() { 501 } else { 400 };
            return Err(ParseError::status(
                status,
                "CSeq method does not match the request method",
            ));
        }
        Ok((length, known))
    }

    fn take_body(
        &mut self,
        data: &[u8],
        body_start: usize,
        declared: Option<usize>,
        delivery: Delivery,
    ) -> Result<(), ParseError> {
        let available = data.len().saturating_sub(body_start);
        let len = match (declared, delivery) {
            (Some(d), _) if d <= available => {
                self.framing.trailing_bytes = available - d;
                d
            }
            (Some(d), Delivery::Datagram) if self.framing.bare_line_ends => {
                self.framing.short_body = d - available;
                available
            }
            (Some(d), _) => {
                return Err(ParseError::status(
                    400,
                    format!("Content-Length {d} but only {available} bytes of body"),
                ));
            }
            (None, _) => available,
        };
        if delivery == Delivery::Stream && self.framing.trailing_bytes > 0 {
            return Err(ParseError::status(
                400,
                "bytes after the body in a stream unit",
            ));
        }
        self.body = data[body_start..body_start + len].to_vec();
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn reply_context(&self, first_line: &str) -> ReplyContext {
        let mut ctx = ReplyContext {
            is_ack: first_line.starts_with("ACK "),
            ..ReplyContext::default()
        };
        for f in &self.fields {
            let v = self.span(f.value_span).to_string();
            match f.name {
                HeaderName::Via => ctx.vias.push(v),
                HeaderName::From => {
                    ctx.from.get_or_insert(v);
                }
                HeaderName::To => {
                    ctx.to.get_or_insert(v);
                }
                HeaderName::CallId => {
                    ctx.call_id.get_or_insert(v);
                }
                HeaderName::CSeq => {
                    ctx.cseq.get_or_insert(v);
                }
                _ => {}
            }
        }
        ctx
    }
}

/// Whether text starts with `SIP/` in any case. Byte-wise: the text may start with a
/// multi-byte character, where slicing a `str` at 4 would panic (a fuzzer finding).
fn starts_with_sip(s: &str) -> bool {
    s.as_bytes()
        .get(..4)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"SIP/"))
}

/// A Request-URI of any form: a URI without headers.
fn check_request_uri(uri: &str) -> Result<(), ParseError> {
    let parsed = Uri::parse(uri)
        .map_err(|e| ParseError::status(400, format!("invalid Request-URI: {e}")))?;
    if let Uri::Sip(u) = parsed
        && u.headers.is_some()
    {
        return Err(ParseError::status(
            400,
            "headers are not allowed in a Request-URI",
        ));
    }
    Ok(())
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v == "SIP/2.0" || v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.len() > 4
        && starts_with_sip(v)
        && v[4..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if well_formed {
        Err(ParseError::status(
            505,
            format!("SIP version {v} is not supported"),
        ))
    } else {
        Err(ParseError::status(400, "request line has no SIP version"))
    }
}

/// The full reading of a Via line the one-loop check declined: the branch of its first value.
/// Out of line, as are the two below: most messages take the one-loop checks.
#[cold]
#[inline(never)]
fn full_via_branch(v: &str) -> Result<Option<&str>, HeaderError> {
    let mut first = None;
    for r in parse_via_list(v) {
        first.get_or_insert(r?.branch());
    }
    Ok(first.flatten())
}

/// The full reading of a From or To value: its tag.
#[cold]
#[inline(never)]
fn full_name_addr_tag(v: &str) -> Result<Option<&str>, HeaderError> {
    let a = NameAddr::parse(v, false)?;
    // tag-param = "tag" EQUAL token (RFC 3261 25.1).
    if a.tag_without_value() {
        return Err(HeaderError("tag without a value"));
    }
    Ok(a.tag())
}

/// The full reading of a Contact line: `*` alone, or addresses.
#[cold]
#[inline(never)]
fn full_contacts(v: &str) -> Result<(), HeaderError> {
    let mut n = 0;
    for c in parse_contact_list(v) {
        c?;
        n += 1;
    }
    if v.trim() == "*" && n != 1 {
        return Err(HeaderError("Contact * with other values"));
    }
    Ok(())
}

/// The refusal of a header field that does not parse (out of line: errors are rare and their
/// formatting would crowd the hot loop).
#[cold]
#[inline(never)]
fn invalid_header(name: &HeaderName, e: HeaderError) -> ParseError {
    ParseError::status(400, format!("invalid {} header: {e}", name.as_str()))
}

/// The refusal of a second instance of a header that may appear once.
#[cold]
#[inline(never)]
fn more_than_one(name: &HeaderName) -> ParseError {
    ParseError::status(400, format!("more than one {} header", name.as_str()))
}

// ---------------------------------------------------------------------------------------------
// Access

impl Message {
    fn span(&self, (s, e): Span) -> &str {
        &self.text[s as usize..e as usize]
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// The request method (`None` for a response).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as written (`None` for a response).
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            Start::Request { uri, .. } => Some(self.span(*uri)),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str().and_then(|u| Uri::parse(u).ok())
    }

    /// The status code (`None` for a request).
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            Start::Response { code, .. } => Some(*code),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase (`None` for a request).
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            Start::Response { reason, .. } => Some(self.span(*reason)),
            Start::Request { .. } => None,
        }
    }

    /// Every header field in order: the name as written and the (unfolded) value.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &str, &str)> {
        self.fields
            .iter()
            .map(|f| (&f.name, self.span(f.name_span), self.span(f.value_span)))
    }

    /// The value of the first field called `name`.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| &f.name == name)
            .map(|f| self.span(f.value_span))
    }

    /// The values of every field called `name`, in order (one per header line).
    pub fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| &f.name == name)
            .map(|f| self.span(f.value_span))
    }

    /// The value of a header by any spelling (`"Call-ID"`, `"i"`, `"X-Custom"`).
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        let name = HeaderName::parse(name);
        self.fields
            .iter()
            .find(|f| match (&f.name, &name) {
                (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            })
            .map(|f| self.span(f.value_span))
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> {
        self.header_values(&HeaderName::Via)
            .flat_map(|v| parse_via_list(v).filter_map(Result::ok))
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.vias().next()
    }

    /// The topmost Via's branch.
    pub fn top_branch(&self) -> Option<&str> {
        if self.known.valid {
            return self.known.branch.map(|s| self.span(s));
        }
        self.top_via().and_then(|v| v.branch())
    }

    /// The From tag.
    pub fn from_tag(&self) -> Option<&str> {
        if self.known.valid {
            return self.known.from_tag.map(|s| self.span(s));
        }
        self.from_header().and_then(|f| f.tag())
    }

    /// The To tag (none on a request outside a dialog).
    pub fn to_tag(&self) -> Option<&str> {
        if self.known.valid {
            return self.known.to_tag.map(|s| self.span(s));
        }
        self.to_header().and_then(|t| t.tag())
    }

    /// From.
    pub fn from_header(&self) -> Option<NameAddr<'_>> {
        self.header(&HeaderName::From)
            .and_then(|v| NameAddr::parse(v, false).ok())
    }

    /// To.
    pub fn to_header(&self) -> Option<NameAddr<'_>> {
        self.header(&HeaderName::To)
            .and_then(|v| NameAddr::parse(v, false).ok())
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header(&HeaderName::CallId)
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<CSeq<'_>> {
        if self.known.valid {
            return self.known.cseq.map(|(seq, method)| CSeq {
                seq,
                method: self.span(method),
            });
        }
        self.header(&HeaderName::CSeq)
            .and_then(|v| CSeq::parse(v).ok())
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Option<u8> {
        self.header(&HeaderName::MaxForwards)
            .and_then(|v| parse_number(v, 255).ok())
            .map(|n| n as u8)
    }

    /// Every Contact value.
    pub fn contacts(&self) -> impl Iterator<Item = ContactValue<'_>> {
        self.header_values(&HeaderName::Contact)
            .flat_map(|v| parse_contact_list(v).filter_map(Result::ok))
    }

    /// Route values, top first.
    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'_>> {
        self.addr_list(&HeaderName::Route)
    }

    /// Record-Route values, top first.
    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'_>> {
        self.addr_list(&HeaderName::RecordRoute)
    }

    fn addr_list<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = NameAddr<'a>> + 'a {
        self.header_values(name)
            .flat_map(|v| parse_route_list(v).filter_map(Result::ok))
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<MediaType<'_>> {
        self.header(&HeaderName::ContentType)
            .and_then(|v| MediaType::parse(v).ok())
    }

    /// Expires, in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.header(&HeaderName::Expires)
            .and_then(|v| parse_delta_seconds(v).ok())
    }

    /// The option tags of every field called `name` (Require, Supported, Unsupported,
    /// Proxy-Require) or the methods of Allow.
    pub fn tokens<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.header_values(name)
            .flat_map(|v| scan::split_commas(v).filter(|t| !t.is_empty()))
    }

    /// Session-Expires (RFC 4028): the interval and its parameters (`refresher`).
    pub fn session_expires(&self) -> Option<(u32, Params<'_>)> {
        self.header(&HeaderName::SessionExpires)
            .and_then(|v| parse_delta_with_params(v).ok())
    }

    /// The challenges or credentials of every field called `name`.
    pub fn auths<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = Auth<'a>> + 'a {
        self.header_values(name).filter_map(|v| Auth::parse(v).ok())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// What the parser noticed about the framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }
}

// ---------------------------------------------------------------------------------------------
// Building and serializing

impl Message {
    /// A new request with no headers.
    pub fn request(method: Method, uri: &str) -> Message {
        let mut text = String::with_capacity(256);
        let _ = write!(text, "{method} ");
        let us = text.len() as u32;
        text.push_str(uri);
        let ue = text.len() as u32;
        text.push_str(" SIP/2.0\r\n");
        Message {
            text,
            start: Start::Request {
                method,
                uri: (us, ue),
            },
            fields: Vec::new(),
            body: Vec::new(),
            framing: Framing::default(),
            known: Known::default(),
        }
    }

    /// A new response with no headers.
    pub fn response(code: u16, reason: &str) -> Message {
        let mut text = String::with_capacity(256);
        let _ = write!(text, "SIP/2.0 {code} ");
        let rs = text.len() as u32;
        text.push_str(reason);
        let re = text.len() as u32;
        text.push_str("\r\n");
        Message {
            text,
            start: Start::Response {
                code,
                reason: (rs, re),
            },
            fields: Vec::new(),
            body: Vec::new(),
            framing: Framing::default(),
            known: Known::default(),
        }
    }

    /// A response to `req` (RFC 3261 8.2.6.2): copies Via, From, To, Call-ID and CSeq.
    pub fn response_to(req: &Message, code: u16) -> Message {
        let mut resp = Message::response(code, reason_phrase(code));
        for f in &req.fields {
            if matches!(
                f.name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                resp.push_header(f.name.clone(), req.span(f.value_span));
            }
        }
        resp
    }

    /// Appends a header field (canonical name).
    pub fn push_header(&mut self, name: HeaderName, value: &str) {
        self.known.valid = false;
        let ns = self.text.len() as u32;
        self.text.push_str(name.as_str());
        let ne = self.text.len() as u32;
        self.text.push_str(": ");
        let vs = self.text.len() as u32;
        self.text.push_str(value);
        let ve = self.text.len() as u32;
        self.text.push_str("\r\n");
        self.fields.push(Field {
            name,
            name_span: (ns, ne),
            value_span: (vs, ve),
        });
    }

    /// Replaces the first value of the first field called `name` (for Via: the top Via, even
    /// when several share one line). Returns false when there is no such field.
    pub fn replace_first_value(&mut self, name: &HeaderName, value: &str) -> bool {
        self.known.valid = false;
        let Some(idx) = self.fields.iter().position(|f| &f.name == name) else {
            return false;
        };
        let old = self.span(self.fields[idx].value_span).to_string();
        let mut parts = scan::split_commas(&old);
        parts.next();
        let rest: Vec<&str> = parts.collect();
        let new_value = if rest.is_empty() {
            value.to_string()
        } else {
            format!("{value}, {}", rest.join(", "))
        };
        let vs = self.text.len() as u32;
        self.text.push_str(&new_value);
        self.fields[idx].value_span = (vs, self.text.len() as u32);
        true
    }

    /// Removes every field called `name`.
    pub fn remove_headers(&mut self, name: &HeaderName) {
        self.known.valid = false;
        self.fields.retain(|f| &f.name != name);
    }

    /// Replaces the body, its Content-Type and its Content-Length.
    pub fn set_body(&mut self, content_type: Option<&str>, body: Vec<u8>) {
        self.remove_headers(&HeaderName::ContentType);
        self.remove_headers(&HeaderName::ContentLength);
        if let Some(ct) = content_type {
            self.push_header(HeaderName::ContentType, ct);
        }
        self.push_header(HeaderName::ContentLength, &body.len().to_string());
        self.body = body;
    }

    /// The wire form: start line, every field as `Name: value`, an empty line, the body.
    /// Names keep the spelling they were parsed with; folded values come out unfolded.
    /// Content-Length always states the body's real length (one is added if there was none),
    /// so the output frames correctly on any transport.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + self.body.len() + 64);
        self.write_to(&mut out);
        out
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start_end = self.text.find("\r\n").map_or(self.text.len(), |i| i + 2);
        out.extend_from_slice(&self.text.as_bytes()[..start_end]);
        let mut length_written = false;
        for f in &self.fields {
            out.extend_from_slice(self.span(f.name_span).as_bytes());
            out.extend_from_slice(b": ");
            if f.name == HeaderName::ContentLength {
                out.extend_from_slice(self.body.len().to_string().as_bytes());
                length_written = true;
            } else {
                out.extend_from_slice(self.span(f.value_span).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        if !length_written {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

#[cfg(test)]
mod tests;
