use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::ivr::facts::CallFacts;
use crate::ivr::script::{Context, parse};

/// A weekday morning, nobody waiting.
fn world() -> CallFacts {
    CallFacts {
        caller: "13812345678".into(),
        minute_of_day: 10 * 60,
        workday: true,
        waiting: HashMap::new(),
        may_call_back: true,
    }
}

const SCRIPT: &str = r##"
start = "greeting"

[nodes.greeting]
type = "play"
prompt = { text = "greeting" }
next = "menu"
barge_in = true

[nodes.menu]
type = "menu"
prompt = { text = "menu" }
choices = { "0" = "queue", "1" = "ask_ticket", "2" = "survey" }
timeout = 6
retries = 2
default = "queue"

[nodes.ask_ticket]
type = "collect"
prompt = { text = "ticket number" }
var = "ticket"
min = 6
max = 8
terminator = "#"
pattern = "^[1-9]\\d+$"
next = "status"
default = "sorry"

[nodes.status]
type = "ticket_status"
next = "menu"

[nodes.sorry]
type = "play"
prompt = { text = "sorry" }
next = "menu"

[nodes.survey]
type = "survey"
prompt = { text = "rate us 1 to 5" }
next = "bye"

[nodes.queue]
type = "queue"
queue = "general"
priority = 1
digits = { "1" = "ask_ticket" }

[nodes.bye]
type = "hangup"
"##;

fn script(text: &str) -> Arc<Script> {
    Arc::new(parse(Path::new("t.toml"), text, &Context::default()).unwrap())
}

fn text(t: &str) -> Action {
    Action::Play {
        prompt: PromptRef {
            file: None,
            text: Some(t.into()),
        },
    }
}

fn timer(a: &[Action]) -> u64 {
    a.iter()
        .rev()
        .find_map(|a| match a {
            Action::Timer { token, .. } => Some(*token),
            _ => None,
        })
        .expect("a timer")
}

fn keys(s: &mut Session, w: &CallFacts, keys: &str) -> Vec<Action> {
    keys.chars()
        .flat_map(|k| s.handle(Event::Digit(k), w))
        .collect()
}

fn enqueued(a: &[Action]) -> Option<&str> {
    a.iter().find_map(|a| match a {
        Action::Enqueue { queue, .. } => Some(queue.as_str()),
        _ => None,
    })
}

#[test]
fn a_caller_checks_a_ticket_and_comes_back_to_the_menu() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    assert_eq!(s.handle(Event::Start, &w), [text("greeting")]);
    assert_eq!(s.handle(Event::PromptDone, &w), [text("menu")]);
    let a = s.handle(Event::PromptDone, &w);
    assert_eq!(
        a,
        [Action::Timer {
            token: 1,
            after: Duration::from_secs(6)
        }]
    );
    assert_eq!(s.handle(Event::Digit('1'), &w), [text("ticket number")]);
    s.handle(Event::PromptDone, &w);
    let a = keys(&mut s, &w, "202611#");
    assert_eq!(
        a.last(),
        Some(&Action::TicketStatus {
            number: Some("202611".into()),
            access_code: None,
            phone_last4: None,
        })
    );
    assert_eq!(s.vars()["ticket"], "202611");
    assert_eq!(s.handle(Event::PromptDone, &w), [text("menu")]);
    assert_eq!(s.node(), Some("menu"));
}

#[test]
fn keys_during_a_barge_in_greeting_choose_from_the_menu_without_hearing_it() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    let a = s.handle(Event::Digit('0'), &w);
    assert_eq!(a[0], Action::StopPrompt);
    assert!(!a.contains(&text("menu")), "{a:?}");
    assert_eq!(enqueued(&a), Some("general"));
    // The prompt's late end changes nothing.
    assert!(s.handle(Event::PromptDone, &w).is_empty());
    assert_eq!(s.node(), Some("queue"));
}

