//! The PROTOS c07-sip test cases (corpora `protos-c07-sip/cases`): each file holds a template
//! with `<Name>` placeholders; [`protos_case`] fills them in as the suite's own driver does, with
//! loopback addresses, and sets Content-Length to the body that results.

/// Case `n` from its file's bytes, ready to send: the placeholders the original Java harness
/// filled, filled.
pub fn protos_case(n: usize, raw: &[u8]) -> Vec<u8> {
    // Two records `<decimal length> SP <bytes>`; the first is the INVITE.
    let space = raw.iter().position(|b| *b == b' ').unwrap();
    let len: usize = std::str::from_utf8(&raw[..space]).unwrap().parse().unwrap();
    let template = &raw[space + 1..(space + 1 + len).min(raw.len())];
    let mut out = Vec::with_capacity(template.len() + 64);
    let mut i = 0;
    let subst = |name: &[u8]| -> Option<String> {
        Some(match name {
            b"To" => "12345@127.0.0.1".into(),
            b"From" => "protos@127.0.0.1".into(),
            b"From-Address" | b"From-IP" => "127.0.0.1".into(),
            b"Local-Port" => "5061".into(),
            b"Call-ID" => format!("protos{n}"),
            b"CSeq" => "1".into(),
            b"Branch-ID" => format!("{n}"),
            b"Teardown-Method" => "CANCEL".into(),
            b"Content-Length" => "\u{0}CL\u{0}".into(),
            _ => return None,
        })
    };
    while i < template.len() {
        if template[i] == b'<'
            && let Some(close) = template[i..].iter().position(|b| *b == b'>')
            && let Some(v) = subst(&template[i + 1..i + close])
        {
            out.extend_from_slice(v.as_bytes());
            i += close + 1;
            continue;
        }
        out.push(template[i]);
        i += 1;
    }
    let body_len = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| out.len() - p - 4);
    let marker = b"\x00CL\x00";
    let mut filled = Vec::with_capacity(out.len());
    let mut j = 0;
    while j < out.len() {
        if out[j..].starts_with(marker) {
            // The length changes by the marker's own size difference.
            filled.extend_from_slice(body_len.to_string().as_bytes());
            j += marker.len();
        } else {
            filled.push(out[j]);
            j += 1;
        }
    }
    filled
}
