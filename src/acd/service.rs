//! The task that owns the ACD's state ([`super::routing::Acd`]): one task, commands in through
//! a channel, no shared maps. Media threads tell it when the IVR puts a caller in a queue,
//! takes one out, or lets one step out for self-service and back, and when a caller hangs up;
//! agents' state changes come from the HTTP API; `Snapshot` answers what supervisors see.
//!
//! After every command and every second the task routes: each offer becomes an
//! [`Offer::Ring`] on the typed channel to the call handler (on the SIP engine task; `serve`
//! wires it), which places the calls to the agents' registered phones and reports back what
//! they did (`Answered`, `RingFailed`); a ring that times out, or a caller who leaves while
//! agents ring, becomes an [`Offer::Stop`] (CANCEL). Callers waiting get their place and the
//! estimated wait spoken ([`Offer::Announce`]) at the configured interval. Today's service
//! level (answered within the queue's target, 15 s by GB/T 33358-2016) and abandon rate are
//! counted here, per queue, and start over at midnight China time. Every change of an agent's
//! state (or queues) goes to the state history's writer ([`super::history`]), the time base
//! of occupancy.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::routing::{Acd, AcdError, AgentState, Event, QueueConfig};
pub use super::view::{AgentView, QueueView, WaitingView};

/// What the task is told.
#[derive(Debug)]
pub enum Command {
    /// The call handler is up: offers go to it through this channel from now on.
    Attach(mpsc::Sender<Offer>),
    /// The IVR put a caller in a queue.
    Enqueue {
        /// The call's key.
        call: u64,
        /// Its SIP Call-ID (agents and supervisors act on calls by it).
        call_id: String,
        /// The caller's number (kept with the place, for the missed-call list).
        caller: String,
        /// Queue.
        queue: String,
        /// Priority.
        priority: i32,
        /// Skills the caller needs.
        skills: Vec<String>,
        /// Transferred to this agent: offered to nobody else.
        agent: Option<u64>,
    },
    /// The caller stepped out for self-service (true) or came back (false).
    SelfService {
        /// The call.
        call: u64,
        /// Out or back.
        away: bool,
    },
    /// The caller left the queue: hung up (`hung_up`: abandoned) or went elsewhere in the
    /// script.
    Leave {
        /// The call.
        call: u64,
        /// The caller hung up (counts as abandoned).
        hung_up: bool,
    },
    /// The caller accepted the callback offer: keep its place for calling `number` back.
    Callback {
        /// The call.
        call: u64,
        /// The caller's number.
        number: String,
        /// The number it dialled (the callback comes from it).
        called: String,
    },
    /// The callback's caller answered: the agents' phones ring now.
    CallbackAnswered {
        /// The call (the kept place).
        call: u64,
        /// The callback's SIP Call-ID.
        call_id: String,
    },
    /// The callback could not reach the caller (no answer, busy, no route).
    CallbackFailed {
        /// The call (the kept place).
        call: u64,
        /// The final status (0: not placed).
        status: u16,
    },
    /// An agent's phone answered a call it was offered.
    Answered {
        /// The call.
        call: u64,
        /// The agent.
        agent: u64,
    },
    /// An agent's phone did not take the call: busy, declined, not registered (`miss`), or
    /// the hotline could not place the call (no miss).
    RingFailed {
        /// The call.
        call: u64,
        /// The agent.
        agent: u64,
        /// Whether it counts against the agent.
        miss: bool,
    },
    /// The call an agent was on ended (either side hung up).
    CallEnded {
        /// The agent.
        agent: u64,
        /// The queue the call came from.
        queue: String,
    },
    /// An agent logs into queues with its skills.
    Login {
        /// Agent id.
        agent: u64,
        /// The SIP account its softphone registers as.
        device: Option<String>,
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
    /// Calls answered (true) or abandoned (false) this many seconds ago, from the call
    /// records at start-up: the 24-hour connection rate survives a restart.
    Recent(Vec<(u64, bool)>),
    /// The node drains: kept callbacks are no longer placed (they stay owed in the table);
    /// callers already waiting are still offered to agents.
    Drain,
    /// What the last process saved: its agents come back in the state they chose (an
    /// available agent whose phone (`registered`: the SIP accounts with a binding) is not
    /// registered waits paused as [`PHONE_WAIT`] until it is), its kept callbacks in their
    /// places.
    Restore {
        /// The agents and callbacks.
        saved: super::store::Saved,
        /// SIP accounts registered now.
        registered: std::collections::HashSet<String>,
        /// How many were restored.
        reply: oneshot::Sender<(usize, usize)>,
    },
    /// A supervisor sends a frequent caller's calls to a dedicated queue (`Some`), or back to
    /// the queue the IVR chooses (`None`). Nothing is ever blocked (Art. 12, 34).
    Reroute {
        /// The caller's number.
        caller: String,
        /// The queue its calls wait in from now on.
        queue: Option<String>,
    },
    /// A SIP account registered a phone: an agent waiting for it ([`PHONE_WAIT`]) takes calls.
    PhoneAttached {
        /// The SIP account.
        device: String,
    },
}

/// The pause reason of an agent restored as available whose phone has not registered again
/// yet: no call is offered to it until its phone registers (then it is available again).
pub const PHONE_WAIT: &str = "waiting for the phone to register";

/// Call keys of callbacks restored at start: far above any key the call handler counts to
/// (and below the media workers' token flags).
const RESTORED_KEYS: u64 = 1 << 40;

/// What the ACD asks of the call handler (on the SIP engine task): ring agents for a call,
/// stop ringing them, tell a waiting caller its place. `serve` wires the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Ring these agents' phones for this call.
    Ring(RingAgents),
    /// Stop ringing these agents (CANCEL).
    Stop(StopRinging),
    /// Tell the caller its place and the estimated wait.
    Announce(Announce),
}

