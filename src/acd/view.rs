//! Queues, agents and waiting callers as supervisors see them: the parts of a snapshot the
//! ACD task makes ([`super::service`]) and the wall board's alerts read ([`super::alerts`]).

use serde::Serialize;

/// A queue as supervisors see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueView {
    /// Name.
    pub name: String,
    /// Callers waiting (those in self-service included: they keep their place).
    pub waiting: usize,
    /// The longest wait now, in seconds.
    pub longest_wait_secs: u64,
    /// Today (China time): callers put in the queue.
    pub offered_today: u32,
    /// Today: answered by an agent.
    pub answered_today: u32,
    /// Today: answered within the service-level target.
    pub answered_in_target_today: u32,
    /// Today: hung up while waiting.
    pub abandoned_today: u32,
    /// Today: callers who chose to be called back.
    pub callbacks_today: u32,
    /// The target, in seconds (15 by GB/T 33358-2016).
    pub target_secs: u64,
    /// Answered within the target out of those answered or abandoned, in percent (`None`
    /// before the first).
    pub service_level_pct: Option<f64>,
    /// Abandoned out of those answered or abandoned, in percent.
    pub abandon_rate_pct: Option<f64>,
}

/// An agent as supervisors see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentView {
    /// Agent id.
    pub id: u64,
    /// offline, available, ringing, on_call, wrap_up, paused.
    pub state: &'static str,
    /// The pause reason.
    pub reason: Option<String>,
    /// Seconds in this state.
    pub secs_in_state: u64,
    /// Queues logged into.
    pub queues: Vec<String>,
    /// Calls answered today.
    pub answered_today: u32,
    /// The SIP Call-ID of the call ringing or in progress.
    pub call_id: Option<String>,
}

/// A caller waiting for an agent, as supervisors see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WaitingView {
    /// The SIP Call-ID.
    pub call_id: Option<String>,
    /// The queue it waits in.
    pub queue: String,
    /// Seconds since it was first queued.
    pub waited_secs: u64,
    /// An agent's phone rings for it now.
    pub ringing: bool,
    /// A kept place: the caller hung up and is to be called back.
    pub callback: bool,
    /// In self-service, keeping its place.
    pub self_service: bool,
}
