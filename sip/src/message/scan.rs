//! Runs of character classes ([`super::class`]) and a cursor over header text, after the
//! RFC 3261 ABNF (section 25).
//!
//! Header values reach these functions unfolded: every `CRLF 1*WSP` already became one space,
//! so linear white space (LWS) is simply a run of spaces and tabs.

pub(crate) use super::class::{Class, MARKS, QDTEXT, TOKEN, WORD, table};

/// `token` characters: alphanum and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Where the run of `class` octets from `i` ends: sixteen octets at a time where the target
/// can (`simd::class_end`), else one by one.
#[inline]
pub(crate) fn run_of(b: &[u8], i: usize, class: &Class) -> usize {
    super::simd::class_end(b, i, class).unwrap_or_else(|| run_of_octets(b, i, class))
}

/// [`run_of`] one octet at a time, for runs known to be short: the names and token values of
/// Digest parameters, where a block per run measured slower (benches/RESULTS.md).
#[inline]
pub(crate) fn run_of_octets(b: &[u8], mut i: usize, class: &Class) -> usize {
    while i < b.len() && class[b[i] as usize] {
        i += 1;
    }
    i
}

/// Where a header name starting at `i` may end: the first control octet, space, tab, `:`,
/// DEL or non-ASCII octet, sixteen octets at a time (SSE2, on x86-64) while that many remain.
/// The octets before it are not yet known to be token characters.
#[inline]
pub(crate) fn name_end(b: &[u8], i: usize) -> usize {
    let mut i = match super::simd::first_stop(b, i, super::simd::Stop::NameEnd) {
        Ok(stop) => return stop,
        Err(rest) => rest,
    };
    while i < b.len() && !ends_name(b[i]) {
        i += 1;
    }
    i
}

/// The octets [`name_end`] stops at.
#[inline]
fn ends_name(c: u8) -> bool {
    c <= b' ' || c == b':' || c >= 0x7f
}

/// Position of an ASCII byte; for the short strings of header values a plain scan beats the
/// generic `str::find` machinery.
#[inline]
pub(crate) fn find(s: &str, c: u8) -> Option<usize> {
    s.bytes().position(|b| b == c)
}

#[inline]
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Without spaces and tabs at either end.
#[inline]
pub(crate) fn trim_wsp(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_wsp(b[start]) {
        start += 1;
    }
    while end > start && is_wsp(b[end - 1]) {
        end -= 1;
    }
    &s[start..end]
}

/// A string of `allowed` characters and `%HH` escapes, non-empty.
#[inline]
pub(crate) fn escaped_run(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Decodes `%HH` escapes (for comparisons); invalid escapes are kept as they are.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A cursor over one header value.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    pub s: &'a str,
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    pub fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Skips linear white space; returns whether there was any.
    #[inline]
    pub fn sws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_wsp) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// `SWS c SWS` (SEMI, COMMA, EQUAL, SLASH, COLON of the ABNF).
    #[inline]
    pub fn sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.sws();
        if self.peek() == Some(c) {
            self.pos += 1;
            self.sws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The longest run of bytes satisfying `pred` (possibly empty).
    #[inline]
    pub fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let b = self.s.as_bytes();
        while self.pos < b.len() && pred(b[self.pos]) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    #[inline]
    pub fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token);
        (!t.is_empty()).then_some(t)
    }

    /// A quoted string, returned with its quotes; quoted pairs are kept escaped.
    pub fn quoted(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        if b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos;
        self.pos = quoted_end(b, start)?;
        Some(&self.s[start..self.pos])
    }
}

/// Where the quoted string whose opening quote is at `start` ends (after its closing quote);
/// `None` when it is not closed or holds a control octet. Quoted pairs may escape any octet
/// but CR and LF (unfolding removed those).
#[inline(always)]
pub(crate) fn quoted_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i = next_special_in_quotes(b, i);
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' if i + 1 < b.len() => i += 2,
            c if QDTEXT[*c as usize] => i += 1,
            _ => return None, // a lone backslash at the end, a control octet
        }
    }
}

/// The first octet at or after `i` that may not stand for itself in a quoted string (`"`,
/// `\`, a control octet): by class blocks where the target has SSSE3 and `b` holds one
/// ([`run_of`]'s path); else sixteen octets at a time with SSE2 (which may also stop at an
/// earlier HT or non-ASCII octet), then eight (SWAR), then one by one. The caller looks at
/// the octet it lands on.
#[inline]
fn next_special_in_quotes(b: &[u8], mut i: usize) -> usize {
    if let Some(end) = super::simd::class_end(b, i, &QDTEXT) {
        return end;
    }
    i = match super::simd::first_stop(b, i, super::simd::Stop::InQuotes) {
        Ok(stop) => return stop,
        Err(rest) => rest,
    };
    const LO: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HIGH;
    while let Some(word) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let low = x & LOW7;
        // Below 0x20, 0x7f (and any high octet), or equal to '"' or '\\'. A false hit of
        // the equality tests sits only above a true one, so the lowest hit is a real stop.
        let hits = ((x | !(low + 0x6060_6060_6060_6060) | (low + LO)) & HIGH)
            | zero(x ^ (LO * b'"' as u64))
            | zero(x ^ (LO * b'\\' as u64));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && QDTEXT[b[i] as usize] {
        i += 1;
    }
    i
}

/// Splits a header value at top-level commas (not inside quotes or angle brackets).
pub(crate) fn split_commas(s: &str) -> CommaSplit<'_> {
    CommaSplit { s, pos: 0 }
}