#[test]
fn typed_ahead_digits_fill_a_collect_node() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::PromptDone, &w); // menu prompt
    let a = keys(&mut s, &w, "1"); // during the menu prompt: barge in to ask_ticket
    assert_eq!(a, [Action::StopPrompt, text("ticket number")]);
    let a = keys(&mut s, &w, "3456789#");
    assert_eq!(a[0], Action::StopPrompt);
    assert!(a.contains(&Action::TicketStatus {
        number: Some("3456789".into()),
        access_code: None,
        phone_last4: None,
    }));
}

#[test]
fn a_silent_caller_hears_the_menu_again_then_reaches_an_agent() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::PromptDone, &w);
    let mut a = s.handle(Event::PromptDone, &w);
    for _ in 0..2 {
        assert_eq!(s.handle(Event::Timeout(timer(&a)), &w), [text("menu")]);
        a = s.handle(Event::PromptDone, &w);
    }
    let last = s.handle(Event::Timeout(timer(&a)), &w);
    assert_eq!(enqueued(&last), Some("general"));
}

#[test]
fn a_wrong_key_replays_the_menu_and_a_stale_timer_is_ignored() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::PromptDone, &w);
    let a = s.handle(Event::PromptDone, &w);
    let stale = timer(&a);
    assert_eq!(s.handle(Event::Digit('7'), &w), [text("menu")]);
    assert!(s.handle(Event::Timeout(stale), &w).is_empty());
    s.handle(Event::PromptDone, &w);
    assert_eq!(s.handle(Event::Digit('2'), &w), [text("rate us 1 to 5")]);
}

#[test]
fn collect_refuses_short_or_malformed_input_and_stops_at_max() {
    let sc = script(SCRIPT);
    let w = world();
    for (typed, expect_ok, ends_by_timeout) in [
        ("123", false, true),       // too short, caller stops typing
        ("0123456#", false, false), // fails the pattern (leading zero)
        ("12345678", true, false),  // max 8 reached without '#'
        ("1234567", true, true),    // timeout after 7 >= min 6
    ] {
        let mut s = Session::new(sc.clone());
        s.handle(Event::Start, &w);
        s.handle(Event::PromptDone, &w);
        s.handle(Event::PromptDone, &w);
        s.handle(Event::Digit('1'), &w);
        s.handle(Event::PromptDone, &w);
        let mut a = keys(&mut s, &w, typed);
        if ends_by_timeout {
            a = s.handle(Event::Timeout(timer(&a)), &w);
        }
        if expect_ok {
            assert_eq!(
                a.last(),
                Some(&Action::TicketStatus {
                    number: Some(typed.into()),
                    access_code: None,
                    phone_last4: None,
                }),
                "{typed}"
            );
        } else {
            assert_eq!(a.last(), Some(&text("sorry")), "{typed}: {a:?}");
            assert!(!s.vars().contains_key("ticket"));
        }
    }
}

#[test]
fn the_survey_keeps_scores_1_to_5_only() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('2'), &w);
    s.handle(Event::PromptDone, &w);
    assert_eq!(s.handle(Event::Digit('9'), &w), [text("rate us 1 to 5")]);
    s.handle(Event::PromptDone, &w);
    assert_eq!(
        s.handle(Event::Digit('4'), &w),
        [Action::Score(4), Action::Hangup]
    );
    assert!(s.is_done());
    assert!(s.handle(Event::Digit('1'), &w).is_empty());
    // No answer: the call goes on without a score.
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('2'), &w);
    let a = s.handle(Event::PromptDone, &w);
    assert_eq!(s.handle(Event::Timeout(timer(&a)), &w), [Action::Hangup]);
}

