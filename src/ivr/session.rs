//! Running a script against one call, sans-IO.
//!
//! A [`Session`] takes events (the call started, a prompt finished, a key was pressed, a
//! timer fired, a look-up answered) and returns actions for the driver (play this, start a
//! timer, put the caller in a queue, transfer, hang up). It does no I/O and reads no clock:
//! what conditions need (the caller's number, the time of day, whether today is a working day,
//! queue lengths) comes through [`Facts`], so every path is testable without sleeping.
//!
//! Rules a caller notices:
//! - A menu waits `timeout` seconds after its prompt; no key or a key that is not a choice
//!   replays it (after its `no_input` or `invalid` notice, if it has one; a key during the
//!   notice is taken at once), up to `retries` times, then the caller goes to `default`.
//! - Keys pressed during a prompt that allows barge-in stop it and count as input for the
//!   node that follows (callers who know the menu need not wait for it).
//! - Collect ends on its terminator, at `max` digits, or on the timeout; fewer than `min`
//!   digits or input that fails `pattern` goes to `default`.
//! - A script that somehow runs away (more than [`MAX_STEPS`] nodes without waiting for the
//!   caller) ends the call instead of spinning; validation already refuses such loops.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::script::{Condition, Node, PromptRef, Script};

/// Most nodes run in a row without waiting for the caller.
pub const MAX_STEPS: usize = 1000;

/// Most nodes kept in a call's path (a caller looping through menus for an hour stays bounded).
pub const MAX_PATH: usize = 500;

/// Seconds a survey waits for a score.
pub const SURVEY_TIMEOUT_SECS: u32 = 8;

/// Seconds a knowledge-base category menu waits for its key after it was read.
const KB_MENU_TIMEOUT_SECS: u32 = 5;

/// What a condition can ask about the world.
pub trait Facts {
    /// The caller's number.
    fn caller(&self) -> &str;
    /// Minutes since local midnight (China time for the hotline).
    fn minute_of_day(&self) -> u16;
    /// Whether today is a working day (the official calendar, make-up days included).
    fn workday(&self) -> bool;
    /// Callers waiting in a queue.
    fn waiting(&self, queue: &str) -> u32;
    /// Whether the hotline may call this caller back (`acd.callback_numbers`: a domestic
    /// number by default, never an international or premium one): the queue's callback is
    /// offered only then.
    fn may_call_back(&self) -> bool {
        true
    }
}

/// Something that happened to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call was answered; run the script from its start.
    Start,
    /// The prompt started by the last `Play` or `Speak` finished.
    PromptDone,
    /// A key (0-9, *, #).
    Digit(char),
    /// The timer with this token fired (stale tokens are ignored).
    Timeout(u64),
    /// The agent hung up while the caller stays on the line: go to the script's
    /// `after_agent` node (the survey), or end the call.
    AgentHungUp,
}