pub(crate) struct CommaSplit<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.pos > self.s.len() {
            return None;
        }
        let b = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        let mut in_quote = false;
        let mut in_angle = false;
        while i < b.len() {
            match b[i] {
                b'\\' if in_quote => i += 1,
                b'"' if !in_angle => in_quote = !in_quote,
                b'<' if !in_quote => in_angle = true,
                b'>' if !in_quote => in_angle = false,
                b',' if !in_quote && !in_angle => {
                    self.pos = i + 1;
                    return Some(trim_wsp(&self.s[start..i]));
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = b.len() + 1;
        Some(trim_wsp(&self.s[start..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_by_blocks_end_where_the_octet_loop_does() {
        // Every octet value at every position, in texts shorter than a block, one block and
        // longer (where the last block overlaps the one before), from several starts.
        for class in [&TOKEN, &WORD, &QDTEXT] {
            assert!(class.nibbles_agree());
            for octet in 0..=255u8 {
                for len in [0, 1, 15, 16, 17, 20, 31, 32, 33, 47] {
                    for at in 0..len.max(1) {
                        let mut b = vec![b'a'; len];
                        if let Some(o) = b.get_mut(at) {
                            *o = octet;
                        }
                        for from in [0, 1, at, at + 1, len.saturating_sub(1), len, len + 1] {
                            assert_eq!(
                                run_of(&b, from, class),
                                run_of_octets(&b, from, class),
                                "octet {octet:#x} at {at} of {len} from {from}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_class_of_any_set_has_its_nibble_tables() {
        // Sets whose high nibbles have up to eight different sets of low nibbles.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut member = [false; 256];
            for (c, m) in member.iter_mut().enumerate() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Only the first eight high nibbles get members at random; the rest copy
                // them, so no more than eight patterns arise.
                *m = if c < 128 { state & 3 == 0 } else { false };
            }
            for c in 128..256 {
                member[c] = member[c - 128];
            }
            assert!(Class::of(member).nibbles_agree());
        }
    }

    #[test]
    fn header_names_by_blocks_end_where_the_octet_loop_does() {
        // Every octet value at every position of a block, and names that end in the block,
        // after it or at the end of the text.
        for octet in 0..=255u8 {
            for len in [15, 16, 17, 31, 32, 40] {
                for at in 0..len {
                    let mut b = vec![b'a'; len];
                    b[at] = octet;
                    for from in [0, 1, at.min(len - 1)] {
                        let by_octets = (from..len).find(|&k| ends_name(b[k])).unwrap_or(len);
                        assert_eq!(
                            name_end(&b, from),
                            by_octets,
                            "octet {octet:#x} at {at} of {len} from {from}"
                        );
                    }
                }
            }
        }
        for c in 0..=255u8 {
            assert_eq!(
                ends_name(c),
                c.is_ascii_control() || c == b' ' || c == b':' || !c.is_ascii(),
                "{c:#x}"
            );
        }
    }

    #[test]
    fn character_tables_match_the_abnf() {
        for b in 0u8..=255 {
            let alnum = b.is_ascii_alphanumeric();
            assert_eq!(
                is_token(b),
                alnum || b"-.!%*_+`'~".contains(&b),
                "token {b}"
            );
            assert_eq!(
                WORD[b as usize],
                alnum || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b),
                "word {b}"
            );
        }
    }

    #[test]
    fn escapes_must_be_two_hex_digits() {
        let alnum = |b: u8| b.is_ascii_alphanumeric();
        assert!(escaped_run("a%20b", alnum));
        assert!(escaped_run("%00", alnum));
        assert!(!escaped_run("a%2", alnum));
        assert!(!escaped_run("a%zz", alnum));
        assert!(!escaped_run("a b", alnum));
        assert_eq!(
            unescape("sips%3Auser%40example.com"),
            b"sips:user@example.com"
        );
    }

    #[test]
    fn commas_inside_quotes_and_brackets_do_not_split() {
        let parts: Vec<&str> =
            split_commas(r#""a, b" <sip:x@y;p=1,2>, <sip:z@w> ,sip:q@r"#).collect();
        assert_eq!(
            parts,
            vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z@w>", "sip:q@r"]
        );
    }

    #[test]
    fn quoted_strings_end_where_a_byte_by_byte_reading_ends() {
        // The reading by words must stop where the octet-by-octet grammar does, whatever
        // the position of the octet in its word.
        fn reference(s: &str) -> Option<&str> {
            let b = s.as_bytes();
            let mut i = 1;
            while i < b.len() {
                match b[i] {
                    b'"' => return Some(&s[..=i]),
                    b'\\' if i + 1 < b.len() => i += 2,
                    b'\\' => return None,
                    c if (c < 0x20 && c != b'\t') || c == 0x7f => return None,
                    _ => i += 1,
                }
            }
            None
        }
        for len in 0..40 {
            for at in 0..len {
                for special in ["\"", "\\\"", "\\", "\u{1}", "\t", "\u{7f}", "é", "\\\u{7}"] {
                    let mut body = "a".repeat(len);
                    body.replace_range(at..at + 1, special);
                    for text in [format!("\"{body}\" rest"), format!("\"{body}")] {
                        let mut c = Cursor::new(&text);
                        assert_eq!(c.quoted(), reference(&text), "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn quoted_strings_keep_escapes_and_need_a_close() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" rest"#);
        assert_eq!(c.quoted(), Some(r#""J Rosenberg \\\"""#));
        assert!(Cursor::new(r#""unterminated"#).quoted().is_none());
    }
}
