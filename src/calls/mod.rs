//! Calls: what the hotline does with the calls the signaling engine hands over.
//!
//! [`Calls`] is the [`CallHandler`] of `serve`. An INVITE is answered at once (the hotline
//! takes every call; GB/T 33358 wants no ringing wait): the SDP offer is answered on a port
//! pair from the RTP range (503 with Retry-After when the range is used up, 488 when no G.711
//! is offered, our offer in the 200 when the INVITE has none), and the call goes to the IVR
//! script in force (`admit.rs`). Each call then lives in a media worker ([`media`]: one
//! thread per core but one, each owning many calls' RTP sockets and
//! [`crate::ivr::call::IvrCall`]s); this handler only passes signaling news to it (ACK, INFO
//! keys, hold, hang-up). The recording of each call is
//! written by [`recording`]; its record goes to [`record`]'s writer at answer and at the end.
//!
//! The legs the node places for a call (`legs.rs`: an agent's phone, the caller of a callback,
//! a transfer target, a supervisor's phone) are one `Leg` type, kept by INVITE
//! transaction while they ring and by dialog once answered, with one answered path and one
//! failed path. A caller's [`Stage`] says where the call is as far as those legs go.
//!
//! A caller the script puts in a queue waits there hearing music on hold, with the script's
//! keys still live, until the ACD task ([`crate::acd::service`]) offers the call to agents
//! (an [`Offer`] through [`Control`], the handler's one message type): this handler then
//! rings each agent's registered phone (the registrar's binding) with an INVITE from the
//! caller's number, cancels rings the ACD stops (ring timeout, caller gone, answered
//! elsewhere), tells the ACD what each phone did, and has the worker bridge the caller to the
//! agent who answers. The HTTP API's controls (transfer, hold, monitor, recording pause) are
//! [`messages`], handled in `control.rs`.

mod admit;
mod control;
mod legs;
pub mod lookup;
pub mod media;
pub mod messages;
pub mod ports;
pub mod record;
pub mod recording;
#[cfg(test)]
mod tests;
mod tones;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_sip::endpoint::{DialogId, EndReason, Endpoint, EndpointEvent};
use hotline_sip::media::player::Prompt;
use hotline_sip::message::Method;
use hotline_sip::rtp::dtmf::info_digit;
use hotline_sip::rtp::ports::PortAllocator;
use hotline_sip::sdp::{self, Local, Negotiated, Sdp};
use hotline_sip::transaction::TxId;
use tokio::sync::mpsc;

use self::legs::Leg;
use self::media::{NewCall, Shared, ToMedia, Workers};
pub use self::messages::{
    Control, HoldControl, MonitorControl, MonitorMode, RecordingControl, TransferControl,
    TransferRefused, TransferTarget,
};
use self::record::CallEvent;
use self::recording::Recordings;
pub use self::tones::{default_music_on_hold, ringback_tone};
use crate::acd::service::Offer;
use crate::china::calendar::WorkCalendar;
use crate::engine::{CallHandler, EngineHandle, log_event};
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
    /// The numbers that may be called back (`acd.callback_numbers`; `None`: any): the
    /// callback is offered to no other caller, and no other number is dialled.
    pub callback_numbers: Option<Arc<regex::Regex>>,
    /// Where an agent may send a caller in an emergency: a name (110, 119, 120, 122) to a
    /// SIP URI with an IP address.
    pub emergency_routes: std::collections::BTreeMap<String, String>,
    /// The only addresses calls may come from (`sip.trunks`); empty: any.
    pub trunks: Vec<ipnet::IpNet>,
    /// Most calls in progress from one address that is neither a trunk nor loopback
    /// (`sip.max_calls_per_source`; 0: no cap).
    pub max_calls_per_source: usize,
}

/// Where a call in progress is, as far as the legs the node places for it go (the IVR's own
/// nodes, waiting in a queue among them, are the media worker's business).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// In the IVR (self-service, or waiting in a queue): no agent leg.
    Ivr,
    /// The ACD offers it: the agent leg's sockets are in the worker (our side of its SDP
    /// here, kept for the next offers) and agents' phones ring.
    Offered {
        /// Our side of the agent leg's SDP.
        agent_leg: Local,
    },
    /// Bridged to an agent.
    WithAgent {
        /// Our side of the agent leg's SDP.
        agent_leg: Local,
        /// The agent's leg.
        leg: DialogId,
        /// The agent.
        agent: u64,
    },
    /// Sent to a transfer target by the script or an agent: the worker holds its leg.
    Transferred,
}

