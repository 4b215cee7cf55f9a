//! IVR scripts: the file format and its validation (issue 5).
//!
//! A script is a TOML file of named nodes and a `start` node:
//!
//! ```toml
//! start = "greeting"
//! after_agent = "survey"   # optional: where the caller goes when the agent hangs up
//!
//! [nodes.greeting]
//! type = "play"
//! prompt = { text = "您好，这里是12345政务服务便民热线" }
//! next = "queue"
//!
//! [nodes.queue]
//! type = "queue"
//! queue = "general"
//! digits = { "1" = "self_service", "2" = "progress" }
//! ```
//!
//! Node types: `play`, `menu`, `collect`, `kb`, `ticket_status`, `survey`, `queue`,
//! `transfer`, `condition`, `set`, `goto`, `hangup`. Validation reports every problem at once,
//! each with the file, the line of the node and the reason: unknown node targets, prompt files
//! that do not exist or do not decode (they are decoded once, here, and kept in the script),
//! nodes no path reaches, loops that never wait for the caller, patterns that do not compile,
//! queues that are not configured, bad digits.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotline_sip::media::player::Prompt;

use super::tts::Tts;

use serde::Deserialize;
use toml::Spanned;

/// A prompt: a recorded file under the script's directory, or a text to synthesise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptRef {
    /// File, relative to the script's directory.
    #[serde(default)]
    pub file: Option<String>,
    /// Text for text-to-speech.
    #[serde(default)]
    pub text: Option<String>,
}

/// A queue's callback offer: after `after` seconds of waiting `prompt` is played ("press 1 to
/// be called back, keeping your place"); `key` accepts (the place is kept for a callback to
/// the caller's number) and the script goes on at `next` (a thank-you and a hang-up).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackOffer {
    /// Seconds in the queue before the offer.
    pub after: u32,
    /// The offer.
    pub prompt: PromptRef,
    /// The key that accepts.
    #[serde(default = "default_callback_key")]
    pub key: String,
    /// Where the script goes on after accepting.
    pub next: String,
}

fn default_callback_key() -> String {
    "1".into()
}

/// One node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    /// Play a prompt, then go on.
    Play {
        /// The prompt.
        prompt: PromptRef,
        /// Next node.
        next: String,
        /// A digit stops the prompt.
        #[serde(default)]
        barge_in: bool,
    },
    /// A prompt and a choice by digit.
    Menu {
        /// The prompt.
        prompt: PromptRef,
        /// Digit to node.
        choices: BTreeMap<String, String>,
        /// Seconds to wait for a digit.
        #[serde(default = "default_timeout")]
        timeout: u32,
        /// Times the menu is repeated on no input or invalid input.
        #[serde(default = "default_retries")]
        retries: u32,
        /// Where to go when the retries are spent.
        default: String,
        /// Played before the menu is repeated because no key came ("请按键选择").
        #[serde(default)]
        no_input: Option<PromptRef>,
        /// Played before the menu is repeated because of a key that is not a choice
        /// ("您的输入有误").
        #[serde(default)]
        invalid: Option<PromptRef>,
    },
    /// Collect digits into a variable.
    Collect {
        /// The prompt.
        prompt: PromptRef,
        /// Variable name.
        var: String,
        /// Fewest digits.
        min: u32,
        /// Most digits.
        max: u32,
        /// Key that ends the input early.
        #[serde(default)]
        terminator: Option<String>,
        /// Seconds to wait.
        #[serde(default = "default_timeout")]
        timeout: u32,
        /// A regular expression the input must match.
        #[serde(default)]
        pattern: Option<String>,
        /// Next node with the input.
        next: String,
        /// Where to go without valid input.
        default: String,
        /// The input is a secret (an access code): the call record keeps `******` for the
        /// variable and `*` for each key pressed while this node plays or waits.
        #[serde(default)]
        secret: bool,
    },
    /// Speak knowledge-base answers: one article's spoken answer, or a category's menu (its
    /// newest published articles, "press 1 for ...", 5 s for the key; any other key or none
    /// goes on to `next`) and then the answer chosen.
    Kb {
        /// Article id.
        #[serde(default)]
        article: Option<i64>,
        /// Category.
        #[serde(default)]
        category: Option<String>,
        /// Next node.
        next: String,
    },
    /// Ticket progress query (Art. 13).
    TicketStatus {
        /// Next node.
        next: String,
    },
    /// Satisfaction survey 1-5 (Art. 14, 15).
    Survey {
        /// The prompt.
        prompt: PromptRef,
        /// Next node.
        next: String,
    },
    /// Wait in a queue for an agent.
    Queue {
        /// Queue name.
        queue: String,
        /// Caller priority.
        #[serde(default)]
        priority: i32,
        /// Skills required.
        #[serde(default)]
        skills: Vec<String>,
        /// While waiting, a key takes the caller out of the queue to this node.
        #[serde(default)]
        digits: BTreeMap<String, String>,
        /// Offer to call the caller back, keeping its place, once it has waited a while.
        #[serde(default)]
        callback: Option<CallbackOffer>,
    },
    /// Transfer to a SIP URI (emergency numbers, other hotlines).
    Transfer {
        /// Target.
        uri: String,
    },
    /// Branch on a condition.
    Condition {
        /// Branches, first match wins.
        branches: Vec<Branch>,
        /// Where to go when none matches.
        default: String,
    },
    /// Set a variable.
    Set {
        /// Variable name.
        var: String,
        /// Value.
        value: String,
        /// Next node.
        next: String,
    },
    /// Go to another node.
    Goto {
        /// Target.
        target: String,
    },
    /// End the call.
    Hangup {},
}