/// For the call handler: ring these agents' phones for this call (one, or several at once
/// for ring-all; the first to answer takes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingAgents {
    /// The call's key.
    pub call: u64,
    /// Agent id and the SIP account its phone registers as (`None`: it has none).
    pub agents: Vec<(u64, Option<String>)>,
    /// A callback: call the caller first, ring the agents once it answers.
    pub callback: Option<CallbackDial>,
}

/// The caller a callback calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackDial {
    /// The caller's number.
    pub number: String,
    /// The hotline number the caller dialled (the callback's From).
    pub called: String,
    /// The queue the place was kept in.
    pub queue: String,
}

/// For the call handler: stop ringing these agents for this call (CANCEL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRinging {
    /// The call's key.
    pub call: u64,
    /// The agents.
    pub agents: Vec<u64>,
}

/// For the call handler: tell the caller its place in the queue and the estimated wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The call's key.
    pub call: u64,
    /// 1 = next.
    pub place: usize,
    /// Estimated wait, whole minutes (at least 1).
    pub minutes: u64,
}

/// Everything at one moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// Queues.
    pub queues: Vec<QueueView>,
    /// Agents.
    pub agents: Vec<AgentView>,
    /// Callers waiting, the longest first.
    pub waiting: Vec<WaitingView>,
    /// Calls answered and abandoned in the last 24 hours, and the connection rate over them
    /// (answered out of both, percent; `None` before any).
    pub answered_24h: u32,
    pub abandoned_24h: u32,
    pub connection_rate_24h_pct: Option<f64>,
    /// What needs a supervisor's eye now.
    pub alerts: Vec<super::alerts::Alert>,
    /// The node's own state (draining, restored at start): filled in by the HTTP layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<crate::node::NodeView>,
}

/// Sends commands to the task.
#[derive(Debug, Clone)]
pub struct AcdHandle {
    tx: mpsc::UnboundedSender<Command>,
    kept: Arc<KeptCallbacks>,
}

/// The numbers holding a kept callback place (issue 22, item 7): the ACD keeps the book as
/// its queue entries change; the media workers read it when a call starts and offer the
/// callback only to a number without one while fewer than the cap are kept, so a flood of
/// calls cannot pile up callbacks the hotline must dial at its cost.
#[derive(Debug, Default)]
pub struct KeptCallbacks {
    book: std::sync::Mutex<KeptBook>,
}

#[derive(Debug, Default)]
struct KeptBook {
    max: usize,
    by_call: HashMap<u64, String>,
    by_number: HashMap<String, usize>,
}

impl KeptCallbacks {
    fn new(max: usize) -> Self {
        let k = KeptCallbacks::default();
        if let Ok(mut b) = k.book.lock() {
            b.max = max;
        }
        k
    }

    /// Call `call` holds a kept callback to `number`, or (`None`) none.
    fn set(&self, call: u64, number: Option<&str>) {
        let Ok(mut b) = self.book.lock() else {
            return;
        };
        if let Some(old) = b.by_call.remove(&call)
            && let Some(n) = b.by_number.get_mut(&old)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                b.by_number.remove(&old);
            }
        }
        if let Some(number) = number {
            b.by_call.insert(call, number.to_string());
            *b.by_number.entry(number.to_string()).or_default() += 1;
        }
        metrics::gauge!("hotline_callbacks_kept").set(b.by_call.len() as f64);
    }

    /// Whether a caller from `number` may be offered a callback now.
    pub fn may_keep(&self, number: &str) -> bool {
        self.book
            .lock()
            .is_ok_and(|b| b.by_call.len() < b.max && !b.by_number.contains_key(number))
    }

    /// Callback places kept now.
    pub fn len(&self) -> usize {
        self.book.lock().map_or(0, |b| b.by_call.len())
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AcdHandle {
    /// Sends a command; false when the task has stopped.
    pub fn send(&self, c: Command) -> bool {
        self.tx.send(c).is_ok()
    }

    /// The book of kept callbacks (what the media workers ask before offering one).
    pub fn kept_callbacks(&self) -> &KeptCallbacks {
        &self.kept
    }

    /// A handle whose commands arrive on the returned receiver instead of at an ACD task:
    /// what the call-path tests read to see what the call handler tells the ACD.
    pub fn channel() -> (AcdHandle, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let kept = Arc::new(KeptCallbacks::new(AcdSettings::default().max_callbacks));
        (AcdHandle { tx, kept }, rx)
    }

    /// The current snapshot (`None` when the task has stopped).
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Snapshot(tx));
        rx.await.ok()
    }
}

