//! Browser agents' media: the WebRTC gateway.
//!
//! Every browser leg goes through one UDP port shared by all agents (`rtp.webrtc_port`),
//! where str0m (sans-IO) speaks ICE-lite, DTLS-SRTP, rtcp-mux and BUNDLE, offering only PCMU
//! and PCMA (the caller's codec first, so G.711 passes through untranscoded) and
//! telephone-event. Towards the media engine each leg is a plain RTP leg on loopback: the
//! engine bridges and records it exactly like a SIP phone's leg, and knows nothing of
//! WebRTC.
//!
//! A reader task takes every datagram on the shared port and hands it to its leg: by source
//! address once known, else by the ICE username of a STUN request (our ufrag, unique per
//! leg). Each leg is its own task owning its `Rtc`, its loopback socket and its timers, so
//! many agents' DTLS handshakes at shift start run side by side on the runtime's threads
//! rather than one after another.
//!
//! A leg ends when its offer is not answered within [`UNANSWERED`], when the call handler
//! closes it, when ICE or DTLS fail, or when the media engine has sent nothing for [`IDLE`]
//! (the bridge is over).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotline_sip::rtp::RtpPacket;
use hotline_sip::sdp::Codec;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An offer not answered within this long is given up (the ring has long timed out).
pub const UNANSWERED: Duration = Duration::from_secs(120);
/// A connected leg the media engine has sent nothing to for this long is over.
pub const IDLE: Duration = Duration::from_secs(10);

/// The telephone-event payload type we offer.
const DTMF_PT: u8 = 101;

struct Datagram {
    from: SocketAddr,
    at: Instant,
    bytes: Vec<u8>,
}

/// A new leg's ICE ufrag and where its datagrams go, for the reader.
type Registration = (String, mpsc::Sender<Datagram>);

/// The shared port and the legs on it.
pub struct Gateway {
    socket: Arc<UdpSocket>,
    /// The address in our ICE candidate (and the destination of what browsers send).
    announce: SocketAddr,
    /// New legs, to the reader (which alone owns the routes: no lock per datagram).
    register: mpsc::UnboundedSender<Registration>,
    /// Where legs' loopback sockets bind.
    loopback: std::net::IpAddr,
    /// The DTLS certificate every leg presents (its fingerprint goes in each offer). One for
    /// the process, as media servers do: the keys of each call still come from that call's
    /// own handshake (ECDHE).
    cert: Option<str0m::config::DtlsCert>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("announce", &self.announce)
            .finish()
    }
}

/// What the call handler tells a leg.
#[derive(Debug)]
enum Control {
    Answer(String),
    Close,
}

/// The call handler's handle on one browser leg.
#[derive(Debug)]
pub struct WebrtcLeg {
    /// The leg's plain RTP address on loopback (what the media engine sends to).
    pub plain: SocketAddr,
    control: mpsc::UnboundedSender<Control>,
}

impl WebrtcLeg {
    /// The browser's SDP answer arrived (in the 200 to our INVITE).
    pub fn answer(&self, sdp: &str) {
        let _ = self.control.send(Control::Answer(sdp.to_string()));
    }

    /// The leg is not needed (the ring was cancelled, the call ended); dropping the handle
    /// does the same.
    pub fn close(&self) {
        let _ = self.control.send(Control::Close);
    }
}

impl Drop for WebrtcLeg {
    fn drop(&mut self) {
        self.close();
    }
}

impl Gateway {
    /// Binds the shared port at `listen` and starts its reader; `announce` is the IP written
    /// in the ICE candidate (the port is the bound one).
    pub async fn start(
        listen: SocketAddr,
        announce: std::net::IpAddr,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Gateway>> {
        // Large socket buffers, as for SIP: a shift's handshakes arrive in one burst.
        let socket = super::bind_udp(listen)
            .with_context(|| format!("cannot bind the WebRTC port {listen}"))?;
        let bound = socket.local_addr()?;
        let socket = Arc::new(socket);
        let (register, registrations) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(Arc::clone(&socket), registrations, shutdown));
        let loopback = if listen.ip().is_loopback() {
            listen.ip()
        } else {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        };
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate();
        if cert.is_none() {
            tracing::warn!("no shared DTLS certificate: each browser leg makes its own");
        }
        Ok(Arc::new(Gateway {
            socket,
            announce: SocketAddr::new(announce, bound.port()),
            register,
            loopback,
            cert,
        }))
    }

    /// The shared port's address as announced.
    pub fn addr(&self) -> SocketAddr {
        self.announce
    }