#[test]
fn a_key_while_queued_keeps_the_place_and_the_caller_comes_back_to_it() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('0'), &w);
    assert!(s.handle(Event::Digit('5'), &w).is_empty());
    assert_eq!(
        s.handle(Event::Digit('1'), &w),
        [Action::Pause, text("ticket number")]
    );
    s.handle(Event::PromptDone, &w);
    keys(&mut s, &w, "654321#");
    // The status is spoken, then the menu; 0 leads back to the same queue node.
    s.handle(Event::PromptDone, &w);
    s.handle(Event::PromptDone, &w);
    let a = s.handle(Event::Digit('0'), &w);
    let vars: BTreeMap<String, String> = [("ticket".to_string(), "654321".to_string())].into();
    assert_eq!(a, [Action::Resume { vars }]);
    assert_eq!(
        s.path(),
        [
            "greeting",
            "menu",
            "queue",
            "ask_ticket",
            "status",
            "menu",
            "queue"
        ]
    );
}

#[test]
fn leaving_a_kept_place_for_another_queue_or_a_transfer_gives_it_up() {
    let text = SCRIPT.replace(
        "digits = { \"1\" = \"ask_ticket\" }",
        "digits = { \"1\" = \"ask_ticket\", \"2\" = \"other\", \"3\" = \"out\" }",
    ) + "[nodes.other]\ntype = \"queue\"\nqueue = \"general\"\nskills = [\"vip\"]\n\
           [nodes.out]\ntype = \"transfer\"\nuri = \"sip:110@127.0.0.1\"\n";
    let sc = script(&text);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('0'), &w);
    let a = s.handle(Event::Digit('2'), &w);
    assert_eq!(a[0], Action::Pause);
    assert_eq!(a[1], Action::Dequeue);
    assert!(matches!(&a[2], Action::Enqueue { skills, .. } if skills == &["vip".to_string()]));
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('0'), &w);
    assert_eq!(
        s.handle(Event::Digit('3'), &w),
        [
            Action::Pause,
            Action::Dequeue,
            Action::Transfer {
                uri: "sip:110@127.0.0.1".into()
            }
        ]
    );
}

#[test]
fn when_the_agent_hangs_up_the_caller_gets_the_survey_or_the_call_ends() {
    let src = SCRIPT.replace(
        "start = \"greeting\"",
        "start = \"greeting\"\nafter_agent = \"survey\"",
    );
    let sc = script(&src);
    let w = world();
    let mut s = Session::new(sc.clone());
    assert!(s.handle(Event::AgentHungUp, &w).is_empty(), "not started");
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('0'), &w);
    assert_eq!(s.handle(Event::AgentHungUp, &w), [text("rate us 1 to 5")]);
    s.handle(Event::PromptDone, &w);
    assert_eq!(
        s.handle(Event::Digit('5'), &w),
        [Action::Score(5), Action::Hangup]
    );
    // Without after_agent the call simply ends.
    let sc = script(SCRIPT);
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('0'), &w);
    assert_eq!(s.handle(Event::AgentHungUp, &w), [Action::Hangup]);
    assert!(s.handle(Event::AgentHungUp, &w).is_empty(), "already over");
}

#[test]
fn a_greeting_without_barge_in_ignores_keys() {
    let sc = script(&SCRIPT.replace("barge_in = true", "barge_in = false"));
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    assert!(s.handle(Event::Digit('0'), &w).is_empty());
    assert_eq!(s.handle(Event::PromptDone, &w), [text("menu")]);
}

const ROUTING: &str = r##"
start = "route"

[nodes.route]
type = "condition"
branches = [
  { when = "caller ~ ^0?10\\d+$", goto = "vip" },
  { when = "time in 18:00-08:30", goto = "night" },
  { when = "holiday", goto = "night" },
  { when = "queue.general.waiting > 20", goto = "busy" },
]
default = "tag"

[nodes.tag]
type = "set"
var = "route"
value = "day"
next = "queue"

[nodes.queue]
type = "queue"
queue = "general"

[nodes.vip]
type = "transfer"
uri = "sip:vip@127.0.0.1"

