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
//!
//! Here: the workers' handles, the thread and its loop, a new call. A call's state is
//! `state.rs`'s; the handler's news `news.rs`'s; reading the sockets `read.rs`'s; the call's
//! clock (what is due, the IVR's actions, the next deadline, the end) `tick.rs`'s. What a
//! call asks of the rest of the node (the ACD, the record writer, the engine, the handler)
//! goes into the worker's outbox ([`Effect`]) and out once per wake-up; `worker_tests.rs`
//! reads it in order.

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
use hotline_sip::rtp::latch::Latch;
use hotline_sip::rtp::ports::PortAllocator;
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

mod news;
mod read;
mod state;
mod tick;
#[cfg(test)]
mod worker_tests;

use self::state::{Bridge, CallState, LegB, Monitor};

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
    /// A supervisor's phone answered: its leg joins the bridge.
    Monitor(MonitorJoin),
    /// The supervisor switches between listen, whisper and barge.
    MonitorMode(MonitorMode),
    /// The supervisor hung up (or was hung up): the leg leaves the bridge.
    MonitorEnded,
}

/// A supervisor's answered leg, joining a bridged call in `mode` (listen, whisper, barge).
#[derive(Debug)]
pub struct MonitorJoin {
    /// The supervisor's leg.
    pub dialog: DialogId,
    /// What its answer agreed.
    pub negotiated: Negotiated,
    /// The leg's sockets (bound on the port the offer named) and the pair's port.
    pub socket: std::net::UdpSocket,
    pub rtcp_socket: std::net::UdpSocket,
    pub port: u16,
    pub mode: MonitorMode,
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
    /// The numbers the hotline may call back (`None`: any).
    pub callback_numbers: Option<Arc<regex::Regex>>,
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

/// What a call's logic asks of the rest of the node: the ACD told of a queue action or a call's
/// end, a call record written, legs hung up or a transfer call placed through the engine, the
/// call handler told the call is over. A worker's code queues them (`Worker::out`, in order);
/// the loop carries them out once per wake-up ([`Worker::flush`]), so the per-call logic never
/// reaches for a channel itself and a test reads the effects in order.
#[derive(Debug)]
enum Effect {
    Acd(AcdCommand),
    /// Boxed: a record is large, and written three times a call at most.
    Record(Box<CallEvent>),
    Bye(Vec<DialogId>),
    PlaceTransfer(TransferRequest),
    /// The call's media ended: the handler forgets it (before the ACD hears of it).
    Finished(DialogId, u64),
}

impl Effect {
    fn record(event: CallEvent) -> Effect {
        Effect::Record(Box::new(event))
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
    /// What the calls asked of the rest of the node since the last flush, in order.
    out: Vec<Effect>,
    dropped: Dropped,
}

/// Packets dropped because they came from a source that is not the call's peer
/// (`hotline_rtp_dropped_total`). The counter is looked up at each drop, not held: the
/// recorder may be installed after the workers start.
struct Dropped;

impl Dropped {
    fn rtp(&self) {
        metrics::counter!("hotline_rtp_dropped_total", "reason" => "rtp_source").increment(1);
    }

    fn rtcp(&self) {
        metrics::counter!("hotline_rtp_dropped_total", "reason" => "rtcp_source").increment(1);
    }
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
            out: Vec::new(),
            dropped: Dropped,
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
                self.flush();
                break;
            }
            self.due(Instant::now());
            self.flush();
        }
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        for key in keys {
            self.end(key, "shutdown");
        }
        self.flush();
    }

    /// Carries out what the calls asked for, in order.
    fn flush(&mut self) {
        for effect in self.out.drain(..) {
            match effect {
                Effect::Acd(c) => {
                    if let Some(acd) = &self.shared.acd {
                        acd.send(c);
                    }
                }
                Effect::Record(r) => {
                    let _ = self.shared.records.send(*r);
                }
                Effect::Bye(dialogs) => bye(&self.shared, dialogs),
                Effect::PlaceTransfer(request) => {
                    if let (Some(engine), Some(rt)) = (&self.shared.engine, &self.shared.runtime) {
                        let engine = engine.clone();
                        rt.spawn(async move {
                            engine.tell(Control::PlaceTransfer(request)).await;
                        });
                    }
                }
                Effect::Finished(dialog, key) => {
                    if let Ok(mut f) = self.shared.finished.lock() {
                        f.push((dialog, key));
                    }
                }
            }
        }
    }

    /// Takes the handler's commands; `false` once the handler is gone or says stop.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Add(c)) => self.add(*c, Instant::now()),
                Ok(Command::News(key, news)) => self.news(key, news, Instant::now()),
                Ok(Command::Stop) => return false,
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// A new call, answered at `now`.
    fn add(&mut self, c: NewCall, now: Instant) {
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
        let mut facts = Facts::new(&record.caller, &self.shared.calendar, now);
        // A number that may be dialled, that holds no kept callback yet, while the book of
        // kept callbacks has room (issue 22, item 7).
        facts.may_call_back = self
            .shared
            .callback_numbers
            .as_ref()
            .is_none_or(|r| r.is_match(&record.caller))
            && self
                .shared
                .acd
                .as_ref()
                .is_none_or(|a| a.kept_callbacks().may_keep(&record.caller));
        facts.facts.may_call_back = facts.may_call_back;
        let state = CallState {
            socket,
            rtcp_socket,
            rtcp,
            rtcp_peer: None,
            epoch: now,
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
            last_heard: now,
            scheduled: None,
            jitter: None,
            leg_b: None,
            recording_paused: false,
            agent_gone: false,
            monitor: None,
        };
        self.calls.insert(key, state);
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
    /// Whether the caller's number may be called back (kept across refreshes).
    may_call_back: bool,
}

impl Facts {
    fn new(caller: &str, calendar: &WorkCalendar, now: Instant) -> Self {
        Facts {
            at: now,
            facts: CallFacts::new(caller, Utc::now(), calendar, Default::default()),
            may_call_back: true,
        }
    }

    fn get(&mut self, now: Instant, calendar: &WorkCalendar) -> &CallFacts {
        if now.duration_since(self.at) >= Duration::from_secs(1) {
            self.at = now;
            let caller = std::mem::take(&mut self.facts.caller);
            self.facts = CallFacts::new(&caller, Utc::now(), calendar, Default::default());
            self.facts.may_call_back = self.may_call_back;
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
