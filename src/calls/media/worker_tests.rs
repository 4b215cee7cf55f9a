//! One media worker's per-call logic driven directly: the handler's news in, the effects on
//! the rest of the node out (what the ACD hears, which records are written, which legs are
//! hung up, when the handler may forget the call), read in order from the worker's outbox.
//! No thread and no event loop run; the calls' sockets are bound on 127.0.0.1 but nothing is
//! sent to them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::net::UdpSocket as StdUdp;

use hotline_sip::sdp::Direction;

use super::*;
use crate::calls::admit::new_record;
use crate::ivr::script::Context;
use crate::ivr::store::ScriptStore;

fn script(dir: &std::path::Path, text: &str) -> Arc<crate::ivr::script::Script> {
    let path = dir.join("script.toml");
    std::fs::write(&path, text).unwrap();
    let ctx = Context {
        queues: None,
        tts: None,
    };
    match ScriptStore::load(&path, ctx) {
        Ok(s) => s.current(),
        Err(p) => panic!("test script: {p:?}"),
    }
}

const QUEUE: &str = "start = \"queue\"\n[nodes.queue]\ntype = \"queue\"\nqueue = \"general\"\n";

fn pair() -> (StdUdp, StdUdp) {
    let s = StdUdp::bind("127.0.0.1:0").unwrap();
    let r = StdUdp::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    r.set_nonblocking(true).unwrap();
    (s, r)
}

fn negotiated(port: u16) -> Negotiated {
    Negotiated {
        codec: Codec::Pcmu,
        dtmf: Some(101),
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        direction: Direction::SendRecv,
        ptime: 20,
        rtcp_mux: false,
    }
}

fn dialog(name: &str) -> DialogId {
    DialogId {
        call_id: format!("{name}@test"),
        local_tag: "hl1".into(),
        remote_tag: "c1".into(),
    }
}

/// A worker with nothing attached (no engine, ACD or recordings: the effects are read from
/// its outbox before any flush), holding call 1 from 13800138000 answered with `script`.
fn worker(script_text: &str) -> (Worker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
    let (tx, rx) = std_mpsc::channel();
    let me = Mailbox { tx, waker };
    let (records, _) = mpsc::unbounded_channel();
    let shared = Shared {
        ports: Arc::new(Mutex::new(PortAllocator::new(40000, 40099))),
        engine: None,
        runtime: None,
        calendar: Arc::new(WorkCalendar::shipped().unwrap()),
        inactivity: None,
        unavailable: Vec::new(),
        lookups: None,
        acd: None,
        records,
        recordings: None,
        finished: Arc::default(),
        realtime: false,
        bind: "127.0.0.1".parse().unwrap(),
        music_on_hold: Vec::new(),
        ringback: Vec::new(),
        announce: "127.0.0.1".parse().unwrap(),
        callback_numbers: None,
    };
    let mut w = Worker::new(0, poll, rx, me, Arc::new(shared));
    let (socket, rtcp_socket) = pair();
    let call = IvrCall::new(
        script(dir.path(), script_text),
        Codec::Pcmu,
        Some(101),
        7,
        11,
    );
    w.add(
        NewCall {
            key: 1,
            socket,
            rtcp_socket,
            port: 40000,
            call,
            negotiated: Some(negotiated(30000)),
            dialog: dialog("caller"),
            record: new_record("caller@test", "13800138000", "12345"),
        },
        Instant::now(),
    );
    (w, dir)
}

