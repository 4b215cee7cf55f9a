//! Differential test: our parser against ezk-sip-types (an independent Rust SIP parser) on
//! every valid message of the shared corpora. Where both accept a message, they must agree on
//! what it says: request or response, method or status, Call-ID, CSeq and the number of header
//! fields. Where ezk refuses a message we accept, that is counted (ezk is not a torture-test
//! reference), never a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::path::PathBuf;
use std::str::FromStr;

use bytes::Bytes;
use ezk_sip_types::Headers;
use ezk_sip_types::header::typed::{CSeq as EzkCSeq, CallID};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use hotline_sip::message::{Delivery, Message};

fn corpora() -> PathBuf {
    std::env::var_os("HOTLINE_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"))
}

struct Ezk {
    line: MessageLine,
    headers: Headers,
    fields: usize,
}

fn ezk_parse(bytes: &[u8]) -> Option<Ezk> {
    let src = Bytes::copy_from_slice(bytes);
    let mut lines = PullParser::new(&src, 0);
    let first = std::str::from_utf8(lines.next()?.ok()?).ok()?;
    let line = MessageLine::from_str(first).ok()?;
    let mut headers = Headers::new();
    let mut fields = 0;
    for l in lines {
        let l = std::str::from_utf8(l.ok()?).ok()?;
        let (_, parsed) = Line::parse(&src, l).ok()?;
        headers.insert(parsed.name, parsed.value);
        fields += 1;
    }
    Some(Ezk {
        line,
        headers,
        fields,
    })
}

#[test]
fn ours_and_ezk_agree_where_both_accept() {
    let manifest = std::fs::read_to_string(corpora().join("manifest.tsv")).unwrap();
    let (mut compared, mut ezk_refused) = (0, 0);
    let mut disagreements = Vec::new();
    for row in manifest.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (path, verdict) = (cols[0], cols[4]);
        let single = path.starts_with("rfc4475/")
            || path.starts_with("rfc5118/")
            || path.starts_with("parser-vectors/pjproject-msg_test/");
        if !single || !verdict.starts_with("valid") {
            continue;
        }
        let bytes = std::fs::read(corpora().join(path)).unwrap();
        let ours = Message::parse(&bytes, Delivery::Datagram).unwrap();
        let Some(theirs) = ezk_parse(&bytes) else {
            ezk_refused += 1;
            continue;
        };
        compared += 1;
        let mut differ = |what: &str, a: String, b: String| {
            if a != b {
                disagreements.push(format!("{path}: {what}: ours {a:?}, ezk {b:?}"));
            }
        };
        match &theirs.line {
            MessageLine::Request(r) => differ(
                "method",
                ours.method().map(|m| m.to_string()).unwrap_or_default(),
                r.method.to_string(),
            ),
            MessageLine::Response(s) => differ(
                "status",
                ours.status().map(|c| c.to_string()).unwrap_or_default(),
                s.code.into_u16().to_string(),
            ),
        }
        differ(
            "header count",
            ours.headers().count().to_string(),
            theirs.fields.to_string(),
        );
        if let Ok(id) = theirs.headers.get_named::<CallID>() {
            differ(
                "Call-ID",
                ours.call_id().unwrap_or("").to_string(),
                id.0.to_string(),
            );
        }
        if let Ok(c) = theirs.headers.get_named::<EzkCSeq>() {
            let o = ours.cseq().unwrap();
            differ(
                "CSeq",
                format!("{} {}", o.seq, o.method),
                format!("{} {}", c.cseq, c.method),
            );
        }
    }
    eprintln!("compared {compared} messages; ezk refused {ezk_refused} that we accept");
    assert!(compared >= 20, "only {compared} messages compared");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