impl Stage {
    /// Our side of the agent leg's SDP, once one is set up.
    fn agent_leg(&self) -> Option<Local> {
        match self {
            Stage::Offered { agent_leg } | Stage::WithAgent { agent_leg, .. } => Some(*agent_leg),
            Stage::Ivr | Stage::Transferred => None,
        }
    }
}

/// A call in progress, as the handler knows it (the worker holds its media and IVR).
struct Call {
    /// Its media worker.
    worker: usize,
    /// The caller's dialog.
    dialog: DialogId,
    /// The caller's number, as agents' phones display it (`anonymous` when none).
    caller: String,
    /// The address the INVITE came from (calls per source are capped).
    source: std::net::IpAddr,
    /// Our side of the caller's SDP.
    local: Local,
    /// Our 200 carried the offer: the ACK carries the answer.
    offered: bool,
    /// The caller's G.711 law (a browser agent's leg is offered it first).
    codec: sdp::Codec,
    stage: Stage,
}

/// Where calls' media runs: the media workers in production, a recorder in the call-path
/// tests (`tests.rs`), which run the handler on a virtual clock without media threads.
trait Media: Send {
    /// Hands a new call to a worker; returns the worker's index.
    fn add(&mut self, call: NewCall) -> usize;
    /// Passes news to the worker holding call `key`.
    fn news(&self, worker: usize, key: u64, news: ToMedia);
}

impl Media for Workers {
    fn add(&mut self, call: NewCall) -> usize {
        Workers::add(self, call)
    }

    fn news(&self, worker: usize, key: u64, news: ToMedia) {
        Workers::news(self, worker, key, news);
    }
}

