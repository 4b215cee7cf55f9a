//! Calls: what the hotline does with the calls the signaling engine hands over.
//!
//! [`Calls`] is the [`CallHandler`] of `serve`. An INVITE is answered at once (the hotline
//! takes every call; GB/T 33358 wants no ringing wait): the SDP offer is answered on a port
//! pair from the RTP range (503 with Retry-After when the range is used up, 488 when no G.711
//! is offered, our offer in the 200 when the INVITE has none), and the call goes to the IVR
//! script in force. Each call then lives in a media worker ([`media`]: one thread per core but
//! one, each owning many calls' RTP sockets and [`IvrCall`]s); this handler only passes
//! signaling news to it (ACK, INFO keys, hold, hang-up) and places the calls of transfers for
//! it (the target's answer, failure, re-INVITEs and hang-up go back to the worker). The
//! recording of each call is written by [`recording`]; its record goes to [`record`]'s writer
//! at answer and at the end.
//!
//! A caller the script puts in a queue waits there hearing music on hold, with the script's
//! keys still live, until the ACD task ([`crate::acd::service`]) offers the call to agents:
//! this handler then rings each agent's registered phone (the registrar's binding) with an
//! INVITE from the caller's number, cancels rings the ACD stops (ring timeout, caller gone,
//! answered elsewhere), tells the ACD what each phone did, and has the worker bridge the
//! caller to the agent who answers.

pub mod control;
pub mod lookup;
pub mod media;
pub mod ports;
pub mod record;
pub mod recording;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use hotline_sip::endpoint::{DialogId, EndReason, Endpoint, EndpointEvent};
use hotline_sip::media::player::Prompt;
use hotline_sip::message::{HeaderName, Message, Method};
use hotline_sip::rtp::dtmf::info_digit;
use hotline_sip::rtp::ports::PortAllocator;
use hotline_sip::sdp::{self, Direction, Local, Negotiated, Sdp};
use hotline_sip::transaction::{Peer, TransportKind, TxId};
use tokio::sync::mpsc;

use self::control::TransferRequest;
pub use self::control::{
    Control, HoldControl, MonitorControl, MonitorMode, RecordingControl, TransferControl,
    TransferRefused, TransferTarget,
};
use self::media::{NewCall, Shared, ToMedia, Workers};
use self::record::{CallEvent, CallRecord};
use self::recording::Recordings;
use crate::acd::service::{Announce, Offer, StopRinging};
use crate::china::calendar::WorkCalendar;
use crate::engine::{CallHandler, EngineHandle, log_event};
use crate::ivr::call::IvrCall;
use crate::ivr::store::ScriptStore;

/// Settings of the call handler.
#[derive(Debug, Clone)]
pub struct CallsConfig {
    /// Where RTP sockets are bound.
    pub bind: IpAddr,
    /// The address written in SDP (the public one behind NAT).
    pub announce: IpAddr,
    /// The RTP port range.
    pub port_min: u16,
    /// The RTP port range's end.
    pub port_max: u16,
    /// Hang up after this long without RTP from the caller.
    pub inactivity: Option<Duration>,
    /// Media worker threads (one per core is right).
    pub workers: usize,
    /// Media workers at real-time priority.
    pub realtime: bool,
    /// Where callbacks are placed: a SIP URI with `{number}` for the caller's number (the
    /// carrier gateway); `None`: callbacks fail (and the ACD drops them).
    pub callback_route: Option<String>,
    /// Where an agent may send a caller in an emergency: a name (110, 119, 120, 122) to a
    /// SIP URI with an IP address.
    pub emergency_routes: std::collections::BTreeMap<String, String>,
}

/// A supervisor's phone ringing to join a call: the leg's sockets until it answers.
struct MonitorRing {
    worker: usize,
    key: u64,
    device: String,
    mode: MonitorMode,
    port: u16,
    socket: std::net::UdpSocket,
    rtcp_socket: std::net::UdpSocket,
    browser: Option<crate::engine::webrtc::WebrtcLeg>,
}

/// An agent's phone ringing for a call.
#[derive(Debug)]
struct Ringing {
    key: u64,
    agent: u64,
    since: chrono::DateTime<Utc>,
    /// The browser leg offered to a WebSocket-registered phone (closed when dropped, so a
    /// ring that ends without an answer takes its leg with it).
    browser: Option<crate::engine::webrtc::WebrtcLeg>,
}

/// A callback being dialled: the kept place (its key), the agents waiting to ring, and the
/// leg's sockets and SDP until the caller answers.
struct Dialling {
    key: u64,
    agents: Vec<(u64, Option<String>)>,
    dial: crate::acd::service::CallbackDial,
    local: Local,
    port: u16,
    socket: std::net::UdpSocket,
    rtcp_socket: std::net::UdpSocket,
}

/// A call in progress, as the handler knows it.
struct Live {
    /// Its media worker and its key there.
    worker: usize,
    key: u64,
    local: Local,
    /// Our 200 carried the offer: the ACK carries the answer.
    offered: bool,
    /// The caller's G.711 law (a browser agent's leg is offered it first).
    codec: sdp::Codec,
}

