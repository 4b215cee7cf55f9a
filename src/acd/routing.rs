//! The ACD's routing core (issue 8), sans-IO: queues, agents and waiting callers as plain
//! state, changed only by the methods below, every one of which takes `now`. Nothing here
//! sleeps, rings or reads a clock, so every strategy, priority, overflow, ring-no-answer,
//! auto-pause and wrap-up rule is tested on a virtual clock; the task that owns an [`Acd`]
//! turns its [`Offer`]s into SIP calls and feeds back what the agents did.
//!
//! Order of callers: higher priority first (a repeat caller on the same ticket within 24
//! hours, say), then the longest waiting. Agents eligible for a caller: available, logged
//! into the caller's queue, holding every skill the queue and the caller require. Which of
//! them gets the call is the queue's [`Strategy`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How a queue picks among eligible agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The agent idle the longest.
    LongestIdle,
    /// The next agent after the one offered last (by agent id, wrapping), remembered per queue.
    RoundRobin,
    /// The agent who answered the fewest calls today (then the longest idle).
    FewestCalls,
    /// Every eligible agent at once; the first to answer takes it.
    RingAll,
    /// The best proficiency in the required skills, then the longest idle.
    Skills,
}

/// A queue's rules.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Name (the IVR's `queue` node names it).
    pub name: String,
    /// How agents are picked.
    pub strategy: Strategy,
    /// Skills every agent of this queue needs.
    pub skills: Vec<String>,
    /// Longest wait before the caller moves to `overflow`.
    pub max_wait: Option<Duration>,
    /// Where callers go after `max_wait`.
    pub overflow: Option<String>,
    /// How long an agent rings before the call moves on.
    pub ring_timeout: Duration,
    /// Missed calls in a row after which an agent is paused.
    pub max_misses: u32,
    /// Wrap-up after each call.
    pub wrap_up: Duration,
    /// Answer within this to count for the service level (GB/T 33358-2016: 15 s).
    pub service_level: Duration,
}

impl QueueConfig {
    /// A queue with the hotline's defaults: longest idle, 20 s ringing, 3 misses, 30 s
    /// wrap-up, 15 s service level, no overflow.
    pub fn new(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_string(),
            strategy: Strategy::LongestIdle,
            skills: Vec::new(),
            max_wait: None,
            overflow: None,
            ring_timeout: Duration::from_secs(20),
            max_misses: 3,
            wrap_up: Duration::from_secs(30),
            service_level: Duration::from_secs(15),
        }
    }
}

/// What an agent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Logged out.
    Offline,
    /// Waiting for a call.
    Available,
    /// Being offered a call.
    Ringing {
        /// The call.
        call: u64,
    },
    /// Talking.
    OnCall {
        /// The call.
        call: u64,
    },
    /// After a call, until then.
    WrapUp {
        /// When wrap-up ends.
        until: Instant,
    },
    /// Not taking calls, with the reason (break, meal, training, meeting, missed calls, ...).
    Paused {
        /// Why.
        reason: String,
    },
}

/// An agent.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Id.
    pub id: u64,
    /// State.
    pub state: AgentState,
    /// Since when in this state.
    pub since: Instant,
    /// Skills with proficiency 1-10.
    pub skills: BTreeMap<String, u8>,
    /// Queues logged into.
    pub queues: BTreeSet<String>,
    /// Calls answered today.
    pub answered: u32,
    /// Calls missed in a row.
    pub misses: u32,
}

