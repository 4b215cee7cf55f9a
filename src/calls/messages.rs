//! What the rest of the node tells the call handler, as one type ([`Control`], the handler's
//! `CallHandler::Msg`): the HTTP API's controls of a call in progress (transfer, hold,
//! monitor, recording pause), the ACD's offers, and the media workers' requests to place a
//! transfer call. Each control carries the channel its answer goes back on; what the handler
//! does with them is `control.rs`'s.

use std::net::SocketAddr;

pub use hotline_sip::media::mix::MonitorMode;
use hotline_sip::sdp::Local;

use crate::acd::service::Offer;

/// A message for the call handler on the SIP engine task.
#[derive(Debug)]
pub enum Control {
    /// Pause or resume a call's recording.
    Recording(RecordingControl),
    /// Send the caller elsewhere.
    Transfer(TransferControl),
    /// Hold the caller or take it back.
    Hold(HoldControl),
    /// A supervisor joins, changes mode or leaves.
    Monitor(MonitorControl),
    /// The ACD rings agents, stops ringing them or speaks a waiting caller's place.
    Offer(Offer),
    /// A media worker asks for a transfer call to be placed.
    PlaceTransfer(TransferRequest),
    /// Forget the calls whose media has ended and tell the node how many are in progress
    /// (a drain asks this while it waits for them).
    Count,
}

/// An agent (or a supervisor) moves the caller of a call in progress elsewhere: to an
/// emergency route, or back to a queue (blind transfer). Sent to the handler with
/// [`crate::engine::EngineHandle::tell`]; `reply` says what happened.
#[derive(Debug)]
pub struct TransferControl {
    /// The call's SIP Call-ID.
    pub call_id: String,
    /// Where to.
    pub to: TransferTarget,
    /// The agent asking (it must be the one on the call); `None`: a supervisor.
    pub agent: Option<u64>,
    /// The URI or queue the caller went to, or why not.
    pub reply: tokio::sync::oneshot::Sender<Result<String, TransferRefused>>,
}

/// The agent on a call puts the caller on hold (the caller hears music, neither hears the
/// other) or takes it back: what a browser agent's Hold button does, with no re-INVITE. Sent
/// to the handler with [`crate::engine::EngineHandle::tell`].
#[derive(Debug)]
pub struct HoldControl {
    /// The call's SIP Call-ID.
    pub call_id: String,
    /// Hold (true) or resume (false).
    pub hold: bool,
    /// The agent asking (it must be the one on the call); `None`: a supervisor.
    pub agent: Option<u64>,
    /// Done, or why not.
    pub reply: tokio::sync::oneshot::Sender<Result<(), TransferRefused>>,
}

/// A supervisor listens to a call in progress, whispers to its agent or barges in, through
/// the supervisor's own softphone (rung on the first request, auto-answered by the browser
/// page); a later request changes the mode on the same leg; `mode: None` leaves. Sent to the
/// handler with [`crate::engine::EngineHandle::tell`]; `reply` says `ringing`, `changed` or `left`.
#[derive(Debug)]
pub struct MonitorControl {
    /// The call's SIP Call-ID.
    pub call_id: String,
    /// The supervisor's softphone (SIP account), rung when not on the call yet.
    pub device: Option<String>,
    /// Listen, whisper or barge; `None`: hang up the supervisor's leg.
    pub mode: Option<MonitorMode>,
    /// What happened, or why not.
    pub reply: tokio::sync::oneshot::Sender<Result<&'static str, TransferRefused>>,
}

/// Where a caller is transferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// A configured emergency route by name (`acd.emergency_routes`).
    Emergency(String),
    /// A queue: the caller waits there again, first in line.
    Queue(String),
    /// One agent (user id): the caller waits, first in line, for that agent only.
    Agent(u64),
}

/// Why a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferRefused {
    /// No such call in progress.
    #[error("no call {0:?} in progress")]
    NoCall(String),
    /// The agent asking is not the one on the call.
    #[error("call {0:?} is not yours")]
    NotYours(String),
    /// No such route.
    #[error("no emergency route {0:?} is configured (acd.emergency_routes)")]
    NoRoute(String),
    /// The call is not with an agent (still in the IVR or waiting): nothing to monitor.
    #[error("call {0:?} is not with an agent")]
    NotTalking(String),
    /// Another supervisor is on the call (or its phone is ringing to join it).
    #[error("another supervisor is monitoring call {0:?}")]
    Monitored(String),
    /// The supervisor's softphone is not registered (or none is set in the profile).
    #[error("your softphone {0:?} is not registered")]
    NoPhone(String),
}

/// Pause or resume the recording of the call in progress with this Call-ID (sent to the
/// handler with [`crate::engine::EngineHandle::tell`]); `reply` says whether there is such a call.
#[derive(Debug)]
pub struct RecordingControl {
    /// The call's SIP Call-ID.
    pub call_id: String,
    /// Pause (true) or resume (false).
    pub pause: bool,
    /// Whether the call was found.
    pub reply: tokio::sync::oneshot::Sender<bool>,
}

/// A media thread asking the call handler to place a transfer call (an IVR `transfer` node).
#[derive(Debug)]
pub struct TransferRequest {
    /// The media thread holding the caller.
    pub worker: usize,
    /// The caller's call.
    pub key: u64,
    /// The target URI.
    pub uri: String,
    /// Where the INVITE goes.
    pub target: SocketAddr,
    /// Our From user (the number the caller dialled).
    pub from_user: String,
    /// The SDP offer for the target's leg.
    pub offer: Vec<u8>,
    /// Our side of that SDP (the handler answers the target's re-INVITEs with it).
    pub local: Local,
}