/// The application's call handler: answers and runs calls through the IVR.
pub struct Calls {
    scripts: Arc<ScriptStore>,
    calendar: Arc<WorkCalendar>,
    cfg: CallsConfig,
    ports: Arc<Mutex<PortAllocator>>,
    engine: Option<EngineHandle<Control>>,
    live: HashMap<DialogId, Live>,
    finished: Arc<Mutex<Vec<(DialogId, u64)>>>,
    /// Calls placed for transfers, not answered yet: INVITE transaction to (worker, call key,
    /// our side of the leg's SDP).
    transfers: HashMap<TxId, (usize, u64, Local)>,
    /// Answered transfer and agent legs: their dialog to (worker, call key, our side of its
    /// SDP, the agent when it is an agent's leg).
    legs_b: HashMap<DialogId, (usize, u64, Local, Option<u64>)>,
    /// Each call in progress by key: its worker, dialog and caller (the From user agents'
    /// phones display).
    keys: HashMap<u64, (usize, DialogId, String)>,
    /// Calls whose agent leg is set up in the worker: key to our side of its SDP.
    agent_legs: HashMap<u64, Local>,
    /// Agents' phones ringing, by INVITE transaction.
    rings: HashMap<TxId, Ringing>,
    /// Callbacks being dialled, by their INVITE transaction.
    dialling: HashMap<TxId, Dialling>,
    records: mpsc::UnboundedSender<CallEvent>,
    recordings: Option<Arc<Recordings>>,
    unavailable: Vec<Arc<Prompt>>,
    /// Where ticket look-ups go (none: the IVR says they are not available).
    lookups: Option<tokio::sync::mpsc::UnboundedSender<lookup::LookupRequest>>,
    /// The ACD task, told of the IVR's queue actions.
    acd: Option<crate::acd::service::AcdHandle>,
    /// Started when the engine attaches the handler (they need its handle).
    workers: Option<Workers>,
    /// Played to one side of a bridge while the other holds.
    music_on_hold: Vec<Arc<Prompt>>,
    calls: u64,
    /// Browser agents' media (agents registered over WebSocket), when started.
    webrtc: Option<Arc<crate::engine::webrtc::Gateway>>,
    /// Browser legs of answered agent and supervisor legs, by their dialog.
    webrtc_legs: HashMap<DialogId, crate::engine::webrtc::WebrtcLeg>,
    /// Supervisors' phones ringing to join a call, by INVITE transaction.
    monitor_rings: HashMap<TxId, MonitorRing>,
    /// Supervisors on calls: their leg's dialog to (worker, call key, the supervisor's
    /// softphone).
    monitors: HashMap<DialogId, (usize, u64, String)>,
}

/// Seconds a caller refused for want of ports is asked to wait.
const RETRY_AFTER_SECS: u32 = 5;

impl Calls {
    /// A handler running calls through `scripts`; call records go to `records` as calls start
    /// and end, recordings to `recordings` when given. `unavailable` is spoken when the script
    /// asks for a self-service not connected yet.
    pub fn new(
        cfg: CallsConfig,
        scripts: Arc<ScriptStore>,
        calendar: Arc<WorkCalendar>,
        records: mpsc::UnboundedSender<CallEvent>,
        recordings: Option<Arc<Recordings>>,
        unavailable: Vec<Arc<Prompt>>,
    ) -> Self {
        Calls {
            ports: Arc::new(Mutex::new(PortAllocator::new(cfg.port_min, cfg.port_max))),
            scripts,
            calendar,
            cfg,
            engine: None,
            live: HashMap::new(),
            finished: Arc::default(),
            transfers: HashMap::new(),
            legs_b: HashMap::new(),
            keys: HashMap::new(),
            agent_legs: HashMap::new(),
            rings: HashMap::new(),
            dialling: HashMap::new(),
            records,
            recordings,
            unavailable,
            lookups: None,
            acd: None,
            workers: None,
            music_on_hold: vec![Arc::new(default_music_on_hold())],
            calls: 0,
            webrtc: None,
            webrtc_legs: HashMap::new(),
            monitor_rings: HashMap::new(),
            monitors: HashMap::new(),
        }
    }

    /// Ticket look-ups (the IVR's `ticket_status` node) go to `lookups`.
    pub fn with_lookups(
        mut self,
        lookups: tokio::sync::mpsc::UnboundedSender<lookup::LookupRequest>,
    ) -> Self {
        self.lookups = Some(lookups);
        self
    }

    /// The IVR's queue actions go to the ACD task.
    pub fn with_acd(mut self, acd: crate::acd::service::AcdHandle) -> Self {
        self.acd = Some(acd);
        self
    }

    /// Agents registered over WebSocket (browsers) get their media through `gateway`.
    pub fn with_webrtc(mut self, gateway: Arc<crate::engine::webrtc::Gateway>) -> Self {
        self.webrtc = Some(gateway);
        self
    }

    /// Closes (drops) the browser legs whose agent leg is over.
    fn prune_webrtc(&mut self) {
        if !self.webrtc_legs.is_empty() {
            let (legs, monitors) = (&self.legs_b, &self.monitors);
            self.webrtc_legs
                .retain(|d, _| legs.contains_key(d) || monitors.contains_key(d));
        }
    }

