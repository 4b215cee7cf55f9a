//! One call's media task: owns the call's RTP socket and its [`IvrCall`], and is the only
//! place the call's audio and keys are handled, so nothing on the packet path takes a lock.
//!
//! The task sleeps until the next frame or IVR timer is due, reads what the caller sends
//! (symmetric RTP: replies go where the caller's packets come from), takes signaling news
//! (confirmed, keys by SIP INFO, hold, hang-up) from the call handler, and ends the call
//! itself through the engine handle when the script hangs up or the caller's media stops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use hotline_sip::endpoint::DialogId;
use hotline_sip::media::player::Prompt;
use hotline_sip::rtp::RtpPacket;
use hotline_sip::rtp::ports::{Latch, PortAllocator};
use hotline_sip::sdp::{Direction, Negotiated};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::record::CallRecord;
use crate::ivr::call::IvrCall;
use crate::ivr::facts::CallFacts;
use crate::ivr::session::Action;
use crate::signaling::EngineHandle;
use crate::tickets::calendar::WorkCalendar;

/// News for a call's media task from the call handler.
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
}

/// Everything a media task needs, handed over when the call is answered.
pub struct MediaTask {
    /// The call's RTP socket (bound to the port the SDP announced).
    pub socket: std::net::UdpSocket,
    /// The port pair to give back at the end.
    pub port: u16,
    /// The allocator it came from.
    pub ports: Arc<Mutex<PortAllocator>>,
    /// The IVR and RTP state.
    pub call: IvrCall,
    /// What the offer/answer agreed, when known (an INVITE without SDP learns it at the ACK).
    pub negotiated: Option<Negotiated>,
    /// The dialog, to hang up.
    pub dialog: DialogId,
    /// The engine.
    pub engine: Option<EngineHandle>,
    /// The working-day calendar for the script's conditions.
    pub calendar: Arc<WorkCalendar>,
    /// Hang up after this long without RTP from the caller.
    pub inactivity: Option<Duration>,
    /// Spoken when a self-service the script asks for is not available.
    pub unavailable: Vec<Arc<Prompt>>,
    /// The record so far (parties and start time).
    pub record: CallRecord,
    /// Where the finished record goes.
    pub records: mpsc::UnboundedSender<CallRecord>,
    /// Dialogs whose task has ended, for the handler to forget.
    pub finished: Arc<Mutex<Vec<DialogId>>>,
}

/// The largest datagram read; anything longer is not G.711 RTP at 20-60 ms and is cut.
const MAX_DATAGRAM: usize = 2048;

impl MediaTask {
    /// Runs the call until it ends, then gives the port back and sends the record.
    pub async fn run(self, mut news: mpsc::UnboundedReceiver<ToMedia>) {
        let MediaTask {
            socket,
            port,
            ports,
            mut call,
            mut negotiated,
            dialog,
            engine,
            calendar,
            inactivity,
            unavailable,
            mut record,
            records,
            finished,
        } = self;
        let reason = match UdpSocket::from_std(socket) {
            Ok(socket) => {
                let mut media = Media {
                    socket,
                    latch: negotiated.map(|n| Latch::new(n.remote)),
                    sdp_remote: negotiated.map(|n| n.remote),
                    sending: negotiated.is_some_and(|n| sends(n.direction)),
                    receiving: negotiated.is_some_and(|n| receives(n.direction)),
                    last_heard: Instant::now(),
                    sent: 0,
                    received: 0,
                };
                let facts = Facts::new(&record.caller, &calendar);
                let reason = media
                    .run(
                        &mut call,
                        &mut negotiated,
                        &mut news,
                        facts,
                        inactivity,
                        &unavailable,
                        &mut record,
                    )
                    .await;
                record.packets_sent = media.sent;
                record.packets_received = media.received;
                reason
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot use the call's RTP socket");
                "media error"
            }
        };
        // Hang up ourselves unless the caller (or the engine) already ended the call.
        if matches!(
            reason,
            "ivr hung up" | "no media" | "transfer unavailable" | "media error"
        ) && let Some(engine) = &engine
        {
            let d = dialog.clone();
            engine
                .run(move |ep, now| {
                    let _ = ep.bye(now, &d);
                })
                .await;
        }
        if let Ok(mut p) = ports.lock() {
            p.release(port);
        }
        if let Ok(mut f) = finished.lock() {
            f.push(dialog);
        }
        let session = call.session();
        record.ended_at = Utc::now();
        record.end_reason = reason.to_string();
        record.codec = negotiated.map(|n| format!("{:?}", n.codec).to_uppercase());
        record.ivr_path = session.path().to_vec();
        record.ivr_vars = session.vars().clone();
        record.ivr_keys = call.keys().to_string();
        tracing::info!(
            call_id = %record.call_id,
            caller = %record.caller,
            reason,
            path = %record.ivr_path.join(">"),
            sent = record.packets_sent,
            received = record.packets_received,
            "call ended"
        );
        let _ = records.send(record);
    }
}

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
struct Facts<'a> {
    caller: String,
    calendar: &'a WorkCalendar,
    at: Instant,
    facts: CallFacts,
}

impl<'a> Facts<'a> {
    fn new(caller: &str, calendar: &'a WorkCalendar) -> Self {
        Facts {
            caller: caller.to_string(),
            calendar,
            at: Instant::now(),
            facts: CallFacts::new(caller, Utc::now(), calendar, Default::default()),
        }
    }