/// A caller waiting in a queue.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The call.
    pub call: u64,
    /// The queue it waits in now.
    pub queue: String,
    /// Higher goes first.
    pub priority: i32,
    /// When it arrived (in the first queue: overflow keeps the caller's age).
    pub since: Instant,
    /// When it entered the current queue (for `max_wait`).
    pub entered: Instant,
    /// Skills the caller needs beyond the queue's.
    pub skills: Vec<String>,
    /// In self-service: keeps the place, offered to nobody.
    pub paused: bool,
    /// Agents ringing for it now, with when the ringing started.
    pub ringing: Vec<u64>,
    /// When the current ringing started.
    pub ring_started: Option<Instant>,
    /// A callback kept in the queue (the caller hung up): the number to call back.
    pub callback: Option<String>,
    /// Transferred to this agent: offered to nobody else (whatever its queues and skills).
    pub agent: Option<u64>,
    /// Offered to nobody before then (a callback that failed waits for its next try).
    pub not_before: Option<Instant>,
}

/// Ring these agents for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The call.
    pub call: u64,
    /// The agents (one, or several for ring-all).
    pub agents: Vec<u64>,
    /// A callback: the number to call first (the agents ring once it answers).
    pub callback: Option<String>,
}

/// Something the owner must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Stop ringing these agents for the call (answered elsewhere, timed out, abandoned).
    StopRinging {
        /// The call.
        call: u64,
        /// The agents.
        agents: Vec<u64>,
    },
    /// An agent was paused after missing calls in a row.
    AutoPaused {
        /// The agent.
        agent: u64,
        /// How many in a row.
        misses: u32,
    },
    /// The caller moved to the overflow queue.
    Overflowed {
        /// The call.
        call: u64,
        /// From.
        from: String,
        /// To.
        to: String,
    },
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// No such queue.
    #[error("no queue {0:?}")]
    NoQueue(String),
    /// No such agent.
    #[error("no agent {0}")]
    NoAgent(u64),
    /// No such waiting call.
    #[error("call {0} is not waiting")]
    NoCall(u64),
    /// The agent's state does not allow it.
    #[error("agent {agent} is {state}")]
    State {
        /// The agent.
        agent: u64,
        /// Its state.
        state: &'static str,
    },
}

fn state_name(s: &AgentState) -> &'static str {
    match s {
        AgentState::Offline => "offline",
        AgentState::Available => "available",
        AgentState::Ringing { .. } => "ringing",
        AgentState::OnCall { .. } => "on a call",
        AgentState::WrapUp { .. } => "in wrap-up",
        AgentState::Paused { .. } => "paused",
    }
}

/// Queues, agents and waiting callers.
#[derive(Debug, Default)]
pub struct Acd {
    queues: BTreeMap<String, QueueConfig>,
    agents: BTreeMap<u64, Agent>,
    waiting: Vec<Waiting>,
    /// Round robin: the agent offered last, per queue.
    last_offered: BTreeMap<String, u64>,
    /// Kept callbacks are offered to nobody (the node drains: they stay owed in the table).
    hold_callbacks: bool,
}

impl Acd {
    /// An ACD with these queues.
    pub fn new(queues: impl IntoIterator<Item = QueueConfig>) -> Acd {
        Acd {
            queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
            ..Acd::default()
        }
    }

    /// Adds (or replaces) an agent, offline.
    pub fn add_agent(&mut self, id: u64, skills: &[(&str, u8)], now: Instant) {
        self.agents.insert(
            id,
            Agent {
                id,
                state: AgentState::Offline,
                since: now,
                skills: skills.iter().map(|(s, p)| (s.to_string(), *p)).collect(),
                queues: BTreeSet::new(),
                answered: 0,
                misses: 0,
            },
        );
    }

    /// An agent.
    pub fn agent(&self, id: u64) -> Option<&Agent> {
        self.agents.get(&id)
    }

    fn agent_mut(&mut self, id: u64) -> Result<&mut Agent, AcdError> {
        self.agents.get_mut(&id).ok_or(AcdError::NoAgent(id))
    }

    fn set(&mut self, id: u64, state: AgentState, now: Instant) -> Result<(), AcdError> {
        let a = self.agent_mut(id)?;
        a.state = state;
        a.since = now;
        Ok(())
    }

