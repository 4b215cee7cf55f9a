//! A dry run of a script from the terminal (`hotline ivr-walk`): the keys a caller presses go
//! in, a transcript of what the caller would hear and where the call would go comes out. Every
//! prompt plays to its end before the next key (no barge-in); `t` lets the running timer fire.

use std::fmt::Write as _;

use super::script::{PromptRef, Script};
use super::session::{Action, Event, Facts, Session};

/// Most events one walk delivers.
const MAX_EVENTS: usize = 10_000;

/// Walks `script` with `keys` (0-9, *, #, or `t` for a timeout); returns the transcript, one
/// line per step.
pub fn walk(script: &Script, keys: &str, facts: &dyn Facts) -> Result<Vec<String>, String> {
    if let Some(bad) = keys
        .chars()
        .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | '#' | 't' | ' ')))
    {
        return Err(format!("key {bad:?}: expected 0-9, *, # or t (timeout)"));
    }
    let mut keys = keys.chars().filter(|c| *c != ' ');
    let mut session = Session::new(script);
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
        Action::Knowledge { article, category } => {
            let mut s = "speak knowledge".to_string();
            if let Some(a) = article {
                let _ = write!(s, " article {a}");
            }
            if let Some(c) = category {
                let _ = write!(s, " category {c:?}");
            }
            s
        }
        Action::TicketStatus { number } => match number {
            Some(n) => format!("speak the progress of ticket {n}"),
            None => "speak ticket progress (no number collected)".into(),
        },
        Action::Score(n) => format!("record satisfaction {n}"),
        Action::Enqueue {
            queue,
            priority,
            skills,
            vars,
        } => format!("queue {queue:?} (priority {priority}, skills {skills:?}, vars {vars:?})"),
        Action::Dequeue => "leave the queue".into(),
        Action::Transfer { uri } => format!("transfer to {uri}"),
        Action::Hangup => "hang up".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ivr::script::{Context, load};

    struct Night;

    impl Facts for Night {
        fn caller(&self) -> &str {
            "13812345678"
        }
        fn minute_of_day(&self) -> u16 {
            23 * 60
        }
        fn workday(&self) -> bool {
            false
        }
        fn waiting(&self, _: &str) -> u32 {
            0
        }
    }

    fn shipped() -> Script {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
        load(&path, &Context::default()).unwrap()
    }

    #[test]
    fn a_walk_shows_prompts_keys_and_where_the_call_ends_up() {
        let lines = walk(&shipped(), "2", &Night).unwrap();
        assert!(lines[0].starts_with("play text \"您好"), "{lines:#?}");
        assert_eq!(lines[3], "(caller presses 2)");
        assert_eq!(
            lines[4],
            "queue \"enterprise\" (priority 0, skills [\"enterprise\"], vars {})"
        );
        assert_eq!(lines.last().unwrap(), "(waiting in node \"enterprise\")");
    }

    #[test]
    fn a_silent_caller_reaches_an_agent_after_one_menu() {
        let lines = walk(&shipped(), "t", &Night).unwrap();
        assert_eq!(
            lines.iter().filter(|l| l.contains("按1")).count(),
            1,
            "{lines:#?}"
        );
        assert!(
            lines.contains(&"wait 3 s for a key".to_string()),
            "{lines:#?}"
        );
        assert_eq!(lines.last().unwrap(), "(waiting in node \"queue\")");
    }

    #[test]
    fn bad_keys_and_a_timeout_without_a_timer_are_errors() {
        assert!(walk(&shipped(), "1x", &Night).unwrap_err().contains("'x'"));
        // In the queue no timer runs.
        let e = walk(&shipped(), "0t", &Night).unwrap_err();
        assert!(e.contains("no timer"), "{e}");
    }
}