/// What the driver should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play a prompt; report `PromptDone` when it ends. Replaces any prompt playing.
    Play {
        /// The prompt.
        prompt: PromptRef,
    },
    /// Stop the prompt playing (barge-in).
    StopPrompt,
    /// Start the timer (replacing any other); report `Timeout(token)` when it fires.
    Timer {
        /// Identifies this timer.
        token: u64,
        /// How long.
        after: Duration,
    },
    /// Speak a knowledge-base article, a category's menu ("press 1 for ..."), or the
    /// answer the caller chose from that menu; report `PromptDone`.
    Knowledge {
        /// Article id.
        article: Option<i64>,
        /// Category.
        category: Option<String>,
        /// The key chosen from the category's menu (1-9: its newest articles in order);
        /// `None` asks for the menu itself.
        choice: Option<u8>,
    },
    /// Look up a ticket's progress and speak it (Art. 13); report `PromptDone`.
    TicketStatus {
        /// The ticket number the caller keyed, if the script collected one as `ticket`.
        number: Option<String>,
        /// The access code told at intake, if collected as `code` (the check that the caller
        /// may hear this ticket).
        access_code: Option<String>,
        /// The last four digits of the phone number given on the ticket, if collected as
        /// `phone4` (a second factor beside the code; alone they open nothing).
        phone_last4: Option<String>,
    },
    /// Store a satisfaction score 1-5 for this call.
    Score(u8),
    /// Put the caller in a queue; the session now waits there.
    Enqueue {
        /// Queue.
        queue: String,
        /// Priority.
        priority: i32,
        /// Skills required.
        skills: Vec<String>,
        /// Variables collected so far (they go to the agent's screen).
        vars: BTreeMap<String, String>,
    },
    /// Keep the caller's place in the queue but offer the call to no agent (the caller
    /// pressed a key for self-service while waiting).
    Pause,
    /// Offer the call again from the place it kept, with the variables collected meanwhile.
    Resume {
        /// Variables collected so far.
        vars: BTreeMap<String, String>,
    },
    /// Take the caller out of the queue (the script went on to another queue or elsewhere).
    Dequeue,
    /// The caller accepted the callback offer: keep its place and call it back (the script
    /// goes on to say goodbye and hang up).
    Callback,
    /// Transfer the call.
    Transfer {
        /// Target URI.
        uri: String,
    },
    /// End the call.
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Wait {
    /// Not started.
    Idle,
    /// A prompt is playing in `node`.
    Prompt { node: String, barge_in: bool },
    /// A menu's no-input or invalid-input notice is playing; the menu replays after it.
    Notice { node: String },
    /// Waiting for input in `node` (menu, collect, survey) after its prompt.
    Input { node: String, token: u64 },
    /// In a queue; `offer` is the callback offer's timer (0: none pending), `offered` whether
    /// the offer was made (its key is live from then on).
    Queued {
        node: String,
        offer: u64,
        offered: bool,
    },
    /// Transferred or hung up.
    Done,
}

/// Why a menu is repeated.
#[derive(Debug, Clone, Copy)]
enum Retry {
    NoInput,
    Invalid,
}

/// One call's walk through a script.
#[derive(Debug)]
pub struct Session {
    script: Arc<Script>,
    wait: Wait,
    vars: BTreeMap<String, String>,
    /// Keys typed ahead (barge-in), consumed by the next node that takes input.
    typed: VecDeque<char>,
    /// Digits collected by the current collect node.
    collected: String,
    /// Times the current menu has been replayed.
    tries: u32,
    /// The knowledge-base node's chosen answer is playing (its menu is over).
    answering: bool,
    /// The queue node whose place the caller keeps while in self-service.
    paused_in: Option<String>,
    /// Every node entered, in order (for the call record).
    path: Vec<String>,
    next_token: u64,
}

impl Session {
    /// A session that has not started.
    pub fn new(script: Arc<Script>) -> Self {
        Session {
            script,
            wait: Wait::Idle,
            vars: BTreeMap::new(),
            typed: VecDeque::new(),
            collected: String::new(),
            tries: 0,
            answering: false,
            paused_in: None,
            path: Vec::new(),
            next_token: 0,
        }
    }