/// Settings of the task beyond the queues.
#[derive(Debug, Clone)]
pub struct AcdSettings {
    /// Speak the place and estimated wait this often to each waiting caller (`None`: never).
    pub announce_every: Option<Duration>,
    /// The talk time assumed for the estimate before any call has ended.
    pub default_talk_time: Duration,
    /// When the wall board raises alerts.
    pub alerts: super::alerts::AlertSettings,
    /// Where agents' state changes go (the state history's writer), if anywhere.
    pub history: Option<mpsc::UnboundedSender<StateChange>>,
    /// Where the state that outlives the process goes ([`super::store`]), if anywhere.
    pub store: Option<mpsc::UnboundedSender<super::store::Write>>,
    /// How failed callbacks are tried again.
    pub callback_retry: CallbackRetry,
    /// Most callback places kept at once (`acd.max_callbacks`).
    pub max_callbacks: usize,
}

/// How a callback that did not reach the caller (busy, no answer, refused) is tried again:
/// `attempts` tries in all, `spacing` apart, each inside the calling hours (China time; a try
/// due outside them waits for the next opening); after the last the caller goes on the
/// missed-call list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRetry {
    /// Tries in all (1: no retry).
    pub attempts: u32,
    /// Time between tries.
    pub spacing: Duration,
    /// Calling hours, China time: from, until (`None`: any time).
    pub hours: Option<(chrono::NaiveTime, chrono::NaiveTime)>,
}

impl Default for CallbackRetry {
    fn default() -> Self {
        CallbackRetry {
            attempts: 3,
            spacing: Duration::from_secs(600),
            hours: chrono::NaiveTime::from_hms_opt(8, 0, 0)
                .zip(chrono::NaiveTime::from_hms_opt(21, 0, 0)),
        }
    }
}

impl CallbackRetry {
    /// When the next try may be made after one failed at `now`: `spacing` later, moved to the
    /// next opening of the calling hours when it falls outside them.
    pub fn next_try(&self, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        let at = now + chrono::Duration::from_std(self.spacing).unwrap_or_default();
        let Some((from, until)) = self.hours else {
            return at;
        };
        let tz = crate::china::calendar::china_time();
        let local = at.with_timezone(&tz);
        let time = local.time();
        let inside = if from <= until {
            time >= from && time < until
        } else {
            time >= from || time < until // hours across midnight
        };
        if inside {
            return at;
        }
        let mut day = local.date_naive();
        if time >= from {
            day = day.succ_opt().unwrap_or(day);
        }
        day.and_time(from)
            .and_local_timezone(tz)
            .single()
            .map_or(at, |t| t.with_timezone(&Utc))
    }
}

/// An agent's state (or the queues it is logged into) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The agent.
    pub agent: u64,
    /// `offline`, `available`, `ringing`, `on_call`, `wrap_up`, `paused`.
    pub state: &'static str,
    /// The pause reason.
    pub reason: Option<String>,
    /// The queues logged into.
    pub queues: Vec<String>,
    /// When.
    pub at: chrono::DateTime<Utc>,
}

impl Default for AcdSettings {
    fn default() -> Self {
        AcdSettings {
            announce_every: Some(Duration::from_secs(60)),
            default_talk_time: Duration::from_secs(180),
            alerts: Default::default(),
            history: None,
            store: None,
            callback_retry: CallbackRetry::default(),
            max_callbacks: 200,
        }
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

/// One queue's counts for one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DayCounts {
    offered: u32,
    answered: u32,
    in_target: u32,
    abandoned: u32,
    callbacks: u32,
}

/// The connection rate's window.
const DAY: Duration = Duration::from_secs(24 * 3600);

fn pct(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0)
}

/// The date in China (UTC+8, no daylight saving), when the day's counts start over.
fn china_today() -> NaiveDate {
    Utc::now()
        .with_timezone(&crate::china::calendar::china_time())
        .date_naive()
}

/// The task's state beside the routing core.
struct Service {
    acd: Acd,
    queues: Vec<QueueConfig>,
    settings: AcdSettings,
    /// The numbers holding kept callbacks, shared with the media workers.
    kept: Arc<KeptCallbacks>,
    /// Where offers go (none until the call handler is up).
    offers: Option<mpsc::Sender<Offer>>,
    skills_of: BTreeMap<u64, Vec<(String, u8)>>,
    devices: HashMap<u64, Option<String>>,
    /// When each waiting caller's place was last spoken (or it was queued).
    announced: HashMap<u64, Instant>,
    /// When each agent's call started (for the talk-time average).
    talking: HashMap<u64, Instant>,
    /// Average talk time, seconds (a moving average of the last calls).
    talk_secs: f64,
    day: NaiveDate,
    counts: BTreeMap<String, DayCounts>,
    answered_by: HashMap<u64, u32>,
    /// Kept places for callbacks: the number the caller dialled (the callback's From; the
    /// number to call and whether the caller has hung up are the routing core's).
    callbacks: HashMap<u64, String>,
    /// The SIP Call-ID of each call the ACD knows.
    call_ids: HashMap<u64, String>,
    /// Calls answered (true) or abandoned (false) in the last 24 hours, oldest first.
    recent: VecDeque<(Instant, bool)>,
    /// Each agent's state, reason and queues as last sent to the history.
    noted: HashMap<u64, (&'static str, Option<String>, Vec<String>)>,
    /// Each waiting caller's place as saved ([`super::store`]), by call key.
    entries: HashMap<u64, super::store::Entry>,
    /// Keys given to restored callbacks so far.
    restored: u64,
    /// Frequent callers a supervisor sent to a dedicated queue: number -> queue.
    reroutes: HashMap<String, String>,
}

impl Service {
    fn count(&mut self, queue: &str) -> &mut DayCounts {
        let today = china_today();
        if today != self.day {
            self.day = today;
            self.counts.clear();
            self.answered_by.clear();
        }
        self.counts.entry(queue.to_string()).or_default()
    }

