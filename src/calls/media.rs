//! Media workers: the threads that carry the calls' audio.
//!
//! Each worker is one OS thread with its own event loop (mio: epoll on Linux) owning many
//! calls: their RTP sockets and their [`IvrCall`]s. It sleeps until the earliest deadline of
//! its calls (the next 20 ms frame, an IVR timer, the inactivity limit) or until a socket is
//! readable or the call handler sends news (a new call, the ACK, a key by SIP INFO, hold, the
//! hang-up). A few threads, not a task per call: a call costs one heap entry and its
//! socket, and the loop does the work of thousands of calls per wake-up without a scheduler in
//! between, which is what keeps 20 ms pacing tight under load (benches/RESULTS.md).
//!
//! Replies go where the caller's packets come from (symmetric RTP). Each call also has its
//! RTCP session, its recording tap (frames to the [`super::recording`] writer, silence while
//! paused) and, once the script transfers it, a second leg to the target bridged through two
//! relays with music on hold for whichever side is held. The worker ends a call itself,
//! through the engine handle, when the script hangs up, a transfer fails or the media stops.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use chrono::Utc;
use hotline_sip::endpoint::DialogId;
use hotline_sip::media::mix::{MonitorMode, Party, mix};
use hotline_sip::media::player::{Player, Prompt};
use hotline_sip::media::relay::{LegFormat, Relay};
use hotline_sip::rtp::RtpPacket;
use hotline_sip::rtp::jitter::{JitterBuffer, Playout};
use hotline_sip::rtp::ports::{Latch, PortAllocator};
use hotline_sip::rtp::session::{RtcpSession, ntp_now};
use hotline_sip::sdp::{self, Codec, Direction, Local, Negotiated};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::lookup::{LookupRequest, Question};
use crate::acd::service::Command as AcdCommand;
use tokio::sync::mpsc;

use super::messages::{Control, TransferRequest};
use super::record::{CallEvent, CallRecord};
use super::recording::Recordings;
use crate::china::calendar::WorkCalendar;
use crate::engine::EngineHandle;
use crate::ivr::call::IvrCall;
use crate::ivr::facts::CallFacts;
use crate::ivr::session::Action;