    /// A new browser leg and its SDP offer. `first` is the caller's codec (offered first);
    /// `engine` is where the media engine's leg socket receives. Must run on the runtime.
    pub fn offer(&self, first: Codec, engine: SocketAddr) -> anyhow::Result<(WebrtcLeg, String)> {
        // Hex is within ICE's character set; 8 and 24 characters (RFC 8839: at least 4 and
        // 22). No randomness, no leg: guessable credentials would let anyone in.
        let random = |bytes| crate::random::hex_secret(bytes).context("no randomness for ICE");
        let creds = IceCreds {
            ufrag: random(4)?,
            pass: random(12)?,
        };
        let mut cfg = Rtc::builder();
        if let Some(cert) = &self.cert {
            cfg = cfg.set_dtls_cert(cert.clone());
        }
        let cfg = cfg
            .set_ice_lite(true)
            .set_local_ice_credentials(creds.clone())
            .clear_codecs();
        let mut cfg = match first {
            Codec::Pcmu => cfg.enable_pcmu(true, false).enable_pcma(true, false),
            Codec::Pcma => cfg.enable_pcma(true, false).enable_pcmu(true, false),
        };
        cfg.codec_config().add_config(
            DTMF_PT.into(),
            None,
            RtcCodec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            Default::default(),
        );
        let mut rtc = cfg.build(Instant::now());
        let candidate = Candidate::host(self.announce, "udp").context("our ICE candidate")?;
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().context("no SDP offer")?;
        let plain = std::net::UdpSocket::bind(SocketAddr::new(self.loopback, 0))?;
        plain.set_nonblocking(true)?;
        let plain = UdpSocket::from_std(plain)?;
        let plain_addr = plain.local_addr()?;
        let (net_tx, net_rx) = mpsc::channel(256);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        // Sent before the offer leaves, so the reader knows the ufrag before any check.
        let _ = self.register.send((creds.ufrag, net_tx));
        let leg = Leg {
            rtc,
            mid,
            pending: Some(pending),
            socket: Arc::clone(&self.socket),
            announce: self.announce,
            plain,
            engine,
        };
        tokio::spawn(leg.run(net_rx, control_rx));
        Ok((
            WebrtcLeg {
                plain: plain_addr,
                control: control_tx,
            },
            offer.to_sdp_string(),
        ))
    }
}

/// Reads the shared port and routes each datagram to its leg. Routes to legs that ended
/// (their receiver gone) are forgotten when a datagram finds them closed, and all of them
/// whenever a new leg registers.
async fn read_loop(
    socket: Arc<UdpSocket>,
    mut registrations: mpsc::UnboundedReceiver<Registration>,
    shutdown: CancellationToken,
) {
    let mut by_ufrag: HashMap<String, mpsc::Sender<Datagram>> = HashMap::new();
    let mut by_addr: HashMap<SocketAddr, mpsc::Sender<Datagram>> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "WebRTC port receive error");
                    continue;
                }
            },
        };
        while let Ok((ufrag, tx)) = registrations.try_recv() {
            by_ufrag.retain(|_, t| !t.is_closed());
            by_addr.retain(|_, t| !t.is_closed());
            by_ufrag.insert(ufrag, tx);
        }
        let bytes = &buf[..n];
        let tx = match by_addr.entry(from) {
            std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => stun_username(bytes)
                .and_then(|u| u.split(':').next())
                .and_then(|ufrag| by_ufrag.get(ufrag))
                .map(|tx| e.insert(tx.clone())),
        };
        let Some(tx) = tx else {
            metrics::counter!("hotline_webrtc_dropped_total", "reason" => "unknown_source")
                .increment(1);
            continue;
        };
        let d = Datagram {
            from,
            at: Instant::now(),
            bytes: bytes.to_vec(),
        };
        match tx.try_send(d) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("hotline_webrtc_dropped_total", "reason" => "leg_busy")
                    .increment(1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                by_addr.remove(&from);
            }
        }
    }
}