    /// Sends the history every agent whose state, reason or queues changed since last time
    /// (an agent the ACD no longer knows is offline).
    fn note_states(&mut self) {
        let Some(tx) = &self.settings.history else {
            return;
        };
        let at = Utc::now();
        for a in self.acd.agents() {
            let (state, reason) = state_view(&a.state);
            let same = self.noted.get(&a.id).is_some_and(|(s, r, q)| {
                *s == state
                    && *r == reason
                    && q.len() == a.queues.len()
                    && q.iter().zip(&a.queues).all(|(x, y)| x == y)
            });
            if same {
                continue;
            }
            let queues: Vec<String> = a.queues.iter().cloned().collect();
            let _ = tx.send(StateChange {
                agent: a.id,
                state,
                reason: reason.clone(),
                queues: queues.clone(),
                at,
            });
            self.noted.insert(a.id, (state, reason, queues));
        }
        let gone: Vec<u64> = self
            .noted
            .keys()
            .filter(|id| self.acd.agent(**id).is_none())
            .copied()
            .collect();
        for agent in gone {
            self.noted.remove(&agent);
            let _ = tx.send(StateChange {
                agent,
                state: "offline",
                reason: None,
                queues: Vec::new(),
                at,
            });
        }
    }

    fn save(&self, w: super::store::Write) {
        if let Some(tx) = &self.settings.store {
            let _ = tx.send(w);
        }
    }

    /// Saves an agent's chosen state, queues, skills and phone (or its logout) after a change.
    /// Ringing, talking and wrap-up are the moment's, not a choice: they save as available;
    /// so does waiting for the phone.
    fn save_agent(&self, agent: u64) {
        use super::store::{Chosen, SavedAgent, Write};
        let Some(a) = self.acd.agent(agent) else {
            return self.save(Write::AgentGone(agent));
        };
        let chosen = match &a.state {
            AgentState::Offline => return self.save(Write::AgentGone(agent)),
            AgentState::Paused { reason } if reason != PHONE_WAIT => Chosen::Paused(reason.clone()),
            _ => Chosen::Available,
        };
        self.save(Write::Agent(SavedAgent {
            agent,
            device: self.devices.get(&agent).cloned().flatten(),
            queues: a.queues.iter().cloned().collect(),
            skills: self.skills_of.get(&agent).cloned().unwrap_or_default(),
            chosen,
        }));
    }

    fn save_entry(&self, call: u64) {
        if let Some(e) = self.entries.get(&call) {
            self.kept
                .set(call, e.callback.as_ref().map(|c| c.number.as_str()));
            self.save(super::store::Write::Entry(e.clone()));
        }
    }

    /// The caller left its queue: its saved place goes.
    fn drop_entry(&mut self, call: u64) {
        self.kept.set(call, None);
        if let Some(e) = self.entries.remove(&call) {
            self.save(super::store::Write::EntryGone(e.call_id));
        }
    }

