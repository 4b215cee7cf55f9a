//! A call's clock: what is due (IVR timers, 20 ms frames of ringback, music on hold, the
//! recording and the supervisor's mix, RTCP reports, the inactivity limit), what the IVR
//! asked for after anything happened, the next deadline, and the end of the call.

use super::*;

impl Worker {
    /// Runs every call whose deadline has come.
    pub(super) fn due(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.calls.get_mut(&key) else {
                continue;
            };
            if c.scheduled != Some(at) {
                continue; // stale: the call moved its deadline
            }
            c.scheduled = None;
            if let Some(limit) = self.shared.inactivity
                && c.receiving
                && c.record.answered_at.is_some()
                && now >= c.last_heard + limit
            {
                tracing::info!(call_id = %c.record.call_id, "no RTP from the caller: hanging up");
                self.end(key, "no media");
                continue;
            }
            let facts = c.facts.get(now, &self.shared.calendar);
            c.call.handle_timeout(now, facts);
            // A bridged call's recording runs on its own 20 ms clock: the caller's next frame
            // left, the target's right.
            // The target rings: the caller hears ringback in the stream the bridge will carry.
            if let Some(LegB {
                bridge: None,
                to_a: Some(to_a),
                ringback,
                ring_tick,
                ..
            }) = &mut c.leg_b
            {
                let mut ticks = 0;
                while *ring_tick <= now && ticks < 50 {
                    ticks += 1;
                    *ring_tick += FRAME_TIME;
                    let Some(neg) = c.negotiated else {
                        continue;
                    };
                    let frame = moh_frame(ringback, &self.shared.ringback, neg.codec);
                    if let (true, Some(latch)) = (c.sending, c.latch) {
                        let out = to_a.inject(&frame);
                        let sent = &mut c.record.packets_sent;
                        send_to_caller(&c.socket, latch.target(), out, sent, &mut c.rtcp);
                    }
                    // The recording keeps its time line: the caller left, the ringback right.
                    if let (Some(rec), Some(jb)) = (&self.shared.recordings, &mut c.jitter) {
                        let paused = c.recording_paused;
                        record_tick(rec, key, jb, neg.codec, &frame, neg.codec, paused);
                    }
                }
            }
            if let Some(LegB {
                socket: socket_b,
                bridge: Some(b),
                ..
            }) = &mut c.leg_b
            {
                let mut ticks = 0;
                while b.tick <= now && ticks < 50 {
                    ticks += 1;
                    b.tick += FRAME_TIME;
                    // Music on hold: to the target while the caller holds, to the caller while
                    // the target holds.
                    let music = &self.shared.music_on_hold;
                    if !c.sending && b.sending {
                        let frame = moh_frame(&mut b.moh_to_b, music, b.negotiated.codec);
                        let out = b.to_b.inject(&frame);
                        let _ = socket_b.send_to(out, b.latch.target());
                    }
                    if c.sending
                        && !b.sending
                        && let (Some(latch), Some(neg)) = (c.latch, c.negotiated)
                    {
                        let frame = moh_frame(&mut b.moh_to_a, music, neg.codec);
                        let out = b.to_a.inject(&frame);
                        let sent = &mut c.record.packets_sent;
                        send_to_caller(&c.socket, latch.target(), out, sent, &mut c.rtcp);
                    }
                    let recording =
                        self.shared.recordings.is_some() && c.record.recording.is_some();
                    let (Some(neg), true) = (c.negotiated, recording || c.monitor.is_some()) else {
                        continue; // neither recorded nor monitored: the relays do it all
                    };
                    let caller = c
                        .jitter
                        .as_mut()
                        .and_then(|j| pop_frame(j, neg.codec.silence()));
                    let mut theirs = pop_frame(&mut b.jitter, b.negotiated.codec.silence());
                    if let Some(m) = &mut c.monitor {
                        // A supervisor on the call: each party hears the mix its mode says.
                        let sup = pop_frame(&mut m.jitter, m.negotiated.codec.silence());
                        let party = |frame, codec| Party { frame, codec };
                        let mixed = mix(
                            m.mode,
                            party(frame_of(&caller), neg.codec),
                            party(frame_of(&theirs), b.negotiated.codec),
                            party(frame_of(&sup), m.negotiated.codec),
                        );
                        let _ = m
                            .socket
                            .send_to(m.out.inject(&mixed.to_supervisor), m.latch.target());
                        if let (Some(f), true, true) = (mixed.to_agent, c.sending, b.sending) {
                            let _ = socket_b.send_to(b.to_b.inject(&f), b.latch.target());
                        }
                        if let (Some(f), true, false, Some(latch)) =
                            (mixed.to_caller, c.sending, b.held, c.latch)
                        {
                            let out = b.to_a.inject(&f);
                            let sent = &mut c.record.packets_sent;
                            send_to_caller(&c.socket, latch.target(), out, sent, &mut c.rtcp);
                        }
                        theirs = Some(mixed.office);
                    }
                    if let (Some(rec), true) = (&self.shared.recordings, recording) {
                        let (codec_b, paused) = (b.negotiated.codec, c.recording_paused);
                        let (left, right) = if paused {
                            (&[][..], &[][..])
                        } else {
                            (frame_of(&caller), frame_of(&theirs))
                        };
                        rec.frame(key, left, neg.codec, right, codec_b);
                    }
                }
            }
            if let Some(report) = c.rtcp.poll_report(now, ntp_now())
                && let Some(to) = c.rtcp_target()
            {
                let socket = if c.negotiated.is_some_and(|n| n.rtcp_mux) {
                    &c.socket
                } else {
                    &c.rtcp_socket
                };
                if let Err(e) = socket.send_to(&report, to) {
                    tracing::trace!(error = %e, "RTCP send failed");
                }
            }
            self.after(key, now);
        }
    }

    /// After anything happened to a call: send what it produced, act on its actions, and
    /// schedule its next deadline.
    pub(super) fn after(&mut self, key: u64, now: Instant) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        while let Some(packet) = c.call.poll_transmit() {
            if let (true, Some(latch)) = (c.sending, c.latch) {
                let sent = &mut c.record.packets_sent;
                send_to_caller(&c.socket, latch.target(), &packet, sent, &mut c.rtcp);
            }
            // Every frame of our clock is a tick of the recording: the caller's next frame on
            // the left (silence while none), what the caller heard on the right.
            if let (Some(rec), Some(jb), Some(neg)) =
                (&self.shared.recordings, &mut c.jitter, c.negotiated)
            {
                // One tick per 20 ms frame of the packet (40 and 60 ms packets carry several).
                let payload = packet.get(RTP_HEADER..).unwrap_or_default();
                for chunk in payload.chunks(FRAME_BYTES) {
                    let ours: &[u8] = if c.sending { chunk } else { &[] };
                    record_tick(rec, key, jb, neg.codec, ours, neg.codec, c.recording_paused);
                }
            }
            c.call.recycle(packet);
        }
        let mut end = None;
        let mut transfer = None;
        while let Some(action) = c.call.poll_action() {
            match action {
                Action::Hangup => end = Some("ivr hung up"),
                Action::Transfer { uri } => transfer = Some(uri),
                Action::TicketStatus {
                    number,
                    access_code,
                    phone_last4,
                } => ask(
                    &self.shared,
                    &self.me,
                    &mut c.call,
                    key,
                    Question::Ticket {
                        number,
                        code: access_code,
                        last4: phone_last4,
                        caller: crate::calls::lookup::Caller(c.record.caller.clone()),
                    },
                ),
                Action::Knowledge {
                    article,
                    category,
                    choice,
                } => ask(
                    &self.shared,
                    &self.me,
                    &mut c.call,
                    key,
                    Question::Knowledge {
                        article,
                        category,
                        choice,
                    },
                ),
                Action::Score(n) => c.record.score = Some(n),
                Action::Enqueue {
                    queue,
                    priority,
                    skills,
                    ..
                } => {
                    tracing::info!(call_id = %c.record.call_id, %queue, "caller waiting in queue");
                    self.out.push(Effect::Acd(AcdCommand::Enqueue {
                        call: key,
                        call_id: c.record.call_id.clone(),
                        caller: c.record.caller.clone(),
                        queue: queue.clone(),
                        priority,
                        skills,
                        agent: None,
                    }));
                    c.record.queue = Some(queue);
                    c.record.queued_at.get_or_insert_with(Utc::now);
                    let session = c.call.session();
                    let mut so_far = c.record.clone();
                    so_far.ivr_path = session.path().to_vec();
                    so_far.ivr_vars = session.recorded_vars();
                    so_far.ivr_keys = c.call.keys().to_string();
                    self.out
                        .push(Effect::record(CallEvent::Queued(key, so_far)));
                }
                Action::Callback => {
                    tracing::info!(call_id = %c.record.call_id, "caller chose a callback");
                    c.record.callback_requested = true;
                    self.out.push(Effect::Acd(AcdCommand::Callback {
                        call: key,
                        number: c.record.caller.clone(),
                        called: c.record.called.clone(),
                    }));
                }
                Action::Pause | Action::Resume { .. } | Action::Dequeue => {
                    self.out.push(Effect::Acd(match action {
                        Action::Dequeue => AcdCommand::Leave {
                            call: key,
                            hung_up: false,
                        },
                        a => AcdCommand::SelfService {
                            call: key,
                            away: matches!(a, Action::Pause),
                        },
                    }));
                }
                other => tracing::debug!(action = ?other, "IVR action"),
            }
            if end.is_some() {
                break;
            }
        }
        if let Some(reason) = end {
            self.end(key, reason);
            return;
        }
        if let Some(uri) = transfer {
            if let Err(reason) = self.transfer(key, uri, now) {
                self.end(key, reason);
            }
            return self.schedule(key);
        }
        self.schedule(key);
    }

    /// Puts a call's next deadline in the heap (when it moved).
    pub(super) fn schedule(&mut self, key: u64) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let tick = match &c.leg_b {
            Some(LegB {
                bridge: Some(b), ..
            }) => Some(b.tick),
            Some(LegB {
                bridge: None,
                ring_tick,
                to_a: Some(_),
                ..
            }) => Some(*ring_tick),
            _ => None,
        };
        // A prompt the application spoke starts now: its first frame may be due at once.
        let next = [
            tick,
            c.call.poll_timeout(),
            c.rtcp.poll_timeout(),
            self.shared
                .inactivity
                .filter(|_| c.receiving && c.record.answered_at.is_some())
                .map(|limit| c.last_heard + limit),
        ]
        .into_iter()
        .flatten()
        .min();
        if next != c.scheduled
            && let Some(at) = next
        {
            c.scheduled = Some(at);
            self.timers.push(Reverse((at, key)));
        }
    }

    /// Ends a call: BYE when the media side ended it, port back, record out.
    pub(super) fn end(&mut self, key: u64, reason: &'static str) {
        let Some(mut c) = self.calls.remove(&key) else {
            return;
        };
        let agent = c
            .leg_b
            .as_ref()
            .and_then(|l| l.bridge.as_ref())
            .and_then(|b| b.agent);
        let _ = self.poll.registry().deregister(&mut c.socket);
        let _ = self.poll.registry().deregister(&mut c.rtcp_socket);
        if c.jitter.is_some()
            && let Some(rec) = &self.shared.recordings
        {
            rec.close(key);
        }
        // Hang up the legs the other side did not end: the caller's when the media side ended
        // the call, the target's unless the target ended it.
        let mut byes = Vec::new();
        if matches!(
            reason,
            "ivr hung up"
                | "no media"
                | "transfer unavailable"
                | "transfer failed"
                | "transfer target hung up"
        ) {
            byes.push(c.dialog.clone());
        }
        if let Some(m) = c.monitor.take() {
            byes.push(m.dialog.clone());
            release(&self.poll, &self.shared, m);
        }
        if let Some(mut leg) = c.leg_b.take() {
            let _ = self.poll.registry().deregister(&mut leg.socket);
            if let Some(b) = leg.bridge
                && reason != "transfer target hung up"
            {
                byes.push(b.dialog);
            }
            free_port(&self.shared, leg.port);
        }
        if !byes.is_empty() {
            self.out.push(Effect::Bye(byes));
        }
        free_port(&self.shared, c.port);
        self.out.push(Effect::Finished(c.dialog.clone(), key));
        // Told after the handler can forget the call: a callback the ACD places next under the
        // same key must not meet this call's leftovers.
        // A caller still waiting hangs up: out of the queue (abandoned). One talking to an
        // agent: the agent's call ended (wrap-up).
        if let Some(queue) = &c.record.queue {
            match agent {
                Some(agent) => {
                    self.out.push(Effect::Acd(AcdCommand::CallEnded {
                        agent,
                        queue: queue.clone(),
                    }));
                }
                // Still (or again, after a transfer back to a queue) waiting for an agent.
                None if c.record.agent_id.is_none() || c.call.session().is_queued() => {
                    self.out.push(Effect::Acd(AcdCommand::Leave {
                        call: key,
                        hung_up: matches!(reason, "caller hung up" | "no media"),
                    }));
                }
                None => {}
            }
        }
        let session = c.call.session();
        let mut record = c.record;
        record.ended_at = Utc::now();
        record.end_reason = if c.agent_gone && reason == "ivr hung up" {
            "agent hung up".to_string()
        } else {
            reason.to_string()
        };
        record.codec = c.negotiated.map(|n| n.codec.name().to_string());
        record.ivr_path = session.path().to_vec();
        record.ivr_vars = session.recorded_vars();
        record.ivr_keys = c.call.keys().to_string();
        record.quality = Some(c.rtcp.final_quality());
        tracing::info!(
            call_id = %record.call_id,
            caller = %record.caller,
            reason,
            path = %record.ivr_path.join(">"),
            sent = record.packets_sent,
            received = record.packets_received,
            "call ended"
        );
        self.out.push(Effect::record(CallEvent::Ended(key, record)));
    }
}