    fn get(&mut self, now: Instant) -> &CallFacts {
        if now.duration_since(self.at) >= Duration::from_secs(1) {
            self.at = now;
            self.facts =
                CallFacts::new(&self.caller, Utc::now(), self.calendar, Default::default());
        }
        &self.facts
    }
}

struct Media {
    socket: UdpSocket,
    latch: Option<Latch>,
    /// The address the SDP gave (the latch may have moved to the real source).
    sdp_remote: Option<SocketAddr>,
    sending: bool,
    receiving: bool,
    last_heard: Instant,
    sent: u64,
    received: u64,
}

impl Media {
    #[allow(clippy::too_many_arguments)] // one call's whole state, borrowed for its life
    async fn run(
        &mut self,
        call: &mut IvrCall,
        negotiated: &mut Option<Negotiated>,
        news: &mut mpsc::UnboundedReceiver<ToMedia>,
        mut facts: Facts<'_>,
        inactivity: Option<Duration>,
        unavailable: &[Arc<Prompt>],
        record: &mut CallRecord,
    ) -> &'static str {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let far = Duration::from_secs(3600);
        loop {
            let now = Instant::now();
            let due = call.poll_timeout().unwrap_or(now + far);
            let silent_until = match inactivity {
                Some(limit) if self.receiving && record.answered_at.is_some() => {
                    self.last_heard + limit
                }
                _ => now + far,
            };
            tokio::select! {
                biased;
                msg = news.recv() => match msg {
                    Some(ToMedia::Confirmed(answer)) => {
                        if let Some(n) = answer {
                            self.update(n);
                            call.set_codec(n.codec, n.dtmf);
                            *negotiated = Some(n);
                        }
                        let now = Instant::now();
                        record.answered_at = Some(Utc::now());
                        self.last_heard = now;
                        call.start(now, facts.get(now));
                    }
                    Some(ToMedia::Key(key)) => {
                        let now = Instant::now();
                        call.digit(now, key, facts.get(now));
                    }
                    Some(ToMedia::Update(n)) => {
                        if !self.receiving && receives(n.direction) {
                            self.last_heard = Instant::now(); // back from hold
                        }
                        self.update(n);
                        call.set_codec(n.codec, n.dtmf);
                        *negotiated = Some(n);
                    }
                    Some(ToMedia::Ended(reason)) => return reason,
                    None => return "shutdown",
                },
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = Instant::now();
                        if self.accept(&buf[..n], from, negotiated.as_ref()) {
                            self.received += 1;
                            self.last_heard = now;
                            call.handle_rtp(now, &buf[..n], facts.get(now));
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "RTP receive error"),
                },
                _ = tokio::time::sleep_until(due.into()) => {
                    let now = Instant::now();
                    call.handle_timeout(now, facts.get(now));
                }
                _ = tokio::time::sleep_until(silent_until.into()) => {
                    tracing::info!(call_id = %record.call_id, "no RTP from the caller: hanging up");
                    return "no media";
                }
            }
            while let Some(packet) = call.poll_transmit() {
                if let (true, Some(latch)) = (self.sending, self.latch) {
                    match self.socket.send_to(&packet, latch.target()).await {
                        Ok(_) => self.sent += 1,
                        Err(e) => tracing::debug!(error = %e, "RTP send failed"),
                    }
                }
            }
            while let Some(action) = call.poll_action() {
                match action {
                    Action::Hangup => return "ivr hung up",
                    Action::Transfer { uri } => {
                        tracing::error!(%uri, "IVR transfer asked for, but transfers are not available yet");
                        return "transfer unavailable";
                    }
                    Action::Knowledge { .. } | Action::TicketStatus { .. } => {
                        // The knowledge base and the ticket workflow are not connected to
                        // calls yet (issues 6 and 7): say so, and the script goes on.
                        tracing::warn!(
                            ?action,
                            "IVR self-service asked for, but it is not available yet"
                        );
                        call.speak(unavailable.to_vec());
                    }
                    Action::Score(n) => record.score = Some(n),
                    Action::Enqueue { queue, .. } => {
                        tracing::info!(call_id = %record.call_id, %queue, "caller waiting in queue");
                        record.queue = Some(queue);
                    }
                    other => tracing::debug!(action = ?other, "IVR action"),
                }
            }
        }
    }

    /// Takes a new offer/answer result: where to send, and which ways media flows.
    fn update(&mut self, n: Negotiated) {
        // A new address in the SDP starts the latch over (the caller moved); the same one
        // keeps the source already latched (a caller behind NAT holding and unholding).
        if self.sdp_remote != Some(n.remote) && !n.remote.ip().is_unspecified() {
            self.latch = Some(Latch::new(n.remote));
            self.sdp_remote = Some(n.remote);
        }
        self.sending = sends(n.direction) && !n.remote.ip().is_unspecified();
        self.receiving = receives(n.direction);
    }

    /// Whether a datagram is the caller's RTP (the agreed codec or telephone-event); latches
    /// its source.
    fn accept(&mut self, datagram: &[u8], from: SocketAddr, n: Option<&Negotiated>) -> bool {
        let (Some(n), Ok(p)) = (n, RtpPacket::parse(datagram)) else {
            return false;
        };
        if p.payload_type != n.codec.payload_type() && Some(p.payload_type) != n.dtmf {
            return false;
        }
        if let Some(l) = &mut self.latch {
            l.on_packet(from);
        }
        true
    }
}
