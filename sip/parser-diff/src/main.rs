//! Differential run of the SIP parser against the parser of an earlier commit (the `old`
//! crate, written by scripts/parser-diff.sh): every file of the shared corpora, every
//! length-prefixed PROTOS record alone, and random mutations of them (octets inserted,
//! replaced, removed, runs repeated), parsed by both with `parse` and `parse_syntax`, as
//! datagrams and as stream units. For each, the verdict, the status code of a refusal, the
//! bytes written back and every typed accessor must agree. Fields added to the typed values
//! since (Via's kept branch, a name-addr's kept tag) are left out of the comparison.
//! Prints the first ten differences and the count. Not part of CI (it needs the old crate).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a finding

#[path = "../../benches/messages.rs"]
mod messages;

use std::path::Path;

macro_rules! summary {
    ($m:ident, $data:expr) => {{
        let mut out = String::new();
        for delivery in [
            $m::message::Delivery::Datagram,
            $m::message::Delivery::Stream,
        ] {
            for full in [true, false] {
                let r = if full {
                    $m::message::Message::parse($data, delivery)
                } else {
                    $m::message::Message::parse_syntax($data, delivery)
                };
                match r {
                    Err(e) => out.push_str(&format!("ERR {:?}\n", e.status)),
                    Ok(m) => {
                        out.push_str(&format!(
                            "OK {:?}\n",
                            String::from_utf8_lossy(&m.to_bytes())
                        ));
                        out.push_str(&format!(
                            "{:?} {:?} {:?} {:?}\n",
                            m.method().map(|x| x.to_string()),
                            m.status(),
                            m.reason(),
                            m.request_uri().map(|u| format!("{u:?}"))
                        ));
                        for v in m.vias() {
                            out.push_str(&format!(
                                "via {v:?} {:?} {:?} {:?}\n",
                                v.branch(),
                                v.received(),
                                v.rport()
                            ));
                        }
                        out.push_str(&format!(
                            "from {:?} {:?}\n",
                            m.from_header(),
                            m.from_header().map(|f| f.tag())
                        ));
                        out.push_str(&format!(
                            "to {:?} {:?}\n",
                            m.to_header(),
                            m.to_header().map(|f| f.tag())
                        ));
                        out.push_str(&format!(
                            "cid {:?} cseq {:?} mf {:?} exp {:?} ct {:?} se {:?}\n",
                            m.call_id(),
                            m.cseq(),
                            m.max_forwards(),
                            m.expires(),
                            m.content_type(),
                            m.session_expires()
                        ));
                        for c in m.contacts() {
                            out.push_str(&format!("contact {c:?}\n"));
                        }
                        for c in m.routes() {
                            out.push_str(&format!("route {c:?}\n"));
                        }
                        for c in m.record_routes() {
                            out.push_str(&format!("rr {c:?}\n"));
                        }
                        for n in ["Authorization", "WWW-Authenticate", "Proxy-Authorization"] {
                            let name = $m::message::HeaderName::parse(n);
                            for a in m.auths(&name) {
                                out.push_str(&format!(
                                    "auth {a:?} {:?} {:?}\n",
                                    a.param("nonce"),
                                    a.param("username")
                                ));
                            }
                        }
                        for n in ["Allow", "Supported", "Require", "Unsupported"] {
                            let name = $m::message::HeaderName::parse(n);
                            out.push_str(&format!(
                                "{n} {:?}\n",
                                m.tokens(&name).collect::<Vec<_>>()
                            ));
                        }
                        for (n, raw, v) in m.headers() {
                            out.push_str(&format!("h {n:?} {raw:?} {v:?}\n"));
                        }
                        out.push_str(&format!(
                            "body {:?} framing {:?}\n",
                            m.body().len(),
                            m.framing()
                        ));
                    }
                }
            }
        }
        out
    }};
}

/// Removes `key` and its value (up to the next ',' or '}' outside quotes and brackets).
fn strip(s: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i]);
        let v = &rest[i + key.len()..];
        let b = v.as_bytes();
        let (mut depth, mut q, mut j) = (0i32, false, 0);
        while j < b.len() {
            let c = b[j];
            if q {
                if c == b'\\' {
                    j += 1
                } else if c == b'"' {
                    q = false
                }
            } else if c == b'"' {
                q = true
            } else if c == b'(' || c == b'[' || c == b'{' {
                depth += 1
            } else if (c == b')' || c == b']' || c == b'}') && depth > 0 {
                depth -= 1
            } else if (c == b',' || c == b'}') && depth == 0 {
                break;
            }
            j += 1;
        }
        rest = &v[j..];
    }
    out.push_str(rest);
    out
}

fn files(dir: &Path, out: &mut Vec<Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out)
        } else if let Ok(b) = std::fs::read(&p)
            && b.len() < 100_000
        {
            out.push(b)
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() {
    let mut inputs = Vec::new();
    let corpora = std::env::var_os("HOTLINE_CORPORA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    files(&corpora, &mut inputs);
    // PROTOS records: also each length-prefixed record alone
    let n0 = inputs.len();
    for i in 0..n0 {
        let raw = inputs[i].clone();
        if let Some(sp) = raw.iter().position(|b| *b == b' ')
            && let Ok(s) = std::str::from_utf8(&raw[..sp])
            && let Ok(len) = s.parse::<usize>()
        {
            inputs.push(raw[sp + 1..(sp + 1 + len).min(raw.len())].to_vec());
        }
    }
    inputs.push(messages::INVITE.to_vec());
    inputs.push(messages::REGISTER.to_vec());
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let interesting = b" <>;:@,=%\"\\\t\r\n[]?&/.-+*!0aZ9\x00\x7f\xff#()'~_$";
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut bad = 0;
    let mut total = 0;
    let base = inputs.clone();
    let check = |data: &[u8], bad: &mut usize| {
        // The fields an earlier parser may lack (kept branch and tag) are left out of both.
        let a = strip(&strip(&summary!(old, data), ", branch: "), ", tag: ").replace(" }", "}");
        let b = strip(
            &strip(&summary!(hotline_sip, data), ", branch: "),
            ", tag: ",
        )
        .replace(" }", "}");
        if a != b {
            *bad += 1;
            if *bad <= 10 {
                println!(
                    "=== DIFF on {:?}\n--- old\n{}\n--- new\n{}",
                    String::from_utf8_lossy(data),
                    a,
                    b
                );
            }
        }
    };
    for d in &base {
        total += 1;
        check(d, &mut bad);
    }
    for _ in 0..iters {
        for d in &base {
            if d.is_empty() {
                continue;
            }
            let mut m = d.clone();
            let k = 1 + rng.below(3);
            for _ in 0..k {
                let pos = rng.below(m.len().max(1));
                match rng.below(4) {
                    0 => {
                        if pos < m.len() {
                            m[pos] = interesting[rng.below(interesting.len())];
                        }
                    }
                    1 => {
                        m.insert(pos.min(m.len()), interesting[rng.below(interesting.len())]);
                    }
                    2 => {
                        if pos < m.len() {
                            m.remove(pos);
                        }
                    }
                    _ => {
                        let l = rng.below(8).min(m.len() - pos);
                        let seg = m[pos..pos + l].to_vec();
                        let at = rng.below(m.len());
                        for (j, c) in seg.into_iter().enumerate() {
                            m.insert(at + j, c);
                        }
                    }
                }
            }
            total += 1;
            check(&m, &mut bad);
        }
    }
    println!("{total} inputs, {bad} differ");
    if bad > 0 {
        std::process::exit(1);
    }
}