/// News for a call from the call handler.
#[derive(Debug)]
pub enum ToMedia {
    /// The ACK arrived: the call is up (with the SDP answer when our 200 held the offer).
    Confirmed(Option<Negotiated>),
    /// A key by SIP INFO.
    Key(char),
    /// A re-INVITE or UPDATE changed the media (hold, unhold, new address).
    Update(Negotiated),
    /// The call ended on the signaling side (`caller hung up`, `no ack`, ...).
    Ended(&'static str),
    /// The transfer target or an agent answered: bridge the caller to it.
    Bridged {
        /// The target's dialog.
        dialog: DialogId,
        /// What the target's answer agreed.
        negotiated: Negotiated,
        /// The agent, when the ACD offered the call.
        agent: Option<u64>,
    },
    /// The ACD is about to ring agents for the call: the sockets of the agent leg (bound on
    /// the port the offer to the agents names).
    AgentLeg {
        /// RTP.
        socket: std::net::UdpSocket,
        /// RTCP (held so the pair stays ours).
        rtcp_socket: std::net::UdpSocket,
        /// The pair's port, to give back.
        port: u16,
    },
    /// The agent hung up: the caller goes on in the script (the survey) or is hung up.
    AgentHungUp,
    /// The agent sends the caller to this URI (an emergency route); the agent's leg is
    /// already hung up.
    TransferOut {
        /// Where to.
        uri: String,
    },
    /// The agent sends the caller back to a queue (first in line), or to one agent; the
    /// agent's leg is already hung up.
    Requeue {
        /// The queue (`None`: the one the call came from).
        queue: Option<String>,
        /// Only this agent.
        agent: Option<u64>,
    },
    /// An agent's phone rang for the call, and how that ended (for the call record).
    RingDone(super::record::RingRecord),
    /// Tell the waiting caller its place (1 = next) and the estimated wait.
    Announce {
        /// Place.
        place: usize,
        /// Minutes.
        minutes: u64,
    },
    /// The transfer target did not answer (its final status, 0 when no call could be placed).
    TransferFailed(u16),
    /// A re-INVITE or UPDATE from the transfer target changed its leg (hold, unhold).
    UpdateB(Negotiated),
    /// Pause (true) or resume (false) the recording: while paused both channels record
    /// silence, so the file keeps its time line (personal data read aloud, Art. 11).
    PauseRecording(bool),
    /// Say these prompts (the answer of a look-up); the script goes on when they end.
    Speak(Vec<Arc<Prompt>>),
    /// The agent puts the caller on hold (true: music for the caller, the agent's audio not
    /// passed on) or takes the caller back (false).
    AgentHold(bool),
    /// A supervisor's phone answered: its leg joins the bridge in `mode` (listen, whisper,
    /// barge).
    Monitor {
        /// The supervisor's leg.
        dialog: DialogId,
        /// What its answer agreed.
        negotiated: Negotiated,
        /// The leg's sockets (bound on the port the offer named) and the pair's port.
        socket: std::net::UdpSocket,
        rtcp_socket: std::net::UdpSocket,
        port: u16,
        mode: MonitorMode,
    },
    /// The supervisor switches between listen, whisper and barge.
    MonitorMode(MonitorMode),
    /// The supervisor hung up (or was hung up): the leg leaves the bridge.
    MonitorEnded,
}

/// A call handed to a worker when it is answered.
pub struct NewCall {
    /// The handler's key for the call (unique for the life of the process).
    pub key: u64,
    /// The call's RTP socket (bound to the port the SDP announced, non-blocking).
    pub socket: std::net::UdpSocket,
    /// Its RTCP socket (the port above).
    pub rtcp_socket: std::net::UdpSocket,
    /// The port pair to give back at the end.
    pub port: u16,
    /// The IVR and RTP state.
    pub call: IvrCall,
    /// What the offer/answer agreed, when known (an INVITE without SDP learns it at the ACK).
    pub negotiated: Option<Negotiated>,
    /// The dialog, to hang up.
    pub dialog: DialogId,
    /// The record so far (parties and start time).
    pub record: CallRecord,
}

/// What every call of every worker shares.
pub struct Shared {
    /// Where ports go back.
    pub ports: Arc<Mutex<PortAllocator>>,
    /// The engine, to hang up.
    pub engine: Option<EngineHandle<Control>>,
    /// The runtime the engine handle is used from.
    pub runtime: Option<tokio::runtime::Handle>,
    /// The working-day calendar for the script's conditions.
    pub calendar: Arc<WorkCalendar>,
    /// Hang up after this long without RTP from the caller.
    pub inactivity: Option<Duration>,
    /// Spoken when a self-service the script asks for is not available.
    pub unavailable: Vec<Arc<Prompt>>,
    /// Where ticket look-ups go (none: `unavailable` is spoken instead).
    pub lookups: Option<tokio::sync::mpsc::UnboundedSender<LookupRequest>>,
    /// The ACD task, told when the IVR queues a caller, lets one out or takes one back.
    pub acd: Option<crate::acd::service::AcdHandle>,
    /// Where records go as calls start and end.
    pub records: mpsc::UnboundedSender<CallEvent>,
    /// Where recordings go (none: calls are not recorded).
    pub recordings: Option<Arc<Recordings>>,
    /// Calls whose media has ended, for the handler to forget.
    pub finished: Arc<Mutex<Vec<(DialogId, u64)>>>,
    /// Run the workers at real-time priority (when the process may).
    pub realtime: bool,
    /// Where RTP sockets are bound (transfer legs).
    pub bind: std::net::IpAddr,
    /// Played to one side of a bridge while the other holds.
    pub music_on_hold: Vec<Arc<Prompt>>,
    /// Played to a caller while a transfer target rings.
    pub ringback: Vec<Arc<Prompt>>,
    /// The address written in SDP (transfer legs).
    pub announce: std::net::IpAddr,
}

/// Real-time priority for the calling thread (SCHED_FIFO 10, as PBXes run their media
/// threads): a worker with frames due runs before ordinary work on a busy machine, so a
/// caller's audio keeps its 20 ms pace. A worker only runs when a deadline or a packet
/// wakes it and sleeps in epoll otherwise, so it cannot starve the machine. Without the right
/// (CAP_SYS_NICE) it stays at normal priority.
#[allow(unsafe_code)] // one libc call, sound as said at the block
fn raise_priority() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler reads `param` (a valid, initialised struct that lives across
    // the call) and changes only the calling thread's policy (pid 0); it has no other effect
    // on memory.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        tracing::info!(
            error = %std::io::Error::last_os_error(),
            "media thread stays at normal priority"
        );
    }
}

enum Command {
    Add(Box<NewCall>),
    News(u64, ToMedia),
    /// End every call and stop (a worker's own [`Mailbox`] keeps its channel open, so the
    /// channel closing cannot be the only signal).
    Stop,
}

/// The handler's side of the workers: hands calls out round robin and passes news on.
pub struct Workers {
    workers: Vec<WorkerHandle>,
    next: usize,
}

