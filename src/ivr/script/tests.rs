use super::*;

fn ctx() -> Context {
    Context {
        queues: Some(["general".to_string()].into_iter().collect()),
        tts: None,
    }
}

fn problems(text: &str) -> Vec<String> {
    match parse(Path::new("/scripts/main.toml"), text, &ctx()) {
        Ok(_) => Vec::new(),
        Err(p) => p.iter().map(|p| p.to_string()).collect(),
    }
}

const GOOD: &str = r##"
start = "greeting"

[nodes.greeting]
type = "play"
prompt = { text = "您好，这里是12345政务服务便民热线" }
next = "hours"

[nodes.hours]
type = "condition"
branches = [{ when = "caller ~ ^1[3-9]\\d{9}$", goto = "menu" }]
default = "menu"

[nodes.menu]
type = "menu"
prompt = { text = "查询工单请按1，人工服务请按0" }
choices = { "1" = "ask_ticket", "0" = "queue" }
default = "queue"

[nodes.ask_ticket]
type = "collect"
prompt = { text = "请输入工单号，以井号结束" }
var = "ticket"
min = 6
max = 12
terminator = "#"
pattern = "^\\d+$"
next = "status"
default = "queue"

[nodes.status]
type = "ticket_status"
next = "menu"

[nodes.queue]
type = "queue"
queue = "general"
digits = { "9" = "bye" }

[nodes.bye]
type = "hangup"
"##;

#[test]
fn a_good_script_loads_with_every_node() {
    let s = parse(Path::new("/scripts/main.toml"), GOOD, &ctx()).unwrap();
    assert_eq!(s.start, "greeting");
    assert_eq!(s.nodes.len(), 7);
    match &s.nodes["ask_ticket"] {
        Node::Collect {
            min, max, timeout, ..
        } => assert_eq!((*min, *max, *timeout), (6, 12, 5)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_target_is_reported_with_the_line_of_its_node() {
    let text = GOOD.replace("next = \"status\"", "next = \"statsu\"");
    let p = problems(&text);
    let line = text
        .lines()
        .position(|l| l == "[nodes.ask_ticket]")
        .unwrap()
        + 1;
    // The typo also leaves "status" unreachable; both are reported.
    assert_eq!(
        p[0],
        format!(
            "/scripts/main.toml:{line}: node \"ask_ticket\" leads to \"statsu\", which does not exist"
        ),
    );
    assert!(p[1].contains("\"status\" is unreachable"), "{p:?}");
    assert_eq!(p.len(), 2);
}

#[test]
fn every_problem_is_reported_at_once_in_line_order() {
    let text = GOOD
        .replace("queue = \"general\"", "queue = \"nosuch\"")
        .replace("\"1\" = \"ask_ticket\"", "\"11\" = \"ask_ticket\"")
        .replace("pattern = \"^\\\\d+$\"", "pattern = \"^(\"");
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].contains("\"11\" is not a key"), "{p:#?}");
    assert!(p[1].contains("does not compile"), "{p:#?}");
    assert!(
        p[2].contains("queue \"nosuch\" is not configured"),
        "{p:#?}"
    );
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let text = "start = \"a\"\n\n[nodes.a]\ntype = \"hangup\"\nbroken =\n";
    let p = problems(text);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("/scripts/main.toml:5: "), "{p:?}");
}

#[test]
fn an_unknown_node_type_or_field_is_refused() {
    let p = problems("start = \"a\"\n[nodes.a]\ntype = \"dance\"\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("dance"), "{p:?}");
    let p = problems("start = \"a\"\n[nodes.a]\ntype = \"hangup\"\ncolour = \"red\"\n");
    assert!(p[0].contains("colour"), "{p:?}");
    let p = problems("start = \"a\"\n[nodes.a]\ntype = \"goto\"\ntarget = \"a\"\nwait = 1\n");
    assert!(p[0].contains("wait"), "{p:?}");
}

#[test]
fn unreachable_nodes_and_a_missing_start_are_reported() {
    let text = format!("{GOOD}\n[nodes.orphan]\ntype = \"hangup\"\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("\"orphan\" is unreachable"), "{p:?}");
    let p = problems(&GOOD.replace("start = \"greeting\"", "start = \"nope\""));
    assert!(
        p[0].starts_with("/scripts/main.toml:2: start node \"nope\""),
        "{p:?}"
    );
}

