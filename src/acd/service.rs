//! The task that owns the ACD's state ([`super::routing::Acd`]): one task, commands in through
//! a channel, no shared maps. Media threads tell it when the IVR puts a caller in a queue,
//! takes one out, or lets one step out for self-service and back, and when a caller hangs up;
//! agents' state changes come from the HTTP API; `Snapshot` answers what supervisors see.
//!
//! Offering calls to agents (ringing their softphones) is not connected yet: until it is,
//! the task keeps the queues and the agents' states and answers snapshots, and never rings
//! anyone (so no agent is counted a miss for a call that was never placed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::routing::{Acd, AcdError, AgentState, QueueConfig};

/// What the task is told.
#[derive(Debug)]
pub enum Command {
    /// The IVR put a caller in a queue.
    Enqueue {
        /// The call's key.
        call: u64,
        /// Queue.
        queue: String,
        /// Priority.
        priority: i32,
        /// Skills the caller needs.
        skills: Vec<String>,
    },
    /// The caller stepped out for self-service (true) or came back (false).
    SelfService {
        /// The call.
        call: u64,
        /// Out or back.
        away: bool,
    },
    /// The caller left the queue: hung up (abandoned) or went elsewhere in the script.
    Leave {
        /// The call.
        call: u64,
    },
    /// An agent logs into queues with its skills.
    Login {
        /// Agent id.
        agent: u64,
        /// Queues.
        queues: Vec<String>,
        /// Skills with proficiency.
        skills: Vec<(String, u8)>,
        /// Whether it worked.
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    /// An agent pauses with a reason, resumes, or logs out.
    AgentState {
        /// Agent id.
        agent: u64,
        /// `Some(reason)`: pause; `None`: resume.
        pause: Option<String>,
        /// Log out instead.
        logout: bool,
        /// Whether it worked.
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    /// What supervisors see now.
    Snapshot(oneshot::Sender<Snapshot>),
}

/// A queue as supervisors see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueView {
    /// Name.
    pub name: String,
    /// Callers waiting (those in self-service included: they keep their place).
    pub waiting: usize,
    /// The longest wait now, in seconds.
    pub longest_wait_secs: u64,
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
}

/// Everything at one moment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Queues.
    pub queues: Vec<QueueView>,
    /// Agents.
    pub agents: Vec<AgentView>,
}

/// Sends commands to the task.
#[derive(Debug, Clone)]
pub struct AcdHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl AcdHandle {
    /// Sends a command; false when the task has stopped.
    pub fn send(&self, c: Command) -> bool {
        self.tx.send(c).is_ok()
    }

    /// The current snapshot (`None` when the task has stopped).
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Snapshot(tx));
        rx.await.ok()
    }
}

fn state_view(s: &AgentState) -> (&'static str, Option<String>) {
    match s {
        AgentState::Offline => ("offline", None),
        AgentState::Available => ("available", None),
        AgentState::Ringing { .. } => ("ringing", None),
        AgentState::OnCall { .. } => ("on_call", None),
        AgentState::WrapUp { .. } => ("wrap_up", None),
        AgentState::Paused { reason } => ("paused", Some(reason.clone())),
    }
}

fn snapshot(acd: &Acd, names: &[String], now: Instant) -> Snapshot {
    let queues = names
        .iter()
        .map(|q| QueueView {
            name: q.clone(),
            waiting: acd.waiting_in(q),
            longest_wait_secs: acd.longest_wait(q, now).as_secs(),
        })
        .collect();
    let agents = acd
        .agents()
        .map(|a| {
            let (state, reason) = state_view(&a.state);
            AgentView {
                id: a.id,
                state,
                reason,
                secs_in_state: now.saturating_duration_since(a.since).as_secs(),
                queues: a.queues.iter().cloned().collect(),
            }
        })
        .collect();
    Snapshot { queues, agents }
}

/// Starts the task with these queues; it stops at `shutdown`.
pub fn spawn(queues: Vec<QueueConfig>, shutdown: CancellationToken) -> AcdHandle {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
    let mut acd = Acd::new(queues);
    let mut skills_of: BTreeMap<u64, Vec<(String, u8)>> = BTreeMap::new();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let command = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    acd.tick(Instant::now());
                    continue;
                }
                c = rx.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
            };
            let now = Instant::now();
            match command {
                Command::Enqueue {
                    call,
                    queue,
                    priority,
                    skills,
                } => {
                    let skills: Vec<&str> = skills.iter().map(String::as_str).collect();
                    if let Err(e) = acd.enqueue(call, &queue, priority, &skills, now) {
                        tracing::warn!(error = %e, call, "cannot queue the caller");
                    }
                }
                Command::SelfService { call, away } => {
                    let _ = acd.set_paused(call, away);
                }
                Command::Leave { call } => {
                    let _ = acd.abandoned(call, now);
                }
                Command::Login {
                    agent,
                    queues,
                    skills,
                    reply,
                } => {
                    let s: Vec<(&str, u8)> = skills.iter().map(|(k, p)| (k.as_str(), *p)).collect();
                    if acd.agent(agent).is_none() || skills_of.get(&agent) != Some(&skills) {
                        acd.add_agent(agent, &s, now);
                        skills_of.insert(agent, skills.clone());
                    }
                    let q: Vec<&str> = queues.iter().map(String::as_str).collect();
                    let _ = reply.send(acd.login(agent, &q, now));
                }
                Command::AgentState {
                    agent,
                    pause,
                    logout,
                    reply,
                } => {
                    let r = if logout {
                        acd.logout(agent, now)
                    } else {
                        match pause {
                            Some(reason) => acd.pause(agent, &reason, now),
                            None => acd.resume(agent, now),
                        }
                    };
                    let _ = reply.send(r);
                }
                Command::Snapshot(reply) => {
                    let _ = reply.send(snapshot(&acd, &names, now));
                }
            }
        }
    });
    AcdHandle { tx }
}