    /// Logs an agent into queues and makes it available.
    pub fn login(&mut self, id: u64, queues: &[&str], now: Instant) -> Result<(), AcdError> {
        for q in queues {
            if !self.queues.contains_key(*q) {
                return Err(AcdError::NoQueue(q.to_string()));
            }
        }
        let a = self.agent_mut(id)?;
        a.queues = queues.iter().map(|q| q.to_string()).collect();
        a.misses = 0;
        self.set(id, AgentState::Available, now)
    }

    /// Pauses an agent (not while ringing or talking).
    pub fn pause(&mut self, id: u64, reason: &str, now: Instant) -> Result<(), AcdError> {
        let a = self.agent_mut(id)?;
        if matches!(
            a.state,
            AgentState::Ringing { .. } | AgentState::OnCall { .. } | AgentState::Offline
        ) {
            return Err(AcdError::State {
                agent: id,
                state: state_name(&a.state),
            });
        }
        self.set(
            id,
            AgentState::Paused {
                reason: reason.into(),
            },
            now,
        )
    }

    /// Makes a paused agent (or one in wrap-up, ending it early) available again.
    pub fn resume(&mut self, id: u64, now: Instant) -> Result<(), AcdError> {
        let a = self.agent_mut(id)?;
        if !matches!(
            a.state,
            AgentState::Paused { .. } | AgentState::WrapUp { .. }
        ) {
            return Err(AcdError::State {
                agent: id,
                state: state_name(&a.state),
            });
        }
        a.misses = 0;
        self.set(id, AgentState::Available, now)
    }

    /// Puts a caller in a queue.
    pub fn enqueue(
        &mut self,
        call: u64,
        queue: &str,
        priority: i32,
        skills: &[&str],
        now: Instant,
    ) -> Result<(), AcdError> {
        if !self.queues.contains_key(queue) {
            return Err(AcdError::NoQueue(queue.to_string()));
        }
        self.waiting.push(Waiting {
            call,
            queue: queue.to_string(),
            priority,
            since: now,
            entered: now,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            paused: false,
            ringing: Vec::new(),
            ring_started: None,
            callback: None,
            agent: None,
            not_before: None,
        });
        Ok(())
    }