    /// A callback did not reach the caller: tried again by the rule, or after the last try the
    /// caller goes on the missed-call list and the place is given up.
    async fn callback_failed(&mut self, call: u64, status: u16, now: Instant) {
        let retry = self.settings.callback_retry.clone();
        let wall = Utc::now();
        let again = self.entries.get_mut(&call).and_then(|e| {
            let cb = e.callback.as_mut()?;
            cb.tries += 1;
            (cb.tries < retry.attempts).then(|| {
                let next = retry.next_try(wall);
                cb.next_try_at = Some(next);
                (cb.tries, next)
            })
        });
        if let Some((tries, next)) = again {
            let wait = (next - wall).to_std().unwrap_or_default();
            if self.acd.retry_callback(call, now + wait, now).is_ok() {
                tracing::warn!(call, status, tries, next = %next, "the callback did not reach the caller; it is tried again");
                metrics::counter!("hotline_callbacks_failed_total", "then" => "retry").increment(1);
                self.save_entry(call);
                return;
            }
        }
        tracing::warn!(
            call,
            status,
            "the callback did not reach the caller; it goes on the missed-call list"
        );
        metrics::counter!("hotline_callbacks_failed_total", "then" => "missed").increment(1);
        self.kept.set(call, None);
        if let Some(e) = self.entries.remove(&call) {
            let waited = (wall - e.queued_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.save(super::store::Write::CallbackFailed {
                call_id: e.call_id,
                queue: e.queue,
                waited_secs: waited,
            });
        }
        self.callbacks.remove(&call);
        self.call_ids.remove(&call);
        self.announced.remove(&call);
        if let Ok(events) = self.acd.abandoned(call, now) {
            self.events(events).await;
        }
    }

    /// Takes back what the last process saved; returns the agents and callbacks restored.
    async fn restore(
        &mut self,
        saved: super::store::Saved,
        registered: &std::collections::HashSet<String>,
        now: Instant,
    ) -> (usize, usize) {
        use super::store::Chosen;
        let mut agents = 0;
        for a in saved.agents {
            let skills: Vec<(&str, u8)> = a.skills.iter().map(|(k, p)| (k.as_str(), *p)).collect();
            self.acd.add_agent(a.agent, &skills, now);
            self.skills_of.insert(a.agent, a.skills.clone());
            self.devices.insert(a.agent, a.device.clone());
            let queues: Vec<&str> = a.queues.iter().map(String::as_str).collect();
            if let Err(e) = self.acd.login(a.agent, &queues, now) {
                tracing::warn!(agent = a.agent, error = %e, "a saved agent cannot log in again: logged out");
                let _ = self.acd.logout(a.agent, now);
                self.save_agent(a.agent);
                continue;
            }
            let phone = a.device.as_ref().is_some_and(|d| registered.contains(d));
            let r = match &a.chosen {
                Chosen::Paused(reason) => self.acd.pause(a.agent, reason, now),
                Chosen::Available if phone => Ok(()),
                Chosen::Available => self.acd.pause(a.agent, PHONE_WAIT, now),
            };
            if let Err(e) = r {
                tracing::warn!(agent = a.agent, error = %e, "a saved agent's state");
            }
            agents += 1;
        }
        let mut callbacks = 0;
        let wall = Utc::now();
        for e in saved.callbacks {
            let Some(cb) = e.callback.clone() else {
                continue;
            };
            let age = (wall - e.queued_at).to_std().unwrap_or_default();
            let since = now.checked_sub(age).unwrap_or(now);
            let not_before = cb
                .next_try_at
                .and_then(|t| (t - wall).to_std().ok())
                .map(|d| now + d);
            self.restored += 1;
            let key = RESTORED_KEYS + self.restored;
            let skills: Vec<&str> = e.skills.iter().map(String::as_str).collect();
            match self.acd.restore_callback(
                key, &e.queue, e.priority, &skills, &cb.number, since, not_before,
            ) {
                Ok(()) => {
                    self.callbacks.insert(key, cb.called.clone());
                    self.call_ids.insert(key, e.call_id.clone());
                    self.kept.set(key, Some(&cb.number));
                    self.entries.insert(key, e);
                    callbacks += 1;
                }
                Err(err) => {
                    tracing::warn!(call_id = %e.call_id, error = %err, "a kept callback whose queue is gone: on the missed-call list");
                    self.save(super::store::Write::CallbackFailed {
                        call_id: e.call_id,
                        queue: e.queue,
                        waited_secs: age.as_secs_f64(),
                    });
                }
            }
        }
        self.note_states();
        (agents, callbacks)
    }

    /// The queue a call waits in now (overflow moves it).
    fn queue_of(&self, call: u64) -> Option<String> {
        self.acd.waiting_call(call).map(|w| w.queue.clone())
    }

    fn snapshot(&mut self, now: Instant) -> Snapshot {
        let _ = self.count(""); // starts the day over at midnight even when nothing happens
        let queues: Vec<QueueView> = self
            .queues
            .iter()
            .map(|q| {
                let c = self.counts.get(&q.name).copied().unwrap_or_default();
                let closed = c.answered + c.abandoned;
                QueueView {
                    name: q.name.clone(),
                    waiting: self.acd.waiting_in(&q.name),
                    longest_wait_secs: self.acd.longest_wait(&q.name, now).as_secs(),
                    offered_today: c.offered,
                    answered_today: c.answered,
                    answered_in_target_today: c.in_target,
                    abandoned_today: c.abandoned,
                    callbacks_today: c.callbacks,
                    target_secs: q.service_level.as_secs(),
                    service_level_pct: pct(c.in_target, closed),
                    abandon_rate_pct: pct(c.abandoned, closed),
                }
            })
            .collect();
        let agents: Vec<AgentView> = self
            .acd
            .agents()
            .map(|a| {
                let (state, reason) = state_view(&a.state);
                AgentView {
                    id: a.id,
                    state,
                    reason,
                    secs_in_state: now.saturating_duration_since(a.since).as_secs(),
                    queues: a.queues.iter().cloned().collect(),
                    answered_today: self.answered_by.get(&a.id).copied().unwrap_or(0),
                    call_id: match a.state {
                        AgentState::Ringing { call } | AgentState::OnCall { call } => {
                            self.call_ids.get(&call).cloned()
                        }
                        _ => None,
                    },
                }
            })
            .collect();
        let mut waiting: Vec<WaitingView> = self
            .acd
            .waiting()
            .map(|w| WaitingView {
                call_id: self.call_ids.get(&w.call).cloned(),
                queue: w.queue.clone(),
                waited_secs: now.saturating_duration_since(w.since).as_secs(),
                ringing: !w.ringing.is_empty(),
                callback: w.callback.is_some(),
                self_service: w.paused,
            })
            .collect();
        waiting.sort_by_key(|w| std::cmp::Reverse(w.waited_secs));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > DAY)
        {
            self.recent.pop_front();
        }
        let answered_24h = self.recent.iter().filter(|(_, a)| *a).count() as u32;
        let abandoned_24h = self.recent.len() as u32 - answered_24h;
        let connection_rate_24h_pct = pct(answered_24h, answered_24h + abandoned_24h);
        let alerts = super::alerts::alerts(
            &queues,
            &agents,
            connection_rate_24h_pct,
            &self.settings.alerts,
        );
        Snapshot {
            queues,
            agents,
            waiting,
            answered_24h,
            abandoned_24h,
            connection_rate_24h_pct,
            alerts,
            node: None,
        }
    }

    async fn offer(&self, offer: Offer) {
        if let Some(offers) = &self.offers {
            let _ = offers.send(offer).await;
        }
    }