    /// The SDP offer for an agent's phone at `peer`: a browser leg through the gateway when
    /// the phone registered over WebSocket, else plain RTP on `local`.
    fn agent_offer(
        &self,
        peer: Peer,
        local: Local,
        first: sdp::Codec,
    ) -> (Vec<u8>, Option<crate::engine::webrtc::WebrtcLeg>) {
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

    fn start_workers(&mut self) -> Option<&mut Workers> {
        if self.workers.is_none() {
            let shared = Shared {
                ports: Arc::clone(&self.ports),
                engine: self.engine.clone(),
                runtime: tokio::runtime::Handle::try_current().ok(),
                calendar: Arc::clone(&self.calendar),
                inactivity: self.cfg.inactivity,
                unavailable: self.unavailable.clone(),
                lookups: self.lookups.clone(),
                acd: self.acd.clone(),
                records: self.records.clone(),
                recordings: self.recordings.clone(),
                finished: Arc::clone(&self.finished),
                realtime: self.cfg.realtime,
                bind: self.cfg.bind,
                announce: self.cfg.announce,
                music_on_hold: self.music_on_hold.clone(),
                ringback: vec![Arc::new(ringback_tone())],
            };
            match Workers::start(self.cfg.workers, shared) {
                Ok(w) => self.workers = Some(w),
                Err(e) => tracing::error!(error = %e, "cannot start the media workers"),
            }
        }
        self.workers.as_mut()
    }

    fn tell(&self, live: &Live, news: ToMedia) {
        if let Some(w) = &self.workers {
            w.news(live.worker, live.key, news);
        }
    }

    /// Calls in progress.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    fn forget_finished(&mut self, ep: &mut Endpoint, now: Instant) {
        self.prune_webrtc();
        let done: Vec<(DialogId, u64)> = match self.finished.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => return,
        };
        if done.is_empty() {
            return;
        }
        let keys: std::collections::HashSet<u64> = done.iter().map(|(_, k)| *k).collect();
        for (d, k) in done {
            self.live.remove(&d);
            self.keys.remove(&k);
            self.agent_legs.remove(&k);
        }
        // Agents' phones still ringing for a call the media side ended stop ringing.
        let stale: Vec<TxId> = self
            .rings
            .iter()
            .filter(|(_, r)| keys.contains(&r.key))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in stale {
            self.rings.remove(&tx);
            let _ = ep.cancel(now, tx);
        }
        self.legs_b.retain(|_, (_, k, _, _)| !keys.contains(k));
        self.transfers.retain(|_, (_, k, _)| !keys.contains(k));
        // The worker hung up the supervisors' legs of its ended calls; phones still ringing
        // to join one stop.
        self.monitors.retain(|_, (_, k, _)| !keys.contains(k));
        self.cancel_monitor_rings(ep, now, |k| keys.contains(&k));
        metrics::gauge!("hotline_calls_live").set(self.live.len() as f64);
    }

    fn invite(&mut self, ep: &mut Endpoint, now: Instant, tx: TxId, request: Message) {
        // The offer, if the INVITE has one.
        let offer = match body_sdp(&request) {
            Ok(o) => o,
            Err(status) => {
                let mut r = final_response(&request, status, tx);
                if status == 415 {
                    r.push_header(HeaderName::Other("Accept".into()), "application/sdp");
                }
                let _ = ep.respond(now, tx, r);
                return;
            }
        };
        let Some((local, socket, rtcp_socket)) = self.bind_leg() else {
            metrics::counter!("hotline_calls_refused_total", "reason" => "ports").increment(1);
            tracing::warn!("call refused: no RTP port free");
            let mut r = final_response(&request, 503, tx);
            r.push_header(HeaderName::RetryAfter, &RETRY_AFTER_SECS.to_string());
            let _ = ep.respond(now, tx, r);
            return;
        };
        let port = local.addr.port();
        self.calls += 1;
        let (body, negotiated) = match &offer {
            Some(o) => match sdp::answer(o, local) {
                Ok((answer, n)) => (answer, Some(n)),
                Err(e) => {
                    self.release_port(port);
                    tracing::info!(error = %e, "call refused: SDP offer not acceptable");
                    let mut r = final_response(&request, e.status(), tx);
                    r.push_header(
                        HeaderName::Other("Warning".into()),
                        &format!("304 hotline \"{e}\""),
                    );
                    let _ = ep.respond(now, tx, r);
                    return;
                }
            },
            None => (sdp::offer(local, Direction::SendRecv), None),
        };
        let tag = format!("hl{}", ep.unique());
        let mut ok = Message::response_to(&request, 200);
        if let Some(to) = request.header(&HeaderName::To) {
            ok.replace_first_value(&HeaderName::To, &format!("{to};tag={tag}"));
        }
        ok.push_header(HeaderName::Allow, hotline_sip::endpoint::ALLOW);
        ok.set_body(Some("application/sdp"), body.to_string().into_bytes());
        if let Err(e) = ep.respond(now, tx, ok) {
            tracing::warn!(error = ?e, "answering the call failed");
            self.release_port(port);
            return;
        }
        let dialog = DialogId {
            call_id: request.call_id().unwrap_or_default().to_string(),
            local_tag: tag,
            remote_tag: request
                .from_header()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default(),
        };
        let user_of = |uri: Option<hotline_sip::message::Uri<'_>>| {
            uri.and_then(|u| u.as_sip().and_then(|s| s.user).map(str::to_string))
                .unwrap_or_default()
        };
        let caller = user_of(request.from_header().map(|f| f.uri));
        let called = user_of(request.request_uri());
        let script = self.scripts.current();
        let codec = negotiated.map_or(sdp::Codec::Pcmu, |n| n.codec);
        let call = IvrCall::new(
            script,
            codec,
            negotiated.and_then(|n| n.dtmf),
            (crate::random::u64() >> 32) as u32,
            crate::random::u64(),
        )
        .with_ptime(negotiated.map_or(20, |n| n.ptime))
        .with_hold_music(self.music_on_hold.clone());
        let key = self.calls;
        let new = NewCall {
            key,
            socket,
            rtcp_socket,
            port,
            call,
            negotiated,
            dialog: dialog.clone(),
            record: new_record(&dialog.call_id, &caller, &called),
        };
        let Some(workers) = self.start_workers() else {
            // Answered but nothing can carry the audio: hang up at once.
            let _ = ep.bye(now, &dialog);
            self.release_port(port);
            return;
        };
        let worker = workers.add(new);
        let from = if caller.is_empty() {
            "anonymous".to_string()
        } else {
            caller
        };
        metrics::counter!("hotline_calls_answered_total").increment(1);
        let live = Live {
            worker,
            key,
            local,
            offered: offer.is_none(),
            codec: negotiated.map_or(sdp::Codec::Pcmu, |n| n.codec),
        };
        self.admit(dialog, live, from);
    }

    /// A call now in a media worker: known by its dialog and by its key from here on.
    fn admit(&mut self, dialog: DialogId, live: Live, from: String) {
        self.keys
            .insert(live.key, (live.worker, dialog.clone(), from));
        self.live.insert(dialog, live);
        metrics::gauge!("hotline_calls_live").set(self.live.len() as f64);
    }

    /// A port pair for a new leg and our side of its SDP (`None`: the range is used up).
    fn bind_leg(&self) -> Option<(Local, std::net::UdpSocket, std::net::UdpSocket)> {
        let (port, socket, rtcp_socket) = ports::bind_pair(&self.ports, self.cfg.bind)?;
        let local = Local {
            addr: SocketAddr::new(self.cfg.announce, port),
            session_id: crate::random::u64() >> 33,
            version: 1,
        };
        Some((local, socket, rtcp_socket))
    }

    /// A re-INVITE or UPDATE: hold, unhold, a new address, or a session refresh.
    fn modify(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        dialog: DialogId,
        tx: TxId,
        request: Message,
    ) {
        // The caller's leg, or a transfer target's.
        let (worker, key, local, leg_b) = if let Some(live) = self.live.get_mut(&dialog) {
            (live.worker, live.key, &mut live.local, false)
        } else if let Some((worker, key, local, _)) = self.legs_b.get_mut(&dialog) {
            (*worker, *key, local, true)
        } else if self.monitors.contains_key(&dialog) {
            // A supervisor's leg keeps the media it was set up with: a re-offer is refused and
            // the leg goes on as it was (RFC 3261 14.1), rather than 481 ending it.
            let _ = ep.respond(now, tx, final_response(&request, 488, tx));
            return;
        } else {
            let _ = ep.respond(now, tx, final_response(&request, 481, tx));
            return;
        };
        let mut ok = Message::response_to(&request, 200);
        let mut news = None;
        match body_sdp(&request) {
            Err(status) => {
                let _ = ep.respond(now, tx, final_response(&request, status, tx));
                return;
            }
            // A refresh without SDP (UPDATE) changes nothing.
            Ok(None) if request.method() == Some(&Method::Update) => ok.set_body(None, Vec::new()),
            Ok(None) => {
                local.version += 1;
                let offer = sdp::offer(*local, Direction::SendRecv);
                ok.set_body(Some("application/sdp"), offer.to_string().into_bytes());
            }
            Ok(Some(offer)) => {
                let mut next = *local;
                next.version += 1;
                match sdp::answer(&offer, next) {
                    Ok((answer, n)) => {
                        *local = next;
                        news = Some(if leg_b {
                            ToMedia::UpdateB(n)
                        } else {
                            ToMedia::Update(n)
                        });
                        ok.set_body(Some("application/sdp"), answer.to_string().into_bytes());
                    }
                    Err(e) => {
                        // The call goes on as it was (RFC 3264 8: a refused re-offer keeps
                        // the old session).
                        let _ = ep.respond(now, tx, final_response(&request, e.status(), tx));
                        return;
                    }
                }
            }
        }
        if let (Some(n), Some(w)) = (news, &self.workers) {
            w.news(worker, key, n);
        }
        let _ = ep.respond(now, tx, ok);
    }
}