struct WorkerHandle {
    tx: std_mpsc::Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const WAKER: Token = Token(usize::MAX);

impl Workers {
    /// Starts `n` workers (at least one).
    pub fn start(n: usize, shared: Shared) -> std::io::Result<Workers> {
        let shared = Arc::new(shared);
        let mut workers = Vec::new();
        for i in 0..n.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = std_mpsc::channel();
            let s = Arc::clone(&shared);
            let me = Mailbox {
                tx: tx.clone(),
                waker: Arc::clone(&waker),
            };
            let realtime = shared.realtime;
            let thread = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || {
                    if realtime {
                        raise_priority();
                    }
                    Worker::new(i, poll, rx, me, s).run()
                })?;
            workers.push(WorkerHandle {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(Workers { workers, next: 0 })
    }

    /// Hands a new call to the next worker; returns the worker's index.
    pub fn add(&mut self, call: NewCall) -> usize {
        let i = self.next % self.workers.len();
        self.next = self.next.wrapping_add(1);
        self.send(i, Command::Add(Box::new(call)));
        i
    }

    /// Passes news to the worker holding call `key`.
    pub fn news(&self, worker: usize, key: u64, news: ToMedia) {
        self.send(worker, Command::News(key, news));
    }

    fn send(&self, i: usize, c: Command) {
        if let Some(w) = self.workers.get(i)
            && w.tx.send(c).is_ok()
        {
            let _ = w.waker.wake();
        }
    }
}

impl Drop for Workers {
    /// Stops every worker: their calls end (`shutdown`), records are sent, ports given back.
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.tx.send(Command::Stop);
            let (dead, _) = std_mpsc::channel();
            drop(std::mem::replace(&mut w.tx, dead));
            let _ = w.waker.wake();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The largest datagram read; anything longer is not G.711 RTP at 20-60 ms and is cut.
const MAX_DATAGRAM: usize = 2048;

/// Datagrams read from one socket per wake-up before the others get their turn.
const READ_BURST: usize = 64;

/// Hands a call's question to the look-up service; the prompt comes back as news. Without
/// the service (a bench without a database) the caller hears that it is not available and
/// the script goes on.
fn ask(shared: &Shared, me: &Mailbox, call: &mut IvrCall, key: u64, question: Question) {
    let Some(lookups) = &shared.lookups else {
        tracing::warn!(
            ?question,
            "IVR self-service asked for, but it is not available"
        );
        call.speak(shared.unavailable.clone());
        return;
    };
    let me = me.clone();
    let req = LookupRequest {
        question,
        answer: Box::new(move |prompts| me.news(key, ToMedia::Speak(prompts))),
    };
    if let Err(e) = lookups.send(req) {
        (e.0.answer)(shared.unavailable.clone());
    }
}

/// A worker's own address, for answers that arrive from elsewhere (look-ups).
#[derive(Clone)]
struct Mailbox {
    tx: std_mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl Mailbox {
    fn news(&self, key: u64, news: ToMedia) {
        if self.tx.send(Command::News(key, news)).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

struct Worker {
    index: usize,
    poll: Poll,
    rx: std_mpsc::Receiver<Command>,
    me: Mailbox,
    shared: Arc<Shared>,
    calls: HashMap<u64, CallState>,
    /// (deadline, call key): the earliest first. Entries whose call has moved its deadline
    /// are skipped when they come up.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    buf: Vec<u8>,
}

/// One call inside a worker.
struct CallState {
    socket: UdpSocket,
    rtcp_socket: UdpSocket,
    rtcp: RtcpSession,
    /// Where the peer's RTCP comes from (replies go there), once it has sent any.
    rtcp_peer: Option<SocketAddr>,
    /// The origin of the arrival clock RTCP's jitter is computed on.
    epoch: Instant,
    port: u16,
    call: IvrCall,
    negotiated: Option<Negotiated>,
    dialog: DialogId,
    record: CallRecord,
    facts: Facts,
    latch: Option<Latch>,
    /// The address the SDP gave (the latch may have moved to the real source).
    sdp_remote: Option<SocketAddr>,
    sending: bool,
    receiving: bool,
    last_heard: Instant,
    /// The deadline in the heap.
    scheduled: Option<Instant>,
    /// The caller's audio, in order, for the recording's left channel.
    jitter: Option<JitterBuffer>,
    /// The transfer target's leg, from the moment it is called.
    leg_b: Option<LegB>,
    /// The recording records silence (paused for personal data).
    recording_paused: bool,
    /// The agent the caller talked to has hung up (the caller may be in the survey).
    agent_gone: bool,
    /// A supervisor on the bridged call (listening, whispering or barging).
    monitor: Option<Monitor>,
}

/// A supervisor's leg on a bridged call: its audio goes into the mix at the bridge's 20 ms
/// tick; the mix of caller and agent comes back on our own stream.
struct Monitor {
    dialog: DialogId,
    socket: UdpSocket,
    /// Held so the pair stays ours.
    _rtcp_socket: std::net::UdpSocket,
    port: u16,
    negotiated: Negotiated,
    latch: Latch,
    mode: MonitorMode,
    jitter: JitterBuffer,
    /// Our stream to the supervisor (frames injected, nothing relayed).
    out: Relay,
}

/// The leg to a transfer target, bridged to the caller once it answers.
struct LegB {
    socket: UdpSocket,
    /// Held so the pair stays ours (RTCP of this leg is not read yet).
    _rtcp_socket: std::net::UdpSocket,
    port: u16,
    /// The stream to the caller from the transfer on: ringback while the target rings, then
    /// the target's audio; it continues the IVR's numbering. An agent leg has none while the
    /// agents ring (the caller hears the queue's music from the IVR).
    to_a: Option<Relay>,
    /// Ringback to the caller while the target rings: the player and its next 20 ms tick.
    ringback: Player,
    ring_tick: Instant,
    /// Set when the target answers.
    bridge: Option<Bridge>,
}

struct Bridge {
    dialog: DialogId,
    /// The agent on the other side, when the ACD offered the call.
    agent: Option<u64>,
    negotiated: Negotiated,
    /// The address the target's SDP gave (the latch may have moved to the real source).
    sdp_remote: SocketAddr,
    /// Whether we send to the target (not while it holds).
    sending: bool,
    /// The agent holds the caller (through the API, not SDP): nothing passes either way and
    /// the caller hears music.
    held: bool,
    /// Music for the caller while the target holds, and for the target while the caller does.
    moh_to_a: Player,
    moh_to_b: Player,
    latch: Latch,
    to_b: Relay,
    to_a: Relay,
    /// The target's audio for the recording's right channel.
    jitter: JitterBuffer,
    /// The recording's next 20 ms tick.
    tick: Instant,
}

impl Worker {
    fn new(
        index: usize,
        poll: Poll,
        rx: std_mpsc::Receiver<Command>,
        me: Mailbox,
        shared: Arc<Shared>,
    ) -> Worker {
        Worker {
            index,
            poll,
            rx,
            me,
            shared,
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            buf: vec![0u8; MAX_DATAGRAM],
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self
                .timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media worker cannot poll; its calls end");
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(t) if t & RTCP != 0 => self.rtcp_readable((t & !RTCP) as u64),
                    Token(t) if t & LEG_B != 0 => self.leg_b_readable((t & !LEG_B) as u64),
                    Token(t) if t & MONITOR != 0 => self.monitor_readable((t & !MONITOR) as u64),
                    Token(t) => self.readable(t as u64),
                }
            }
            if !self.commands() {
                break;
            }
            self.due(Instant::now());
        }
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        for key in keys {
            self.end(key, "shutdown");
        }
    }

    /// Takes the handler's commands; `false` once the handler is gone or says stop.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Add(c)) => self.add(*c),
                Ok(Command::News(key, news)) => self.news(key, news),
                Ok(Command::Stop) => return false,
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn add(&mut self, c: NewCall) {
        let NewCall {
            key,
            socket,
            rtcp_socket,
            port,
            call,
            negotiated,
            dialog,
            record,
        } = c;
        let mut socket = UdpSocket::from_std(socket);
        let mut rtcp_socket = UdpSocket::from_std(rtcp_socket);
        let registry = self.poll.registry();
        if let Err(e) = registry
            .register(&mut socket, Token(key as usize), Interest::READABLE)
            .and_then(|()| {
                registry.register(
                    &mut rtcp_socket,
                    Token(key as usize | RTCP),
                    Interest::READABLE,
                )
            })
        {
            tracing::error!(error = %e, "cannot watch a call's RTP or RTCP socket");
        }
        let rtcp = RtcpSession::new(
            call.ssrc(),
            &format!("hotline@{}", record.called),
            RTCP_INTERVAL,
            key,
        );
        let facts = Facts::new(&record.caller, &self.shared.calendar);
        let state = CallState {
            socket,
            rtcp_socket,
            rtcp,
            rtcp_peer: None,
            epoch: Instant::now(),
            port,
            call,
            negotiated,
            dialog,
            record,
            facts,
            latch: negotiated.map(|n| Latch::new(n.remote)),
            sdp_remote: negotiated.map(|n| n.remote),
            sending: negotiated.is_some_and(|n| sends(n.direction)),
            receiving: negotiated.is_some_and(|n| receives(n.direction)),
            last_heard: Instant::now(),
            scheduled: None,
            jitter: None,
            leg_b: None,
            recording_paused: false,
            agent_gone: false,
            monitor: None,
        };
        self.calls.insert(key, state);
    }

    fn news(&mut self, key: u64, news: ToMedia) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let now = Instant::now();
        match news {
            ToMedia::Confirmed(answer) => {
                if let Some(n) = answer {
                    c.update(n);
                }
                c.record.answered_at = Some(Utc::now());
                c.last_heard = now;
                c.rtcp.start(now);
                if let Some(rec) = &self.shared.recordings {
                    let path = rec.path_for(c.record.started_at, key, &c.record.call_id);
                    c.record.recording = Some(path.display().to_string());
                    rec.open(key, path);
                    let codec = c.negotiated.map_or(Codec::Pcmu, |n| n.codec);
                    c.jitter = Some(JitterBuffer::new(JITTER_DEPTH, codec.silence()));
                }
                c.record.codec = c.negotiated.map(|n| n.codec.name().to_string());
                let _ = self
                    .shared
                    .records
                    .send(CallEvent::Started(key, c.record.clone()));
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
                let Some(leg) = c.leg_b.as_mut() else {
                    return;
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
                if let Err(reason) = self.transfer(key, uri) {
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
                if let Some(acd) = &self.shared.acd {
                    // First in line: the caller has waited once already.
                    acd.send(AcdCommand::Enqueue {
                        call: key,
                        call_id: c.record.call_id.clone(),
                        queue,
                        priority: 100,
                        skills: Vec::new(),
                        agent,
                    });
                }
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
            ToMedia::Monitor {
                dialog,
                negotiated,
                socket,
                rtcp_socket,
                port,
                mode,
            } => {
                let bridged = c.leg_b.as_ref().is_some_and(|l| l.bridge.is_some());
                if !bridged || c.monitor.is_some() {
                    // The agent left meanwhile, or another supervisor is on: hung up.
                    free_port(&self.shared, port);
                    bye(&self.shared, vec![dialog]);
                    return;
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
        self.after(key);
    }

    /// Takes down a call's agent leg (already hung up on the signaling side): socket and
    /// port back, the ACD told the agent's call ended. Returns the bridge's last packet to
    /// the caller (sequence, timestamp) for whatever speaks to the caller next.
    fn drop_agent_leg(&mut self, key: u64) -> Option<(u16, u32)> {
        let c = self.calls.get_mut(&key)?;
        let mut leg = c.leg_b.take()?;
        if let Some(m) = c.monitor.take() {
            // Nothing left to listen to: the supervisor's leg goes with the agent's.
            let dialog = m.dialog.clone();
            release(&self.poll, &self.shared, m);
            bye(&self.shared, vec![dialog]);
        }
        let _ = self.poll.registry().deregister(&mut leg.socket);
        free_port(&self.shared, leg.port);
        let b = leg.bridge?;
        if let (Some(agent), Some(acd)) = (b.agent, &self.shared.acd) {
            acd.send(AcdCommand::CallEnded {
                agent,
                queue: c.record.queue.clone().unwrap_or_default(),
            });
        }
        b.to_a.last_sent()
    }

    /// Reads what the caller sent.
    fn readable(&mut self, key: u64) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        for _ in 0..READ_BURST {
            match c.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    let datagram = &self.buf[..n];
                    if is_rtcp(datagram) {
                        // RTCP on the RTP port (rtcp-mux, RFC 5761).
                        c.rtcp_peer = Some(from);
                        c.rtcp.on_rtcp(datagram, now, ntp_now());
                        continue;
                    }
                    // Parsed once; everything below reads the same packet.
                    let Ok(p) = RtpPacket::parse(datagram) else {
                        continue;
                    };
                    let Some(neg) = c.accept(&p, from) else {
                        continue;
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
        self.after(key);
    }

    /// Reads the peer's RTCP.
    fn rtcp_readable(&mut self, key: u64) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        for _ in 0..READ_BURST {
            match c.rtcp_socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    c.rtcp_peer = Some(from);
                    c.rtcp.on_rtcp(&self.buf[..n], Instant::now(), ntp_now());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Reads what the transfer target sends and passes it on to the caller.
    fn leg_b_readable(&mut self, key: u64) {
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
                    b.latch.on_packet(from);
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
    fn monitor_readable(&mut self, key: u64) {
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
                    m.latch.on_packet(from);
                    push_frames(&mut m.jitter, &p);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// The script transfers the caller: a leg to the target is set up and the call handler
    /// asked to place the call; the caller is bridged when it answers.
    fn transfer(&mut self, key: u64, uri: String) -> Result<(), &'static str> {
        let target = transfer_target(&uri).ok_or("transfer unavailable")?;
        let (port, socket, rtcp) = super::ports::bind_pair(&self.shared.ports, self.shared.bind)
            .ok_or("transfer unavailable")?;
        let (Some(engine), Some(rt), Some(c)) = (
            self.shared.engine.clone(),
            self.shared.runtime.clone(),
            self.calls.get_mut(&key),
        ) else {
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
            ring_tick: Instant::now(),
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
        rt.spawn(async move {
            engine.tell(Control::PlaceTransfer(request)).await;
        });
        Ok(())
    }

    /// Runs every call whose deadline has come.
    fn due(&mut self, now: Instant) {
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
            self.after(key);
        }
    }

    /// After anything happened to a call: send what it produced, act on its actions, and
    /// schedule its next deadline.
    fn after(&mut self, key: u64) {
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
                    phone_last4,
                } => ask(
                    &self.shared,
                    &self.me,
                    &mut c.call,
                    key,
                    Question::Ticket {
                        number,
                        last4: phone_last4,
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
                    if let Some(acd) = &self.shared.acd {
                        acd.send(AcdCommand::Enqueue {
                            call: key,
                            call_id: c.record.call_id.clone(),
                            queue: queue.clone(),
                            priority,
                            skills,
                            agent: None,
                        });
                    }
                    c.record.queue = Some(queue);
                    c.record.queued_at.get_or_insert_with(Utc::now);
                    let session = c.call.session();
                    let mut so_far = c.record.clone();
                    so_far.ivr_path = session.path().to_vec();
                    so_far.ivr_vars = session.vars().clone();
                    so_far.ivr_keys = c.call.keys().to_string();
                    let _ = self.shared.records.send(CallEvent::Queued(key, so_far));
                }
                Action::Callback => {
                    tracing::info!(call_id = %c.record.call_id, "caller chose a callback");
                    c.record.callback_requested = true;
                    if let Some(acd) = &self.shared.acd {
                        acd.send(AcdCommand::Callback {
                            call: key,
                            number: c.record.caller.clone(),
                            called: c.record.called.clone(),
                        });
                    }
                }
                Action::Pause | Action::Resume { .. } | Action::Dequeue => {
                    if let Some(acd) = &self.shared.acd {
                        acd.send(match action {
                            Action::Dequeue => AcdCommand::Leave {
                                call: key,
                                hung_up: false,
                            },
                            a => AcdCommand::SelfService {
                                call: key,
                                away: matches!(a, Action::Pause),
                            },
                        });
                    }
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
            if let Err(reason) = self.transfer(key, uri) {
                self.end(key, reason);
            }
            return self.schedule(key);
        }
        self.schedule(key);
    }

    /// Puts a call's next deadline in the heap (when it moved).
    fn schedule(&mut self, key: u64) {
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
    fn end(&mut self, key: u64, reason: &'static str) {
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
        bye(&self.shared, byes);
        free_port(&self.shared, c.port);
        if let Ok(mut f) = self.shared.finished.lock() {
            f.push((c.dialog.clone(), key));
        }
        // Told after the handler can forget the call: a callback the ACD places next under the
        // same key must not meet this call's leftovers.
        // A caller still waiting hangs up: out of the queue (abandoned). One talking to an
        // agent: the agent's call ended (wrap-up).
        if let (Some(acd), Some(queue)) = (&self.shared.acd, &c.record.queue) {
            match agent {
                Some(agent) => {
                    acd.send(AcdCommand::CallEnded {
                        agent,
                        queue: queue.clone(),
                    });
                }
                // Still (or again, after a transfer back to a queue) waiting for an agent.
                None if c.record.agent_id.is_none() || c.call.session().is_queued() => {
                    acd.send(AcdCommand::Leave {
                        call: key,
                        hung_up: matches!(reason, "caller hung up" | "no media"),
                    });
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
        record.ivr_vars = session.vars().clone();
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
        let _ = self.shared.records.send(CallEvent::Ended(key, record));
    }
}

impl CallState {
    /// Where our RTCP goes: where the peer's comes from, else the RTP target's port + 1
    /// (or the RTP target itself with rtcp-mux).
    fn rtcp_target(&self) -> Option<SocketAddr> {
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
    fn update(&mut self, n: Negotiated) {
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

    /// Whether a packet is the caller's RTP (the agreed codec or telephone-event): the
    /// agreement when it is, after latching its source.
    fn accept(&mut self, p: &RtpPacket<'_>, from: SocketAddr) -> Option<Negotiated> {
        let n = self.negotiated?;
        if p.payload_type != n.codec.payload_type() && Some(p.payload_type) != n.dtmf {
            return None;
        }
        if let Some(l) = &mut self.latch {
            l.on_packet(from);
        }
        Some(n)
    }
}

/// Marks a token as a call's RTCP socket (the rest is the call's key).
const RTCP: usize = 1 << (usize::BITS - 2);

/// Marks a token as a call's transfer leg.
const LEG_B: usize = 1 << (usize::BITS - 3);

/// Marks a token as a call's supervisor leg.
const MONITOR: usize = 1 << (usize::BITS - 4);

/// Rings kept in one call's record (a caller waiting an hour in a busy queue cannot grow it
/// without bound).
const MAX_RINGS: usize = 64;

/// One frame of the media clock.
const FRAME_TIME: Duration = Duration::from_millis(20);

/// Sends one of our packets to the caller and counts it (the call record's packets, RTCP's
/// sender report).
fn send_to_caller(
    socket: &UdpSocket,
    to: SocketAddr,
    packet: &[u8],
    sent: &mut u64,
    rtcp: &mut RtcpSession,
) {
    match socket.send_to(packet, to) {
        Ok(_) => {
            *sent += 1;
            let ts = packet
                .get(4..8)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            rtcp.on_sent(packet.len().saturating_sub(RTP_HEADER), ts);
        }
        Err(e) => tracing::trace!(error = %e, "RTP send failed"),
    }
}

/// One tick of a call's recording: the caller's next frame from `jb` on the left, `ours`
/// (what the caller heard, or the bridged party) on the right; silence on both while paused.
fn record_tick(
    rec: &Recordings,
    key: u64,
    jb: &mut JitterBuffer,
    caller_codec: Codec,
    ours: &[u8],
    our_codec: Codec,
    paused: bool,
) {
    let caller: &[u8] = match jb.pop() {
        Playout::Frame(f) | Playout::Concealed(f) => f,
        Playout::Waiting => &[],
    };
    if paused {
        rec.frame(key, &[], caller_codec, &[], our_codec);
    } else {
        rec.frame(key, caller, caller_codec, ours, our_codec);
    }
}

/// Bytes of one 20 ms G.711 frame.
const FRAME_BYTES: usize = 160;

/// The next 20 ms frame of a jitter buffer, copied out (`None` while it waits for audio; a
/// short frame padded with `silence`).
fn pop_frame(jb: &mut JitterBuffer, silence: u8) -> Option<[u8; FRAME_BYTES]> {
    match jb.pop() {
        Playout::Frame(f) | Playout::Concealed(f) => {
            let mut out = [silence; FRAME_BYTES];
            let n = f.len().min(FRAME_BYTES);
            out[..n].copy_from_slice(&f[..n]);
            Some(out)
        }
        Playout::Waiting => None,
    }
}

/// A popped frame's bytes (none: silence).
fn frame_of(f: &Option<[u8; FRAME_BYTES]>) -> &[u8] {
    f.as_ref().map_or(&[][..], |f| &f[..])
}

/// Hangs up `dialogs` through the engine (from a media thread).
fn bye(shared: &Shared, dialogs: Vec<DialogId>) {
    if dialogs.is_empty() {
        return;
    }
    if let (Some(engine), Some(rt)) = (&shared.engine, &shared.runtime) {
        let engine = engine.clone();
        rt.spawn(async move {
            engine
                .run(move |ep, now| {
                    for d in &dialogs {
                        let _ = ep.bye(now, d);
                    }
                })
                .await;
        });
    }
}

/// A supervisor's leg is over: its socket unwatched and its port back.
fn release(poll: &Poll, shared: &Shared, mut m: Monitor) {
    let _ = poll.registry().deregister(&mut m.socket);
    free_port(shared, m.port);
}

/// Gives an RTP port pair back.
fn free_port(shared: &Shared, port: u16) {
    if let Ok(mut p) = shared.ports.lock() {
        p.release(port);
    }
}

/// Puts a packet's audio into a jitter buffer of 20 ms frames: a 40 or 60 ms packet is two or
/// three frames, numbered `sequence x frames + i` (consistent across the 16-bit wrap:
/// 65536 x frames is 0 in 16 bits).
fn push_frames(jb: &mut JitterBuffer, p: &RtpPacket<'_>) {
    let frames = (p.payload.len() / FRAME_BYTES).clamp(1, 3);
    for (i, chunk) in p.payload.chunks(FRAME_BYTES).take(frames).enumerate() {
        let seq = p
            .sequence
            .wrapping_mul(frames as u16)
            .wrapping_add(i as u16);
        jb.push(p.ssrc, seq, chunk);
    }
}

/// The next frame of music on hold in `codec`, the music starting over at its end; silence
/// when there is no music.
fn moh_frame(player: &mut Player, music: &[Arc<Prompt>], codec: Codec) -> [u8; 160] {
    let mut out = [codec.silence(); 160];
    if player.finished() {
        *player = Player::new(music.to_vec(), false);
    }
    if let Some(f) = player.next_frame(codec) {
        let n = f.len().min(160);
        out[..n].copy_from_slice(&f[..n]);
    }
    out
}

/// A leg's formats for a relay (PCMU without events before anything is agreed).
fn format_of(n: Option<Negotiated>) -> LegFormat {
    n.map_or(
        LegFormat {
            codec: Codec::Pcmu,
            dtmf: None,
        },
        |n| LegFormat {
            codec: n.codec,
            dtmf: n.dtmf,
        },
    )
}

/// Where a transfer's INVITE goes: the URI's host, which must be an IP address (names would
/// need DNS, RFC 3263, which the engine does not do yet), and its port (5060 by default).
pub(crate) fn transfer_target(uri: &str) -> Option<SocketAddr> {
    let parsed = hotline_sip::message::Uri::parse(uri).ok()?;
    let sip = parsed.as_sip()?;
    let Some(ip) = sip.host.ip() else {
        tracing::error!(host = %sip.host, "transfer targets must name an IP address (no DNS yet)");
        return None;
    };
    Some(SocketAddr::new(ip, sip.port.unwrap_or(5060)))
}

/// Seconds between RTCP reports (RFC 3550's minimum for a two-party session).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// Whether a datagram on an RTP port is RTCP (RFC 5761 4: payload types 72 to 76 with the
/// marker bit, i.e. packet types 200 to 204).
fn is_rtcp(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] >> 6 == 2 && (200..=204).contains(&b[1])
}

/// The RTP header our packets carry (no CSRC, no extension).
const RTP_HEADER: usize = 12;

/// Frames the recording's jitter buffer holds before playing the caller's audio (60 ms).
const JITTER_DEPTH: u16 = 3;

/// Whether we send in this direction (ours).
fn sends(d: Direction) -> bool {
    matches!(d, Direction::SendRecv | Direction::SendOnly)
}

/// Whether we expect to receive.
fn receives(d: Direction) -> bool {
    matches!(d, Direction::SendRecv | Direction::RecvOnly)
}

/// The facts a script's conditions see, refreshed at most once a second (the clock's minute
/// and the day are all they hold that changes).
struct Facts {
    at: Instant,
    facts: CallFacts,
}

impl Facts {
    fn new(caller: &str, calendar: &WorkCalendar) -> Self {
        Facts {
            at: Instant::now(),
            facts: CallFacts::new(caller, Utc::now(), calendar, Default::default()),
        }
    }

    fn get(&mut self, now: Instant, calendar: &WorkCalendar) -> &CallFacts {
        if now.duration_since(self.at) >= Duration::from_secs(1) {
            self.at = now;
            let caller = std::mem::take(&mut self.facts.caller);
            self.facts = CallFacts::new(&caller, Utc::now(), calendar, Default::default());
        }
        &self.facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_sip::media::g711::ulaw_decode;

    #[test]
    fn music_on_hold_loops_and_is_silence_when_there_is_none() {
        let music = vec![Arc::new(crate::calls::default_music_on_hold())];
        let frames = music[0].frames();
        let mut player = Player::new(music.clone(), false);
        let first = moh_frame(&mut player, &music, Codec::Pcmu);
        assert!(
            first.iter().any(|b| ulaw_decode(*b).abs() > 200),
            "music is audible"
        );
        for _ in 1..frames {
            moh_frame(&mut player, &music, Codec::Pcmu);
        }
        // The end of the music is followed by its beginning.
        assert_eq!(moh_frame(&mut player, &music, Codec::Pcmu), first);
        let mut none = Player::new(Vec::new(), false);
        assert_eq!(moh_frame(&mut none, &[], Codec::Pcma), [0xD5; 160]);
    }

    #[test]
    fn packets_of_40_ms_are_two_frames_in_order_across_the_sequence_wrap() {
        let mut jb = JitterBuffer::new(2, 0xFF);
        let mut played = Vec::new();
        for (n, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            let mut payload = [0u8; 320];
            payload[..160].fill(2 * n as u8 + 1);
            payload[160..].fill(2 * n as u8 + 2);
            let mut b = Vec::new();
            hotline_sip::rtp::write_packet(&mut b, false, 0, seq, 0, 9, &payload);
            push_frames(&mut jb, &RtpPacket::parse(&b).unwrap());
        }
        for _ in 0..8 {
            if let Playout::Frame(f) = jb.pop() {
                played.push(f[0]);
            }
        }
        assert_eq!(played, [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