/// The application's call handler: answers and runs calls through the IVR.
pub struct Calls {
    scripts: Arc<ScriptStore>,
    calendar: Arc<WorkCalendar>,
    cfg: CallsConfig,
    ports: Arc<Mutex<PortAllocator>>,
    engine: Option<EngineHandle<Control>>,
    /// Each call in progress by key (unique for the life of the process).
    calls: HashMap<u64, Call>,
    /// The callers' dialogs, to their call's key.
    by_dialog: HashMap<DialogId, u64>,
    /// Calls whose media has ended (the workers push them), for the handler to forget.
    finished: Arc<Mutex<Vec<(DialogId, u64)>>>,
    /// The legs the node placed that ring, by INVITE transaction.
    placed: HashMap<TxId, Leg>,
    /// The legs answered (agents', transfer targets', supervisors'), by dialog.
    up: HashMap<DialogId, Leg>,
    records: mpsc::UnboundedSender<CallEvent>,
    recordings: Option<Arc<Recordings>>,
    unavailable: Vec<Arc<Prompt>>,
    /// Where ticket look-ups go (none: the IVR says they are not available).
    lookups: Option<tokio::sync::mpsc::UnboundedSender<lookup::LookupRequest>>,
    /// The ACD task, told of the IVR's queue actions.
    acd: Option<crate::acd::service::AcdHandle>,
    /// Started when the engine attaches the handler (they need its handle).
    workers: Option<Box<dyn Media>>,
    /// Played to one side of a bridge while the other holds.
    music_on_hold: Vec<Arc<Prompt>>,
    /// Calls taken so far (the next call's key).
    taken: u64,
    /// Calls in progress per source address (for `max_calls_per_source`).
    per_source: HashMap<std::net::IpAddr, usize>,
    /// Browser agents' media (agents registered over WebSocket), when started.
    webrtc: Option<Arc<crate::engine::webrtc::Gateway>>,
    /// The node: while it drains new calls are refused; told how many calls are in progress.
    node: Arc<crate::node::NodeState>,
}

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
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            finished: Arc::default(),
            placed: HashMap::new(),
            up: HashMap::new(),
            records,
            recordings,
            unavailable,
            lookups: None,
            acd: None,
            workers: None,
            music_on_hold: vec![Arc::new(default_music_on_hold())],
            taken: 0,
            per_source: HashMap::new(),
            webrtc: None,
            node: Arc::default(),
        }
    }

    /// The node whose drain refuses new calls, and which learns how many are in progress.
    pub fn with_node(mut self, node: Arc<crate::node::NodeState>) -> Self {
        self.node = node;
        self
    }

    /// Tells the node how many calls are in progress: callers' calls whose media runs, and
    /// callbacks being dialled.
    fn note_live(&self) {
        let dialling = self.placed.values().filter(|l| l.is_callback()).count();
        self.node.set_live_calls(self.calls.len() + dialling);
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

    fn start_workers(&mut self) -> Option<&mut Box<dyn Media>> {
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
                callback_numbers: self.cfg.callback_numbers.clone(),
                music_on_hold: self.music_on_hold.clone(),
                ringback: vec![Arc::new(ringback_tone())],
            };
            match Workers::start(self.cfg.workers, shared) {
                Ok(w) => self.workers = Some(Box::new(w)),
                Err(e) => tracing::error!(error = %e, "cannot start the media workers"),
            }
        }
        self.workers.as_mut()
    }

    /// Passes news to the worker holding call `key` (nothing when the call is gone).
    fn tell(&self, key: u64, news: ToMedia) {
        if let (Some(call), Some(w)) = (self.calls.get(&key), &self.workers) {
            w.news(call.worker, key, news);
        }
    }

    /// Calls in progress (a caller who hung up no longer counts, while its worker ends it).
    pub fn live(&self) -> usize {
        self.by_dialog.len()
    }

    fn acd_send(&self, c: crate::acd::service::Command) {
        if let Some(acd) = &self.acd {
            acd.send(c);
        }
    }

    /// Gives an RTP port pair back.
    fn release_port(&self, port: u16) {
        if let Ok(mut p) = self.ports.lock() {
            p.release(port);
        }
    }

    /// The caller's G.711 law, offered first to a browser leg of the call so it passes
    /// through untranscoded.
    fn caller_codec(&self, key: u64) -> sdp::Codec {
        self.calls
            .get(&key)
            .filter(|c| self.by_dialog.contains_key(&c.dialog))
            .map_or(sdp::Codec::Pcmu, |c| c.codec)
    }

    /// The call in progress whose caller's dialog has this Call-ID (not one whose caller
    /// has hung up).
    fn call_by_id(&self, call_id: &str) -> Option<(u64, &Call)> {
        self.calls
            .iter()
            .find(|(_, c)| c.dialog.call_id == call_id && self.by_dialog.contains_key(&c.dialog))
            .map(|(k, c)| (*k, c))
    }

    /// Forgets the calls whose media ended: agents' phones still ringing for them stop, the
    /// legs of theirs still known go (the worker hung up the answered ones), supervisors'
    /// phones ringing to join one stop. A callback being dialled is not such a leg: its key
    /// is the kept place of a caller whose first call ended.
    fn forget_finished(&mut self, ep: &mut Endpoint, now: Instant) {
        let done: Vec<(DialogId, u64)> = match self.finished.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => return,
        };
        if done.is_empty() {
            return;
        }
        let keys: std::collections::HashSet<u64> = done.iter().map(|(_, k)| *k).collect();
        for (d, k) in done {
            self.by_dialog.remove(&d);
            if let Some(call) = self.calls.remove(&k)
                && let Some(n) = self.per_source.get_mut(&call.source)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_source.remove(&call.source);
                }
            }
        }
        let stale: Vec<TxId> = self
            .placed
            .iter()
            .filter(|(_, l)| keys.contains(&l.key) && !l.is_callback())
            .map(|(tx, _)| *tx)
            .collect();
        for tx in stale {
            if let Some(leg) = self.placed.remove(&tx) {
                if let Some(port) = leg.own_port() {
                    self.release_port(port);
                }
                // A transfer target still ringing is left to time out, as the worker ended
                // the call that wanted it.
                if !leg.is_transfer() {
                    let _ = ep.cancel(now, tx);
                }
            }
        }
        self.up.retain(|_, l| !keys.contains(&l.key));
        metrics::gauge!("hotline_calls_live").set(self.by_dialog.len() as f64);
    }

    /// The caller hung up (or its session ended): the legs still ringing for it stop, and the
    /// worker ends the call.
    fn caller_ended(&mut self, ep: &mut Endpoint, now: Instant, key: u64, reason: EndReason) {
        let ringing: Vec<TxId> = self
            .placed
            .iter()
            .filter(|(_, l)| l.key == key && (l.is_transfer() || l.is_agent()))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in ringing {
            self.placed.remove(&tx);
            let _ = ep.cancel(now, tx);
        }
        self.tell(key, ToMedia::Ended(end_reason(reason)));
        if let Some(call) = self.calls.get(&key) {
            self.by_dialog.remove(&call.dialog);
        }
    }

    /// The ACK of a caller's call: the call is up in its worker (with the SDP answer when our
    /// 200 carried the offer; without a usable one the call is hung up).
    fn confirmed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        ack: &hotline_sip::message::Message,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let answer: Option<Negotiated> = if call.offered {
            let parsed = std::str::from_utf8(ack.body())
                .ok()
                .and_then(|t| Sdp::parse(t).ok());
            match parsed.as_ref().map(sdp::accept_answer) {
                Some(Ok(n)) => Some(n),
                _ => {
                    tracing::info!("the ACK carries no usable SDP answer: hanging up");
                    let dialog = call.dialog.clone();
                    self.tell(key, ToMedia::Ended("no ack"));
                    let _ = ep.bye(now, &dialog);
                    return;
                }
            }
        } else {
            None
        };
        let codec = answer.as_ref().map(|n| n.codec);
        self.tell(key, ToMedia::Confirmed(answer));
        if let (Some(codec), Some(call)) = (codec, self.calls.get_mut(&key)) {
            call.codec = codec;
        }
    }
}

