//! A dry run of a script from the terminal (`hotline ivr-walk`): the keys a caller presses go
//! in, a transcript of what the caller would hear and where the call would go comes out. Every
//! prompt plays to its end before the next key (no barge-in); `t` lets the running timer fire
//! and `h` is the agent hanging up.

use std::fmt::Write as _;
use std::sync::Arc;

use super::script::{PromptRef, Script};
use super::session::{Action, Event, Facts, Session};

/// Most events one walk delivers.
const MAX_EVENTS: usize = 10_000;

/// Walks `script` with `keys` (0-9, *, #, `t` for a timeout, `h` for the agent hanging up);
/// returns the transcript, one line per step, ending with the path of nodes taken.
pub fn walk(script: &Arc<Script>, keys: &str, facts: &dyn Facts) -> Result<Vec<String>, String> {
    if let Some(bad) = keys
        .chars()
        .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | '#' | 't' | 'h' | ' ')))
    {
        return Err(format!(
            "key {bad:?}: expected 0-9, *, #, t (timeout) or h (the agent hangs up)"
        ));
    }
    let mut keys = keys.chars().filter(|c| *c != ' ');
    let mut session = Session::new(Arc::clone(script));
    let mut out = Vec::new();
    let mut event = Some(Event::Start);
    for _ in 0..MAX_EVENTS {
        let Some(ev) = event.take() else { break };
        let mut prompt_playing = false;
        for action in session.handle(ev, facts) {
            match &action {
                Action::Play { .. } | Action::Knowledge { .. } | Action::TicketStatus { .. } => {
                    prompt_playing = true;
                }
                Action::StopPrompt => prompt_playing = false,
                _ => {}
            }
            out.push(describe(&action));
        }
        if session.is_done() {
            out.push(format!("(path: {})", session.path().join(" > ")));
            return Ok(out);
        }
        event = if prompt_playing {
            Some(Event::PromptDone)
        } else {
            match keys.next() {
                Some('t') => match session.timer() {
                    Some(t) => {
                        out.push("(no key: the timer fires)".into());
                        Some(Event::Timeout(t))
                    }
                    None => return Err("`t`: no timer is running".into()),
                },
                Some('h') => {
                    out.push("(the agent hangs up)".into());
                    Some(Event::AgentHungUp)
                }
                Some(k) => {
                    out.push(format!("(caller presses {k})"));
                    Some(Event::Digit(k))
                }
                None => None,
            }
        };
    }
    if let Some(node) = session.node() {
        out.push(format!("(waiting in node {node:?})"));
    }
    out.push(format!("(path: {})", session.path().join(" > ")));
    Ok(out)
}

fn prompt(p: &PromptRef) -> String {
    match (&p.file, &p.text) {
        (Some(f), _) => format!("file {f}"),
        (None, Some(t)) => format!("text {t:?}"),
        (None, None) => "nothing".into(),
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Play { prompt: p } => format!("play {}", prompt(p)),
        Action::StopPrompt => "stop the prompt".into(),
        Action::Timer { after, .. } => format!("wait {} s for a key", after.as_secs()),
        Action::Knowledge {
            article,
            category,
            choice,
        } => {
            let mut s = "speak knowledge".to_string();
            if let Some(a) = article {
                let _ = write!(s, " article {a}");
            }
            if let Some(c) = category {
                let _ = write!(s, " category {c:?}");
            }
            match choice {
                Some(k) => {
                    let _ = write!(s, ": answer {k} of its menu");
                }
                None if article.is_none() => s.push_str(": its menu (press 1-9)"),
                None => {}
            }
            s
        }
        Action::TicketStatus {
            number,
            access_code,
            phone_last4,
        } => match (number, access_code, phone_last4) {
            (Some(n), Some(_), Some(p)) => {
                format!("speak the progress of ticket {n} (access code given, phone ending {p})")
            }
            (Some(n), Some(_), None) => {
                format!("speak the progress of ticket {n} (access code given)")
            }
            (Some(_), None, _) => {
                "say the ticket was not found (no access code collected as `code`)".into()
            }
            _ => "speak ticket progress (no number collected)".into(),
        },
        Action::Score(n) => format!("record satisfaction {n}"),
        Action::Callback => "keep the place in the queue for a callback".into(),
        Action::Enqueue {
            queue,
            priority,
            skills,
            vars,
        } => format!("queue {queue:?} (priority {priority}, skills {skills:?}, vars {vars:?})"),
        Action::Pause => "keep the place in the queue (self-service)".into(),
        Action::Resume { vars } => format!("back in the queue at the same place (vars {vars:?})"),
        Action::Dequeue => "leave the queue".into(),
        Action::Transfer { uri } => format!("transfer to {uri}"),
        Action::Hangup => "hang up".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ivr::facts::CallFacts;
    use crate::ivr::script::{Context, load};

    fn night() -> CallFacts {
        CallFacts {
            caller: "13812345678".into(),
            minute_of_day: 23 * 60,
            workday: false,
            waiting: Default::default(),
            may_call_back: true,
        }
    }

    fn shipped() -> Arc<Script> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
        Arc::new(load(&path, &Context::default()).unwrap())
    }

    #[test]
    fn the_demo_flow_checks_a_ticket_returns_to_the_queue_and_ends_with_the_survey() {
        let lines = walk(&shipped(), "2 202611# 246810 h 4", &night()).unwrap();
        assert!(lines[0].starts_with("play text \"您好"), "{lines:#?}");
        assert_eq!(
            lines[1],
            "queue \"general\" (priority 0, skills [], vars {})"
        );
        for expected in [
            "keep the place in the queue (self-service)",
            "speak the progress of ticket 202611 (access code given)",
            "back in the queue at the same place (vars {\"code\": \"******\", \"ticket\": \"202611\"})",
            "record satisfaction 4",
            "hang up",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected}: {lines:#?}"
            );
        }
        assert_eq!(
            lines.last().unwrap(),
            "(path: greeting > queue > ask_ticket > ask_code > status > queue > survey > thanks > bye)"
        );
    }

    #[test]
    fn a_silent_caller_waits_in_the_queue_without_a_menu() {
        let lines = walk(&shipped(), "", &night()).unwrap();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(lines[2], "(waiting in node \"queue\")");
        assert_eq!(lines[3], "(path: greeting > queue)");
    }

    #[test]
    fn bad_keys_and_a_timeout_without_a_timer_are_errors() {
        assert!(
            walk(&shipped(), "1x", &night())
                .unwrap_err()
                .contains("'x'")
        );
        // In the queue no timer runs.
        let e = walk(&shipped(), "0t", &night()).unwrap_err();
        assert!(e.contains("no timer"), "{e}");
    }
}
