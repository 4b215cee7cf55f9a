//! Reading a call's sockets: the caller's RTP and RTCP (to the IVR, the recording and the
//! bridge), the bridged party's RTP (to the caller), the supervisor's (to the mix).

use super::*;

impl Worker {
    /// Reads what the caller sent.
    /// The socket is the edge of the worker: the clock is read here, once per datagram, and
    /// passed on.
    pub(super) fn readable(&mut self, key: u64) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let mut now = Instant::now();
        for _ in 0..READ_BURST {
            match c.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    now = Instant::now();
                    let datagram = &self.buf[..n];
                    if is_rtcp(datagram) {
                        // RTCP on the RTP port (rtcp-mux, RFC 5761).
                        if !c.rtcp_from(from) {
                            self.dropped.rtcp();
                            continue;
                        }
                        c.rtcp_peer = Some(from);
                        c.rtcp.on_rtcp(datagram, now, ntp_now());
                        continue;
                    }
                    // Parsed once; everything below reads the same packet.
                    let Ok(p) = RtpPacket::parse(datagram) else {
                        continue;
                    };
                    let neg = match c.accept(now, &p, from) {
                        Ok(Some(neg)) => neg,
                        Ok(None) => continue,
                        Err(()) => {
                            self.dropped.rtp();
                            continue;
                        }
                    };
                    // Every packet of the stream counts for loss (telephone-events share its
                    // sequence numbers), but only audio for jitter.
                    let arrival = (now.duration_since(c.epoch).as_micros() * 8 / 1000) as u32;
                    let audio = p.payload_type == neg.codec.payload_type();
                    c.rtcp
                        .on_received(p.ssrc, p.sequence, p.timestamp, arrival, audio);
                    c.record.packets_received += 1;
                    c.last_heard = now;
                    if let (Some(jb), true) = (&mut c.jitter, audio) {
                        push_frames(jb, &p);
                    }
                    if let Some(LegB {
                        socket,
                        bridge: Some(b),
                        ..
                    }) = &mut c.leg_b
                    {
                        // Bridged: the caller's packets go on to the target (unless one of them
                        // holds: the target then hears music, or nothing).
                        let mixed = c.monitor.as_ref().is_some_and(|m| m.mode.mixes_to_agent());
                        if c.sending
                            && b.sending
                            && !mixed
                            && let Some(out) = b.to_b.relay(&p)
                        {
                            let _ = socket.send_to(out, b.latch.target());
                        }
                        continue;
                    }
                    let facts = c.facts.get(now, &self.shared.calendar);
                    c.call.handle_packet(now, &p, facts);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP port unreachable from an earlier send, and the like.
                    tracing::trace!(error = %e, "RTP receive error");
                    break;
                }
            }
        }
        self.after(key, now);
    }

    /// Reads the peer's RTCP.
    pub(super) fn rtcp_readable(&mut self, key: u64) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        for _ in 0..READ_BURST {
            match c.rtcp_socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    if !c.rtcp_from(from) {
                        self.dropped.rtcp();
                        continue;
                    }
                    c.rtcp_peer = Some(from);
                    c.rtcp.on_rtcp(&self.buf[..n], Instant::now(), ntp_now());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Reads what the transfer target sends and passes it on to the caller.
    pub(super) fn leg_b_readable(&mut self, key: u64) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(LegB {
            socket,
            bridge: Some(b),
            ..
        }) = &mut c.leg_b
        else {
            return;
        };
        // Barging, the caller hears the mix made at the tick, not the agent's stream.
        let mixed = c.monitor.as_ref().is_some_and(|m| m.mode.mixes_to_caller());
        for _ in 0..READ_BURST {
            match socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let Ok(p) = RtpPacket::parse(&self.buf[..n]) else {
                        continue;
                    };
                    if p.payload_type != b.negotiated.codec.payload_type()
                        && Some(p.payload_type) != b.negotiated.dtmf
                    {
                        continue;
                    }
                    let seen = Instant::now();
                    if !b.latch.on_packet(seen, from, p.ssrc, p.sequence).taken() {
                        self.dropped.rtp();
                        continue;
                    }
                    if b.held {
                        continue; // the caller hears music, not the agent
                    }
                    if p.payload_type == b.negotiated.codec.payload_type() {
                        push_frames(&mut b.jitter, &p);
                    }
                    if mixed {
                        continue;
                    }
                    if let (true, Some(latch), Some(out)) = (c.sending, c.latch, b.to_a.relay(&p)) {
                        let sent = &mut c.record.packets_sent;
                        send_to_caller(&c.socket, latch.target(), out, sent, &mut c.rtcp);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Reads what the supervisor says, for the mix.
    pub(super) fn monitor_readable(&mut self, key: u64) {
        let Some(m) = self.calls.get_mut(&key).and_then(|c| c.monitor.as_mut()) else {
            return;
        };
        for _ in 0..READ_BURST {
            match m.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let Ok(p) = RtpPacket::parse(&self.buf[..n]) else {
                        continue;
                    };
                    if p.payload_type != m.negotiated.codec.payload_type() {
                        continue;
                    }
                    if !m
                        .latch
                        .on_packet(Instant::now(), from, p.ssrc, p.sequence)
                        .taken()
                    {
                        self.dropped.rtp();
                        continue;
                    }
                    push_frames(&mut m.jitter, &p);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }
}
