//! Stream framing (RFC 3261 18.3): cuts messages out of a TCP/TLS byte stream by their
//! Content-Length, and recognises the RFC 5626 keep-alive (a CRLF CRLF ping).

use super::scan::is_wsp;

/// What the framer found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// One whole message, ready for [`super::Message::parse`] with `Delivery::Stream`.
    Message(Vec<u8>),
    /// A CRLF CRLF keep-alive ping; answer it with a single CRLF (pong).
    KeepAlive,
}

/// Why the stream cannot be read any further; the connection should be closed (after a 4xx
/// where the transport can still send one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError {
    /// 400 or 513.
    pub status: u16,
    /// What is wrong.
    pub detail: &'static str,
    /// The answer to send before closing, when the head could be read: a 513 for a message
    /// whose Content-Length is over the limit (RFC 3261 21.5.14).
    pub reply: Option<Vec<u8>>,
}

/// Accumulates stream bytes and yields whole messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message: usize,
    failed: bool,
}

impl StreamFramer {
    /// A framer refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            buf: Vec::new(),
            max_message,
            failed: false,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held that do not yet form a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next event, `Ok(None)` when more bytes are needed. After an error every call
    /// returns the same error.
    pub fn next_event(&mut self) -> Result<Option<FrameEvent>, FramingError> {
        if self.failed {
            return Err(FramingError {
                status: 400,
                detail: "stream already failed",
                reply: None,
            });
        }
        match self.cut() {
            Err(e) => {
                self.failed = true;
                self.buf.clear();
                Err(e)
            }
            ok => ok,
        }
    }

    fn cut(&mut self) -> Result<Option<FrameEvent>, FramingError> {
        // Keep-alives and stray line ends between messages.
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.drain(..4);
                return Ok(Some(FrameEvent::KeepAlive));
            }
            if self.buf.starts_with(b"\r\n") && self.buf.len() >= 4 {
                self.buf.drain(..2);
                continue;
            }
            if self.buf.first() == Some(&b'\n') {
                self.buf.drain(..1);
                continue;
            }
            break;
        }
        if self.buf.is_empty() || self.buf == b"\r" || self.buf == b"\r\n" || self.buf == b"\r\n\r"
        {
            return Ok(None);
        }
        let Some(head_len) = find_head_end(&self.buf) else {
            if self.buf.len() > self.max_message {
                return Err(FramingError {
                    status: 513,
                    detail: "header section larger than the maximum message size",
                    reply: None,
                });
            }
            return Ok(None);
        };
        let body_len = content_length(&self.buf[..head_len])?;
        let total = head_len.checked_add(body_len).ok_or(FramingError {
            status: 400,
            detail: "Content-Length overflows",
            reply: None,
        })?;
        if total > self.max_message {
            return Err(FramingError {
                status: 513,
                detail: "message larger than the maximum message size",
                reply: too_large_reply(&self.buf[..head_len]),
            });
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        Ok(Some(FrameEvent::Message(msg)))
    }
}

/// A 513 for a request whose head is readable but whose body is over the limit: the head is
/// parsed alone (its Content-Length then promises more than is there, which the parser refuses
/// with the request's headers kept for the answer).
fn too_large_reply(head: &[u8]) -> Option<Vec<u8>> {
    match super::Message::parse(head, super::Delivery::Stream) {
        Err(mut e) if e.context.is_some() => {
            e.status = Some(513);
            e.detail = "message larger than the maximum message size".into();
            e.reply()
        }
        _ => None,
    }
}

/// Length of the head including the empty line (CRLF CRLF, or bare LF LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The Content-Length of a head (0 when absent; an error when repeated or not a number).
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let mut name = &line[..colon];
        while name.last().is_some_and(|b| is_wsp(*b)) {
            name = &name[..name.len() - 1];
        }
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = &line[colon + 1..];
        let value: Vec<u8> = value.iter().copied().filter(|b| !is_wsp(*b)).collect();
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramingError {
                status: 400,
                detail: "Content-Length is not a number",
                reply: None,
            });
        }
        let n = value
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        if found.is_some() {
            return Err(FramingError {
                status: 400,
                detail: "more than one Content-Length",
                reply: None,
            });
        }
        found = Some(n);
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn messages_are_cut_by_content_length_across_reads() {
        let mut f = StreamFramer::new(4096);
        let mut stream = OPTIONS.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        for chunk in stream.chunks(7) {
            f.push(chunk);
        }
        assert_eq!(
            f.next_event(),
            Ok(Some(FrameEvent::Message(OPTIONS.to_vec())))
        );
        assert_eq!(f.next_event(), Ok(Some(FrameEvent::KeepAlive)));
        assert_eq!(
            f.next_event(),
            Ok(Some(FrameEvent::Message(OPTIONS.to_vec())))
        );
        assert_eq!(f.next_event(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn a_partial_message_waits() {
        let mut f = StreamFramer::new(4096);
        f.push(&OPTIONS[..OPTIONS.len() - 1]);
        assert_eq!(f.next_event(), Ok(None));
        f.push(&OPTIONS[OPTIONS.len() - 1..]);
        assert!(matches!(f.next_event(), Ok(Some(FrameEvent::Message(_)))));
    }

    #[test]
    fn oversize_and_bad_lengths_fail_the_stream() {
        let mut f = StreamFramer::new(64);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(f.next_event().map_err(|e| e.status), Err(513));
        // With the headers an answer needs, the 513 is ready to send.
        let mut f = StreamFramer::new(400);
        f.push(
            b"INVITE sip:12345@h SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKbig\r\n\
              From: <sip:a@h>;tag=1\r\nTo: <sip:12345@h>\r\nCall-ID: big\r\nCSeq: 1 INVITE\r\n\
              Max-Forwards: 70\r\nContent-Length: 100000\r\n\r\n",
        );
        let e = f.next_event().unwrap_err();
        let reply = String::from_utf8(e.reply.expect("a 513 to send")).unwrap();
        assert!(
            reply.starts_with("SIP/2.0 513 Message Too Large\r\n"),
            "{reply}"
        );
        assert!(reply.contains("Call-ID: big"));
        let mut f = StreamFramer::new(64);
        f.push(&[b'x'; 100]);
        assert_eq!(f.next_event().map_err(|e| e.status), Err(513));
        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(f.next_event().map_err(|e| e.status), Err(400));
        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert_eq!(f.next_event().map_err(|e| e.status), Err(400));
        assert!(f.next_event().is_err(), "a failed stream stays failed");
    }
}