fn end_reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::RemoteBye => "caller hung up",
        EndReason::SessionExpired => "session expired",
        EndReason::NoAck => "no ack",
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
            Control::Count => {}
        }
        self.note_live();
    }

    fn handle(&mut self, ep: &mut Endpoint, now: Instant, event: EndpointEvent) {
        self.forget_finished(ep, now);
        match event {
            EndpointEvent::Request { tx, request, peer }
                if request.method() == Some(&Method::Invite) =>
            {
                self.invite(ep, now, tx, request, peer.addr.ip());
            }
            EndpointEvent::Request { tx, request, .. } => {
                // Outside a dialog: nothing of ours (BYE and INFO of a known call come as
                // CallEnded and Info).
                let _ = ep.respond(now, tx, admit::final_response(&request, 481, tx));
            }
            EndpointEvent::CallConfirmed { dialog, ack } => {
                if let Some(key) = self.by_dialog.get(&dialog).copied() {
                    self.confirmed(ep, now, key, &ack);
                }
            }
            EndpointEvent::CallEnded { dialog, reason } => {
                if let Some(key) = self.by_dialog.get(&dialog).copied() {
                    self.caller_ended(ep, now, key, reason);
                } else if let Some(leg) = self.up.remove(&dialog) {
                    self.leg_ended(leg);
                }
            }
            EndpointEvent::Answered {
                tx,
                dialog,
                response,
            } => self.answered(ep, now, tx, dialog, &response),
            EndpointEvent::Failed { tx, status } => self.failed(tx, status),
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
                if let (Some(key), Some(digit)) = (
                    self.by_dialog.get(&dialog).copied(),
                    info_digit(&subtype, request.body()),
                ) {
                    self.tell(key, ToMedia::Key(digit));
                }
            }
            EndpointEvent::Registration { aor, contacts } if contacts > 0 => {
                // An agent restored at start waits for its phone: now it has one.
                self.acd_send(crate::acd::service::Command::PhoneAttached {
                    device: aor.clone(),
                });
                log_event(EndpointEvent::Registration { aor, contacts });
            }
            other => log_event(other),
        }
        self.note_live();
    }
}
