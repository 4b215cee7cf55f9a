//! The state of one call inside a media worker: its sockets, RTP/RTCP sessions, IVR,
//! recording tap, and the legs bridged to it (a transfer target or an agent, a supervisor).

use super::*;

/// One call inside a worker.
pub(super) struct CallState {
    pub(super) socket: UdpSocket,
    pub(super) rtcp_socket: UdpSocket,
    pub(super) rtcp: RtcpSession,
    /// Where the peer's RTCP comes from (replies go there), once it has sent any.
    pub(super) rtcp_peer: Option<SocketAddr>,
    /// The origin of the arrival clock RTCP's jitter is computed on.
    pub(super) epoch: Instant,
    pub(super) port: u16,
    pub(super) call: IvrCall,
    pub(super) negotiated: Option<Negotiated>,
    pub(super) dialog: DialogId,
    pub(super) record: CallRecord,
    pub(super) facts: Facts,
    pub(super) latch: Option<Latch>,
    /// The address the SDP gave (the latch may have moved to the real source).
    pub(super) sdp_remote: Option<SocketAddr>,
    pub(super) sending: bool,
    pub(super) receiving: bool,
    pub(super) last_heard: Instant,
    /// The deadline in the heap.
    pub(super) scheduled: Option<Instant>,
    /// The caller's audio, in order, for the recording's left channel.
    pub(super) jitter: Option<JitterBuffer>,
    /// The transfer target's leg, from the moment it is called.
    pub(super) leg_b: Option<LegB>,
    /// The recording records silence (paused for personal data).
    pub(super) recording_paused: bool,
    /// The agent the caller talked to has hung up (the caller may be in the survey).
    pub(super) agent_gone: bool,
    /// A supervisor on the bridged call (listening, whispering or barging).
    pub(super) monitor: Option<Monitor>,
}

/// A supervisor's leg on a bridged call: its audio goes into the mix at the bridge's 20 ms
/// tick; the mix of caller and agent comes back on our own stream.
pub(super) struct Monitor {
    pub(super) dialog: DialogId,
    pub(super) socket: UdpSocket,
    /// Held so the pair stays ours.
    pub(super) _rtcp_socket: std::net::UdpSocket,
    pub(super) port: u16,
    pub(super) negotiated: Negotiated,
    pub(super) latch: Latch,
    pub(super) mode: MonitorMode,
    pub(super) jitter: JitterBuffer,
    /// Our stream to the supervisor (frames injected, nothing relayed).
    pub(super) out: Relay,
}

/// The leg to a transfer target, bridged to the caller once it answers.
pub(super) struct LegB {
    pub(super) socket: UdpSocket,
    /// Held so the pair stays ours (RTCP of this leg is not read yet).
    pub(super) _rtcp_socket: std::net::UdpSocket,
    pub(super) port: u16,
    /// The stream to the caller from the transfer on: ringback while the target rings, then
    /// the target's audio; it continues the IVR's numbering. An agent leg has none while the
    /// agents ring (the caller hears the queue's music from the IVR).
    pub(super) to_a: Option<Relay>,
    /// Ringback to the caller while the target rings: the player and its next 20 ms tick.
    pub(super) ringback: Player,
    pub(super) ring_tick: Instant,
    /// Set when the target answers.
    pub(super) bridge: Option<Bridge>,
}

pub(super) struct Bridge {
    pub(super) dialog: DialogId,
    /// The agent on the other side, when the ACD offered the call.
    pub(super) agent: Option<u64>,
    pub(super) negotiated: Negotiated,
    /// The address the target's SDP gave (the latch may have moved to the real source).
    pub(super) sdp_remote: SocketAddr,
    /// Whether we send to the target (not while it holds).
    pub(super) sending: bool,
    /// The agent holds the caller (through the API, not SDP): nothing passes either way and
    /// the caller hears music.
    pub(super) held: bool,
    /// Music for the caller while the target holds, and for the target while the caller does.
    pub(super) moh_to_a: Player,
    pub(super) moh_to_b: Player,
    pub(super) latch: Latch,
    pub(super) to_b: Relay,
    pub(super) to_a: Relay,
    /// The target's audio for the recording's right channel.
    pub(super) jitter: JitterBuffer,
    /// The recording's next 20 ms tick.
    pub(super) tick: Instant,
}

impl CallState {
    /// Where our RTCP goes: where the peer's comes from, else the RTP target's port + 1
    /// (or the RTP target itself with rtcp-mux).
    pub(super) fn rtcp_target(&self) -> Option<SocketAddr> {
        if let Some(p) = self.rtcp_peer {
            return Some(p);
        }
        let rtp = self.latch?.target();
        if self.negotiated.is_some_and(|n| n.rtcp_mux) {
            Some(rtp)
        } else {
            Some(SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?))
        }
    }

    /// Takes a new offer/answer result: where to send, which ways media flows, the codec.
    pub(super) fn update(&mut self, n: Negotiated) {
        // A new address in the SDP starts the latch over (the caller moved); the same one
        // keeps the source already latched (a caller behind NAT holding and unholding).
        if self.sdp_remote != Some(n.remote) && !n.remote.ip().is_unspecified() {
            self.latch = Some(Latch::new(n.remote));
            self.sdp_remote = Some(n.remote);
        }
        self.sending = sends(n.direction) && !n.remote.ip().is_unspecified();
        self.receiving = receives(n.direction);
        self.call.set_codec(n.codec, n.dtmf);
        self.negotiated = Some(n);
    }

    /// Whether a packet is the caller's RTP (the agreed codec or telephone-event, from the
    /// caller's source by the latch's rules): the agreement when it is, `Err(())` for a packet
    /// of the agreed kind from a source that is not the caller's (counted as dropped).
    pub(super) fn accept(
        &mut self,
        now: Instant,
        p: &RtpPacket<'_>,
        from: SocketAddr,
    ) -> Result<Option<Negotiated>, ()> {
        let Some(n) = self.negotiated else {
            return Ok(None);
        };
        if p.payload_type != n.codec.payload_type() && Some(p.payload_type) != n.dtmf {
            return Ok(None);
        }
        let taken = self
            .latch
            .as_mut()
            .is_none_or(|l| l.on_packet(now, from, p.ssrc, p.sequence).taken());
        if taken { Ok(Some(n)) } else { Err(()) }
    }

    /// Whether RTCP from `from` is the caller's (from the latched host or the SDP's).
    pub(super) fn rtcp_from(&self, from: SocketAddr) -> bool {
        self.latch.is_some_and(|l| l.rtcp_from(from))
    }
}