    /// Variables set so far (collected digits and `set` nodes).
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The variables as the call record keeps them: a secret collect's value as `******`.
    pub fn recorded_vars(&self) -> BTreeMap<String, String> {
        let secret: Vec<&str> = self
            .script
            .nodes
            .values()
            .filter_map(|n| match n {
                Node::Collect {
                    var, secret: true, ..
                } => Some(var.as_str()),
                _ => None,
            })
            .collect();
        self.vars
            .iter()
            .map(|(k, v)| {
                let v = if secret.contains(&k.as_str()) {
                    "******".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Whether the node playing or waiting now takes a secret (its keys are not recorded).
    pub fn in_secret_input(&self) -> bool {
        let (Wait::Prompt { node, .. } | Wait::Input { node, .. }) = &self.wait else {
            return false;
        };
        matches!(
            self.script.nodes.get(node),
            Some(Node::Collect { secret: true, .. })
        )
    }

    /// Every node the call entered, in order (kept with the call record).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The node the caller is in, if the call is still in the script.
    pub fn node(&self) -> Option<&str> {
        match &self.wait {
            Wait::Prompt { node, .. }
            | Wait::Notice { node }
            | Wait::Input { node, .. }
            | Wait::Queued { node, .. } => Some(node),
            Wait::Idle | Wait::Done => None,
        }
    }

    /// The token of the timer the session is waiting on, if one is running.
    pub fn timer(&self) -> Option<u64> {
        match self.wait {
            Wait::Input { token, .. } if token != 0 => Some(token),
            _ => None,
        }
    }

    /// A callback the hotline placed: the caller answered and waits for the agent (music on
    /// hold); the script runs again only when the agent hangs up (its `after_agent` node).
    pub fn wait_for_callback(&mut self) {
        if self.wait == Wait::Idle {
            self.path.push("callback".into());
            self.wait = Wait::Queued {
                node: "callback".into(),
                offer: 0,
                offered: false,
            };
        }
    }

    /// Whether the caller waits in a queue (hearing music on hold).
    pub fn is_queued(&self) -> bool {
        matches!(self.wait, Wait::Queued { .. })
    }

    /// Whether the script has ended the call (hung up or transferred).
    pub fn is_done(&self) -> bool {
        self.wait == Wait::Done
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event, facts: &dyn Facts) -> Vec<Action> {
        let script = Arc::clone(&self.script);
        let mut out = Vec::new();
        if let Event::Digit(key) = event {
            tracing::debug!(%key, node = self.node().unwrap_or("-"), "IVR key");
        }
        match (event, self.wait.clone()) {
            (Event::Start, Wait::Idle) => {
                let start = script.start.clone();
                self.enter(&start, facts, &mut out);
            }
            (Event::PromptDone, Wait::Prompt { node, .. }) => {
                self.after_prompt(&node, facts, &mut out);
            }
            (Event::PromptDone, Wait::Notice { node }) => {
                if let Some(Node::Menu { prompt, .. }) = self.script.nodes.get(&node) {
                    let prompt = prompt.clone();
                    self.play(&node, &prompt, true, &mut out);
                }
            }
            (Event::Digit(d), Wait::Notice { node }) => {
                // The caller knows what to press: skip the notice and the replay.
                out.push(Action::StopPrompt);
                self.typed.push_back(d);
                self.await_input(&node, facts, &mut out);
            }
            (Event::Digit(d), Wait::Prompt { node, barge_in })
                if barge_in || self.takes_input(&node) =>
            {
                out.push(Action::StopPrompt);
                self.typed.push_back(d);
                self.after_prompt(&node, facts, &mut out);
            }
            (Event::Digit(d), Wait::Input { node, .. }) => {
                self.typed.push_back(d);
                self.consume(&node, facts, &mut out);
            }
            (Event::Timeout(t), Wait::Input { node, token }) if t == token => {
                self.timed_out(&node, facts, &mut out);
            }
            (Event::Timeout(t), Wait::Queued { node, offer, .. }) if t == offer => {
                if let Some(Node::Queue {
                    callback: Some(c), ..
                }) = script.nodes.get(&node)
                {
                    out.push(Action::Play {
                        prompt: c.prompt.clone(),
                    });
                    self.wait = Wait::Queued {
                        node,
                        offer: 0,
                        offered: true,
                    };
                }
            }
            (Event::Digit(d), Wait::Queued { node, offered, .. })
                if offered
                    && matches!(script.nodes.get(&node), Some(Node::Queue { callback: Some(c), .. })
                        if c.key.starts_with(d)) =>
            {
                if let Some(Node::Queue {
                    callback: Some(c), ..
                }) = script.nodes.get(&node)
                {
                    // The place is kept for the callback; the script says goodbye.
                    out.push(Action::StopPrompt);
                    out.push(Action::Callback);
                    self.typed.clear();
                    let next = c.next.clone();
                    self.enter(&next, facts, &mut out);
                }
            }
            (Event::Digit(d), Wait::Queued { node, .. }) => {
                if let Some(Node::Queue { digits, .. }) = script.nodes.get(&node)
                    && let Some(target) = digits.get(d.encode_utf8(&mut [0; 4]) as &str)
                {
                    out.push(Action::Pause);
                    self.paused_in = Some(node.clone());
                    let target = target.clone();
                    self.enter(&target, facts, &mut out);
                }
            }
            (Event::AgentHungUp, wait) if wait != Wait::Idle && wait != Wait::Done => {
                self.typed.clear();
                match script.after_agent.clone() {
                    Some(node) => self.enter(&node, facts, &mut out),
                    None => self.finish(Action::Hangup, &mut out),
                }
            }
            // Anything else (a late prompt end, a stale timer, input after the end) is ignored.
            _ => {}
        }
        out
    }

    fn takes_input(&self, node: &str) -> bool {
        let script = Arc::clone(&self.script);
        matches!(
            script.nodes.get(node),
            Some(Node::Menu { .. } | Node::Collect { .. } | Node::Survey { .. })
        )
    }

    fn start_timer(&mut self, node: &str, seconds: u32, out: &mut Vec<Action>) {
        self.next_token += 1;
        let token = self.next_token;
        out.push(Action::Timer {
            token,
            after: Duration::from_secs(u64::from(seconds)),
        });
        self.wait = Wait::Input {
            node: node.to_string(),
            token,
        };
    }

    /// Runs nodes from `name` until one waits for something.
    fn enter(&mut self, name: &str, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        let mut name = name.to_string();
        self.tries = 0;
        for _ in 0..MAX_STEPS {
            tracing::debug!(node = %name, "IVR step");
            if self.path.len() < MAX_PATH {
                self.path.push(name.clone());
            }
            let Some(node) = script.nodes.get(&name) else {
                // Validation makes this unreachable; end the call rather than strand it.
                self.finish(Action::Hangup, out);
                return;
            };
            let next = match node {
                Node::Play {
                    prompt, barge_in, ..
                } => {
                    self.play(&name, prompt, *barge_in, out);
                    return;
                }
                Node::Menu { prompt, .. } | Node::Collect { prompt, .. } => {
                    self.collected.clear();
                    if self.typed.is_empty() {
                        self.play(&name, prompt, true, out);
                    } else {
                        // Typed ahead: skip the prompt and use the keys.
                        self.await_input(&name, facts, out);
                    }
                    return;
                }
                Node::Survey { prompt, .. } => {
                    self.play(&name, prompt, true, out);
                    return;
                }
                Node::Kb {
                    article, category, ..
                } => {
                    out.push(Action::Knowledge {
                        article: *article,
                        category: category.clone(),
                        choice: None,
                    });
                    // A category's menu takes a key at once; one article is just spoken.
                    self.answering = article.is_some();
                    self.wait = Wait::Prompt {
                        node: name,
                        barge_in: article.is_none(),
                    };
                    return;
                }
                Node::TicketStatus { .. } => {
                    out.push(Action::TicketStatus {
                        number: self.vars.get("ticket").cloned(),
                        access_code: self.vars.get("code").cloned(),
                        phone_last4: self.vars.get("phone4").cloned(),
                    });
                    self.wait = Wait::Prompt {
                        node: name,
                        barge_in: false,
                    };
                    return;
                }
                Node::Queue {
                    queue,
                    priority,
                    skills,
                    callback,
                    ..
                } => {
                    match self.paused_in.take() {
                        // Back from self-service: the caller's place was kept.
                        Some(kept) if kept == name => out.push(Action::Resume {
                            vars: self.recorded_vars(),
                        }),
                        other => {
                            if other.is_some() {
                                out.push(Action::Dequeue);
                            }
                            out.push(Action::Enqueue {
                                queue: queue.clone(),
                                priority: *priority,
                                skills: skills.clone(),
                                vars: self.recorded_vars(),
                            });
                        }
                    }
                    self.typed.clear();
                    let offer = match callback {
                        Some(c) if facts.may_call_back() => {
                            self.next_token += 1;
                            out.push(Action::Timer {
                                token: self.next_token,
                                after: Duration::from_secs(u64::from(c.after)),
                            });
                            self.next_token
                        }
                        _ => 0,
                    };
                    self.wait = Wait::Queued {
                        node: name,
                        offer,
                        offered: false,
                    };
                    return;
                }
                Node::Transfer { uri } => {
                    self.finish(Action::Transfer { uri: uri.clone() }, out);
                    return;
                }
                Node::Hangup {} => {
                    self.finish(Action::Hangup, out);
                    return;
                }
                Node::Condition { branches, default } => branches
                    .iter()
                    .find(|b| self.holds(&b.when, facts))
                    .map_or(default, |b| &b.goto)
                    .clone(),
                Node::Set { var, value, next } => {
                    self.vars.insert(var.clone(), value.clone());
                    next.clone()
                }
                Node::Goto { target } => target.clone(),
            };
            name = next;
        }
        self.finish(Action::Hangup, out);
    }

    fn play(&mut self, name: &str, prompt: &PromptRef, barge_in: bool, out: &mut Vec<Action>) {
        out.push(Action::Play {
            prompt: prompt.clone(),
        });
        self.wait = Wait::Prompt {
            node: name.to_string(),
            barge_in,
        };
    }

    fn finish(&mut self, action: Action, out: &mut Vec<Action>) {
        if self.paused_in.take().is_some() {
            out.push(Action::Dequeue);
        }
        out.push(action);
        self.typed.clear();
        self.wait = Wait::Done;
    }

    fn after_prompt(&mut self, name: &str, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        let Some(node) = script.nodes.get(name) else {
            return;
        };
        match node {
            Node::Kb { .. } if !self.answering => self.await_input(name, facts, out),
            Node::Play { next, .. } | Node::Kb { next, .. } | Node::TicketStatus { next } => {
                let next = next.clone();
                self.tries = 0;
                self.enter(&next, facts, out);
            }
            Node::Menu { .. } | Node::Collect { .. } | Node::Survey { .. } => {
                self.await_input(name, facts, out);
            }
            _ => {}
        }
    }

    /// An input node whose prompt is over (or skipped): use keys typed ahead, else start
    /// its timer.
    fn await_input(&mut self, name: &str, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        if self.typed.is_empty() {
            let seconds = match script.nodes.get(name) {
                Some(Node::Menu { timeout, .. } | Node::Collect { timeout, .. }) => *timeout,
                Some(Node::Kb { .. }) => KB_MENU_TIMEOUT_SECS,
                _ => SURVEY_TIMEOUT_SECS,
            };
            self.start_timer(name, seconds, out);
        } else {
            // No timer runs while the keys are used; token 0 is never issued.
            self.wait = Wait::Input {
                node: name.to_string(),
                token: 0,
            };
            self.consume(name, facts, out);
        }
    }

    /// Uses typed keys in an input node.
    fn consume(&mut self, name: &str, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        let Some(node) = script.nodes.get(name) else {
            return;
        };
        while let Some(d) = self.typed.pop_front() {
            match node {
                Node::Menu { choices, .. } => {
                    if let Some(target) = choices.get(d.encode_utf8(&mut [0; 4]) as &str) {
                        let target = target.clone();
                        self.tries = 0;
                        self.typed.clear();
                        self.enter(&target, facts, out);
                    } else {
                        self.typed.clear();
                        self.retry(name, Retry::Invalid, facts, out);
                    }
                    return;
                }
                Node::Collect {
                    max,
                    terminator,
                    timeout,
                    ..
                } => {
                    if terminator.as_deref().is_some_and(|t| t.starts_with(d)) {
                        self.typed.clear();
                        self.collect_done(name, facts, out);
                        return;
                    }
                    self.collected.push(d);
                    if self.collected.len() >= *max as usize {
                        self.typed.clear();
                        self.collect_done(name, facts, out);
                        return;
                    }
                    if self.typed.is_empty() {
                        // Inter-digit timeout restarts with each key.
                        let timeout = *timeout;
                        self.start_timer(name, timeout, out);
                    }
                }
                Node::Kb { category, next, .. } => {
                    self.typed.clear();
                    match d.to_digit(10).filter(|k| (1..=9).contains(k)) {
                        Some(k) => {
                            out.push(Action::Knowledge {
                                article: None,
                                category: category.clone(),
                                choice: Some(k as u8),
                            });
                            self.answering = true;
                            self.wait = Wait::Prompt {
                                node: name.to_string(),
                                barge_in: false,
                            };
                        }
                        None => {
                            // Not an answer's key: back to where the script goes next.
                            let next = next.clone();
                            self.enter(&next, facts, out);
                        }
                    }
                    return;
                }
                Node::Survey { next, .. } => {
                    let next = next.clone();
                    self.typed.clear();
                    if let Some(score) = d.to_digit(10).filter(|s| (1..=5).contains(s)) {
                        out.push(Action::Score(score as u8));
                        self.enter(&next, facts, out);
                    } else {
                        // Not a score: ask again.
                        self.enter(name, facts, out);
                    }
                    return;
                }
                _ => return,
            }
        }
    }

    fn timed_out(&mut self, name: &str, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        match script.nodes.get(name) {
            Some(Node::Menu { .. }) => self.retry(name, Retry::NoInput, facts, out),
            Some(Node::Collect { .. }) => self.collect_done(name, facts, out),
            Some(Node::Survey { next, .. } | Node::Kb { next, .. }) => {
                let next = next.clone();
                self.enter(&next, facts, out);
            }
            _ => {}
        }
    }

    /// No input or a wrong key in a menu: replay it, or go to its default.
    fn retry(&mut self, name: &str, why: Retry, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        let Some(Node::Menu {
            prompt,
            retries,
            default,
            no_input,
            invalid,
            ..
        }) = script.nodes.get(name)
        else {
            return;
        };
        if self.tries < *retries {
            self.tries += 1;
            let notice = match why {
                Retry::NoInput => no_input,
                Retry::Invalid => invalid,
            };
            match notice {
                Some(n) => {
                    out.push(Action::Play { prompt: n.clone() });
                    self.wait = Wait::Notice {
                        node: name.to_string(),
                    };
                }
                None => self.play(name, prompt, true, out),
            }
        } else {
            let default = default.clone();
            self.tries = 0;
            self.enter(&default, facts, out);
        }
    }

    fn collect_done(&mut self, name: &str, facts: &dyn Facts, out: &mut Vec<Action>) {
        let script = Arc::clone(&self.script);
        let Some(Node::Collect {
            var,
            min,
            pattern,
            next,
            default,
            ..
        }) = script.nodes.get(name)
        else {
            return;
        };
        let input = std::mem::take(&mut self.collected);
        let long_enough = input.len() >= *min as usize;
        let matches = pattern
            .as_deref()
            .is_none_or(|p| regex::Regex::new(p).is_ok_and(|re| re.is_match(&input)));
        let target = if long_enough && matches {
            self.vars.insert(var.clone(), input);
            next.clone()
        } else {
            default.clone()
        };
        self.enter(&target, facts, out);
    }

    /// Evaluates a condition; one that does not parse (validation refuses those) is false.
    fn holds(&self, when: &str, facts: &dyn Facts) -> bool {
        match Condition::parse(when) {
            Ok(Condition::Workday) => facts.workday(),
            Ok(Condition::Holiday) => !facts.workday(),
            Ok(Condition::Caller(re)) => re.is_match(facts.caller()),
            Ok(Condition::Var { name, value }) => self.vars.get(&name) == Some(&value),
            Ok(Condition::Time { from, to }) => {
                let t = facts.minute_of_day();
                // A range that crosses midnight (18:00-08:30) is the time outside [to, from).
                if from <= to {
                    from <= t && t < to
                } else {
                    t >= from || t < to
                }
            }
            Ok(Condition::Waiting { queue, more_than }) => facts.waiting(&queue) > more_than,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests;