[nodes.night]
type = "play"
prompt = { text = "night" }
next = "queue"

[nodes.busy]
type = "play"
prompt = { text = "busy" }
next = "queue"
"##;

#[test]
fn conditions_route_by_caller_time_calendar_and_queue_length() {
    let sc = script(ROUTING);
    let first = |w: &CallFacts| {
        let mut s = Session::new(sc.clone());
        let a = s.handle(Event::Start, w);
        (a, s.vars().clone())
    };
    let (a, vars) = first(&world());
    assert_eq!(enqueued(&a), Some("general"));
    assert_eq!(vars["route"], "day");
    let (a, _) = first(&CallFacts {
        caller: "01012345678".into(),
        ..world()
    });
    assert_eq!(
        a,
        [Action::Transfer {
            uri: "sip:vip@127.0.0.1".into()
        }]
    );
    for minute in [18 * 60, 23 * 60 + 59, 0, 8 * 60 + 29] {
        let (a, _) = first(&CallFacts {
            minute_of_day: minute,
            ..world()
        });
        assert_eq!(a, [text("night")], "minute {minute}");
    }
    let (a, _) = first(&CallFacts {
        minute_of_day: 8 * 60 + 30,
        ..world()
    });
    assert_eq!(enqueued(&a), Some("general"));
    let (a, _) = first(&CallFacts {
        workday: false,
        ..world()
    });
    assert_eq!(a, [text("night")]);
    let busy = CallFacts {
        waiting: [("general".to_string(), 21)].into_iter().collect(),
        ..world()
    };
    assert_eq!(first(&busy).0, [text("busy")]);
    let not_busy = CallFacts {
        waiting: [("general".to_string(), 20)].into_iter().collect(),
        ..world()
    };
    assert_eq!(enqueued(&first(&not_busy).0), Some("general"));
}

