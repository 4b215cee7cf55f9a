//! Masking of telephone numbers for logs and for roles that may not see them.
//!
//! A caller's number is personal data (REGULATION.md, Art. 7, 11, 13). Log lines never carry it
//! whole: [`Phone`] masks one number where it is logged, and [`mask_numbers_in`] scrubs any text
//! (the log writer runs every line through it), so a number that slips into a SIP URI or an error
//! message is masked too. The first three and the last four digits stay: `138****5678`.

use std::fmt;

/// Displays a telephone number masked: `13812345678` as `138****5678`.
pub struct Phone<'a>(pub &'a str);

impl fmt::Display for Phone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_number(self.0))
    }
}

impl fmt::Debug for Phone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", mask_number(self.0))
    }
}

/// Masks one number as a whole: keeps the first three and last four digits, stars the rest.
/// Numbers of seven digits or fewer keep only their last two (`****67`); non-digits are kept.
pub fn mask_number(number: &str) -> String {
    // A country prefix in front of a mobile number stays readable: +86 138****5678.
    for prefix in ["+86", "0086", "86"] {
        if let Some(rest) = number.strip_prefix(prefix)
            && is_mobile(rest.as_bytes())
        {
            return format!("{prefix}{}", mask_number(rest));
        }
    }
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let (keep_head, keep_tail) = if digits > 7 { (3, 4) } else { (0, 2) };
    star_digits(number, keep_head, keep_tail)
}

/// Stars every digit but the first `keep_head` and the last `keep_tail`; non-digits are kept.
fn star_digits(number: &str, keep_head: usize, keep_tail: usize) -> String {
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= keep_head || seen > digits.saturating_sub(keep_tail) {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

/// Keeps only the last `keep` digits of a number, every other digit starred:
/// `mask_tail("13812345678", 4)` is `*******5678`. For lists shown to roles that need no more.
pub fn mask_tail(number: &str, keep: usize) -> String {
    star_digits(number, 0, keep)
}

/// Replaces every telephone number in `text` by its masked form and returns whether any was
/// found. A number is a run of digits not touching other digits or letters that looks like a
/// Chinese mobile number (`1[3-9]` and 11 digits, optionally after `86`/`+86`/`0086`), or a
/// fixed-line number with its area code (`0` then 10 to 12 digits, or `0AAA-NNNNNNN`).
/// Dates, times, ports and ticket numbers (longer runs) are left alone.
pub fn mask_numbers_in(text: &mut String) -> bool {
    let bytes = text.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let mut end = i;
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        // An area code, a hyphen and a local number: 0536-8123456.
        if bytes[start] == b'0'
            && (3..=4).contains(&(end - start))
            && end + 1 < bytes.len()
            && bytes[end] == b'-'
            && bytes[end + 1].is_ascii_digit()
        {
            let mut j = end + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if (7..=8).contains(&(j - end - 1)) {
                end = j;
                i = j;
            }
        }
        let after_ok = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before_ok && after_ok && looks_like_phone(&bytes[start..end]) {
            spans.push((start, end));
        }
    }
    if spans.is_empty() {
        return false;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e) in spans {
        out.push_str(&text[last..s]);
        out.push_str(&mask_number(&text[s..e]));
        last = e;
    }
    out.push_str(&text[last..]);
    *text = out;
    true
}

fn is_mobile(d: &[u8]) -> bool {
    d.len() == 11
        && d[0] == b'1'
        && (b'3'..=b'9').contains(&d[1])
        && d.iter().all(u8::is_ascii_digit)
}

fn looks_like_phone(run: &[u8]) -> bool {
    let mobile = is_mobile;
    if run.contains(&b'-') {
        return true; // the area-code form was matched exactly above
    }
    if mobile(run) {
        return true;
    }
    for prefix in [&b"86"[..], &b"0086"[..]] {
        if run.strip_prefix(prefix).is_some_and(mobile) {
            return true;
        }
    }
    run[0] == b'0' && (10..=12).contains(&run.len()) && run.get(1) != Some(&b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        let mut t = s.to_string();
        mask_numbers_in(&mut t);
        t
    }

    #[test]
    fn phone_display_masks_the_middle() {
        assert_eq!(Phone("13812345678").to_string(), "138****5678");
        assert_eq!(Phone("+8613812345678").to_string(), "+86138****5678");
        assert_eq!(Phone("110").to_string(), "*10");
    }

    #[test]
    fn a_tail_keeps_only_the_last_digits() {
        assert_eq!(mask_tail("13812345678", 4), "*******5678");
        assert_eq!(mask_tail("+8613812345678", 4), "+*********5678");
        assert_eq!(mask_tail("123", 4), "123");
    }

    #[test]
    fn mobile_numbers_in_text_are_masked() {
        assert_eq!(
            masked("call from 13812345678 queued"),
            "call from 138****5678 queued"
        );
        assert_eq!(
            masked("From: <sip:13987654321@10.0.0.1>;tag=x"),
            "From: <sip:139****4321@10.0.0.1>;tag=x"
        );
        assert_eq!(masked("caller=+8613812345678"), "caller=+86138****5678");
        assert_eq!(
            masked("\"caller\":\"13812345678\""),
            "\"caller\":\"138****5678\""
        );
    }

    #[test]
    fn fixed_line_numbers_are_masked() {
        assert_eq!(masked("ani 05368123456"), "ani 053****3456");
        assert_eq!(masked("ani 0536-8123456"), "ani 053*-***3456");
    }

    #[test]
    fn dates_ports_and_ticket_numbers_are_left_alone() {
        for s in [
            "2026-11-28T14:14:35.123Z",
            "listening on 127.0.0.1:5060",
            "ticket 20261128000123 dispatched",
            "rtp 20000..29999",
            "branch=z9hG4bK13812345678x",
            "12345 hotline",
        ] {
            assert_eq!(masked(s), s);
        }
    }
}
