//! Parse errors, grouped by what the receiver does about them: answer a request with a status
//! (when enough of it was read to address a response), or drop the message.

use std::fmt;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What to answer: 400, 505, 501, ...; `None` means drop silently (a broken response, or
    /// bytes that are not a SIP request at all).
    pub status: Option<u16>,
    /// What is wrong, for logs and for the Warning header of the answer.
    pub detail: String,
    /// The header fields a response must copy (RFC 3261 8.2.6.2), when the message was a
    /// request whose header lines could be read.
    pub(crate) context: Option<Box<ReplyContext>>,
}

/// Header values copied from a refused request into the answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ReplyContext {
    pub vias: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<String>,
    pub is_ack: bool,
}

impl ParseError {
    pub(crate) fn drop(detail: impl Into<String>) -> ParseError {
        ParseError {
            status: None,
            detail: detail.into(),
            context: None,
        }
    }

    pub(crate) fn status(status: u16, detail: impl Into<String>) -> ParseError {
        ParseError {
            status: Some(status),
            detail: detail.into(),
            context: None,
        }
    }

    /// The answer to send back, if the message was a request that can be answered: a
    /// response with the status, the copied Via, From, To (with a tag added), Call-ID and
    /// CSeq, and a Warning (399) carrying the detail. From, To, Call-ID and CSeq are copied
    /// only when they are themselves well formed, so the answer parses; the Vias are copied as
    /// they came, broken ones too (RFC 4475 3.1.2.1 still wants its 400, and the answer goes
    /// to the source address). An ACK is never answered.
    pub fn reply(&self) -> Option<Vec<u8>> {
        let status = self.status?;
        let ctx = self.context.as_ref()?;
        if ctx.is_ack || ctx.vias.is_empty() {
            return None;
        }
        // A valueless `tag` would make the added tag a duplicate: such an address is left out.
        let addr_ok = |v: &&String| {
            super::NameAddr::parse(v, false).is_ok_and(|a| a.params.get("tag") != Some(None))
        };
        let from = ctx.from.as_ref().filter(addr_ok);
        let to = ctx.to.as_ref().filter(addr_ok);
        let call_id = ctx
            .call_id
            .as_ref()
            .filter(|c| super::check_call_id(c).is_ok());
        let cseq = ctx.cseq.as_ref().filter(|c| super::CSeq::parse(c).is_ok());
        let mut out = String::with_capacity(512);
        out.push_str(&format!(
            "SIP/2.0 {status} {}\r\n",
            super::reason_phrase(status)
        ));
        for v in &ctx.vias {
            out.push_str("Via: ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        if let Some(f) = from {
            out.push_str(&format!("From: {f}\r\n"));
        }
        if let Some(t) = to {
            let tagged = super::NameAddr::parse(t, false).is_ok_and(|a| a.tag().is_some());
            if tagged {
                out.push_str(&format!("To: {t}\r\n"));
            } else {
                out.push_str(&format!("To: {t};tag={}\r\n", stateless_tag(ctx)));
            }
        }
        if let Some(c) = call_id {
            out.push_str(&format!("Call-ID: {c}\r\n"));
        }
        if let Some(c) = cseq {
            out.push_str(&format!("CSeq: {c}\r\n"));
        }
        let warning: String = self
            .detail
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        out.push_str(&format!("Warning: 399 hotline \"{warning}\"\r\n"));
        out.push_str("Content-Length: 0\r\n\r\n");
        Some(out.into_bytes())
    }
}

/// A To tag for a stateless answer: the same request always gets the same tag.
fn stateless_tag(ctx: &ReplyContext) -> String {
    // FNV-1a over the fields that identify the request.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [&ctx.call_id, &ctx.from, &ctx.cseq].into_iter().flatten() {
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("sl{h:016x}")
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{s}: {}", self.detail),
            None => write!(f, "dropped: {}", self.detail),
        }
    }
}

impl std::error::Error for ParseError {}
