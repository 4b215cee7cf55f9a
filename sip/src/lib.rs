//! Hotline's SIP/RTP engine.
//!
//! This crate knows nothing of queues, tickets or HTTP. It is built sans-IO (see
//! `../shared/DESIGN.md`): bytes and the current time go in; datagrams to send, events and the
//! next deadline come out. The application owns the sockets and the clock.
//!
//! The parser, transactions, dialogs and media arrive with their own issues; until then the crate
//! carries the shared vocabulary the application already needs.
#![warn(missing_docs)]

/// The SIP transports the engine can listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// RFC 3261 over UDP.
    Udp,
    /// RFC 3261 over TCP (stream framing by Content-Length).
    Tcp,
    /// RFC 7118 SIP over WebSocket.
    Ws,
}

impl Transport {
    /// The token used in a Via header (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Ws => "WS",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_tokens_are_the_rfc_spelling() {
        assert_eq!(Transport::Udp.via_token(), "UDP");
        assert_eq!(Transport::Tcp.via_token(), "TCP");
        assert_eq!(Transport::Ws.via_token(), "WS");
    }
}
