//! A supervisor listens to, whispers on and barges into a call, with real SIP peers: three
//! headless baresip softphones (Debian package), each speaking its own tone and recording
//! what it hears. The caller (300 Hz) dials 12345 and is bridged to the agent (700 Hz); the
//! supervisor's softphone (1100 Hz) is rung through the API, listens, whispers, barges. Each
//! phone's recording is cut into the three stretches and checked for whose tones it holds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::baresip::{command, heard, softphone, tone_share};
use common::center::{Center, channels};
use common::*;
use serde_json::{Value, json};
use sqlx::Row;

const CALLER_HZ: f64 = 300.0;
const AGENT_HZ: f64 = 700.0;
const SUPERVISOR_HZ: f64 = 1100.0;

/// Present: a fair share of the energy (two tones of equal level have about half each).
const PRESENT: f64 = 0.2;
/// Absent: next to nothing.
const ABSENT: f64 = 0.02;

#[test]
fn a_supervisor_listens_whispers_and_barges_in_and_each_party_hears_what_the_mode_says() {
    let center = Center::start(QUEUE_SCRIPT);
    let alice = center.agent("alice", "1001");
    center.user_with_phone("sue", "1009", "supervisor", &[]);
    center.user_with_phone("sam", "1010", "supervisor", &[]);
    let dir = |name: &str| {
        let d = center.work.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (agent_dir, sup_dir, caller_dir) = (dir("agent"), dir("supervisor"), dir("caller"));
    let auto =
        |ext: &str| format!("<sip:{ext}@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU");
    let (mut agent_phone, _, agent_port) = softphone(&agent_dir, &auto("1001"), AGENT_HZ as u32);
    let (mut sup_phone, _, sup_port) = softphone(&sup_dir, &auto("1009"), SUPERVISOR_HZ as u32);
    let (mut caller_phone, caller_ctrl, _) = softphone(
        &caller_dir,
        "<sip:citizen@127.0.0.1>;regint=0;audio_codecs=PCMU",
        CALLER_HZ as u32,
    );
    // The phones' bindings, made for them (digest, with retries while the node learns the
    // new accounts): the node calls them at their SIP ports.
    center.register("1001", agent_port);
    center.register("1009", sup_port);
    center.agent_does("alice", "login", Value::Null);

    command(
        caller_ctrl,
        "dial",
        &format!("sip:12345@{}", center.node.udp),
    );
    let call_id = center.on_call(alice);
    std::thread::sleep(Duration::from_millis(1500));

    let sue = center.http.login("sue", "agent's password");
    let path = format!("/api/calls/{call_id}/monitor");
    // Only supervisors monitor; a mode must be one of the three.
    let alice_token = center.http.login("alice", "agent's password");
    let (code, _) = center
        .http
        .send("POST", &path, Some(&alice_token), json!({"mode": "listen"}));
    assert_eq!(code, 403, "an agent may not monitor");
    let (code, body) = center
        .http
        .send("POST", &path, Some(&sue), json!({"mode": "spy"}));
    assert_eq!(code, 422, "{body}");

    let mode = |m: &str, expect: &str| {
        let b = center
            .http
            .ok("POST", &path, Some(&sue), json!({ "mode": m }));
        assert_eq!(b["state"], expect, "{b}");
        Instant::now()
    };
    let listen = mode("listen", "ringing");
    // One supervisor at a time: another cannot take the leg over.
    let sam = center.http.login("sam", "agent's password");
    let (code, body) = center
        .http
        .send("POST", &path, Some(&sam), json!({"mode": "barge"}));
    assert_eq!(code, 409, "{body}");
    std::thread::sleep(Duration::from_millis(4500));
    let whisper = mode("whisper", "changed");
    std::thread::sleep(Duration::from_millis(3500));
    let barge = mode("barge", "changed");
    std::thread::sleep(Duration::from_millis(3500));
    command(caller_ctrl, "hangup", "");
    let end = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    for p in [&mut agent_phone, &mut sup_phone, &mut caller_phone] {
        let _ = p.kill();
        let _ = p.wait();
    }

    // Each stretch, as seconds before the end, less a margin for the switch to take effect
    // (and, for listening, for the phone to answer).
    let before = |t: Instant| end.duration_since(t).as_secs_f64();
    let stretches = [
        ("listen", before(listen) - 1.5, before(whisper) + 0.3),
        ("whisper", before(whisper) - 0.6, before(barge) + 0.3),
        ("barge", before(barge) - 0.6, 0.4),
    ];
    let hears = |what: &str, dir: &std::path::Path| {
        let (samples, rate) = heard(dir);
        let at = |secs_before_end: f64| {
            samples
                .len()
                .saturating_sub((secs_before_end * f64::from(rate)) as usize)
        };
        stretches
            .iter()
            .map(|(name, from, to)| {
                let s = &samples[at(*from)..at(*to)];
                assert!(
                    s.len() >= rate as usize * 2,
                    "{what} recorded {} samples for {name}",
                    s.len()
                );
                let share = |hz| tone_share(s, rate, hz);
                (
                    *name,
                    [share(CALLER_HZ), share(AGENT_HZ), share(SUPERVISOR_HZ)],
                )
            })
            .collect::<Vec<_>>()
    };
    let caller = hears("caller", &caller_dir);
    let agent = hears("agent", &agent_dir);
    let sup = hears("supervisor", &sup_dir);
    let report = format!(
        "shares of [caller, agent, supervisor] tones:\ncaller hears {caller:?}\nagent hears {agent:?}\nsupervisor hears {sup:?}"
    );
    println!("{report}");
    let check = |who: &str, got: &[f64; 3], expect: [bool; 3], stretch: &str| {
        for (i, (share, present)) in got.iter().zip(expect).enumerate() {
            let tone = ["caller", "agent", "supervisor"][i];
            if present {
                assert!(
                    *share > PRESENT,
                    "{stretch}: the {who} hears the {tone}\n{report}"
                );
            } else {
                assert!(
                    *share < ABSENT,
                    "{stretch}: the {who} does not hear the {tone}\n{report}"
                );
            }
        }
    };
    // Listening: the supervisor hears both, nobody hears the supervisor.
    check("supervisor", &sup[0].1, [true, true, false], "listen");
    check("caller", &caller[0].1, [false, true, false], "listen");
    check("agent", &agent[0].1, [true, false, false], "listen");
    // Whispering: the agent hears the supervisor, the caller does not.
    check("supervisor", &sup[1].1, [true, true, false], "whisper");
    check("caller", &caller[1].1, [false, true, false], "whisper");
    check("agent", &agent[1].1, [true, false, true], "whisper");
    // Barging: all three hear each other.
    check("supervisor", &sup[2].1, [true, true, false], "barge");
    check("caller", &caller[2].1, [false, true, true], "barge");
    check("agent", &agent[2].1, [true, false, true], "barge");

    // The call's recording keeps what the office said: the agent and, from the whisper on,
    // the supervisor on the right; the caller on the left.
    let rows = center.node.ended_calls(1, "recording");
    let recording: String = rows[0].get::<Option<String>, _>("recording").unwrap();
    let (left, right) = channels(&recording);
    let last = |s: &[i16]| s[s.len() - 8000 * 3..s.len() - 8000].to_vec();
    assert!(
        tone_share(&last(&left), 8000, CALLER_HZ) > 0.8,
        "left: the caller"
    );
    let office = last(&right);
    assert!(
        tone_share(&office, 8000, AGENT_HZ) > PRESENT,
        "right: the agent"
    );
    assert!(
        tone_share(&office, 8000, SUPERVISOR_HZ) > PRESENT,
        "right: the barging supervisor"
    );

    // Audited: who monitored which call, in which mode.
    let audit = center.node.db.rows(
        "SELECT actor, subject, detail->>'mode' AS mode FROM audit_log
          WHERE action = 'call.monitor' ORDER BY id",
    );
    let modes: Vec<(String, String, String)> = audit
        .iter()
        .map(|r| (r.get("actor"), r.get("subject"), r.get("mode")))
        .collect();
    let subject = format!("call:{call_id}");
    assert_eq!(
        modes,
        ["listen", "whisper", "barge"].map(|m| ("sue".to_string(), subject.clone(), m.to_string())),
    );
    // The call is over: nothing to monitor.
    let (code, _) = center
        .http
        .send("POST", &path, Some(&sue), json!({"mode": "listen"}));
    assert_eq!(code, 404);
}