    /// A kept callback from before a restart, back in its queue at its place (`since`: when
    /// the caller first queued), offered from `not_before` on.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_callback(
        &mut self,
        call: u64,
        queue: &str,
        priority: i32,
        skills: &[&str],
        number: &str,
        since: Instant,
        not_before: Option<Instant>,
    ) -> Result<(), AcdError> {
        if !self.queues.contains_key(queue) {
            return Err(AcdError::NoQueue(queue.to_string()));
        }
        self.waiting.push(Waiting {
            call,
            queue: queue.to_string(),
            priority,
            since,
            entered: since,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            paused: false,
            ringing: Vec::new(),
            ring_started: None,
            callback: Some(number.to_string()),
            agent: None,
            not_before,
        });
        Ok(())
    }

    /// From now on kept callbacks are offered to nobody (the node drains).
    pub fn hold_callbacks(&mut self) {
        self.hold_callbacks = true;
    }

    /// A callback that did not reach the caller is tried again from `at`: its place stays,
    /// the agents kept ringing for it are free again.
    pub fn retry_callback(&mut self, call: u64, at: Instant, now: Instant) -> Result<(), AcdError> {
        let w = self
            .waiting
            .iter_mut()
            .find(|w| w.call == call && w.callback.is_some())
            .ok_or(AcdError::NoCall(call))?;
        let agents = std::mem::take(&mut w.ringing);
        w.ring_started = None;
        w.not_before = Some(at);
        for a in agents {
            if self
                .agents
                .get(&a)
                .is_some_and(|x| x.state == AgentState::Ringing { call })
            {
                self.set(a, AgentState::Available, now)?;
            }
        }
        Ok(())
    }

    /// A caller transferred to one agent: offered to that agent only, when it is free.
    pub fn direct(&mut self, call: u64, agent: u64) -> Result<(), AcdError> {
        self.agent_mut(agent)?;
        let w = self
            .waiting
            .iter_mut()
            .find(|w| w.call == call)
            .ok_or(AcdError::NoCall(call))?;
        w.agent = Some(agent);
        Ok(())
    }

    /// The caller left for self-service (keeps the place) or came back.
    pub fn set_paused(&mut self, call: u64, paused: bool) -> Result<Vec<Event>, AcdError> {
        let mut events = Vec::new();
        let w = self
            .waiting
            .iter_mut()
            .find(|w| w.call == call)
            .ok_or(AcdError::NoCall(call))?;
        w.paused = paused;
        let stop = if paused {
            std::mem::take(&mut w.ringing)
        } else {
            Vec::new()
        };
        if !stop.is_empty() {
            w.ring_started = None;
            events.push(Event::StopRinging {
                call,
                agents: stop.clone(),
            });
        }
        for a in stop {
            if let Some(agent) = self.agents.get_mut(&a) {
                agent.state = AgentState::Available;
            }
        }
        Ok(events)
    }

    /// Counts one more answered call for an agent (calls answered on another node, or
    /// before a restart, when the counts are reloaded).
    pub fn answered_count_bump(&mut self, id: u64) {
        if let Some(a) = self.agents.get_mut(&id) {
            a.answered += 1;
        }
    }

    /// Callers in order of service: priority, then age.
    fn order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.waiting.len()).collect();
        idx.sort_by(|&a, &b| {
            let (x, y) = (&self.waiting[a], &self.waiting[b]);
            y.priority
                .cmp(&x.priority)
                .then(x.since.cmp(&y.since))
                .then(x.call.cmp(&y.call))
        });
        idx
    }

    /// A waiting call.
    pub fn waiting_call(&self, call: u64) -> Option<&Waiting> {
        self.waiting.iter().find(|w| w.call == call)
    }

    /// A caller's place in its queue (1 = next) and how long it has waited.
    pub fn position(&self, call: u64, now: Instant) -> Option<(usize, Duration)> {
        let w = self.waiting.iter().find(|w| w.call == call)?;
        let place = self
            .order()
            .into_iter()
            .map(|i| &self.waiting[i])
            .filter(|o| o.queue == w.queue)
            .position(|o| o.call == call)?;
        Some((place + 1, now.saturating_duration_since(w.since)))
    }

    /// Every agent, by id.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// How long the longest-waiting caller of a queue has waited.
    pub fn longest_wait(&self, queue: &str, now: Instant) -> Duration {
        self.waiting
            .iter()
            .filter(|w| w.queue == queue)
            .map(|w| now.saturating_duration_since(w.since))
            .max()
            .unwrap_or_default()
    }

    /// Logs an agent out (not while ringing or talking).
    pub fn logout(&mut self, id: u64, now: Instant) -> Result<(), AcdError> {
        let a = self.agent_mut(id)?;
        if matches!(
            a.state,
            AgentState::Ringing { .. } | AgentState::OnCall { .. }
        ) {
            return Err(AcdError::State {
                agent: id,
                state: state_name(&a.state),
            });
        }
        a.queues.clear();
        self.set(id, AgentState::Offline, now)
    }

    /// Callers waiting in a queue.
    pub fn waiting_in(&self, queue: &str) -> usize {
        self.waiting.iter().filter(|w| w.queue == queue).count()
    }

    fn eligible(&self, available: &[u64], w: &Waiting, q: &QueueConfig) -> Vec<&Agent> {
        available
            .iter()
            .filter_map(|id| self.agents.get(id))
            .filter(|a| a.state == AgentState::Available)
            .filter(|a| match w.agent {
                Some(only) => a.id == only,
                None => {
                    a.queues.contains(&w.queue)
                        && q.skills
                            .iter()
                            .chain(w.skills.iter())
                            .all(|s| a.skills.contains_key(s))
                }
            })
            .collect()
    }

    /// Matches waiting callers with available agents; the agents offered are ringing now.
    pub fn route(&mut self, now: Instant) -> Vec<Offer> {
        let mut offers = Vec::new();
        // Usually few agents are free while many callers wait: look only at those.
        let mut available: Vec<u64> = self
            .agents
            .values()
            .filter(|a| a.state == AgentState::Available)
            .map(|a| a.id)
            .collect();
        if available.is_empty() {
            return offers;
        }
        for i in self.order() {
            if available.is_empty() {
                break;
            }
            let w = &self.waiting[i];
            if w.paused
                || !w.ringing.is_empty()
                || w.not_before.is_some_and(|t| t > now)
                || (self.hold_callbacks && w.callback.is_some())
            {
                continue;
            }
            let Some(q) = self.queues.get(&w.queue) else {
                continue;
            };
            let eligible = self.eligible(&available, w, q);
            if eligible.is_empty() {
                continue;
            }
            let idle = |a: &Agent| now.saturating_duration_since(a.since);
            let chosen: Vec<u64> = match q.strategy {
                Strategy::RingAll => eligible.iter().map(|a| a.id).collect(),
                Strategy::LongestIdle => eligible
                    .iter()
                    .max_by_key(|a| (idle(a), std::cmp::Reverse(a.id)))
                    .map(|a| vec![a.id])
                    .unwrap_or_default(),
                Strategy::FewestCalls => eligible
                    .iter()
                    .min_by_key(|a| (a.answered, std::cmp::Reverse(idle(a)), a.id))
                    .map(|a| vec![a.id])
                    .unwrap_or_default(),
                Strategy::RoundRobin => {
                    let last = self.last_offered.get(&w.queue).copied();
                    let next = eligible
                        .iter()
                        .find(|a| last.is_none_or(|l| a.id > l))
                        .or_else(|| eligible.first());
                    next.map(|a| vec![a.id]).unwrap_or_default()
                }
                Strategy::Skills => {
                    let needed: Vec<&String> = q.skills.iter().chain(w.skills.iter()).collect();
                    eligible
                        .iter()
                        .max_by_key(|a| {
                            let level: u32 = needed
                                .iter()
                                .map(|s| u32::from(a.skills.get(*s).copied().unwrap_or(0)))
                                .sum();
                            (level, idle(a), std::cmp::Reverse(a.id))
                        })
                        .map(|a| vec![a.id])
                        .unwrap_or_default()
                }
            };
            if chosen.is_empty() {
                continue;
            }
            let call = w.call;
            let queue = w.queue.clone();
            if q.strategy == Strategy::RoundRobin {
                self.last_offered.insert(queue, chosen[0]);
            }
            for a in &chosen {
                if let Some(agent) = self.agents.get_mut(a) {
                    agent.state = AgentState::Ringing { call };
                    agent.since = now;
                }
            }
            available.retain(|a| !chosen.contains(a));
            let w = &mut self.waiting[i];
            w.ringing = chosen.clone();
            // A callback's agents ring only once the caller has answered: their ring timeout
            // starts then ([`Acd::ringing_now`]).
            w.ring_started = w.callback.is_none().then_some(now);
            offers.push(Offer {
                call,
                agents: chosen,
                callback: w.callback.clone(),
            });
        }
        offers
    }

    /// An agent answered: the caller leaves the queue; other ringing agents stop.
    pub fn answered(
        &mut self,
        call: u64,
        agent: u64,
        now: Instant,
    ) -> Result<Vec<Event>, AcdError> {
        let pos = self
            .waiting
            .iter()
            .position(|w| w.call == call && w.ringing.contains(&agent))
            .ok_or(AcdError::NoCall(call))?;
        let w = self.waiting.remove(pos);
        let others: Vec<u64> = w.ringing.iter().copied().filter(|a| *a != agent).collect();
        for a in &others {
            self.set(*a, AgentState::Available, now)?;
        }
        let ag = self.agent_mut(agent)?;
        ag.answered += 1;
        ag.misses = 0;
        self.set(agent, AgentState::OnCall { call }, now)?;
        Ok(if others.is_empty() {
            Vec::new()
        } else {
            vec![Event::StopRinging {
                call,
                agents: others,
            }]
        })
    }

    /// An agent's phone answered the call: [`Acd::answered`] when the agent was ringing for
    /// it; otherwise a late answer that raced the ring timeout (the agent was already counted
    /// a miss and the call may ring someone else now): the caller is connected all the same,
    /// so it leaves the queue, whoever rings for it stops, and the agent is on the call.
    pub fn connected(
        &mut self,
        call: u64,
        agent: u64,
        now: Instant,
    ) -> Result<Vec<Event>, AcdError> {
        if let Ok(events) = self.answered(call, agent, now) {
            return Ok(events);
        }
        self.agent_mut(agent)?;
        let mut events = self.abandoned(call, now).unwrap_or_default();
        let a = self.agent_mut(agent)?;
        a.answered += 1;
        a.misses = 0;
        self.set(agent, AgentState::OnCall { call }, now)?;
        for e in &mut events {
            if let Event::StopRinging { agents, .. } = e {
                agents.retain(|a| *a != agent);
            }
        }
        events.retain(|e| !matches!(e, Event::StopRinging { agents, .. } if agents.is_empty()));
        Ok(events)
    }

    /// An offer the hotline itself could not place (no port for the agent's leg): the agent is
    /// available again without a miss, and the caller waits for the next round.
    pub fn retract(&mut self, call: u64, agent: u64, now: Instant) -> Result<(), AcdError> {
        self.stop_ring(call, agent)?;
        self.set(agent, AgentState::Available, now)
    }

    /// Takes `agent` off the agents ringing for `call`; returns the call's queue.
    fn stop_ring(&mut self, call: u64, agent: u64) -> Result<String, AcdError> {
        let w = self
            .waiting
            .iter_mut()
            .find(|w| w.call == call && w.ringing.contains(&agent))
            .ok_or(AcdError::NoCall(call))?;
        w.ringing.retain(|a| *a != agent);
        if w.ringing.is_empty() {
            w.ring_started = None;
        }
        Ok(w.queue.clone())
    }

    /// The caller accepted a callback: its place is kept for calling `number` back, offered to
    /// nobody until [`Acd::callback_ready`] (the caller's call has ended).
    pub fn to_callback(&mut self, call: u64, number: &str) -> Result<Vec<Event>, AcdError> {
        let events = self.set_paused(call, true)?;
        if let Some(w) = self.waiting.iter_mut().find(|w| w.call == call) {
            w.callback = Some(number.to_string());
        }
        Ok(events)
    }

    /// The caller who asked for a callback has hung up: the kept place is offered from now on.
    pub fn callback_ready(&mut self, call: u64) -> Result<(), AcdError> {
        let w = self
            .waiting
            .iter_mut()
            .find(|w| w.call == call && w.callback.is_some())
            .ok_or(AcdError::NoCall(call))?;
        w.paused = false;
        Ok(())
    }

    /// The callback's caller answered: its agents' ring timeout runs from now.
    pub fn ringing_now(&mut self, call: u64, now: Instant) {
        if let Some(w) = self.waiting.iter_mut().find(|w| w.call == call) {
            w.ring_started = Some(now);
        }
    }

    /// The calls waiting, in order of service, with their queue and whether they are offered
    /// to nobody now (in self-service, or ringing an agent).
    pub fn waiting(&self) -> impl Iterator<Item = &Waiting> {
        self.order().into_iter().map(|i| &self.waiting[i])
    }

    /// An agent did not answer, was busy or declined: the call moves on; the agent counts a
    /// miss, and enough misses in a row pause it.
    pub fn missed(&mut self, call: u64, agent: u64, now: Instant) -> Result<Vec<Event>, AcdError> {
        let mut events = Vec::new();
        let queue = self.stop_ring(call, agent)?;
        let max = self.queues.get(&queue).map_or(3, |q| q.max_misses);
        let a = self.agent_mut(agent)?;
        a.misses += 1;
        let misses = a.misses;
        if max > 0 && misses >= max {
            self.set(
                agent,
                AgentState::Paused {
                    reason: "missed calls".into(),
                },
                now,
            )?;
            events.push(Event::AutoPaused { agent, misses });
        } else {
            self.set(agent, AgentState::Available, now)?;
        }
        Ok(events)
    }

    /// The caller hung up while waiting (abandoned): it leaves the queue, ringing stops.
    pub fn abandoned(&mut self, call: u64, now: Instant) -> Result<Vec<Event>, AcdError> {
        let pos = self
            .waiting
            .iter()
            .position(|w| w.call == call)
            .ok_or(AcdError::NoCall(call))?;
        let w = self.waiting.remove(pos);
        for a in &w.ringing {
            self.set(*a, AgentState::Available, now)?;
        }
        Ok(if w.ringing.is_empty() {
            Vec::new()
        } else {
            vec![Event::StopRinging {
                call,
                agents: w.ringing,
            }]
        })
    }

    /// The call an agent was on ended: wrap-up for the queue's time.
    pub fn call_ended(&mut self, agent: u64, queue: &str, now: Instant) -> Result<(), AcdError> {
        let wrap = self.queues.get(queue).map_or(Duration::ZERO, |q| q.wrap_up);
        let a = self.agent_mut(agent)?;
        if !matches!(a.state, AgentState::OnCall { .. }) {
            return Err(AcdError::State {
                agent,
                state: state_name(&a.state),
            });
        }
        if wrap.is_zero() {
            self.set(agent, AgentState::Available, now)
        } else {
            self.set(agent, AgentState::WrapUp { until: now + wrap }, now)
        }
    }

    /// Time passes: wrap-ups end, unanswered ringing times out (a miss), callers past their
    /// queue's longest wait overflow.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let done: Vec<u64> = self
            .agents
            .values()
            .filter(|a| matches!(a.state, AgentState::WrapUp { until } if until <= now))
            .map(|a| a.id)
            .collect();
        for id in done {
            let _ = self.set(id, AgentState::Available, now);
        }
        let timed_out: Vec<(u64, Vec<u64>)> = self
            .waiting
            .iter()
            .filter(|w| {
                let timeout = self
                    .queues
                    .get(&w.queue)
                    .map_or(Duration::from_secs(20), |q| q.ring_timeout);
                w.ring_started
                    .is_some_and(|t| now.saturating_duration_since(t) >= timeout)
            })
            .map(|w| (w.call, w.ringing.clone()))
            .collect();
        for (call, agents) in timed_out {
            events.push(Event::StopRinging {
                call,
                agents: agents.clone(),
            });
            for a in agents {
                if let Ok(mut e) = self.missed(call, a, now) {
                    events.append(&mut e);
                }
            }
        }
        for i in 0..self.waiting.len() {
            let w = &self.waiting[i];
            let Some(q) = self.queues.get(&w.queue) else {
                continue;
            };
            if let (Some(max), Some(to)) = (q.max_wait, q.overflow.clone())
                && w.ringing.is_empty()
                && now.saturating_duration_since(w.entered) >= max
                && self.queues.contains_key(&to)
            {
                let from = w.queue.clone();
                let w = &mut self.waiting[i];
                w.queue = to.clone();
                w.entered = now;
                events.push(Event::Overflowed {
                    call: w.call,
                    from,
                    to,
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests;