/// The USERNAME attribute of a STUN message (RFC 5389 15.3), if `b` is one that has it.
fn stun_username(b: &[u8]) -> Option<&str> {
    if b.len() < 20 || b[0] & 0xC0 != 0 || b[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let end = (20 + len).min(b.len());
    let mut i = 20;
    while i + 4 <= end {
        let kind = u16::from_be_bytes([b[i], b[i + 1]]);
        let l = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let value = b.get(i + 4..i + 4 + l)?;
        if kind == 0x0006 {
            return std::str::from_utf8(value).ok();
        }
        i += 4 + l.div_ceil(4) * 4;
    }
    None
}

struct Leg {
    rtc: Rtc,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    socket: Arc<UdpSocket>,
    announce: SocketAddr,
    plain: UdpSocket,
    /// Where the media engine's leg receives (latched to where its packets come from).
    engine: SocketAddr,
}

/// Plain RTP towards the media engine.
struct PlainOut {
    ssrc: u32,
    seq: u16,
    /// The packet being built (reused: nothing is allocated per packet on this side).
    packet: Vec<u8>,
}

impl Leg {
    async fn run(
        mut self,
        mut net: mpsc::Receiver<Datagram>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let started = Instant::now();
        let mut last_engine = Instant::now();
        let mut connected = false;
        let mut out = PlainOut {
            ssrc: crate::random::u64() as u32,
            seq: (crate::random::u64() >> 32) as u16,
            packet: Vec::with_capacity(1500),
        };
        let mut buf = vec![0u8; 2048];
        // Packets each way, for the log.
        let (mut from_browser, mut to_browser) = (0u64, 0u64);
        // A browser starts ICE as it sends its 200: its first checks can come before the SIP
        // answer reaches us. They wait here and go in once the answer is taken, instead of
        // being lost and retransmitted half a second later.
        let mut early: Vec<Datagram> = Vec::new();
        let end: &str = loop {
            // Drain every output of the last mutation (str0m's contract).
            let deadline = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break Some(t),
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(e)) => match e {
                        Event::Connected => {
                            connected = true;
                            last_engine = Instant::now();
                            metrics::counter!("hotline_webrtc_connected_total").increment(1);
                            tracing::info!(
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "browser leg connected (ICE and DTLS)"
                            );
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            break None;
                        }
                        Event::MediaData(d) => {
                            let pt: u8 = *d.pt;
                            let ts = d.time.numer() as u32;
                            let packet = &mut out.packet;
                            packet.clear();
                            packet.extend_from_slice(&[0x80, pt & 0x7F]);
                            packet.extend_from_slice(&out.seq.to_be_bytes());
                            packet.extend_from_slice(&ts.to_be_bytes());
                            packet.extend_from_slice(&out.ssrc.to_be_bytes());
                            packet.extend_from_slice(&d.data);
                            out.seq = out.seq.wrapping_add(1);
                            from_browser += 1;
                            let _ = self.plain.send_to(&out.packet, self.engine).await;
                        }
                        _ => {}
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "browser leg failed");
                        break None;
                    }
                }
            };
            let Some(deadline) = deadline else {
                break "ICE disconnected or failed";
            };
            if !self.rtc.is_alive() {
                break "closed";
            }
            let now = Instant::now();
            if !connected && now.duration_since(started) > UNANSWERED {
                break "never connected";
            }
            if connected && now.duration_since(last_engine) > IDLE {
                break "the bridge is over";
            }
            let wake = deadline.min(now + Duration::from_secs(1));
            tokio::select! {
                c = control.recv() => match c {
                    Some(Control::Answer(sdp)) => {
                        let Some(pending) = self.pending.take() else { continue };
                        let accepted = SdpAnswer::from_sdp_string(&sdp)
                            .map_err(|e| e.to_string())
                            .and_then(|a| self.rtc.sdp_api().accept_answer(pending, a).map_err(|e| e.to_string()));
                        if let Err(e) = accepted {
                            tracing::warn!(error = %e, "the browser's SDP answer was refused");
                            break "bad SDP answer";
                        }
                        for d in early.drain(..) {
                            self.input(d);
                            // Drain between inputs (str0m's contract).
                            while let Ok(o) = self.rtc.poll_output() {
                                match o {
                                    Output::Timeout(_) => break,
                                    Output::Transmit(t) => {
                                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                                    }
                                    Output::Event(_) => {}
                                }
                            }
                        }
                    }
                    Some(Control::Close) | None => {
                        self.rtc.disconnect();
                        break "closed by the call handler";
                    }
                },
                d = net.recv() => {
                    let Some(d) = d else { break "gateway stopped" };
                    if self.pending.is_some() {
                        if early.len() < 64 {
                            early.push(d);
                        }
                        continue;
                    }
                    self.input(d);
                }
                r = self.plain.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    self.engine = from;
                    last_engine = Instant::now();
                    if connected {
                        self.send_to_browser(&buf[..n]);
                        to_browser += 1;
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        tracing::debug!(error = %e, "browser leg timeout handling failed");
                    }
                }
            }
        };
        tracing::info!(reason = end, from_browser, to_browser, engine = %self.engine, "browser leg ended");
        // `net` drops here: the reader finds the leg's routes closed and forgets them.
    }

    /// A datagram from the browser into the `Rtc`.
    fn input(&mut self, d: Datagram) {
        match Receive::new(Protocol::Udp, d.from, self.announce, &d.bytes) {
            Ok(r) => {
                if let Err(e) = self.rtc.handle_input(Input::Receive(d.at, r)) {
                    tracing::debug!(error = %e, "browser leg input refused");
                }
            }
            Err(e) => tracing::debug!(error = %e, "unparsable datagram on the WebRTC port"),
        }
    }

    /// One RTP packet from the media engine, written to the browser (audio only; the
    /// engine's RFC 4733 events go as telephone-events).
    fn send_to_browser(&mut self, bytes: &[u8]) {
        let Ok(p) = RtpPacket::parse(bytes) else {
            return;
        };
        let Some(writer) = self.rtc.writer(self.mid) else {
            return;
        };
        let pt = writer
            .payload_params()
            .find(|params| {
                let c = params.spec().codec;
                (p.payload_type == 0 && c == RtcCodec::PCMU)
                    || (p.payload_type == 8 && c == RtcCodec::PCMA)
            })
            .map(|params| params.pt());
        let Some(pt) = pt else {
            return; // DTMF events and anything not negotiated
        };
        let time = MediaTime::new(u64::from(p.timestamp), Frequency::EIGHT_KHZ);
        if let Err(e) = writer.write(pt, Instant::now(), time, p.payload.to_vec()) {
            tracing::debug!(error = %e, "cannot write to the browser leg");
        }
    }
}