/// The worker's outbox since last asked, one line per effect.
fn effects(w: &mut Worker) -> Vec<String> {
    w.out
        .drain(..)
        .map(|e| match e {
            Effect::Record(r) => match *r {
                CallEvent::Started(..) => "record started".into(),
                CallEvent::Queued(_, r) => format!("record queued {}", r.queue.unwrap_or_default()),
                CallEvent::Ended(_, r) => {
                    format!("record ended {} agent={:?}", r.end_reason, r.agent_id)
                }
            },
            Effect::Acd(AcdCommand::Enqueue {
                queue, priority, ..
            }) => format!("acd enqueue {queue} {priority}"),
            Effect::Acd(AcdCommand::Leave { hung_up, .. }) => {
                format!("acd leave hung_up={hung_up}")
            }
            Effect::Acd(AcdCommand::CallEnded { agent, queue }) => {
                format!("acd call ended {agent} {queue}")
            }
            Effect::Acd(other) => format!("acd {other:?}"),
            Effect::Bye(d) => format!(
                "bye {}",
                d.iter()
                    .map(|d| d.call_id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Effect::PlaceTransfer(t) => format!("place transfer {}", t.uri),
            Effect::Finished(d, k) => format!("finished {} {k}", d.call_id),
        })
        .collect()
}

/// The call is confirmed, queued, and bridged to agent 9 over the leg `agent@test`.
fn bridged(w: &mut Worker) {
    w.news(1, ToMedia::Confirmed(None), Instant::now());
    let (socket, rtcp_socket) = pair();
    w.news(
        1,
        ToMedia::AgentLeg {
            socket,
            rtcp_socket,
            port: 40002,
        },
        Instant::now(),
    );
    w.news(
        1,
        ToMedia::Bridged {
            dialog: dialog("agent"),
            negotiated: negotiated(31000),
            agent: Some(9),
        },
        Instant::now(),
    );
    effects(w);
}

#[test]
fn a_queued_caller_who_hangs_up_leaves_the_queue_as_abandoned_after_the_handler_may_forget_it() {
    let (mut w, _dir) = worker(QUEUE);
    w.news(1, ToMedia::Confirmed(None), Instant::now());
    assert_eq!(
        effects(&mut w),
        [
            "record started",
            "acd enqueue general 0",
            "record queued general"
        ]
    );
    w.news(1, ToMedia::Ended("caller hung up"), Instant::now());
    assert_eq!(
        effects(&mut w),
        [
            "finished caller@test 1",
            "acd leave hung_up=true",
            "record ended caller hung up agent=None"
        ],
        "no BYE (the caller ended it), the handler told before the ACD"
    );
    assert!(w.calls.is_empty());
}

#[test]
fn a_call_the_script_hangs_up_is_hung_up_by_the_worker() {
    let (mut w, _dir) = worker("start = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n");
    w.news(1, ToMedia::Confirmed(None), Instant::now());
    assert_eq!(
        effects(&mut w),
        [
            "record started",
            "bye caller@test",
            "finished caller@test 1",
            "record ended ivr hung up agent=None"
        ]
    );
}

#[test]
fn a_caller_who_hangs_up_on_an_agent_ends_the_agent_s_call_and_hangs_up_its_leg() {
    let (mut w, _dir) = worker(QUEUE);
    bridged(&mut w);
    w.news(1, ToMedia::Ended("caller hung up"), Instant::now());
    assert_eq!(
        effects(&mut w),
        [
            "bye agent@test",
            "finished caller@test 1",
            "acd call ended 9 general",
            "record ended caller hung up agent=Some(9)"
        ]
    );
}

#[test]
fn an_agent_who_sends_the_caller_back_to_a_queue_ends_its_call_and_the_caller_is_first_in_line() {
    let (mut w, _dir) = worker(QUEUE);
    bridged(&mut w);
    w.news(
        1,
        ToMedia::Requeue {
            queue: Some("elderly".into()),
            agent: None,
        },
        Instant::now(),
    );
    assert_eq!(
        effects(&mut w),
        ["acd call ended 9 general", "acd enqueue elderly 100"]
    );
    // Hanging up while waiting again is abandoning the new queue.
    w.news(1, ToMedia::Ended("caller hung up"), Instant::now());
    let out = effects(&mut w);
    assert!(
        out.contains(&"acd leave hung_up=true".to_string()),
        "{out:?}"
    );
}

#[test]
fn a_transfer_with_no_engine_to_place_it_ends_the_call_as_unavailable() {
    let (mut w, _dir) = worker(QUEUE);
    bridged(&mut w);
    w.news(
        1,
        ToMedia::TransferOut {
            uri: "sip:110@127.0.0.1:5099".into(),
        },
        Instant::now(),
    );
    let out = effects(&mut w);
    assert_eq!(
        out,
        [
            "acd call ended 9 general",
            "bye caller@test",
            "finished caller@test 1",
            "acd leave hung_up=false",
            "record ended transfer unavailable agent=Some(9)"
        ],
        "the caller is hung up, not counted as abandoning"
    );
}