#[test]
fn a_loop_that_never_waits_is_reported_once_but_a_menu_loop_is_fine() {
    // status -> menu is a loop through a menu, which waits for the caller: fine (GOOD).
    assert!(problems(GOOD).is_empty());
    let text = "start = \"a\"\n\
        [nodes.a]\ntype = \"play\"\nprompt = { text = \"x\" }\nnext = \"b\"\n\
        [nodes.b]\ntype = \"goto\"\ntarget = \"a\"\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("a -> b loop for ever"), "{p:?}");
}

#[test]
fn prompts_need_one_source_and_files_must_decode() {
    let dir = std::env::temp_dir().join(format!("ivr-prompts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("welcome.wav"), wav(8000, 16, 1, 800)).unwrap();
    std::fs::write(dir.join("eight-bit.wav"), wav(8000, 8, 1, 800)).unwrap();
    std::fs::write(dir.join("not-a.wav"), b"RIFF").unwrap();
    let path = dir.join("main.toml");
    let play = |name: &str, prompt: &str, next: &str| {
        format!("[nodes.{name}]\ntype = \"play\"\nprompt = {{ {prompt} }}\nnext = \"{next}\"\n")
    };
    let text = [
        "start = \"a\"\n".to_string(),
        play("a", "file = \"welcome.wav\"", "b"),
        play("b", "file = \"missing.wav\"", "c"),
        play("c", "file = \"welcome.wav\", text = \"x\"", "d"),
        play("d", "file = \"eight-bit.wav\"", "e"),
        play("e", "file = \"not-a.wav\"", "f"),
        play("f", "file = \"welcome.wav\"", "g"),
        "[nodes.g]\ntype = \"hangup\"\n".to_string(),
    ]
    .concat();
    std::fs::write(&path, &text).unwrap();
    let p = load(&path, &ctx()).unwrap_err();
    let msgs: Vec<_> = p.iter().map(|p| (p.line, p.message.clone())).collect();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert_eq!(
        msgs[..2],
        [
            (
                6,
                "node \"b\": prompt file \"missing.wav\" not found".to_string()
            ),
            (
                10,
                "node \"c\": a prompt needs exactly one of file or text".to_string()
            ),
        ]
    );
    assert_eq!(msgs[2].0, 14);
    assert!(msgs[2].1.contains("eight-bit.wav: 8-bit"), "{msgs:?}");
    assert_eq!(msgs[3].0, 18);
    assert!(msgs[3].1.contains("not-a.wav"), "{msgs:?}");
    // Good prompts are decoded once, however many nodes use them.
    let good = text
        .replace("missing.wav", "welcome.wav")
        .replace("eight-bit.wav", "welcome.wav")
        .replace("not-a.wav", "welcome.wav")
        .replace("file = \"welcome.wav\", text = \"x\"", "text = \"x\"");
    std::fs::write(&path, good).unwrap();
    let script = load(&path, &ctx()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(script.prompts.len(), 1);
    // 800 samples at 8 kHz are 5 frames of 20 ms.
    assert_eq!(script.prompts["file:welcome.wav"].frames(), 5);
}

/// A PCM WAV file of `samples` frames (a quiet ramp).
fn wav(rate: u32, bits: u16, channels: u16, samples: u32) -> Vec<u8> {
    let bytes_per_sample = bits / 8;
    let block = bytes_per_sample * channels;
    let data_len = samples * u32::from(block);
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    w.extend_from_slice(&block.to_le_bytes());
    w.extend_from_slice(&bits.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples * u32::from(channels) {
        let v = (i % 64) as u8;
        w.extend(std::iter::repeat_n(v, usize::from(bytes_per_sample)));
    }
    w
}

#[test]
fn conditions_are_checked_when_the_script_loads() {
    for (when, ok) in [
        ("holiday", true),
        ("workday", true),
        ("time in 08:30-17:30", true),
        ("time in 25:00-17:30", false),
        ("var.ticket == 123", true),
        ("var. == 1", false),
        ("queue.general.waiting > 10", true),
        ("queue.general.waiting > many", false),
        ("caller ~ ^(", false),
        ("weather is nice", false),
    ] {
        assert_eq!(Condition::parse(when).is_ok(), ok, "{when}");
    }
}

#[test]
fn a_missing_file_is_a_problem_not_a_panic() {
    let p = load(Path::new("/nonexistent/ivr.toml"), &ctx()).unwrap_err();
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("cannot read the script"));
}

#[test]
fn after_agent_must_exist_and_makes_its_nodes_reachable() {
    let text = GOOD.replace(
        "start = \"greeting\"",
        "start = \"greeting\"\nafter_agent = \"survey\"",
    );
    let p = problems(&text);
    assert_eq!(
        p,
        ["/scripts/main.toml:3: after_agent node \"survey\" does not exist"]
    );
    // A survey reached only after the agent hangs up is not "unreachable".
    let text = format!(
        "{text}\n[nodes.survey]\ntype = \"survey\"\nprompt = {{ text = \"rate\" }}\nnext = \"bye\"\n"
    );
    let s = parse(Path::new("/scripts/main.toml"), &text, &ctx()).unwrap();
    assert_eq!(s.after_agent.as_deref(), Some("survey"));
}

#[test]
fn with_a_speech_engine_texts_are_synthesised_at_load_and_a_missing_engine_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("main.toml");
    std::fs::write(&path, GOOD).unwrap();
    let speak = Context {
        tts: Some(Tts::for_script(&path, None)),
        ..ctx()
    };
    let script = load(&path, &speak).unwrap();
    // Three texts in GOOD: the greeting, the menu and the ticket-number prompt.
    let texts = script
        .prompts
        .keys()
        .filter(|k| k.starts_with("tts:"))
        .count();
    assert_eq!(texts, 3, "{:?}", script.prompts.keys());
    let greeting = PromptRef {
        file: None,
        text: Some("您好，这里是12345政务服务便民热线".into()),
    };
    assert!(script.prompt(&greeting).unwrap().frames() > 50);

    let broken = Context {
        tts: Some(Tts {
            command: vec!["no-such-tts".into()],
            cache_dir: dir.path().join("cache"),
        }),
        ..ctx()
    };
    let p = load(&path, &broken).unwrap_err();
    assert_eq!(p.len(), 3, "one problem per node with a text: {p:#?}");
    assert!(
        p[0].to_string()
            .contains("\"greeting\": text-to-speech program \"no-such-tts\" not found"),
        "{}",
        p[0]
    );
}

#[test]
fn a_menu_notice_is_checked_like_any_prompt() {
    let text = GOOD.replace(
        "default = \"queue\"\n\n[nodes.ask_ticket]",
        "default = \"queue\"\ninvalid = { file = \"wrong-key.wav\" }\n\n[nodes.ask_ticket]",
    );
    assert_ne!(text, GOOD);
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("node \"menu\": prompt file \"wrong-key.wav\" not found"),
        "{p:?}"
    );
}

#[test]
fn any_truncation_or_corruption_of_a_script_is_a_problem_not_a_panic() {
    let mut refused = 0;
    for end in (0..GOOD.len()).filter(|&i| GOOD.is_char_boundary(i)) {
        if parse(Path::new("t.toml"), &GOOD[..end], &ctx()).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 100, "only {refused} truncations refused");
    // Overwrite each ASCII byte with characters that matter to TOML.
    for (i, b) in GOOD.bytes().enumerate() {
        if !b.is_ascii() {
            continue;
        }
        for c in ["\"", "[", "\n", "é"] {
            let mut text = GOOD.to_string();
            text.replace_range(i..i + 1, c);
            if let Err(problems) = parse(Path::new("t.toml"), &text, &ctx()) {
                assert!(!problems.is_empty());
                let lines = text.lines().count() + 1;
                assert!(problems.iter().all(|p| p.line >= 1 && p.line <= lines));
            }
        }
    }
}
