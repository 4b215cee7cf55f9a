//! The legs the node places for a call: to an agent's phone (the ACD's offers), to the caller
//! of a kept callback, to a transfer target (the script's or an agent's), to a supervisor's
//! phone (monitoring). Each is one [`Leg`]: kept by its INVITE transaction while it rings, by
//! its dialog once answered. An answer takes one path ([`Calls::answered`]: the leg's SDP
//! answer checked, then what its kind does with it), a failure another ([`Calls::failed`]),
//! and the ending of an answered leg a third ([`Calls::leg_ended`]).

use std::net::SocketAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hotline_sip::endpoint::{DialogId, Endpoint};
use hotline_sip::message::Message;
use hotline_sip::sdp::{self, Direction, Local, Negotiated, Sdp};
use hotline_sip::transaction::{Peer, TransportKind, TxId};

use super::admit::new_record;
use super::media::{self, MonitorJoin, NewCall, ToMedia};
use super::messages::TransferRequest;
use super::{Call, Calls, MonitorMode, Stage, record};
use crate::acd::service::{CallbackDial, Command as Acd, RingAgents, StopRinging};
use crate::engine::webrtc::WebrtcLeg;

/// A leg's own RTP/RTCP sockets while it rings, handed to the worker when it answers (legs
/// whose sockets the worker already holds have none).
pub(super) struct Sockets {
    port: u16,
    socket: std::net::UdpSocket,
    rtcp_socket: std::net::UdpSocket,
}

/// A leg the node placed for a call.
pub(super) struct Leg {
    /// The call it is for (a callback's: the kept place).
    pub(super) key: u64,
    /// Our side of its SDP.
    pub(super) local: Local,
    /// The gateway's side of a browser leg (a phone registered over WebSocket); closed when
    /// the leg is dropped, so a leg that ends takes it along.
    browser: Option<WebrtcLeg>,
    pub(super) kind: LegKind,
}

/// What a leg is for.
pub(super) enum LegKind {
    /// An agent's phone, rung for a caller waiting in a queue.
    Agent {
        /// The agent.
        agent: u64,
        /// When it started ringing (for the call record).
        since: DateTime<Utc>,
    },
    /// The caller of a kept callback; the agents ring once it answers.
    Callback {
        agents: Vec<(u64, Option<String>)>,
        dial: CallbackDial,
        sockets: Sockets,
    },
    /// A transfer target (the worker holds the leg's sockets).
    Transfer,
    /// A supervisor's phone joining a bridged call.
    Monitor {
        /// The supervisor's softphone.
        device: String,
        mode: MonitorMode,
        /// Until answered.
        sockets: Option<Sockets>,
    },
}

impl Leg {
    pub(super) fn is_agent(&self) -> bool {
        matches!(self.kind, LegKind::Agent { .. })
    }

    pub(super) fn is_callback(&self) -> bool {
        matches!(self.kind, LegKind::Callback { .. })
    }

    pub(super) fn is_transfer(&self) -> bool {
        matches!(self.kind, LegKind::Transfer)
    }

    pub(super) fn is_monitor(&self) -> bool {
        matches!(self.kind, LegKind::Monitor { .. })
    }

    /// The port pair the leg holds itself (to give back when it fails or is dropped).
    pub(super) fn own_port(&self) -> Option<u16> {
        match &self.kind {
            LegKind::Callback { sockets, .. }
            | LegKind::Monitor {
                sockets: Some(sockets),
                ..
            } => Some(sockets.port),
            _ => None,
        }
    }

    /// The SDP answer in the 200 of the leg's INVITE: a browser's (WebRTC SDP) goes to its
    /// gateway leg and the engine side is plain RTP on the leg's loopback socket; a SIP
    /// phone's is its SDP. `None` without a usable one.
    fn answer(&self, response: &Message) -> Option<Negotiated> {
        let answer = match &self.browser {
            Some(leg) => browser_answer(leg, response),
            None => sdp_answer(response),
        };
        answer.and_then(Result::ok)
    }
}