/// One branch of a condition node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// `caller ~ <regex>`, `var.<name> == <value>`, `time in HH:MM-HH:MM`, `holiday`,
    /// `workday`, `queue.<name>.waiting > <n>`.
    pub when: String,
    /// Target.
    pub goto: String,
}

fn default_timeout() -> u32 {
    5
}

fn default_retries() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    start: Spanned<String>,
    #[serde(default)]
    after_agent: Option<Spanned<String>>,
    nodes: BTreeMap<String, Spanned<Node>>,
}

/// A validated script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Where it was read from.
    pub path: PathBuf,
    /// The first node.
    pub start: String,
    /// Where the caller goes when the agent hangs up first (the satisfaction survey).
    pub after_agent: Option<String>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Prompts decoded once at load (both G.711 laws), by [`prompt_key`]: files always, texts
    /// when the load had a speech engine.
    pub prompts: BTreeMap<String, Arc<Prompt>>,
}

/// The key of a prompt in [`Script::prompts`]: `file:<name>` or `tts:<text>`.
pub fn prompt_key(p: &PromptRef) -> String {
    match (&p.file, &p.text) {
        (Some(f), _) => format!("file:{f}"),
        (None, Some(t)) => format!("tts:{t}"),
        (None, None) => String::new(),
    }
}

impl Script {
    /// The decoded audio of a prompt, if it was loaded.
    pub fn prompt(&self, p: &PromptRef) -> Option<Arc<Prompt>> {
        self.prompts.get(&prompt_key(p)).cloned()
    }
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What the validator checks against: the queues that exist, and the speech engine.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Names of the configured queues; `None` skips the check (no queues configured yet).
    pub queues: Option<BTreeSet<String>>,
    /// Text-to-speech for `text` prompts; `None` checks the script without synthesising (a
    /// dry run), `Some` synthesises every text at load so a missing engine is a load error.
    pub tts: Option<Tts>,
}

fn line_of(text: &str, offset: usize) -> usize {
    // Bytes, not a str slice: an offset inside a character cannot panic.
    let head = &text.as_bytes()[..offset.min(text.len())];
    head.iter().filter(|&&b| b == b'\n').count() + 1
}

