//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for the hotline's audio: G.711 (PCMU,
//! PCMA) and telephone-event. The parser keeps every line so a description round-trips; the
//! negotiation reads the first usable audio stream and answers the caller's preferred common
//! codec, or fails with 488 when there is none.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Why a description is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Malformed SDP (answer 400).
    #[error("invalid SDP: {0}")]
    Invalid(String),
    /// Nothing we can accept: no audio stream with PCMU or PCMA (answer 488).
    #[error("not acceptable: {0}")]
    NotAcceptable(&'static str),
}

impl SdpError {
    /// The SIP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            SdpError::Invalid(_) => 400,
            SdpError::NotAcceptable(_) => 488,
        }
    }
}

/// One media section (`m=` and the lines under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    /// Port (0: rejected or disabled).
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVPF`, ...
    pub proto: String,
    /// Formats (payload types for RTP).
    pub formats: Vec<String>,
    /// The other lines, in order, without the `m=` line.
    pub lines: Vec<(char, String)>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level lines, in order (v=, o=, s=, c=, t=, a=, ...).
    pub session: Vec<(char, String)>,
    /// Media sections.
    pub media: Vec<Media>,
}

const KNOWN: &str = "vosiuepcbtrzkam";

impl Sdp {
    /// Parses a description (CRLF or LF line ends; a leading empty line is tolerated).
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut seen_v = false;
        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let mut chars = line.chars();
            let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
                return Err(SdpError::Invalid(format!(
                    "line {line:?} is not <type>=<value>"
                )));
            };
            if !KNOWN.contains(kind) {
                // RFC 4566 5: a description with a type letter we do not know is ignored whole.
                return Err(SdpError::Invalid(format!("unknown line type {kind:?}")));
            }
            let value = line[2..].to_string();
            if !seen_v {
                if kind != 'v' || value != "0" {
                    return Err(SdpError::Invalid("does not start with v=0".into()));
                }
                seen_v = true;
            }
            if kind == 'm' {
                let mut parts = value.split(' ');
                let (Some(k), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(SdpError::Invalid(format!("m= line {value:?}")));
                };
                let port = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| SdpError::Invalid(format!("m= port in {value:?}")))?;
                media.push(Media {
                    kind: k.to_string(),
                    port,
                    proto: proto.to_string(),
                    formats: parts
                        .filter(|f| !f.is_empty())
                        .map(str::to_string)
                        .collect(),
                    lines: Vec::new(),
                });
            } else if let Some(m) = media.last_mut() {
                m.lines.push((kind, value));
            } else {
                session.push((kind, value));
            }
        }
        if !seen_v {
            return Err(SdpError::Invalid("empty".into()));
        }
        let sdp = Sdp { session, media };
        // Connection addresses must be readable where they are given.
        sdp.connection(None)?;
        for m in &sdp.media {
            sdp.connection(Some(m))?;
        }
        Ok(sdp)
    }

    fn attr<'a>(lines: &'a [(char, String)], name: &str) -> Option<Option<&'a str>> {
        lines.iter().find_map(|(k, v)| {
            if *k != 'a' {
                return None;
            }
            match v.split_once(':') {
                Some((n, rest)) if n == name => Some(Some(rest)),
                None if v == name => Some(None),
                _ => None,
            }
        })
    }

    /// The connection address of a media section (its own `c=`, else the session's).
    pub fn connection(&self, media: Option<&Media>) -> Result<Option<IpAddr>, SdpError> {
        let find = |lines: &[(char, String)]| {
            lines
                .iter()
                .find(|(k, _)| *k == 'c')
                .map(|(_, v)| v.clone())
        };
        let c = media
            .and_then(|m| find(&m.lines))
            .or_else(|| find(&self.session));
        let Some(c) = c else {
            return Ok(None);
        };
        let parts: Vec<&str> = c.split(' ').collect();
        let [net, kind, addr] = parts.as_slice() else {
            return Err(SdpError::Invalid(format!("c= line {c:?}")));
        };
        let addr = addr.split('/').next().unwrap_or(addr);
        if *net != "IN" || !(*kind == "IP4" || *kind == "IP6") {
            return Err(SdpError::Invalid(format!("c= line {c:?}")));
        }
        match addr.parse::<IpAddr>() {
            Ok(ip) => Ok(Some(ip)),
            // A host name is legal SDP but names something we will not resolve for media.
            Err(_) => Err(SdpError::Invalid(format!(
                "c= address {addr:?} is not an IP address"
            ))),
        }
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.session {
            write!(f, "{k}={v}\r\n")?;
        }
        for m in &self.media {
            write!(f, "m={} {} {}", m.kind, m.port, m.proto)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            f.write_str("\r\n")?;
            for (k, v) in &m.lines {
                write!(f, "{k}={v}\r\n")?;
            }
        }
        Ok(())
    }
}

/// G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// mu-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// The byte of silence in this law.
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name in SDP and in call records (`PCMU`, `PCMA`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Media direction (RFC 3264 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// Only sending (the other side is on hold).
    SendOnly,
    /// Only receiving.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    fn token(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The answer's direction for an offered one.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What both sides agreed for the audio stream, from our point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec.
    pub codec: Codec,
    /// The telephone-event payload type, if both sides have it.
    pub dtmf: Option<u8>,
    /// Where to send RTP.
    pub remote: SocketAddr,
    /// Our direction.
    pub direction: Direction,
    /// Packet time in ms.
    pub ptime: u32,
    /// RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
}

/// Our side of the audio: where we receive, and the o= line's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// Our RTP address.
    pub addr: SocketAddr,
    /// o= session id.
    pub session_id: u64,
    /// o= version (raise it for every new offer or answer in the dialog).
    pub version: u64,
}

fn direction_of(sdp: &Sdp, m: &Media) -> Direction {
    for lines in [&m.lines, &sdp.session] {
        for (name, d) in [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::SendOnly),
            ("recvonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
        ] {
            if Sdp::attr(lines, name).is_some() {
                return d;
            }
        }
    }
    Direction::SendRecv
}

/// The G.711 codec a format names, by static type or rtpmap.
fn codec_of(m: &Media, format: &str) -> Option<Codec> {
    let rtpmap = m.lines.iter().find_map(|(k, v)| {
        let rest = v.strip_prefix("rtpmap:")?;
        let (pt, enc) = rest.split_once(' ')?;
        (*k == 'a' && pt == format).then_some(enc)
    });
    match (format, rtpmap) {
        (_, Some(enc))
            if enc.eq_ignore_ascii_case("PCMU/8000") || enc.eq_ignore_ascii_case("PCMU/8000/1") =>
        {
            Some(Codec::Pcmu)
        }
        (_, Some(enc))
            if enc.eq_ignore_ascii_case("PCMA/8000") || enc.eq_ignore_ascii_case("PCMA/8000/1") =>
        {
            Some(Codec::Pcma)
        }
        ("0", None) => Some(Codec::Pcmu),
        ("8", None) => Some(Codec::Pcma),
        _ => None,
    }
}

fn telephone_event(m: &Media) -> Option<u8> {
    m.formats.iter().find_map(|f| {
        let found = m.lines.iter().any(|(k, v)| {
            *k == 'a'
                && v.strip_prefix("rtpmap:")
                    .and_then(|r| r.split_once(' '))
                    .is_some_and(|(pt, enc)| {
                        pt == f && enc.to_ascii_lowercase().starts_with("telephone-event/8000")
                    })
        });
        if found { f.parse().ok() } else { None }
    })
}

fn usable_audio(m: &Media) -> bool {
    m.kind == "audio" && m.port != 0 && (m.proto == "RTP/AVP" || m.proto == "RTP/AVPF")
}

/// Answers an offer (RFC 3264 6): the first usable audio stream gets the offerer's most
/// preferred G.711 law and telephone-event; every other stream is refused (port 0), keeping
/// the offer's order of m= lines.
pub fn answer(offer: &Sdp, local: Local) -> Result<(Sdp, Negotiated), SdpError> {
    let chosen = offer
        .media
        .iter()
        .position(|m| usable_audio(m) && m.formats.iter().any(|f| codec_of(m, f).is_some()))
        .ok_or(SdpError::NotAcceptable(
            "no audio stream offering PCMU or PCMA",
        ))?;
    let m = &offer.media[chosen];
    let codec = m
        .formats
        .iter()
        .find_map(|f| codec_of(m, f))
        .ok_or(SdpError::NotAcceptable("no G.711"))?;
    let dtmf = telephone_event(m);
    let ip = offer
        .connection(Some(m))?
        .ok_or_else(|| SdpError::Invalid("no c= line for the audio stream".into()))?;
    let theirs = direction_of(offer, m);
    // Old-style hold: c=0.0.0.0 means they will not receive.
    let theirs = if ip.is_unspecified() && theirs == Direction::SendRecv {
        Direction::SendOnly
    } else {
        theirs
    };
    // The offerer's packet time, when it is a whole number of our 20 ms frames (20, 40, 60);
    // anything else (10, 30, 50, nonsense) is answered with 20.
    let ptime = Sdp::attr(&m.lines, "ptime")
        .flatten()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|p| matches!(p, 20 | 40 | 60))
        .unwrap_or(20);
    let rtcp_mux = Sdp::attr(&m.lines, "rtcp-mux").is_some();
    let negotiated = Negotiated {
        codec,
        dtmf,
        remote: SocketAddr::new(ip, m.port),
        direction: theirs.reverse(),
        ptime,
        rtcp_mux,
    };
    let mut media = Vec::with_capacity(offer.media.len());
    for (i, om) in offer.media.iter().enumerate() {
        if i != chosen {
            media.push(Media {
                kind: om.kind.clone(),
                port: 0,
                proto: om.proto.clone(),
                formats: om.formats.iter().take(1).cloned().collect(),
                lines: Vec::new(),
            });
            continue;
        }
        let mut formats = vec![codec.payload_type().to_string()];
        let mut lines = vec![(
            'a',
            format!("rtpmap:{} {}/8000", codec.payload_type(), codec.name()),
        )];
        if let Some(pt) = dtmf {
            formats.push(pt.to_string());
            lines.push(('a', format!("rtpmap:{pt} telephone-event/8000")));
            lines.push(('a', format!("fmtp:{pt} 0-16")));
        }
        lines.push(('a', format!("ptime:{ptime}")));
        if rtcp_mux {
            lines.push(('a', "rtcp-mux".into()));
        }
        lines.push(('a', negotiated.direction.token().into()));
        media.push(Media {
            kind: "audio".into(),
            port: local.addr.port(),
            proto: om.proto.clone(),
            formats,
            lines,
        });
    }
    Ok((session(local, media), negotiated))
}

/// Our offer (an INVITE to an agent, or the 200 to an INVITE without SDP): PCMU, PCMA and
/// telephone-event 101, 20 ms.
pub fn offer(local: Local, direction: Direction) -> Sdp {
    let media = vec![Media {
        kind: "audio".into(),
        port: local.addr.port(),
        proto: "RTP/AVP".into(),
        formats: vec!["0".into(), "8".into(), "101".into()],
        lines: vec![
            ('a', "rtpmap:0 PCMU/8000".into()),
            ('a', "rtpmap:8 PCMA/8000".into()),
            ('a', "rtpmap:101 telephone-event/8000".into()),
            ('a', "fmtp:101 0-16".into()),
            ('a', "ptime:20".into()),
            ('a', direction.token().into()),
        ],
    }];
    session(local, media)
}

/// Reads the answer to our offer.
pub fn accept_answer(answer: &Sdp) -> Result<Negotiated, SdpError> {
    let m = answer
        .media
        .iter()
        .find(|m| usable_audio(m))
        .ok_or(SdpError::NotAcceptable(
            "the answer refused the audio stream",
        ))?;
    let codec = m
        .formats
        .iter()
        .find_map(|f| codec_of(m, f))
        .ok_or(SdpError::NotAcceptable("the answer chose no G.711 law"))?;
    let ip = answer
        .connection(Some(m))?
        .ok_or_else(|| SdpError::Invalid("no c= line for the audio stream".into()))?;
    Ok(Negotiated {
        codec,
        dtmf: telephone_event(m),
        remote: SocketAddr::new(ip, m.port),
        direction: direction_of(answer, m).reverse(),
        ptime: Sdp::attr(&m.lines, "ptime")
            .flatten()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(20),
        rtcp_mux: Sdp::attr(&m.lines, "rtcp-mux").is_some(),
    })
}

fn session(local: Local, media: Vec<Media>) -> Sdp {
    let ip = local.addr.ip();
    let kind = if ip.is_ipv4() { "IP4" } else { "IP6" };
    Sdp {
        session: vec![
            ('v', "0".into()),
            (
                'o',
                format!(
                    "hotline {} {} IN {kind} {ip}",
                    local.session_id, local.version
                ),
            ),
            ('s', "hotline".into()),
            ('c', format!("IN {kind} {ip}")),
            ('t', "0 0".into()),
        ],
        media,
    }
}

#[cfg(test)]
mod tests;
