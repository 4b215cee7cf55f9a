//! RTP/RTCP port pairs for a call's legs: taken from the range's allocator and bound, given
//! back when the leg ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use hotline_sip::rtp::ports::PortAllocator;

/// An RTP/RTCP port pair from the range with both sockets bound (non-blocking) on `ip`:
/// `None` when the range is used up, or when every port tried is taken by another program.
pub(crate) fn bind_pair(
    ports: &Mutex<PortAllocator>,
    ip: IpAddr,
) -> Option<(u16, std::net::UdpSocket, std::net::UdpSocket)> {
    let bind = |port: u16| {
        std::net::UdpSocket::bind(SocketAddr::new(ip, port))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
    };
    let mut ports = ports.lock().ok()?;
    for _ in 0..8 {
        let port = ports.allocate().ok()?;
        // RTP on the even port, RTCP on the odd one above (RFC 3550 11).
        match (bind(port), bind(port + 1)) {
            (Ok(rtp), Ok(rtcp)) => return Some((port, rtp, rtcp)),
            _ => {
                tracing::debug!(
                    port,
                    "RTP/RTCP port taken by another program; trying the next"
                );
                // Given back: the allocator goes round robin, so the next try is another
                // port, and this one is tried again only after the whole range.
                ports.release(port);
            }
        }
    }
    None
}
