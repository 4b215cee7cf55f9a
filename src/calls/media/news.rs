//! What a worker does with the call handler's news for a call (ACK, keys, hold, bridge,
//! agent leg, transfer, hang-up, supervisor), and the legs it sets up or takes down for it.

use super::*;

impl Worker {
    /// The handler's news for call `key`, at `now`.
    pub(super) fn news(&mut self, key: u64, news: ToMedia, now: Instant) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        match news {
            ToMedia::Confirmed(answer) => {
                if let Some(n) = answer {
                    c.update(n);
                }
                c.record.answered_at = Some(Utc::now());
                c.last_heard = now;
                c.rtcp.start(now);
                if let Some(rec) = &self.shared.recordings
                    && !rec.accepting()
                {
                    // The disk is below the watermark: the call goes on, unrecorded.
                    metrics::counter!("hotline_recordings_skipped_total", "reason" => "disk_low")
                        .increment(1);
                    tracing::warn!(key, "call not recorded: the disk is low");
                } else if let Some(rec) = &self.shared.recordings {
                    let path = rec.path_for(c.record.started_at, key, &c.record.call_id);
                    c.record.recording = Some(path.display().to_string());
                    rec.open(key, path);
                    let codec = c.negotiated.map_or(Codec::Pcmu, |n| n.codec);
                    c.jitter = Some(JitterBuffer::new(JITTER_DEPTH, codec.silence()));
                }
                c.record.codec = c.negotiated.map(|n| n.codec.name().to_string());
                self.out
                    .push(Effect::record(CallEvent::Started(key, c.record.clone())));
                let facts = c.facts.get(now, &self.shared.calendar);
                c.call.start(now, facts);
            }
            ToMedia::Key(k) => {
                if let Some(LegB {
                    socket,
                    bridge: Some(b),
                    ..
                }) = &mut c.leg_b
                {
                    // Bridged: a key by INFO goes on to the target as RFC 4733 events.
                    for packet in b.to_b.inject_key(k) {
                        let _ = socket.send_to(&packet, b.latch.target());
                    }
                } else {
                    let facts = c.facts.get(now, &self.shared.calendar);
                    c.call.digit(now, k, facts);
                }
            }
            ToMedia::Update(n) => {
                if !c.receiving && receives(n.direction) {
                    c.last_heard = now; // back from hold
                }
                c.update(n);
            }
            ToMedia::Ended(reason) => {
                self.end(key, reason);
                return;
            }
            ToMedia::Bridged {
                dialog,
                negotiated,
                agent,
            } => {
                if !self.bridge(key, dialog, negotiated, agent, now) {
                    return;
                }
            }
            ToMedia::AgentLeg {
                socket,
                rtcp_socket,
                port,
            } => {
                if c.leg_b.is_some() {
                    // Already has one (a transfer in progress): this one goes back.
                    free_port(&self.shared, port);
                } else {
                    c.leg_b = Some(LegB {
                        socket: UdpSocket::from_std(socket),
                        _rtcp_socket: rtcp_socket,
                        port,
                        to_a: None,
                        ringback: Player::new(Vec::new(), false),
                        ring_tick: now,
                        bridge: None,
                    });
                }
            }
            ToMedia::AgentHungUp => {
                let last = self.drop_agent_leg(key);
                let Some(c) = self.calls.get_mut(&key) else {
                    return;
                };
                tracing::info!(call_id = %c.record.call_id, "the agent hung up");
                c.agent_gone = true;
                let facts = c.facts.get(now, &self.shared.calendar);
                c.call.agent_hung_up(now, last, facts);
            }
            ToMedia::TransferOut { uri } => {
                let last = self.drop_agent_leg(key);
                if let Err(reason) = self.transfer(key, uri, now) {
                    self.end(key, reason);
                    return;
                }
                // The ringback and then the target continue the stream the agent's bridge sent.
                if let (Some(c), Some((seq, ts))) = (self.calls.get_mut(&key), last)
                    && let Some(to_a) = c.leg_b.as_mut().and_then(|l| l.to_a.as_mut())
                {
                    to_a.continue_after(seq, ts);
                }
            }
            ToMedia::Requeue { queue, agent } => {
                let last = self.drop_agent_leg(key);
                let Some(c) = self.calls.get_mut(&key) else {
                    return;
                };
                c.call.resume_after_bridge(now, last);
                let Some(queue) = queue.or_else(|| c.record.queue.clone()) else {
                    self.end(key, "transfer failed");
                    return;
                };
                c.record.queue = Some(queue.clone());
                // First in line: the caller has waited once already.
                self.out.push(Effect::Acd(AcdCommand::Enqueue {
                    call: key,
                    call_id: c.record.call_id.clone(),
                    caller: c.record.caller.clone(),
                    queue,
                    priority: 100,
                    skills: Vec::new(),
                    agent,
                }));
            }
            ToMedia::RingDone(ring) => {
                if c.record.rings.len() < MAX_RINGS {
                    c.record.rings.push(ring);
                }
            }
            ToMedia::Announce { place, minutes } => {
                let bridged = c.leg_b.as_ref().is_some_and(|l| l.bridge.is_some());
                if !bridged && c.call.session().is_queued() {
                    ask(
                        &self.shared,
                        &self.me,
                        &mut c.call,
                        key,
                        Question::Position { place, minutes },
                    );
                }
            }
            ToMedia::PauseRecording(paused) => {
                tracing::info!(call_id = %c.record.call_id, paused, "recording paused or resumed");
                c.recording_paused = paused;
            }
            ToMedia::Speak(prompts) => c.call.speak(prompts),
            ToMedia::UpdateB(n) => {
                if let Some(LegB {
                    bridge: Some(b), ..
                }) = c.leg_b.as_mut()
                {
                    if n.remote != b.sdp_remote && !n.remote.ip().is_unspecified() {
                        b.latch = Latch::new(n.remote);
                        b.sdp_remote = n.remote;
                    }
                    b.sending = sends(n.direction) && !n.remote.ip().is_unspecified();
                    let a = format_of(c.negotiated);
                    let bf = format_of(Some(n));
                    b.to_b.set_formats(a, bf);
                    b.to_a.set_formats(bf, a);
                    b.negotiated = n;
                    tracing::info!(call_id = %c.record.call_id, holds = !b.sending, "the transfer target changed its media");
                }
            }
            ToMedia::AgentHold(hold) => {
                if let Some(LegB {
                    bridge: Some(b), ..
                }) = c.leg_b.as_mut()
                {
                    b.held = hold;
                    b.sending = !hold && sends(b.negotiated.direction);
                    tracing::info!(call_id = %c.record.call_id, hold, "the agent holds the caller");
                }
            }
            ToMedia::Monitor(join) => {
                if !self.monitor_joined(key, join) {
                    return;
                }
            }
            ToMedia::MonitorMode(mode) => {
                if let Some(m) = c.monitor.as_mut() {
                    tracing::info!(call_id = %c.record.call_id, mode = mode.name(), "the supervisor changed mode");
                    m.mode = mode;
                }
            }
            ToMedia::MonitorEnded => {
                if let Some(m) = c.monitor.take() {
                    tracing::info!(call_id = %c.record.call_id, "the supervisor left the call");
                    release(&self.poll, &self.shared, m);
                }
            }
            ToMedia::TransferFailed(status) => {
                tracing::info!(call_id = %c.record.call_id, status, "the transfer target did not answer");
                self.end(key, "transfer failed");
                return;
            }
        }
        self.after(key, now);
    }

    /// The transfer target or an agent answered: the caller is bridged to its leg (`false`:
    /// no leg to bridge).
    fn bridge(
        &mut self,
        key: u64,
        dialog: DialogId,
        negotiated: Negotiated,
        agent: Option<u64>,
        now: Instant,
    ) -> bool {
        let Some(c) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(leg) = c.leg_b.as_mut() else {
            return false;
        };
        if let Some(agent) = agent {
            c.record.agent_id = Some(agent);
            c.record.agent_answered_at = Some(Utc::now());
            c.call.set_connected();
        }
        let a = format_of(c.negotiated);
        let b = format_of(Some(negotiated));
        let seed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let registered = self.poll.registry().register(
            &mut leg.socket,
            Token(key as usize | LEG_B),
            Interest::READABLE,
        );
        if let Err(e) = registered {
            tracing::error!(error = %e, "cannot watch a transfer leg's socket");
        }
        tracing::info!(
            call_id = %c.record.call_id,
            uri = c.record.transfer_to.as_deref().unwrap_or(""),
            agent,
            "caller bridged"
        );
        let moh = || Player::new(self.shared.music_on_hold.clone(), false);
        leg.bridge = Some(Bridge {
            dialog,
            agent,
            negotiated,
            sdp_remote: negotiated.remote,
            sending: sends(negotiated.direction),
            held: false,
            moh_to_a: moh(),
            moh_to_b: moh(),
            latch: Latch::new(negotiated.remote),
            to_b: Relay::new(a, b, (seed >> 32) as u32, seed),
            to_a: {
                let mut r = leg.to_a.take().unwrap_or_else(|| {
                    // An agent's leg: the bridge takes over the IVR's stream.
                    let mut r = Relay::new(b, a, c.call.ssrc(), seed.rotate_left(17));
                    if let Some((seq, ts)) = c.call.last_sent() {
                        r.continue_after(seq, ts);
                    }
                    r
                });
                r.set_formats(b, a);
                r
            },
            jitter: JitterBuffer::new(JITTER_DEPTH, negotiated.codec.silence()),
            tick: now + FRAME_TIME,
        });
        true
    }

    /// A supervisor's phone answered: its leg joins the bridge in `mode` (`false`: the agent
    /// left meanwhile, or another supervisor is on, and the leg is hung up).
    fn monitor_joined(&mut self, key: u64, join: MonitorJoin) -> bool {
        let MonitorJoin {
            dialog,
            negotiated,
            socket,
            rtcp_socket,
            port,
            mode,
        } = join;
        let Some(c) = self.calls.get_mut(&key) else {
            return false;
        };
        let bridged = c.leg_b.as_ref().is_some_and(|l| l.bridge.is_some());
        if !bridged || c.monitor.is_some() {
            // The agent left meanwhile, or another supervisor is on: hung up.
            free_port(&self.shared, port);
            self.out.push(Effect::Bye(vec![dialog]));
            return false;
        }
        let mut socket = UdpSocket::from_std(socket);
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(key as usize | MONITOR),
            Interest::READABLE,
        ) {
            tracing::error!(error = %e, "cannot watch a supervisor's leg");
        }
        // The mix needs the caller's frames in order even when nothing is recorded.
        let codec = c.negotiated.map_or(Codec::Pcmu, |n| n.codec);
        c.jitter
            .get_or_insert_with(|| JitterBuffer::new(JITTER_DEPTH, codec.silence()));
        let f = format_of(Some(negotiated));
        let seed = key.rotate_left(29) ^ 0x5DEE_CE66_D1CE_4E5B;
        tracing::info!(call_id = %c.record.call_id, mode = mode.name(), "a supervisor joined the call");
        c.monitor = Some(Monitor {
            dialog,
            socket,
            _rtcp_socket: rtcp_socket,
            port,
            negotiated,
            latch: Latch::new(negotiated.remote),
            mode,
            jitter: JitterBuffer::new(JITTER_DEPTH, negotiated.codec.silence()),
            out: Relay::new(f, f, (seed >> 32) as u32, seed),
        });
        true
    }

    /// Takes down a call's agent leg (already hung up on the signaling side): socket and
    /// port back, the ACD told the agent's call ended. Returns the bridge's last packet to
    /// the caller (sequence, timestamp) for whatever speaks to the caller next.
    pub(super) fn drop_agent_leg(&mut self, key: u64) -> Option<(u16, u32)> {
        let c = self.calls.get_mut(&key)?;
        let mut leg = c.leg_b.take()?;
        if let Some(m) = c.monitor.take() {
            // Nothing left to listen to: the supervisor's leg goes with the agent's.
            let dialog = m.dialog.clone();
            release(&self.poll, &self.shared, m);
            self.out.push(Effect::Bye(vec![dialog]));
        }
        let _ = self.poll.registry().deregister(&mut leg.socket);
        free_port(&self.shared, leg.port);
        let b = leg.bridge?;
        if let Some(agent) = b.agent {
            self.out.push(Effect::Acd(AcdCommand::CallEnded {
                agent,
                queue: c.record.queue.clone().unwrap_or_default(),
            }));
        }
        b.to_a.last_sent()
    }

    /// The script transfers the caller: a leg to the target is set up and the call handler
    /// asked to place the call; the caller is bridged when it answers.
    pub(super) fn transfer(
        &mut self,
        key: u64,
        uri: String,
        now: Instant,
    ) -> Result<(), &'static str> {
        let target = transfer_target(&uri).ok_or("transfer unavailable")?;
        let (port, socket, rtcp) =
            crate::calls::ports::bind_pair(&self.shared.ports, self.shared.bind)
                .ok_or("transfer unavailable")?;
        let placeable = self.shared.engine.is_some() && self.shared.runtime.is_some();
        let Some(c) = self.calls.get_mut(&key).filter(|_| placeable) else {
            free_port(&self.shared, port);
            return Err("transfer unavailable");
        };
        let local = Local {
            addr: SocketAddr::new(self.shared.announce, port),
            session_id: key,
            version: 1,
        };
        let offer = sdp::offer(local, Direction::SendRecv)
            .to_string()
            .into_bytes();
        c.record.transfer_to = Some(uri.clone());
        let a = format_of(c.negotiated);
        let mut to_a = Relay::new(a, a, c.call.ssrc(), key.rotate_left(17));
        if let Some((seq, ts)) = c.call.last_sent() {
            to_a.continue_after(seq, ts);
        }
        c.leg_b = Some(LegB {
            socket: UdpSocket::from_std(socket),
            _rtcp_socket: rtcp,
            port,
            to_a: Some(to_a),
            ringback: Player::new(self.shared.ringback.clone(), false),
            ring_tick: now,
            bridge: None,
        });
        let request = TransferRequest {
            worker: self.index,
            key,
            uri,
            target,
            from_user: c.record.called.clone(),
            offer,
            local,
        };
        self.out.push(Effect::PlaceTransfer(request));
        Ok(())
    }
}