    /// Acts on the routing core's events: ringing to stop, agents paused.
    async fn events(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::StopRinging { call, agents } => {
                    self.offer(Offer::Stop(StopRinging { call, agents })).await;
                }
                Event::AutoPaused { agent, misses } => {
                    tracing::warn!(agent, misses, "agent paused after missing calls in a row");
                    self.save_agent(agent);
                }
                Event::Overflowed { call, from, to } => {
                    tracing::info!(call, %from, %to, "caller moved to the overflow queue");
                    if let Some(e) = self.entries.get_mut(&call) {
                        e.queue = to;
                    }
                    self.save_entry(call);
                }
            }
        }
    }

    /// Offers waiting callers to free agents: the handler rings their phones.
    async fn route(&mut self, now: Instant) {
        if self.offers.is_none() {
            return; // nothing could ring: no agent counts a miss for a call never placed
        }
        for offer in self.acd.route(now) {
            let agents = offer
                .agents
                .iter()
                .map(|a| (*a, self.devices.get(a).cloned().flatten()))
                .collect();
            tracing::info!(call = offer.call, agents = ?offer.agents, callback = offer.callback.is_some(), "offering a call");
            let callback = match (offer.callback, self.callbacks.get(&offer.call)) {
                (Some(number), Some(called)) => Some(CallbackDial {
                    number,
                    called: called.clone(),
                    queue: self.queue_of(offer.call).unwrap_or_default(),
                }),
                _ => None,
            };
            self.offer(Offer::Ring(RingAgents {
                call: offer.call,
                agents,
                callback,
            }))
            .await;
        }
    }

    /// Speaks the place and the estimated wait to callers whose turn for it has come.
    async fn announce(&mut self, now: Instant) {
        let Some(every) = self.settings.announce_every else {
            return;
        };
        let mut due = Vec::new();
        let mut place: HashMap<&str, usize> = HashMap::new();
        for w in self.acd.waiting() {
            let p = place.entry(w.queue.as_str()).or_insert(0);
            *p += 1;
            if w.paused || !w.ringing.is_empty() {
                continue;
            }
            if let Some(last) = self.announced.get(&w.call)
                && now.saturating_duration_since(*last) >= every
            {
                due.push((w.call, w.queue.clone(), *p));
            }
        }
        for (call, queue, place) in due {
            let staffed = self
                .acd
                .agents()
                .filter(|a| a.queues.contains(&queue) && a.state != AgentState::Offline)
                .count()
                .max(1);
            let secs = self.talk_secs * place as f64 / staffed as f64;
            let minutes = ((secs / 60.0).ceil() as u64).max(1);
            self.announced.insert(call, now);
            self.offer(Offer::Announce(Announce {
                call,
                place,
                minutes,
            }))
            .await;
        }
    }

    async fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Attach(offers) => self.offers = Some(offers),
            Command::Enqueue {
                call,
                call_id,
                caller,
                queue,
                priority,
                skills,
                agent,
            } => {
                let s: Vec<&str> = skills.iter().map(String::as_str).collect();
                // A frequent caller a supervisor routed waits in that queue (a transfer to an
                // agent stays a transfer); a queue that no longer exists leaves the IVR's.
                let rerouted = self
                    .reroutes
                    .get(&caller)
                    .filter(|q| agent.is_none() && **q != queue)
                    .filter(|q| self.acd.enqueue(call, q, priority, &s, now).is_ok())
                    .cloned();
                if let Some(q) = &rerouted {
                    tracing::info!(call, from = %queue, to = %q, "a frequent caller goes to its queue");
                }
                let queue = rerouted.clone().unwrap_or(queue);
                let queued = match rerouted {
                    Some(_) => Ok(()),
                    None => self.acd.enqueue(call, &queue, priority, &s, now),
                };
                match queued {
                    Ok(()) => {
                        if let Some(a) = agent
                            && let Err(e) = self.acd.direct(call, a)
                        {
                            tracing::warn!(error = %e, call, "a transfer to an unknown agent");
                        }
                        self.entries.insert(
                            call,
                            super::store::Entry {
                                call_id: call_id.clone(),
                                caller,
                                queue: queue.clone(),
                                priority,
                                skills: skills.clone(),
                                queued_at: Utc::now(),
                                callback: None,
                            },
                        );
                        self.save_entry(call);
                        self.call_ids.insert(call, call_id);
                        self.count(&queue).offered += 1;
                        self.announced.insert(call, now);
                    }
                    Err(e) => tracing::warn!(error = %e, call, "cannot queue the caller"),
                }
            }
            Command::Reroute { caller, queue } => match queue {
                Some(q) => {
                    self.reroutes.insert(caller, q);
                }
                None => {
                    self.reroutes.remove(&caller);
                }
            },
            Command::SelfService { call, away } => {
                if let Ok(events) = self.acd.set_paused(call, away) {
                    self.events(events).await;
                }
                // Back from self-service: the next announcement is a full interval away.
                if let Some(last) = self.announced.get_mut(&call) {
                    *last = now;
                }
            }
            Command::Leave { call, .. }
                if self
                    .acd
                    .waiting_call(call)
                    .is_some_and(|w| w.callback.is_some() && w.paused) =>
            {
                // The caller who chose a callback said goodbye: its kept place is offered now.
                let _ = self.acd.callback_ready(call);
            }
            Command::Callback {
                call,
                number,
                called,
            } => match self.acd.to_callback(call, &number) {
                Ok(events) => {
                    tracing::info!(call, "the caller chose a callback; its place is kept");
                    if let Some(q) = self.queue_of(call) {
                        self.count(&q).callbacks += 1;
                    }
                    if let Some(e) = self.entries.get_mut(&call) {
                        e.callback = Some(super::store::Callback {
                            number,
                            called: called.clone(),
                            tries: 0,
                            next_try_at: None,
                        });
                    }
                    self.save_entry(call);
                    self.callbacks.insert(call, called);
                    self.events(events).await;
                }
                Err(e) => tracing::warn!(error = %e, call, "a callback for a caller not waiting"),
            },
            Command::CallbackAnswered { call, call_id } => {
                self.call_ids.insert(call, call_id);
                self.acd.ringing_now(call, now);
            }
            Command::CallbackFailed { call, status } => {
                self.callback_failed(call, status, now).await;
            }
            Command::Leave { call, hung_up } => {
                self.drop_entry(call);
                self.callbacks.remove(&call);
                self.call_ids.remove(&call);
                self.announced.remove(&call);
                let queue = self.queue_of(call);
                if let Ok(events) = self.acd.abandoned(call, now) {
                    if let (true, Some(q)) = (hung_up, &queue) {
                        self.count(q).abandoned += 1;
                        self.recent.push_back((now, false));
                    }
                    self.events(events).await;
                }
            }
            Command::Answered { call, agent } => {
                self.drop_entry(call);
                self.callbacks.remove(&call);
                let waited = self.acd.position(call, now).map(|(_, w)| w);
                self.announced.remove(&call);
                let queue = self.queue_of(call);
                match self.acd.connected(call, agent, now) {
                    Ok(events) => {
                        if let Some(q) = &queue {
                            let target = self
                                .queues
                                .iter()
                                .find(|c| &c.name == q)
                                .map_or(Duration::from_secs(15), |c| c.service_level);
                            self.recent.push_back((now, true));
                            let c = self.count(q);
                            c.answered += 1;
                            if waited.is_some_and(|w| w <= target) {
                                c.in_target += 1;
                            }
                        }
                        *self.answered_by.entry(agent).or_default() += 1;
                        self.talking.insert(agent, now);
                        self.events(events).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, call, agent, "an answer the ACD cannot place")
                    }
                }
            }
            Command::RingFailed { call, agent, miss } => {
                let r = if miss {
                    self.acd.missed(call, agent, now)
                } else {
                    self.acd.retract(call, agent, now).map(|()| Vec::new())
                };
                if let Ok(events) = r {
                    self.events(events).await;
                }
            }
            Command::CallEnded { agent, queue } => {
                if let Some(AgentState::OnCall { call }) = self.acd.agent(agent).map(|a| &a.state) {
                    self.call_ids.remove(call);
                }
                if let Some(start) = self.talking.remove(&agent) {
                    let secs = now.saturating_duration_since(start).as_secs_f64();
                    self.talk_secs = 0.8 * self.talk_secs + 0.2 * secs;
                }
                if let Err(e) = self.acd.call_ended(agent, &queue, now) {
                    tracing::debug!(error = %e, agent, "call end for an agent not on a call");
                }
            }
            Command::Login {
                agent,
                device,
                queues,
                skills,
                reply,
            } => {
                let s: Vec<(&str, u8)> = skills.iter().map(|(k, p)| (k.as_str(), *p)).collect();
                if self.acd.agent(agent).is_none() || self.skills_of.get(&agent) != Some(&skills) {
                    self.acd.add_agent(agent, &s, now);
                    self.skills_of.insert(agent, skills.clone());
                }
                self.devices.insert(agent, device);
                let q: Vec<&str> = queues.iter().map(String::as_str).collect();
                let r = self.acd.login(agent, &q, now);
                if r.is_ok() {
                    self.save_agent(agent);
                }
                let _ = reply.send(r);
            }
            Command::AgentState {
                agent,
                pause,
                logout,
                reply,
            } => {
                let r = if logout {
                    self.acd.logout(agent, now)
                } else {
                    match pause {
                        Some(reason) => self.acd.pause(agent, &reason, now),
                        None => self.acd.resume(agent, now),
                    }
                };
                if r.is_ok() {
                    self.save_agent(agent);
                }
                let _ = reply.send(r);
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot(now));
            }
            Command::Restore {
                saved,
                registered,
                reply,
            } => {
                let restored = self.restore(saved, &registered, now).await;
                let _ = reply.send(restored);
            }
            Command::PhoneAttached { device } => {
                let waiting: Vec<u64> = self
                    .acd
                    .agents()
                    .filter(|a| {
                        matches!(&a.state, AgentState::Paused { reason } if reason == PHONE_WAIT)
                            && self.devices.get(&a.id).and_then(Option::as_deref)
                                == Some(device.as_str())
                    })
                    .map(|a| a.id)
                    .collect();
                for agent in waiting {
                    tracing::info!(agent, "the agent's phone registered: it takes calls again");
                    let _ = self.acd.resume(agent, now);
                }
            }
            Command::Drain => {
                tracing::info!("draining: kept callbacks wait for the next start");
                self.acd.hold_callbacks();
            }
            Command::Recent(calls) => {
                let mut seeded: Vec<(Instant, bool)> = calls
                    .into_iter()
                    .filter_map(|(ago, answered)| {
                        Some((now.checked_sub(Duration::from_secs(ago))?, answered))
                    })
                    .chain(self.recent.drain(..))
                    .collect();
                seeded.sort_by_key(|(t, _)| *t);
                self.recent = seeded.into();
            }
        }
    }
}