impl Node {
    /// Every node this one can lead to, with whether getting there waits for the caller.
    fn edges(&self) -> Vec<(&str, bool)> {
        match self {
            Node::Play { next, .. } => vec![(next.as_str(), false)],
            Node::Menu {
                choices, default, ..
            } => choices
                .values()
                .map(|t| (t.as_str(), true))
                .chain([(default.as_str(), true)])
                .collect(),
            Node::Collect { next, default, .. } => {
                vec![(next.as_str(), true), (default.as_str(), true)]
            }
            Node::Kb { next, .. } | Node::TicketStatus { next } | Node::Survey { next, .. } => {
                vec![(next.as_str(), true)]
            }
            Node::Queue {
                digits, callback, ..
            } => digits
                .values()
                .chain(callback.iter().map(|c| &c.next))
                .map(|t| (t.as_str(), true))
                .collect(),
            Node::Transfer { .. } | Node::Hangup {} => Vec::new(),
            Node::Condition { branches, default } => branches
                .iter()
                .map(|b| (b.goto.as_str(), false))
                .chain([(default.as_str(), false)])
                .collect(),
            Node::Set { next, .. } => vec![(next.as_str(), false)],
            Node::Goto { target } => vec![(target.as_str(), false)],
        }
    }

    fn prompts(&self) -> Vec<&PromptRef> {
        match self {
            Node::Menu {
                prompt,
                no_input,
                invalid,
                ..
            } => [Some(prompt), no_input.as_ref(), invalid.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
            Node::Play { prompt, .. }
            | Node::Collect { prompt, .. }
            | Node::Survey { prompt, .. } => vec![prompt],
            Node::Queue {
                callback: Some(c), ..
            } => vec![&c.prompt],
            _ => Vec::new(),
        }
    }
}

fn valid_digit(d: &str) -> bool {
    d.len() == 1 && "0123456789*#".contains(d)
}

/// Reads and validates a script; every problem found is returned.
pub fn load(path: &Path, ctx: &Context) -> Result<Script, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.to_path_buf(),
            line: 1,
            message: format!("cannot read the script: {e}"),
        }]
    })?;
    parse(path, &text, ctx)
}