/// The codec and telephone-event payload type a browser's SDP answer chose (the first format
/// of its audio line), for the media engine's side of the leg.
pub fn answered_codec(sdp: &str) -> Option<(Codec, Option<u8>)> {
    let mut codec = None;
    let mut dtmf = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=audio ") {
            codec = m.split_whitespace().nth(2).and_then(|pt| match pt {
                "0" => Some(Codec::Pcmu),
                "8" => Some(Codec::Pcma),
                _ => None,
            });
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, name)) = rest.split_once(' ')
            && name
                .to_ascii_lowercase()
                .starts_with("telephone-event/8000")
        {
            dtmf = pt.parse().ok();
        }
    }
    codec.map(|c| (c, dtmf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stun_username_names_the_leg() {
        // A binding request with USERNAME "abcd1234:xyz" (12 bytes, no padding needed).
        let mut m = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[7u8; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x0C]);
        m.extend_from_slice(b"abcd1234:xyz");
        assert_eq!(stun_username(&m), Some("abcd1234:xyz"));
        // Not STUN (an RTP packet), a truncated attribute.
        assert_eq!(stun_username(&[0x80; 40]), None);
        let mut cut = m.clone();
        cut.truncate(30);
        assert_eq!(stun_username(&cut), None);
    }

    fn attr<'a>(sdp: &'a str, prefix: &str) -> Option<&'a str> {
        sdp.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    }

    #[tokio::test]
    async fn offers_are_ice_lite_g711_only_with_the_callers_law_first() {
        let gw = Gateway::start(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let engine: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (leg_a, a) = gw.offer(Codec::Pcma, engine).unwrap();
        let (leg_b, b) = gw.offer(Codec::Pcmu, engine).unwrap();
        let formats = |sdp: &str| -> Vec<String> {
            attr(sdp, "m=audio ")
                .unwrap()
                .split_whitespace()
                .skip(2)
                .map(String::from)
                .collect()
        };
        assert_eq!(formats(&a), ["8", "0", "101"], "{a}");
        assert_eq!(formats(&b), ["0", "8", "101"], "{b}");
        for sdp in [&a, &b] {
            assert!(sdp.contains("a=ice-lite"), "{sdp}");
            assert!(sdp.contains("a=rtcp-mux"), "{sdp}");
            assert!(sdp.contains("a=group:BUNDLE"), "{sdp}");
            assert_eq!(attr(sdp, "a=setup:"), Some("actpass"));
            assert!(sdp.contains("telephone-event/8000"), "{sdp}");
            assert!(!sdp.to_ascii_lowercase().contains("opus"), "{sdp}");
            let candidate = attr(sdp, "a=candidate:").unwrap();
            assert!(
                candidate.contains(&gw.addr().port().to_string()),
                "{candidate}"
            );
        }
        // One certificate for every leg, a username of its own for each.
        assert_eq!(attr(&a, "a=fingerprint:"), attr(&b, "a=fingerprint:"));
        assert_ne!(attr(&a, "a=ice-ufrag:"), attr(&b, "a=ice-ufrag:"));
        assert_ne!(leg_a.plain, leg_b.plain);
        leg_a.close();
        leg_b.close();
    }

    #[test]
    fn the_answer_names_the_codec() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(answered_codec(sdp), Some((Codec::Pcma, Some(101))));
        assert_eq!(
            answered_codec("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
            None
        );
    }
}