/// What an agent's phone that did not take a call did, for the call record.
fn ring_result(status: u16) -> &'static str {
    match status {
        486 | 600 => "busy",
        603 => "declined",
        404 | 410 | 480 => "unavailable",
        408 => "no response",
        _ => "failed",
    }
}

impl Calls {
    /// Adds a ring of an agent's phone, and how it ended, to the call's record.
    fn ring_done(&self, key: u64, agent: u64, since: DateTime<Utc>, result: &str) {
        self.tell(
            key,
            ToMedia::RingDone(record::RingRecord {
                agent,
                started_at: since,
                ended_at: Utc::now(),
                result: result.to_string(),
            }),
        );
    }

    /// The SDP offer for a phone at `peer`: a browser leg through the gateway when the phone
    /// registered over WebSocket, else plain RTP on `local`.
    fn leg_offer(
        &self,
        peer: Peer,
        local: Local,
        first: sdp::Codec,
    ) -> (Vec<u8>, Option<WebrtcLeg>) {
        if peer.transport == TransportKind::Ws
            && let Some(gw) = &self.webrtc
        {
            let ip = if local.addr.ip().is_unspecified() || self.cfg.bind.is_unspecified() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                self.cfg.bind
            };
            let engine = SocketAddr::new(ip, local.addr.port());
            match gw.offer(first, engine) {
                Ok((leg, offer)) => return (offer.into_bytes(), Some(leg)),
                Err(e) => tracing::warn!(error = %e, "cannot set up a browser leg"),
            }
        }
        (
            sdp::offer(local, Direction::SendRecv)
                .to_string()
                .into_bytes(),
            None,
        )
    }

    /// The ACD offers a call to agents: their phones ring, from the caller's number, with an
    /// offer for the call's agent leg (set up in the worker at the first offer, kept for the
    /// next ones).
    pub(super) fn ring(&mut self, ep: &mut Endpoint, now: Instant, r: RingAgents) {
        if let Some(dial) = r.callback {
            return self.dial_callback(ep, now, r.call, r.agents, dial);
        }
        let Some(call) = self.calls.get(&r.call) else {
            return; // the caller is gone; the ACD hears it from the worker
        };
        let (caller, agent_leg) = (call.caller.clone(), call.stage.agent_leg());
        let local = match agent_leg {
            Some(l) => l,
            None => {
                let Some((local, socket, rtcp_socket)) = self.bind_leg() else {
                    tracing::warn!("no RTP port free for an agent's leg: the offer waits");
                    for (agent, _) in r.agents {
                        self.acd_send(Acd::RingFailed {
                            call: r.call,
                            agent,
                            miss: false,
                        });
                    }
                    return;
                };
                let port = local.addr.port();
                self.tell(
                    r.call,
                    ToMedia::AgentLeg {
                        socket,
                        rtcp_socket,
                        port,
                    },
                );
                if let Some(call) = self.calls.get_mut(&r.call) {
                    call.stage = Stage::Offered { agent_leg: local };
                }
                local
            }
        };
        let codec = self.caller_codec(r.call);
        for (agent, device) in r.agents {
            let contact = device
                .as_deref()
                .and_then(|aor| agent_contact(ep, now, aor));
            let Some((uri, peer)) = contact else {
                tracing::warn!(agent, device = ?device, "the agent's phone is not registered");
                self.ring_done(r.call, agent, Utc::now(), "not registered");
                self.acd_send(Acd::RingFailed {
                    call: r.call,
                    agent,
                    miss: true,
                });
                continue;
            };
            let (offer, browser) = self.leg_offer(peer, local, codec);
            match ep.invite(now, peer, &uri, &caller, Some(&offer)) {
                Ok(tx) => {
                    tracing::info!(agent, %uri, browser = browser.is_some(), "ringing the agent's phone");
                    self.placed.insert(
                        tx,
                        Leg {
                            key: r.call,
                            local,
                            browser,
                            kind: LegKind::Agent {
                                agent,
                                since: Utc::now(),
                            },
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = ?e, agent, "cannot ring the agent's phone");
                    self.acd_send(Acd::RingFailed {
                        call: r.call,
                        agent,
                        miss: false,
                    });
                }
            }
        }
    }

    /// The ACD stops agents' phones ringing for a call (ring timeout, caller gone).
    pub(super) fn stop_ringing(&mut self, ep: &mut Endpoint, now: Instant, s: StopRinging) {
        let stop: Vec<TxId> = self
            .placed
            .iter()
            .filter(|(_, l)| match l.kind {
                LegKind::Agent { agent, .. } => l.key == s.call && s.agents.contains(&agent),
                _ => false,
            })
            .map(|(tx, _)| *tx)
            .collect();
        for tx in stop {
            if let Some(Leg {
                key,
                kind: LegKind::Agent { agent, since },
                ..
            }) = self.placed.remove(&tx)
            {
                self.ring_done(key, agent, since, "no answer");
            }
            let _ = ep.cancel(now, tx);
        }
    }

    /// A media worker's transfer call is placed (the script's `transfer` node, or an agent's
    /// emergency transfer).
    pub(super) fn place_transfer(&mut self, ep: &mut Endpoint, now: Instant, t: TransferRequest) {
        let peer = Peer {
            addr: t.target,
            transport: TransportKind::Udp,
        };
        match ep.invite(now, peer, &t.uri, &t.from_user, Some(&t.offer)) {
            Ok(tx) => {
                tracing::info!(uri = %t.uri, "transferring a call");
                if let Some(call) = self.calls.get_mut(&t.key) {
                    call.stage = Stage::Transferred;
                }
                self.placed.insert(
                    tx,
                    Leg {
                        key: t.key,
                        local: t.local,
                        browser: None,
                        kind: LegKind::Transfer,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(error = ?e, uri = %t.uri, "cannot place the transfer call");
                if let Some(w) = &self.workers {
                    w.news(t.worker, t.key, ToMedia::TransferFailed(500));
                }
            }
        }
    }

    /// A supervisor's phone rings to join call `key` in `mode`; `Err` with the device when
    /// it cannot be rung (not registered, no port free).
    pub(super) fn ring_monitor(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        device: String,
        mode: MonitorMode,
    ) -> Result<(), String> {
        let Some((uri, peer)) = agent_contact(ep, now, &device) else {
            return Err(device);
        };
        let Some((local, socket, rtcp_socket)) = self.bind_leg() else {
            return Err(format!("{device} (no RTP port free)"));
        };
        let (offer, browser) = self.leg_offer(peer, local, self.caller_codec(key));
        // From `monitor`: the page answers it by itself (the caller's number is not shown).
        match ep.invite(now, peer, &uri, "monitor", Some(&offer)) {
            Ok(tx) => {
                tracing::info!(%uri, mode = mode.name(), "ringing a supervisor's phone to join a call");
                let port = local.addr.port();
                self.placed.insert(
                    tx,
                    Leg {
                        key,
                        local,
                        browser,
                        kind: LegKind::Monitor {
                            device,
                            mode,
                            sockets: Some(Sockets {
                                port,
                                socket,
                                rtcp_socket,
                            }),
                        },
                    },
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot ring the supervisor's phone");
                self.release_port(local.addr.port());
                Err(device)
            }
        }
    }

    /// Stops the supervisors' phones ringing to join call `key`; whether one was.
    pub(super) fn cancel_monitor_rings(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
    ) -> bool {
        let stale: Vec<TxId> = self
            .placed
            .iter()
            .filter(|(_, l)| l.key == key && l.is_monitor())
            .map(|(tx, _)| *tx)
            .collect();
        let any = !stale.is_empty();
        for tx in stale {
            if let Some(port) = self.placed.remove(&tx).and_then(|l| l.own_port()) {
                self.release_port(port);
            }
            let _ = ep.cancel(now, tx);
        }
        any
    }

    /// A callback's place came up: the caller is called through the callback route, from the
    /// number it dialled; the agents ring once it answers.
    fn dial_callback(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        agents: Vec<(u64, Option<String>)>,
        dial: CallbackDial,
    ) {
        let fail = |status: u16| Acd::CallbackFailed { call: key, status };
        if let Some(allowed) = &self.cfg.callback_numbers
            && !allowed.is_match(&dial.number)
        {
            // Toll fraud: never dial what a peer put in its From (international, premium).
            tracing::warn!(number = %dial.number, "a callback to a number outside acd.callback_numbers refused");
            metrics::counter!("hotline_callbacks_refused_total").increment(1);
            return self.acd_send(fail(0));
        }
        let uri = self
            .cfg
            .callback_route
            .as_ref()
            .map(|t| t.replace("{number}", &dial.number));
        let Some((uri, target)) = uri.and_then(|u| media::transfer_target(&u).map(|t| (u, t)))
        else {
            tracing::warn!("a callback is due but no acd.callback_route (an IP address) is set");
            return self.acd_send(fail(0));
        };
        let Some((local, socket, rtcp_socket)) = self.bind_leg() else {
            return self.acd_send(fail(503));
        };
        let port = local.addr.port();
        let offer = sdp::offer(local, Direction::SendRecv)
            .to_string()
            .into_bytes();
        let peer = Peer {
            addr: target,
            transport: TransportKind::Udp,
        };
        match ep.invite(now, peer, &uri, &dial.called, Some(&offer)) {
            Ok(tx) => {
                tracing::info!(%uri, "calling a caller back");
                self.placed.insert(
                    tx,
                    Leg {
                        key,
                        local,
                        browser: None,
                        kind: LegKind::Callback {
                            agents,
                            dial,
                            sockets: Sockets {
                                port,
                                socket,
                                rtcp_socket,
                            },
                        },
                    },
                );
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot place the callback");
                self.release_port(port);
                self.acd_send(fail(500));
            }
        }
    }

    /// A leg the node placed answered: its SDP answer is checked (without a usable one the
    /// leg is hung up and its kind's failure reported), then the leg goes where its kind
    /// says. An answer nobody waits for any more is hung up.
    pub(super) fn answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: TxId,
        dialog: DialogId,
        response: &Message,
    ) {
        let Some(leg) = self.placed.remove(&tx) else {
            let _ = ep.bye(now, &dialog); // a call nobody is waiting for any more
            return;
        };
        if leg.is_agent() {
            if self
                .calls
                .get(&leg.key)
                .and_then(|c| c.stage.agent_leg())
                .is_none()
            {
                let _ = ep.bye(now, &dialog); // the caller hung up meanwhile
                return;
            }
            // The first answer takes the call: the other phones ringing for it stop.
            let others: Vec<TxId> = self
                .placed
                .iter()
                .filter(|(_, l)| l.key == leg.key && l.is_agent())
                .map(|(tx, _)| *tx)
                .collect();
            for other in others {
                if let Some(Leg {
                    key,
                    kind: LegKind::Agent { agent, since },
                    ..
                }) = self.placed.remove(&other)
                {
                    self.ring_done(key, agent, since, "answered elsewhere");
                }
                let _ = ep.cancel(now, other);
            }
        }
        let Some(negotiated) = leg.answer(response) else {
            let _ = ep.bye(now, &dialog);
            if let Some(port) = leg.own_port() {
                self.release_port(port);
            }
            let key = leg.key;
            match leg.kind {
                LegKind::Agent { agent, since } => {
                    tracing::warn!(
                        agent,
                        "the agent's phone answered without a usable SDP answer"
                    );
                    drop(leg.browser); // closes the browser leg, if any
                    self.ring_done(key, agent, since, "failed");
                    self.acd_send(Acd::RingFailed {
                        call: key,
                        agent,
                        miss: true,
                    });
                }
                LegKind::Callback { .. } => {
                    tracing::warn!("the callback was answered without a usable SDP answer");
                    self.acd_send(Acd::CallbackFailed {
                        call: key,
                        status: 488,
                    });
                }
                LegKind::Transfer => {
                    tracing::warn!("transfer target answered without a usable SDP answer");
                    self.tell(key, ToMedia::TransferFailed(488));
                }
                LegKind::Monitor { .. } => {
                    tracing::warn!("the supervisor's phone answered without a usable SDP answer");
                }
            }
            return;
        };
        // A callback's caller becomes a call of its own; the other legs join theirs.
        let mut leg = match leg {
            Leg {
                key,
                local,
                kind:
                    LegKind::Callback {
                        agents,
                        dial,
                        sockets,
                    },
                ..
            } => {
                let taken = (agents, dial, sockets);
                return self.callback_answered(ep, now, key, local, dialog, negotiated, taken);
            }
            other => other,
        };
        let key = leg.key;
        match &mut leg.kind {
            LegKind::Agent { agent, since } => {
                let (agent, since) = (*agent, *since);
                tracing::info!(agent, "the agent answered");
                self.ring_done(key, agent, since, "answered");
                if let Some(call) = self.calls.get_mut(&key)
                    && let Some(agent_leg) = call.stage.agent_leg()
                {
                    call.stage = Stage::WithAgent {
                        agent_leg,
                        leg: dialog.clone(),
                        agent,
                    };
                }
                self.up.insert(dialog.clone(), leg);
                self.acd_send(Acd::Answered { call: key, agent });
                self.tell(
                    key,
                    ToMedia::Bridged {
                        dialog,
                        negotiated,
                        agent: Some(agent),
                    },
                );
            }
            LegKind::Transfer => {
                self.up.insert(dialog.clone(), leg);
                self.tell(
                    key,
                    ToMedia::Bridged {
                        dialog,
                        negotiated,
                        agent: None,
                    },
                );
            }
            LegKind::Monitor { sockets, mode, .. } => {
                let (sockets, mode) = (sockets.take(), *mode);
                self.up.insert(dialog.clone(), leg);
                if let Some(s) = sockets {
                    self.tell(
                        key,
                        ToMedia::Monitor(MonitorJoin {
                            dialog,
                            negotiated,
                            socket: s.socket,
                            rtcp_socket: s.rtcp_socket,
                            port: s.port,
                            mode,
                        }),
                    );
                }
            }
            // Taken above.
            LegKind::Callback { .. } => {}
        }
    }

    /// The caller answered its callback: the call runs in a media worker like an incoming
    /// one (waiting for its agent with music on hold, recorded), and the agents ring.
    #[allow(clippy::too_many_arguments)]
    fn callback_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        local: Local,
        dialog: DialogId,
        negotiated: Negotiated,
        (agents, dial, sockets): (Vec<(u64, Option<String>)>, CallbackDial, Sockets),
    ) {
        let call = self.ivr_call(Some(negotiated)).for_callback();
        let mut record = new_record(&dialog.call_id, &dial.number, &dial.called);
        record.queue = Some(dial.queue.clone());
        record.callback = true;
        let new = NewCall {
            key,
            socket: sockets.socket,
            rtcp_socket: sockets.rtcp_socket,
            port: sockets.port,
            call,
            negotiated: Some(negotiated),
            dialog: dialog.clone(),
            record,
        };
        let Some(workers) = self.start_workers() else {
            let _ = ep.bye(now, &dialog);
            return;
        };
        let call_id = dialog.call_id.clone();
        let worker = workers.add(new);
        workers.news(worker, key, ToMedia::Confirmed(None));
        let call = Call {
            worker,
            dialog,
            caller: dial.number.clone(),
            // Placed by the node: no source to cap.
            source: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            local,
            offered: false,
            codec: negotiated.codec,
            stage: Stage::Ivr,
        };
        self.admit(key, call);
        tracing::info!("the caller answered its callback; ringing the agent");
        self.acd_send(Acd::CallbackAnswered { call: key, call_id });
        self.ring(
            ep,
            now,
            RingAgents {
                call: key,
                agents,
                callback: None,
            },
        );
    }

    /// A leg the node placed did not answer (busy, declined, no answer, unreachable).
    pub(super) fn failed(&mut self, tx: TxId, status: u16) {
        let Some(leg) = self.placed.remove(&tx) else {
            return;
        };
        if let Some(port) = leg.own_port() {
            self.release_port(port);
        }
        let key = leg.key;
        match leg.kind {
            LegKind::Agent { agent, since } => {
                self.ring_done(key, agent, since, ring_result(status));
                tracing::info!(
                    call = key,
                    agent,
                    status,
                    "the agent's phone did not take the call"
                );
                self.acd_send(Acd::RingFailed {
                    call: key,
                    agent,
                    miss: true,
                });
            }
            LegKind::Callback { .. } => {
                self.acd_send(Acd::CallbackFailed { call: key, status });
            }
            LegKind::Transfer => self.tell(key, ToMedia::TransferFailed(status)),
            LegKind::Monitor { .. } => {
                tracing::info!(status, "the supervisor's phone did not answer");
            }
        }
    }

    /// An answered leg hung up: an agent's (the caller stays, for the survey or to be hung up
    /// by the script, and a supervisor on the call goes with the agent), a transfer target's
    /// (the call ends), a supervisor's (the leg leaves the bridge).
    pub(super) fn leg_ended(&mut self, leg: Leg) {
        let key = leg.key;
        match leg.kind {
            LegKind::Monitor { .. } => {
                tracing::info!("the supervisor hung up");
                self.tell(key, ToMedia::MonitorEnded);
            }
            LegKind::Agent { .. } => {
                if let Some(call) = self.calls.get_mut(&key) {
                    call.stage = Stage::Ivr;
                }
                // The worker hangs the supervisor's leg up.
                self.up.retain(|_, l| !(l.key == key && l.is_monitor()));
                self.tell(key, ToMedia::AgentHungUp);
            }
            LegKind::Transfer => self.tell(key, ToMedia::Ended("transfer target hung up")),
            LegKind::Callback { .. } => {}
        }
    }
}

/// A browser's answer (WebRTC SDP) handed to its gateway leg.
fn browser_answer(
    leg: &WebrtcLeg,
    response: &Message,
) -> Option<Result<Negotiated, sdp::SdpError>> {
    let text = std::str::from_utf8(response.body()).unwrap_or("");
    leg.answer(text);
    crate::engine::webrtc::answered_codec(text).map(|(codec, dtmf)| {
        Ok(Negotiated {
            codec,
            dtmf,
            remote: leg.plain,
            direction: Direction::SendRecv,
            ptime: 20,
            rtcp_mux: true,
        })
    })
}

/// The SDP answer in a 200 to one of our INVITEs: `None` without a parsable one.
fn sdp_answer(response: &Message) -> Option<Result<Negotiated, sdp::SdpError>> {
    let text = std::str::from_utf8(response.body()).ok()?;
    Sdp::parse(text).ok().map(|sdp| sdp::accept_answer(&sdp))
}

/// Where to ring an agent: its freshest registration's Contact URI, sent to the Contact's
/// address when it is the address the REGISTER came from (a softphone on this host or LAN
/// listening on another port), else to the source (behind NAT, RFC 3581); over TCP always
/// the registering connection.
fn agent_contact(ep: &Endpoint, now: Instant, aor: &str) -> Option<(String, Peer)> {
    let binding = ep
        .registrar()
        .lookup(ep.registrar_time(now), aor)
        .into_iter()
        .next()?;
    let uri = binding.contact.clone();
    let parsed = hotline_sip::message::Uri::parse(&uri).ok()?;
    let sip = parsed.as_sip()?;
    let source = binding.source;
    let addr = match (sip.host.ip(), source.transport) {
        (Some(ip), TransportKind::Udp) if ip == source.addr.ip() => {
            SocketAddr::new(ip, sip.port.unwrap_or(5060))
        }
        _ => source.addr,
    };
    Some((
        uri,
        Peer {
            addr,
            transport: source.transport,
        },
    ))
}