impl Calls {
    /// Adds a ring of an agent's phone, and how it ended, to the call's record.
    fn ring_done(&self, r: Ringing, result: &str) {
        if let (Some((worker, _, _)), Some(w)) = (self.keys.get(&r.key), &self.workers) {
            w.news(
                *worker,
                r.key,
                ToMedia::RingDone(record::RingRecord {
                    agent: r.agent,
                    started_at: r.since,
                    ended_at: Utc::now(),
                    result: result.to_string(),
                }),
            );
        }
    }

    fn acd_send(&self, c: crate::acd::service::Command) {
        if let Some(acd) = &self.acd {
            acd.send(c);
        }
    }

    /// The ACD offers a call to agents: their phones ring, from the caller's number, with an
    /// offer for the call's agent leg (set up in the worker at the first offer, kept for the
    /// next ones).
    fn ring(&mut self, ep: &mut Endpoint, now: Instant, r: crate::acd::service::RingAgents) {
        use crate::acd::service::Command as Acd;
        if let Some(dial) = r.callback {
            return self.dial_callback(ep, now, r.call, r.agents, dial);
        }
        let Some((worker, _, caller)) = self.keys.get(&r.call).cloned() else {
            return; // the caller is gone; the ACD hears it from the worker
        };
        let local = match self.agent_legs.get(&r.call) {
            Some(l) => *l,
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
                if let Some(w) = &self.workers {
                    w.news(
                        worker,
                        r.call,
                        ToMedia::AgentLeg {
                            socket,
                            rtcp_socket,
                            port,
                        },
                    );
                }
                self.agent_legs.insert(r.call, local);
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
                let since = Utc::now();
                self.ring_done(
                    Ringing {
                        key: r.call,
                        agent,
                        since,
                        browser: None,
                    },
                    "not registered",
                );
                self.acd_send(Acd::RingFailed {
                    call: r.call,
                    agent,
                    miss: true,
                });
                continue;
            };
            let (offer, browser) = self.agent_offer(peer, local, codec);
            match ep.invite(now, peer, &uri, &caller, Some(&offer)) {
                Ok(tx) => {
                    tracing::info!(agent, %uri, browser = browser.is_some(), "ringing the agent's phone");
                    self.rings.insert(
                        tx,
                        Ringing {
                            key: r.call,
                            agent,
                            since: Utc::now(),
                            browser,
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

    /// The call in progress with this Call-ID as an agent (`asking`; `None`: a supervisor)
    /// may act on it: its worker, its key and its agent leg (dialog, agent) if it has one.
    /// An agent may act only on a call bridged to that agent.
    #[allow(clippy::type_complexity)]
    fn agent_call(
        &self,
        call_id: &str,
        asking: Option<u64>,
    ) -> Result<(usize, u64, Option<(DialogId, u64)>), TransferRefused> {
        let Some((_, live)) = self.live.iter().find(|(d, _)| d.call_id == call_id) else {
            return Err(TransferRefused::NoCall(call_id.to_string()));
        };
        let (worker, key) = (live.worker, live.key);
        let agent_leg = self.legs_b.iter().find_map(|(d, (_, k, _, a))| match a {
            Some(agent) if *k == key => Some((d.clone(), *agent)),
            _ => None,
        });
        if let Some(asking) = asking
            && agent_leg.as_ref().map(|(_, a)| *a) != Some(asking)
        {
            return Err(TransferRefused::NotYours(call_id.to_string()));
        }
        Ok((worker, key, agent_leg))
    }

    /// The agent on the call (or a supervisor) holds the caller or takes it back.
    fn hold_control(&mut self, h: HoldControl) {
        let (worker, key) = match self.agent_call(&h.call_id, h.agent) {
            Ok((worker, key, Some(_))) => (worker, key),
            Ok((_, _, None)) => {
                let _ = h.reply.send(Err(TransferRefused::NoCall(h.call_id)));
                return;
            }
            Err(e) => {
                let _ = h.reply.send(Err(e));
                return;
            }
        };
        if let Some(w) = &self.workers {
            w.news(worker, key, ToMedia::AgentHold(h.hold));
        }
        let _ = h.reply.send(Ok(()));
    }

    /// Stops the supervisors' phones ringing to join the calls `which` picks.
    fn cancel_monitor_rings(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        which: impl Fn(u64) -> bool,
    ) {
        let stale: Vec<TxId> = self
            .monitor_rings
            .iter()
            .filter(|(_, r)| which(r.key))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in stale {
            if let Some(r) = self.monitor_rings.remove(&tx) {
                self.release_port(r.port);
            }
            let _ = ep.cancel(now, tx);
        }
    }

    /// The caller's G.711 law, offered first to a browser leg of the call so it passes
    /// through untranscoded.
    fn caller_codec(&self, key: u64) -> sdp::Codec {
        self.live
            .values()
            .find(|l| l.key == key)
            .map_or(sdp::Codec::Pcmu, |l| l.codec)
    }

    /// Gives an RTP port pair back.
    fn release_port(&self, port: u16) {
        if let Ok(mut p) = self.ports.lock() {
            p.release(port);
        }
    }

    /// A supervisor joins a call (its phone rings), changes mode, or leaves.
    fn monitor_control(&mut self, ep: &mut Endpoint, now: Instant, m: MonitorControl) {
        let reply = |r| {
            let _ = m.reply.send(r);
        };
        let (worker, key) = match self.agent_call(&m.call_id, None) {
            Ok((worker, key, Some(_))) => (worker, key),
            Ok((_, _, None)) => return reply(Err(TransferRefused::NotTalking(m.call_id))),
            Err(e) => return reply(Err(e)),
        };
        let on_call = self
            .monitors
            .iter()
            .find(|(_, (_, k, _))| *k == key)
            .map(|(d, (_, _, device))| (d.clone(), device.clone()));
        let ringing = self.monitor_rings.values_mut().find(|r| r.key == key);
        // One supervisor at a time on a call: another's mode is not changed under them.
        let holder = on_call
            .as_ref()
            .map(|(_, d)| d.clone())
            .or_else(|| ringing.as_ref().map(|r| r.device.clone()));
        if let (Some(_), Some(holder), Some(asking)) = (m.mode, &holder, &m.device)
            && holder != asking
        {
            return reply(Err(TransferRefused::Monitored(m.call_id)));
        }
        let on_call = on_call.map(|(d, _)| d);
        let Some(mode) = m.mode else {
            // Leave: hang up the leg, or stop its phone ringing.
            let had_ring = ringing.is_some();
            self.cancel_monitor_rings(ep, now, |k| k == key);
            if let Some(dialog) = on_call {
                self.monitors.remove(&dialog);
                let _ = ep.bye(now, &dialog);
                if let Some(w) = &self.workers {
                    w.news(worker, key, ToMedia::MonitorEnded);
                }
            } else if !had_ring {
                return reply(Err(TransferRefused::NoCall(format!(
                    "{} (no supervisor on it)",
                    m.call_id
                ))));
            }
            return reply(Ok("left"));
        };
        if let Some(r) = ringing {
            r.mode = mode;
            return reply(Ok("ringing"));
        }
        if on_call.is_some() {
            if let Some(w) = &self.workers {
                w.news(worker, key, ToMedia::MonitorMode(mode));
            }
            return reply(Ok("changed"));
        }
        let device = m.device.unwrap_or_default();
        let Some((uri, peer)) = agent_contact(ep, now, &device) else {
            return reply(Err(TransferRefused::NoPhone(device)));
        };
        let Some((local, socket, rtcp_socket)) = self.bind_leg() else {
            return reply(Err(TransferRefused::NoPhone(format!(
                "{device} (no RTP port free)"
            ))));
        };
        let (offer, browser) = self.agent_offer(peer, local, self.caller_codec(key));
        // From `monitor`: the page answers it by itself (the caller's number is not shown).
        match ep.invite(now, peer, &uri, "monitor", Some(&offer)) {
            Ok(tx) => {
                tracing::info!(%uri, mode = mode.name(), "ringing a supervisor's phone to join a call");
                self.monitor_rings.insert(
                    tx,
                    MonitorRing {
                        worker,
                        key,
                        device: device.clone(),
                        mode,
                        port: local.addr.port(),
                        socket,
                        rtcp_socket,
                        browser,
                    },
                );
                reply(Ok("ringing"))
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot ring the supervisor's phone");
                self.release_port(local.addr.port());
                reply(Err(TransferRefused::NoPhone(device)))
            }
        }
    }

    /// The supervisor's phone answered: its leg joins the call's bridge.
    fn monitor_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: TxId,
        dialog: DialogId,
        response: &Message,
    ) {
        let Some(r) = self.monitor_rings.remove(&tx) else {
            return;
        };
        let answer = leg_answer(r.browser.as_ref(), response);
        let Some(Ok(negotiated)) = answer else {
            tracing::warn!("the supervisor's phone answered without a usable SDP answer");
            self.release_port(r.port);
            let _ = ep.bye(now, &dialog);
            return;
        };
        if let Some(leg) = r.browser {
            self.webrtc_legs.insert(dialog.clone(), leg);
        }
        self.monitors
            .insert(dialog.clone(), (r.worker, r.key, r.device.clone()));
        if let Some(w) = &self.workers {
            w.news(
                r.worker,
                r.key,
                ToMedia::Monitor {
                    dialog,
                    negotiated,
                    socket: r.socket,
                    rtcp_socket: r.rtcp_socket,
                    port: r.port,
                    mode: r.mode,
                },
            );
        }
    }

    /// An agent or supervisor transfers a call in progress: the agent's leg is hung up and
    /// the worker sends the caller on (an emergency route, with ringback, or a queue).
    fn transfer_control(&mut self, ep: &mut Endpoint, now: Instant, t: TransferControl) {
        let (worker, key, agent_leg) = match self.agent_call(&t.call_id, t.agent) {
            Ok(x) => x,
            Err(e) => {
                let _ = t.reply.send(Err(e));
                return;
            }
        };
        let news = match &t.to {
            TransferTarget::Emergency(name) => match self.cfg.emergency_routes.get(name) {
                Some(uri) => ToMedia::TransferOut { uri: uri.clone() },
                None => {
                    let _ = t.reply.send(Err(TransferRefused::NoRoute(name.clone())));
                    return;
                }
            },
            TransferTarget::Queue(q) => ToMedia::Requeue {
                queue: Some(q.clone()),
                agent: None,
            },
            TransferTarget::Agent(a) => ToMedia::Requeue {
                queue: None,
                agent: Some(*a),
            },
        };
        if let Some((dialog, _)) = agent_leg {
            self.legs_b.remove(&dialog);
            let _ = ep.bye(now, &dialog);
        }
        // A supervisor on the call leaves with the agent (the worker hangs the leg up).
        self.monitors.retain(|_, (_, k, _)| *k != key);
        self.cancel_monitor_rings(ep, now, |k| k == key);
        self.agent_legs.remove(&key);
        let done = match &news {
            ToMedia::TransferOut { uri } => uri.clone(),
            ToMedia::Requeue {
                queue: Some(queue), ..
            } => queue.clone(),
            ToMedia::Requeue {
                agent: Some(agent), ..
            } => format!("agent {agent}"),
            _ => String::new(),
        };
        tracing::info!(call_id = %t.call_id, to = %done, "the agent transferred the caller");
        if let Some(w) = &self.workers {
            w.news(worker, key, news);
        }
        let _ = t.reply.send(Ok(done));
    }

    /// A callback's place came up: the caller is called through the callback route, from the
    /// number it dialled; the agents ring once it answers.
    fn dial_callback(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        agents: Vec<(u64, Option<String>)>,
        dial: crate::acd::service::CallbackDial,
    ) {
        let fail = |status: u16| crate::acd::service::Command::CallbackFailed { call: key, status };
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
                self.dialling.insert(
                    tx,
                    Dialling {
                        key,
                        agents,
                        dial,
                        local,
                        port,
                        socket,
                        rtcp_socket,
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

    /// The caller answered its callback: the call runs in a media worker like an incoming
    /// one (waiting for its agent with music on hold, recorded), and the agents ring.
    fn callback_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: TxId,
        dialog: DialogId,
        response: &Message,
    ) {
        let Some(d) = self.dialling.remove(&tx) else {
            return;
        };
        let answer = sdp_answer(response);
        let Some(Ok(negotiated)) = answer else {
            tracing::warn!("the callback was answered without a usable SDP answer");
            let _ = ep.bye(now, &dialog);
            self.release_port(d.port);
            return self.acd_send(crate::acd::service::Command::CallbackFailed {
                call: d.key,
                status: 488,
            });
        };
        let call = IvrCall::new(
            self.scripts.current(),
            negotiated.codec,
            negotiated.dtmf,
            (crate::random::u64() >> 32) as u32,
            crate::random::u64(),
        )
        .with_ptime(negotiated.ptime)
        .with_hold_music(self.music_on_hold.clone())
        .for_callback();
        let mut record = new_record(&dialog.call_id, &d.dial.number, &d.dial.called);
        record.queue = Some(d.dial.queue.clone());
        record.callback = true;
        let new = NewCall {
            key: d.key,
            socket: d.socket,
            rtcp_socket: d.rtcp_socket,
            port: d.port,
            call,
            negotiated: Some(negotiated),
            dialog: dialog.clone(),
            record,
        };
        let Some(workers) = self.start_workers() else {
            let _ = ep.bye(now, &dialog);
            return;
        };
        let dialog_call_id = dialog.call_id.clone();
        let worker = workers.add(new);
        workers.news(worker, d.key, ToMedia::Confirmed(None));
        let live = Live {
            worker,
            key: d.key,
            local: d.local,
            offered: false,
            codec: negotiated.codec,
        };
        self.admit(dialog, live, d.dial.number.clone());
        tracing::info!("the caller answered its callback; ringing the agent");
        self.acd_send(crate::acd::service::Command::CallbackAnswered {
            call: d.key,
            call_id: dialog_call_id,
        });
        self.ring(
            ep,
            now,
            crate::acd::service::RingAgents {
                call: d.key,
                agents: d.agents,
                callback: None,
            },
        );
    }

    /// An agent's phone answered: the caller is bridged to it, the other phones ringing for
    /// the call stop, and the ACD puts the agent on the call.
    fn agent_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: TxId,
        dialog: DialogId,
        response: &Message,
    ) {
        let Some(Ringing {
            key,
            agent,
            since,
            browser,
        }) = self.rings.remove(&tx)
        else {
            return;
        };
        let (Some((worker, _, _)), Some(local)) = (
            self.keys.get(&key).cloned(),
            self.agent_legs.get(&key).copied(),
        ) else {
            let _ = ep.bye(now, &dialog); // the caller hung up meanwhile
            return;
        };
        let others: Vec<TxId> = self
            .rings
            .iter()
            .filter(|(_, r)| r.key == key)
            .map(|(tx, _)| *tx)
            .collect();
        for other in others {
            if let Some(r) = self.rings.remove(&other) {
                self.ring_done(r, "answered elsewhere");
            }
            let _ = ep.cancel(now, other);
        }
        let answer = leg_answer(browser.as_ref(), response);
        let Some(Ok(negotiated)) = answer else {
            tracing::warn!(
                agent,
                "the agent's phone answered without a usable SDP answer"
            );
            drop(browser); // closes the browser leg, if any
            self.ring_done(
                Ringing {
                    key,
                    agent,
                    since,
                    browser: None,
                },
                "failed",
            );
            let _ = ep.bye(now, &dialog);
            self.acd_send(crate::acd::service::Command::RingFailed {
                call: key,
                agent,
                miss: true,
            });
            return;
        };
        tracing::info!(agent, "the agent answered");
        if let Some(leg) = browser {
            self.webrtc_legs.insert(dialog.clone(), leg);
        }
        self.ring_done(
            Ringing {
                key,
                agent,
                since,
                browser: None,
            },
            "answered",
        );
        self.legs_b
            .insert(dialog.clone(), (worker, key, local, Some(agent)));
        self.acd_send(crate::acd::service::Command::Answered { call: key, agent });
        if let Some(w) = &self.workers {
            w.news(
                worker,
                key,
                ToMedia::Bridged {
                    dialog,
                    negotiated,
                    agent: Some(agent),
                },
            );
        }
    }
}

/// The answer of a phone we called: a browser's (WebRTC SDP) goes to its gateway leg and the
/// engine side is plain RTP on the leg's loopback socket; a SIP phone's is its SDP.
fn leg_answer(
    browser: Option<&crate::engine::webrtc::WebrtcLeg>,
    response: &Message,
) -> Option<Result<Negotiated, sdp::SdpError>> {
    match browser {
        Some(leg) => browser_answer(leg, response),
        None => sdp_answer(response),
    }
}

/// A browser's answer (WebRTC SDP) handed to its gateway leg.
fn browser_answer(
    leg: &crate::engine::webrtc::WebrtcLeg,
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

/// The record of a call just answered: its parties and start.
fn new_record(call_id: &str, caller: &str, called: &str) -> CallRecord {
    let now = Utc::now();
    CallRecord {
        call_id: call_id.to_string(),
        caller: caller.to_string(),
        called: called.to_string(),
        started_at: now,
        answered_at: None,
        ended_at: now,
        recording: None,
        end_reason: String::new(),
        codec: None,
        ivr_path: Vec::new(),
        ivr_keys: String::new(),
        ivr_vars: Default::default(),
        queue: None,
        queued_at: None,
        agent_id: None,
        agent_answered_at: None,
        callback: false,
        callback_requested: false,
        rings: Vec::new(),
        transfer_to: None,
        score: None,
        packets_sent: 0,
        packets_received: 0,
        quality: None,
    }
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

/// Music on hold when none is configured: a soft, slow chime (C-E-G-E, 0.4 s a note, at
/// about -26 dBFS, with a gentle decay), 1.6 s looped, so a held party knows the call is
/// still there.
pub fn default_music_on_hold() -> Prompt {
    let notes = [261.63f64, 329.63, 392.0, 329.63];
    let per_note = 3200usize;
    let samples: Vec<i16> = notes
        .iter()
        .flat_map(|f| {
            (0..per_note).map(move |i| {
                let t = i as f64 / 8000.0;
                let envelope = (-3.0 * t).exp();
                (1600.0 * envelope * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
            })
        })
        .collect();
    Prompt::from_linear("music on hold", &samples)
}

/// The ringback tone heard on China's networks: 450 Hz, 1 s on and 4 s off, here at about
/// -18 dBFS.
pub fn ringback_tone() -> Prompt {
    let samples: Vec<i16> = (0..5 * 8000)
        .map(|i| {
            if i < 8000 {
                (4000.0 * (2.0 * std::f64::consts::PI * 450.0 * f64::from(i) / 8000.0).sin()) as i16
            } else {
                0
            }
        })
        .collect();
    Prompt::from_linear("ringback", &samples)
}

/// The SDP offer of a request: `Ok(None)` without a body; `Err(status)` for a body that is
/// not SDP (415) or not valid SDP (400).
fn body_sdp(request: &Message) -> Result<Option<Sdp>, u16> {
    if request.body().is_empty() {
        return Ok(None);
    }
    let is_sdp = request.content_type().is_some_and(|t| {
        t.kind.eq_ignore_ascii_case("application") && t.subtype.eq_ignore_ascii_case("sdp")
    });
    if !is_sdp {
        return Err(415);
    }
    let text = std::str::from_utf8(request.body()).map_err(|_| 400u16)?;
    Sdp::parse(text).map(Some).map_err(|e| e.status())
}

/// A final non-2xx response without a body, with a To tag when the request has none.
fn final_response(request: &Message, status: u16, tx: TxId) -> Message {
    let mut r = Message::response_to(request, status);
    if request.to_header().is_some_and(|t| t.tag().is_none())
        && let Some(to) = request.header(&HeaderName::To)
    {
        r.replace_first_value(&HeaderName::To, &format!("{to};tag=hl{tx:x}"));
    }
    r.set_body(None, Vec::new());
    r
}

fn end_reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::RemoteBye => "caller hung up",
        EndReason::SessionExpired => "session expired",
        EndReason::NoAck => "no ack",
    }
}

impl Calls {
    /// Pauses or resumes a call's recording; the reply says whether the call was found.
    fn recording_control(&mut self, control: RecordingControl) {
        let live = self.live.iter().find(|(d, _)| d.call_id == control.call_id);
        let found = match (live, &self.workers) {
            (Some((_, live)), Some(w)) => {
                w.news(
                    live.worker,
                    live.key,
                    ToMedia::PauseRecording(control.pause),
                );
                true
            }
            _ => false,
        };
        let _ = control.reply.send(found);
    }

    /// The ACD stops agents' phones ringing for a call (ring timeout, caller gone).
    fn stop_ringing(&mut self, ep: &mut Endpoint, now: Instant, s: StopRinging) {
        let stop: Vec<TxId> = self
            .rings
            .iter()
            .filter(|(_, r)| r.key == s.call && s.agents.contains(&r.agent))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in stop {
            if let Some(r) = self.rings.remove(&tx) {
                self.ring_done(r, "no answer");
            }
            let _ = ep.cancel(now, tx);
        }
    }

    /// The ACD has a waiting caller told its place and the estimated wait.
    fn announce(&self, a: Announce) {
        if let (Some((worker, _, _)), Some(w)) = (self.keys.get(&a.call), &self.workers) {
            w.news(
                *worker,
                a.call,
                ToMedia::Announce {
                    place: a.place,
                    minutes: a.minutes,
                },
            );
        }
    }

    /// A media worker's transfer call is placed (the IVR's `transfer` node).
    fn place_transfer(&mut self, ep: &mut Endpoint, now: Instant, t: TransferRequest) {
        let peer = Peer {
            addr: t.target,
            transport: TransportKind::Udp,
        };
        match ep.invite(now, peer, &t.uri, &t.from_user, Some(&t.offer)) {
            Ok(tx) => {
                tracing::info!(uri = %t.uri, "transferring a call");
                self.transfers.insert(tx, (t.worker, t.key, t.local));
            }
            Err(e) => {
                tracing::warn!(error = ?e, uri = %t.uri, "cannot place the transfer call");
                if let Some(w) = &self.workers {
                    w.news(t.worker, t.key, ToMedia::TransferFailed(500));
                }
            }
        }
    }
}

impl CallHandler for Calls {
    type Msg = Control;

    fn attach(&mut self, engine: EngineHandle<Control>) {
        self.engine = Some(engine);
        self.start_workers();
    }

    fn message(&mut self, ep: &mut Endpoint, now: Instant, message: Control) {
        self.forget_finished(ep, now);
        match message {
            Control::Recording(control) => self.recording_control(control),
            Control::Transfer(t) => self.transfer_control(ep, now, t),
            Control::Hold(h) => self.hold_control(h),
            Control::Monitor(m) => self.monitor_control(ep, now, m),
            Control::Offer(Offer::Ring(r)) => self.ring(ep, now, r),
            Control::Offer(Offer::Stop(s)) => self.stop_ringing(ep, now, s),
            Control::Offer(Offer::Announce(a)) => self.announce(a),
            Control::PlaceTransfer(t) => self.place_transfer(ep, now, t),
        }
    }

    fn handle(&mut self, ep: &mut Endpoint, now: Instant, event: EndpointEvent) {
        self.forget_finished(ep, now);
        match event {
            EndpointEvent::Request { tx, request, .. }
                if request.method() == Some(&Method::Invite) =>
            {
                self.invite(ep, now, tx, request);
            }
            EndpointEvent::Request { tx, request, .. } => {
                // Outside a dialog: nothing of ours (BYE and INFO of a known call come as
                // CallEnded and Info).
                let _ = ep.respond(now, tx, final_response(&request, 481, tx));
            }
            EndpointEvent::CallConfirmed { dialog, ack } => {
                if let Some(live) = self.live.get(&dialog) {
                    let answer: Option<Negotiated> = if live.offered {
                        let parsed = std::str::from_utf8(ack.body())
                            .ok()
                            .and_then(|t| Sdp::parse(t).ok());
                        match parsed.as_ref().map(sdp::accept_answer) {
                            Some(Ok(n)) => Some(n),
                            _ => {
                                tracing::info!("the ACK carries no usable SDP answer: hanging up");
                                self.tell(live, ToMedia::Ended("no ack"));
                                let _ = ep.bye(now, &dialog);
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    let codec = answer.as_ref().map(|n| n.codec);
                    self.tell(live, ToMedia::Confirmed(answer));
                    if let Some(codec) = codec
                        && let Some(live) = self.live.get_mut(&dialog)
                    {
                        live.codec = codec;
                    }
                }
            }
            EndpointEvent::CallEnded { dialog, reason } => {
                if let Some(live) = self.live.remove(&dialog) {
                    // A transfer still ringing is cancelled with its caller.
                    let ringing: Vec<TxId> = self
                        .transfers
                        .iter()
                        .filter(|(_, (_, k, _))| *k == live.key)
                        .map(|(tx, _)| *tx)
                        .collect();
                    for tx in ringing {
                        self.transfers.remove(&tx);
                        let _ = ep.cancel(now, tx);
                    }
                    // So are the agents' phones ringing for it.
                    let rings: Vec<TxId> = self
                        .rings
                        .iter()
                        .filter(|(_, r)| r.key == live.key)
                        .map(|(tx, _)| *tx)
                        .collect();
                    for tx in rings {
                        self.rings.remove(&tx);
                        let _ = ep.cancel(now, tx);
                    }
                    self.tell(&live, ToMedia::Ended(end_reason(reason)));
                } else if let Some((worker, key, _)) = self.monitors.remove(&dialog) {
                    tracing::info!("the supervisor hung up");
                    if let Some(w) = &self.workers {
                        w.news(worker, key, ToMedia::MonitorEnded);
                    }
                } else if let Some((worker, key, _, agent)) = self.legs_b.remove(&dialog)
                    && let Some(w) = &self.workers
                {
                    if agent.is_some() {
                        // The caller stays: the survey, or the IVR hangs up. A supervisor on
                        // the call goes with the agent (the worker hangs the leg up).
                        self.agent_legs.remove(&key);
                        self.monitors.retain(|_, (_, k, _)| *k != key);
                        w.news(worker, key, ToMedia::AgentHungUp);
                    } else {
                        w.news(worker, key, ToMedia::Ended("transfer target hung up"));
                    }
                }
            }
            EndpointEvent::Answered {
                tx,
                dialog,
                response,
            } if self.rings.contains_key(&tx) => {
                self.agent_answered(ep, now, tx, dialog, &response)
            }
            EndpointEvent::Answered {
                tx,
                dialog,
                response,
            } if self.monitor_rings.contains_key(&tx) => {
                self.monitor_answered(ep, now, tx, dialog, &response)
            }
            EndpointEvent::Failed { tx, status } if self.monitor_rings.contains_key(&tx) => {
                if let Some(r) = self.monitor_rings.remove(&tx) {
                    tracing::info!(status, "the supervisor's phone did not answer");
                    self.release_port(r.port);
                }
            }
            EndpointEvent::Answered {
                tx,
                dialog,
                response,
            } if self.dialling.contains_key(&tx) => {
                self.callback_answered(ep, now, tx, dialog, &response);
            }
            EndpointEvent::Failed { tx, status } if self.dialling.contains_key(&tx) => {
                if let Some(d) = self.dialling.remove(&tx) {
                    self.release_port(d.port);
                    self.acd_send(crate::acd::service::Command::CallbackFailed {
                        call: d.key,
                        status,
                    });
                }
            }
            EndpointEvent::Answered {
                tx,
                dialog,
                response,
            } => {
                let Some((worker, key, local)) = self.transfers.remove(&tx) else {
                    let _ = ep.bye(now, &dialog); // a call nobody is waiting for any more
                    return;
                };
                let answer = sdp_answer(&response);
                let news = match answer {
                    Some(Ok(negotiated)) => {
                        self.legs_b
                            .insert(dialog.clone(), (worker, key, local, None));
                        ToMedia::Bridged {
                            dialog,
                            negotiated,
                            agent: None,
                        }
                    }
                    _ => {
                        tracing::warn!("transfer target answered without a usable SDP answer");
                        let _ = ep.bye(now, &dialog);
                        ToMedia::TransferFailed(488)
                    }
                };
                if let Some(w) = &self.workers {
                    w.news(worker, key, news);
                }
            }
            EndpointEvent::Failed { tx, status } if self.rings.contains_key(&tx) => {
                if let Some(r) = self.rings.remove(&tx) {
                    let (call, agent) = (r.key, r.agent);
                    self.ring_done(
                        r,
                        match status {
                            486 | 600 => "busy",
                            603 => "declined",
                            404 | 410 | 480 => "unavailable",
                            408 => "no response",
                            _ => "failed",
                        },
                    );
                    tracing::info!(
                        call,
                        agent,
                        status,
                        "the agent's phone did not take the call"
                    );
                    self.acd_send(crate::acd::service::Command::RingFailed {
                        call,
                        agent,
                        miss: true,
                    });
                }
            }
            EndpointEvent::Failed { tx, status } => {
                if let (Some((worker, key, _)), Some(w)) =
                    (self.transfers.remove(&tx), &self.workers)
                {
                    w.news(worker, key, ToMedia::TransferFailed(status));
                }
            }
            EndpointEvent::Modify {
                dialog,
                tx,
                request,
            } => self.modify(ep, now, dialog, tx, request),
            EndpointEvent::Info { dialog, request } => {
                let subtype = request
                    .content_type()
                    .map(|t| t.subtype.to_ascii_lowercase())
                    .unwrap_or_default();
                if let (Some(live), Some(key)) =
                    (self.live.get(&dialog), info_digit(&subtype, request.body()))
                {
                    self.tell(live, ToMedia::Key(key));
                }
            }
            other => log_event(other),
        }
    }
}