/// Validates script text (the file name only labels the problems and roots prompt paths).
pub fn parse(path: &Path, text: &str, ctx: &Context) -> Result<Script, Vec<Problem>> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        vec![Problem {
            file: path.to_path_buf(),
            line,
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut problems = Vec::new();
    let mut at = |line: usize, message: String| {
        problems.push(Problem {
            file: path.to_path_buf(),
            line,
            message,
        })
    };
    let lines: HashMap<&str, usize> = file
        .nodes
        .iter()
        .map(|(name, n)| (name.as_str(), line_of(text, n.span().start)))
        .collect();
    let start = file.start.get_ref().as_str();
    if !file.nodes.contains_key(start) {
        at(
            line_of(text, file.start.span().start),
            format!("start node {start:?} does not exist"),
        );
    }
    let after_agent = file.after_agent.as_ref().map(|a| a.get_ref().as_str());
    if let (Some(a), Some(spanned)) = (after_agent, &file.after_agent)
        && !file.nodes.contains_key(a)
    {
        at(
            line_of(text, spanned.span().start),
            format!("after_agent node {a:?} does not exist"),
        );
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut prompts = BTreeMap::new();
    for (name, node) in &file.nodes {
        let line = lines[name.as_str()];
        let node = node.get_ref();
        for (target, _) in node.edges() {
            if !file.nodes.contains_key(target) {
                at(
                    line,
                    format!("node {name:?} leads to {target:?}, which does not exist"),
                );
            }
        }
        for p in node.prompts() {
            match (&p.file, &p.text) {
                (Some(f), None) => {
                    let file = dir.join(f);
                    if !file.is_file() {
                        at(line, format!("node {name:?}: prompt file {f:?} not found"));
                    } else if let btree_map::Entry::Vacant(slot) = prompts.entry(prompt_key(p)) {
                        match Prompt::load(&file) {
                            Ok(loaded) => {
                                slot.insert(Arc::new(loaded));
                            }
                            Err(e) => at(line, format!("node {name:?}: {e}")),
                        }
                    }
                }
                (None, Some(t)) if !t.trim().is_empty() => {
                    if let Some(tts) = &ctx.tts
                        && let btree_map::Entry::Vacant(slot) = prompts.entry(prompt_key(p))
                    {
                        match tts.speak(t).map(|f| Prompt::load(&f)) {
                            Ok(Ok(p)) => {
                                slot.insert(Arc::new(p));
                            }
                            Ok(Err(e)) => at(line, format!("node {name:?}: {e}")),
                            Err(e) => at(line, format!("node {name:?}: {e}")),
                        }
                    }
                }
                _ => at(
                    line,
                    format!("node {name:?}: a prompt needs exactly one of file or text"),
                ),
            }
        }
        if let Node::Queue {
            digits,
            callback: Some(c),
            ..
        } = node
        {
            if !valid_digit(&c.key) || digits.contains_key(&c.key) {
                at(
                    line,
                    format!(
                        "node {name:?}: callback key {:?} must be a key (0-9, *, #) not used by digits",
                        c.key
                    ),
                );
            }
            if !(5..=3600).contains(&c.after) {
                at(
                    line,
                    format!(
                        "node {name:?}: callback after {} s: expected 5 to 3600",
                        c.after
                    ),
                );
            }
        }
        match node {
            Node::Menu { choices, .. }
            | Node::Queue {
                digits: choices, ..
            } => {
                for d in choices.keys().filter(|d| !valid_digit(d)) {
                    at(
                        line,
                        format!("node {name:?}: {d:?} is not a key (0-9, *, #)"),
                    );
                }
            }
            Node::Collect {
                min,
                max,
                pattern,
                terminator,
                ..
            } => {
                if min > max || *max == 0 || *max > 32 {
                    at(
                        line,
                        format!(
                            "node {name:?}: digits min {min} and max {max}: expected 1 <= min <= max <= 32"
                        ),
                    );
                }
                if let Some(p) = pattern
                    && let Err(e) = regex::Regex::new(p)
                {
                    at(
                        line,
                        format!("node {name:?}: pattern {p:?} does not compile: {e}"),
                    );
                }
                if let Some(t) = terminator
                    && !valid_digit(t)
                {
                    at(
                        line,
                        format!("node {name:?}: terminator {t:?} is not a key"),
                    );
                }
            }
            _ => {}
        }
        if let Node::Queue { queue, .. } = node
            && ctx.queues.as_ref().is_some_and(|q| !q.contains(queue))
        {
            at(
                line,
                format!("node {name:?}: queue {queue:?} is not configured"),
            );
        }
        if let Node::Condition { branches, .. } = node {
            for b in branches {
                if let Err(why) = Condition::parse(&b.when) {
                    at(
                        line,
                        format!("node {name:?}: condition {:?}: {why}", b.when),
                    );
                }
            }
        }
    }
    // Reachability from the start and from the after-agent entry.
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = [Some(start), after_agent].into_iter().flatten().collect();
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(node) = file.nodes.get(n) {
            todo.extend(node.get_ref().edges().into_iter().map(|(t, _)| t));
        }
    }
    for name in file.nodes.keys().filter(|n| !seen.contains(n.as_str())) {
        at(
            lines[name.as_str()],
            format!("node {name:?} is unreachable from {start:?}"),
        );
    }
    // Loops that never wait for the caller: cycles through edges that take no input, each
    // reported once, from its smallest node name.
    for name in file.nodes.keys() {
        if let Some(cycle) = instant_cycle(&file.nodes, name) {
            at(
                lines[name.as_str()],
                format!(
                    "nodes {} loop for ever without waiting for the caller",
                    cycle.join(" -> ")
                ),
            );
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(problems);
    }
    Ok(Script {
        path: path.to_path_buf(),
        start: start.to_string(),
        after_agent: after_agent.map(str::to_string),
        nodes: file
            .nodes
            .into_iter()
            .map(|(k, v)| (k, v.into_inner()))
            .collect(),
        prompts,
    })
}

/// A cycle from `from` back to itself through instant edges, reported once (from its
/// smallest node name).
fn instant_cycle(nodes: &BTreeMap<String, Spanned<Node>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        nodes: &BTreeMap<String, Spanned<Node>>,
        at: &str,
        from: &str,
        path: &mut Vec<String>,
    ) -> bool {
        let Some(node) = nodes.get(at) else {
            return false;
        };
        for (next, waits) in node.get_ref().edges() {
            if waits {
                continue;
            }
            if next == from {
                return true;
            }
            if next > from && !path.iter().any(|p| p == next) {
                path.push(next.to_string());
                if walk(nodes, next, from, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(nodes, from, from, &mut path).then_some(path)
}

/// A parsed condition (the small language of `condition` nodes).
#[derive(Debug, Clone)]
pub enum Condition {
    /// `caller ~ <regex>`: the caller's number matches.
    Caller(regex::Regex),
    /// `var.<name> == <value>`.
    Var {
        /// Variable.
        name: String,
        /// Value it must equal.
        value: String,
    },
    /// `time in HH:MM-HH:MM`, in minutes of the day; `from > to` crosses midnight.
    Time {
        /// Start, inclusive.
        from: u16,
        /// End, exclusive.
        to: u16,
    },
    /// `workday`: today is a working day.
    Workday,
    /// `holiday`: today is not a working day.
    Holiday,
    /// `queue.<name>.waiting > <n>`.
    Waiting {
        /// Queue.
        queue: String,
        /// Threshold.
        more_than: u32,
    },
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.trim().split_once(':')?;
    if m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Condition {
    /// Parses `caller ~ <regex>`, `var.<name> == <value>`, `time in HH:MM-HH:MM`, `holiday`,
    /// `workday`, `queue.<name>.waiting > <n>`.
    pub fn parse(when: &str) -> Result<Condition, String> {
        let w = when.trim();
        match w {
            "holiday" => return Ok(Condition::Holiday),
            "workday" => return Ok(Condition::Workday),
            _ => {}
        }
        if let Some(re) = w.strip_prefix("caller ~ ") {
            return regex::Regex::new(re.trim())
                .map(Condition::Caller)
                .map_err(|e| e.to_string());
        }
        if let Some(rest) = w.strip_prefix("var.") {
            return match rest.split_once(" == ") {
                Some((name, value))
                    if !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    Ok(Condition::Var {
                        name: name.to_string(),
                        value: value.trim().to_string(),
                    })
                }
                _ => Err("expected var.<name> == <value>".into()),
            };
        }
        if let Some(range) = w.strip_prefix("time in ") {
            return range
                .split_once('-')
                .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
                .map(|(from, to)| Condition::Time { from, to })
                .ok_or_else(|| "expected time in HH:MM-HH:MM".into());
        }
        if let Some(rest) = w.strip_prefix("queue.") {
            return match rest.split_once(".waiting > ") {
                Some((queue, n)) if !queue.is_empty() => n
                    .trim()
                    .parse::<u32>()
                    .map(|more_than| Condition::Waiting {
                        queue: queue.to_string(),
                        more_than,
                    })
                    .map_err(|_| "expected queue.<name>.waiting > <n>".into()),
                _ => Err("expected queue.<name>.waiting > <n>".into()),
            };
        }
        Err(
            "unknown condition (caller ~, var.x ==, time in, holiday, workday, queue.x.waiting >)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests;