#[test]
fn the_enqueue_carries_what_the_caller_keyed() {
    let sc = script(SCRIPT);
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::Digit('1'), &w);
    s.handle(Event::PromptDone, &w);
    keys(&mut s, &w, "12#"); // too short: "sorry", then the menu
    s.handle(Event::PromptDone, &w);
    s.handle(Event::PromptDone, &w);
    s.handle(Event::Digit('1'), &w);
    s.handle(Event::PromptDone, &w);
    keys(&mut s, &w, "654321#");
    s.handle(Event::PromptDone, &w); // status spoken, back to menu
    let a = s.handle(Event::Digit('0'), &w);
    match a.iter().find(|a| matches!(a, Action::Enqueue { .. })) {
        Some(Action::Enqueue { priority, vars, .. }) => {
            assert_eq!(*priority, 1);
            assert_eq!(vars.get("ticket").map(String::as_str), Some("654321"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_runaway_script_ends_the_call_instead_of_spinning() {
    // Validation refuses this loop; the session must still survive a script built by hand.
    let mut nodes = BTreeMap::new();
    nodes.insert("a".to_string(), Node::Goto { target: "b".into() });
    nodes.insert("b".to_string(), Node::Goto { target: "a".into() });
    let sc = Arc::new(Script {
        path: "hand.toml".into(),
        start: "a".into(),
        after_agent: None,
        nodes,
        prompts: BTreeMap::new(),
    });
    let mut s = Session::new(sc.clone());
    assert_eq!(s.handle(Event::Start, &world()), [Action::Hangup]);
    assert!(s.is_done());
}

#[test]
fn the_shipped_script_queues_a_caller_who_presses_nothing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
    let sc = Arc::new(crate::ivr::script::load(&path, &Context::default()).unwrap());
    let w = world();
    let mut s = Session::new(sc.clone());
    let a = s.handle(Event::Start, &w);
    assert!(
        matches!(&a[..], [Action::Play { prompt }] if prompt.text.as_deref().is_some_and(|t| t.contains("110"))),
        "{a:?}"
    );
    let a = s.handle(Event::PromptDone, &w);
    assert_eq!(enqueued(&a), Some("general"));
    assert_eq!(s.path(), ["greeting", "queue"]);
}

#[test]
fn a_menu_says_why_it_repeats_and_a_key_during_the_notice_counts() {
    let sc = script(&SCRIPT.replace(
        "default = \"queue\"",
        "default = \"queue\"\nno_input = { text = \"please press a key\" }\n\
         invalid = { text = \"that key is not a choice\" }",
    ));
    let w = world();
    let mut s = Session::new(sc.clone());
    s.handle(Event::Start, &w);
    s.handle(Event::PromptDone, &w);
    let a = s.handle(Event::PromptDone, &w);
    // No key: the no-input notice, then the menu again.
    assert_eq!(
        s.handle(Event::Timeout(timer(&a)), &w),
        [text("please press a key")]
    );
    assert_eq!(s.handle(Event::PromptDone, &w), [text("menu")]);
    s.handle(Event::PromptDone, &w);
    // A wrong key: the invalid-input notice; a right key during it is taken at once.
    assert_eq!(
        s.handle(Event::Digit('7'), &w),
        [text("that key is not a choice")]
    );
    assert_eq!(
        s.handle(Event::Digit('1'), &w),
        [Action::StopPrompt, text("ticket number")]
    );
    // Retries are counted across both kinds: after two, the default.
    let mut s = Session::new(sc);
    s.handle(Event::Start, &w);
    s.handle(Event::PromptDone, &w);
    s.handle(Event::PromptDone, &w);
    s.handle(Event::Digit('7'), &w);
    s.handle(Event::PromptDone, &w);
    s.handle(Event::PromptDone, &w);
    s.handle(Event::Digit('8'), &w);
    s.handle(Event::PromptDone, &w);
    s.handle(Event::PromptDone, &w);
    assert_eq!(enqueued(&s.handle(Event::Digit('9'), &w)), Some("general"));
}

const KB_SCRIPT: &str = r##"
start = "queue"

[nodes.queue]
type = "queue"
queue = "general"
digits = { "1" = "faq", "2" = "one" }

[nodes.faq]
type = "kb"
category = "常见问题"
next = "queue"

[nodes.one]
type = "kb"
article = 7
next = "queue"
"##;

fn knowledge(a: &[Action]) -> Option<(Option<i64>, Option<u8>)> {
    a.iter().find_map(|a| match a {
        Action::Knowledge {
            article, choice, ..
        } => Some((*article, *choice)),
        _ => None,
    })
}

#[test]
fn a_category_menu_takes_a_key_reads_that_answer_and_returns_to_the_queue() {
    let w = world();
    let mut s = Session::new(script(KB_SCRIPT));
    s.handle(Event::Start, &w);
    // Menu asked for; a key during it stops it and chooses at once (barge-in).
    let a = keys(&mut s, &w, "1");
    assert_eq!(knowledge(&a), Some((None, None)), "{a:?}");
    let a = keys(&mut s, &w, "2");
    assert_eq!(a[0], Action::StopPrompt);
    assert_eq!(knowledge(&a), Some((None, Some(2))), "{a:?}");
    // Keys while the answer plays are not taken; its end goes back to the queue.
    assert!(keys(&mut s, &w, "3").is_empty());
    let a = s.handle(Event::PromptDone, &w);
    assert!(matches!(a.as_slice(), [Action::Resume { .. }]), "{a:?}");
    assert_eq!(s.node(), Some("queue"));
    assert_eq!(s.path(), ["queue", "faq", "queue"]);

    // Heard in full, then silence: the menu's timer returns the caller to the queue.
    keys(&mut s, &w, "1");
    let a = s.handle(Event::PromptDone, &w);
    let t = timer(&a);
    assert!(
        matches!(a.last(), Some(Action::Timer { after, .. }) if *after == Duration::from_secs(5))
    );
    let a = s.handle(Event::Timeout(t), &w);
    assert!(matches!(a.as_slice(), [Action::Resume { .. }]), "{a:?}");
    // A key that chooses nothing (0, *, #) goes back too.
    keys(&mut s, &w, "1");
    s.handle(Event::PromptDone, &w);
    let a = keys(&mut s, &w, "#");
    assert!(matches!(a.as_slice(), [Action::Resume { .. }]), "{a:?}");

    // One article is read without a menu, and keys do not interrupt it.
    let a = keys(&mut s, &w, "2");
    assert_eq!(knowledge(&a), Some((Some(7), None)));
    assert!(keys(&mut s, &w, "1").is_empty());
    let a = s.handle(Event::PromptDone, &w);
    assert!(matches!(a.as_slice(), [Action::Resume { .. }]), "{a:?}");
}

const CALLBACK_SCRIPT: &str = r##"
start = "queue"

[nodes.queue]
type = "queue"
queue = "general"
digits = { "2" = "status" }
callback = { after = 60, prompt = { text = "press 1 for a callback" }, next = "thanks" }

[nodes.status]
type = "ticket_status"
next = "queue"

[nodes.thanks]
type = "play"
prompt = { text = "we will call you back" }
next = "bye"

[nodes.bye]
type = "hangup"
"##;

#[test]
fn the_callback_offer_comes_after_the_wait_and_its_key_keeps_the_place() {
    let sc = script(CALLBACK_SCRIPT);
    let w = world();
    let mut s = Session::new(sc);
    let a = s.handle(Event::Start, &w);
    assert_eq!(enqueued(&a), Some("general"));
    let offer = timer(&a);
    // Before the offer, 1 is nobody's key.
    assert!(s.handle(Event::Digit('1'), &w).is_empty());
    assert!(s.handle(Event::Timeout(offer + 7), &w).is_empty(), "stale");
    assert_eq!(
        s.handle(Event::Timeout(offer), &w),
        [text("press 1 for a callback")]
    );
    // The offer's end leaves the caller waiting (music again), still in the queue.
    assert!(s.handle(Event::PromptDone, &w).is_empty());
    assert!(s.is_queued());
    assert_eq!(
        s.handle(Event::Digit('1'), &w),
        [
            Action::StopPrompt,
            Action::Callback,
            text("we will call you back")
        ]
    );
    // Said goodbye, the call ends; the place is the ACD's to keep (no Dequeue).
    assert_eq!(s.handle(Event::PromptDone, &w), [Action::Hangup]);
}

#[test]
fn a_caller_the_hotline_may_not_call_back_is_not_offered_the_callback() {
    let sc = script(CALLBACK_SCRIPT);
    let w = CallFacts {
        caller: "0044207946000".into(),
        may_call_back: false,
        ..world()
    };
    let mut s = Session::new(sc);
    let a = s.handle(Event::Start, &w);
    assert_eq!(enqueued(&a), Some("general"));
    assert!(
        !a.iter().any(|x| matches!(x, Action::Timer { .. })),
        "no offer: {a:?}"
    );
    assert!(
        s.handle(Event::Digit('1'), &w).is_empty(),
        "1 keeps nothing"
    );
    assert!(s.is_queued());
}

#[test]
fn a_callback_key_that_clashes_or_an_offer_too_soon_is_refused_at_load() {
    let bad = CALLBACK_SCRIPT.replace("after = 60", "after = 2").replace(
        "digits = { \"2\" = \"status\" }",
        "digits = { \"1\" = \"status\" }",
    );
    let problems = parse(Path::new("t.toml"), &bad, &Context::default()).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter().any(|p| p.contains("callback key \"1\"")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|p| p.contains("callback after 2 s")),
        "{text:?}"
    );
    assert!(text.iter().all(|p| p.starts_with("t.toml:")), "{text:?}");
}