/// Starts the task with these queues; it stops at `shutdown`.
pub fn spawn(
    queues: Vec<QueueConfig>,
    settings: AcdSettings,
    shutdown: CancellationToken,
) -> AcdHandle {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let kept = Arc::new(KeptCallbacks::new(settings.max_callbacks));
    let mut service = Service {
        kept: Arc::clone(&kept),
        acd: Acd::new(queues.clone()),
        queues,
        talk_secs: settings.default_talk_time.as_secs_f64(),
        settings,
        offers: None,
        skills_of: BTreeMap::new(),
        devices: HashMap::new(),
        announced: HashMap::new(),
        talking: HashMap::new(),
        day: china_today(),
        counts: BTreeMap::new(),
        answered_by: HashMap::new(),
        callbacks: HashMap::new(),
        call_ids: HashMap::new(),
        recent: VecDeque::new(),
        noted: HashMap::new(),
        entries: HashMap::new(),
        restored: 0,
        reroutes: HashMap::new(),
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let now = Instant::now();
                    let events = service.acd.tick(now);
                    service.events(events).await;
                    service.announce(now).await;
                }
                c = rx.recv() => match c {
                    Some(c) => service.command(c, Instant::now()).await,
                    None => return,
                },
            }
            service.route(Instant::now()).await;
            service.note_states();
        }
    });
    AcdHandle { tx, kept }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn china(s: &str) -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_callback_is_tried_again_inside_the_calling_hours_in_china_time() {
        let rule = CallbackRetry::default(); // 10 minutes apart, 08:00-21:00
        assert_eq!(
            rule.next_try(china("2026-12-03T10:00:00+08:00")),
            china("2026-12-03T10:10:00+08:00")
        );
        // 20:55 + 10 min is past 21:00: tomorrow at 08:00.
        assert_eq!(
            rule.next_try(china("2026-12-03T20:55:00+08:00")),
            china("2026-12-04T08:00:00+08:00")
        );
        // 03:00 (a restart at night): this morning at 08:00.
        assert_eq!(
            rule.next_try(china("2026-12-03T03:00:00+08:00")),
            china("2026-12-03T08:00:00+08:00")
        );
        let night = CallbackRetry {
            hours: chrono::NaiveTime::from_hms_opt(22, 0, 0)
                .zip(chrono::NaiveTime::from_hms_opt(6, 0, 0)),
            ..CallbackRetry::default()
        };
        assert_eq!(
            night.next_try(china("2026-12-03T23:55:00+08:00")),
            china("2026-12-04T00:05:00+08:00"),
            "hours across midnight"
        );
        assert_eq!(
            night.next_try(china("2026-12-03T12:00:00+08:00")),
            china("2026-12-03T22:00:00+08:00")
        );
        let any = CallbackRetry {
            hours: None,
            ..CallbackRetry::default()
        };
        assert_eq!(
            any.next_try(china("2026-12-03T03:00:00+08:00")),
            china("2026-12-03T03:10:00+08:00")
        );
    }

    /// Issue 22, item 7: kept callbacks are capped, one per number; a place given up frees
    /// the number and the room.
    #[tokio::test]
    async fn kept_callbacks_are_capped_and_one_per_number() {
        let shutdown = CancellationToken::new();
        let acd = spawn(
            vec![QueueConfig::new("general")],
            AcdSettings {
                max_callbacks: 2,
                callback_retry: CallbackRetry {
                    attempts: 1,
                    ..CallbackRetry::default()
                },
                ..Default::default()
            },
            shutdown.clone(),
        );
        let numbers = ["13800000001", "13800000002", "13800000003"];
        for (i, n) in numbers.iter().enumerate() {
            acd.send(Command::Enqueue {
                call: i as u64 + 1,
                call_id: format!("call-{i}"),
                caller: (*n).into(),
                queue: "general".into(),
                priority: 0,
                skills: vec![],
                agent: None,
            });
        }
        let book = || acd.kept_callbacks();
        assert!(numbers.iter().all(|n| book().may_keep(n)));
        let keep = |call: u64, number: &str| {
            acd.send(Command::Callback {
                call,
                number: number.into(),
                called: "12345".into(),
            })
        };
        keep(1, numbers[0]);
        acd.snapshot().await.unwrap();
        assert!(!book().may_keep(numbers[0]), "one kept callback per number");
        assert!(book().may_keep(numbers[1]));
        keep(2, numbers[1]);
        acd.snapshot().await.unwrap();
        assert_eq!(book().len(), 2);
        assert!(!book().may_keep(numbers[2]), "the book is full");
        // The caller hangs up: the place is kept for the callback, still in the book.
        acd.send(Command::Leave {
            call: 1,
            hung_up: true,
        });
        acd.snapshot().await.unwrap();
        assert!(!book().may_keep(numbers[0]));
        // The callback fails its last try: the caller goes on the missed-call list, and the
        // number and the room are free.
        acd.send(Command::CallbackFailed {
            call: 1,
            status: 486,
        });
        acd.snapshot().await.unwrap();
        assert!(book().may_keep(numbers[0]) && book().may_keep(numbers[2]));
        shutdown.cancel();
    }
}
