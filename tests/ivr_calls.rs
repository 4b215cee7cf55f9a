//! Real calls into the IVR: baresip (a real softphone, Debian package) calls the engine, which
//! answers with SDP on a port from the RTP range and runs a script: a recorded prompt, a
//! collect node that the phone answers with RFC 4733 keys, a goodbye, and a hang-up from our
//! side. What the phone heard (its sndfile dump of the decoded audio) must hold the prompt's
//! samples as G.711 carries them, and the call record must show the keys in order, the
//! variable collected and the path through the script.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::net::UdpSocket;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use hotline::calls::record::{CallEvent, CallRecord};
use hotline::calls::recording::Recordings;
use hotline::calls::{Calls, CallsConfig};
use hotline::china::calendar::WorkCalendar;
use hotline::config::{Port, SipConfig};
use hotline::engine::{Credentials, start_with_handler};
use hotline::ivr::script::Context;
use hotline::ivr::store::ScriptStore;
use hotline_sip::media::g711::{ulaw_decode, ulaw_encode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use common::baresip::{command, free_port, start};
use common::sipp::{corpus, hold_scenario, sipp, sipp_in, sipp_with};
use common::write_wav;

mod common;

/// A prompt no codec or generator would produce by chance: a chirp from 300 to 3,000 Hz with
/// a slow amplitude swell, `secs` long, 8 kHz 16-bit mono.
fn chirp(secs: f64) -> Vec<i16> {
    let n = (8000.0 * secs) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let f = 300.0 + 2700.0 * t / secs;
            let amp = 6000.0 + 6000.0 * (t / secs);
            (amp * (2.0 * std::f64::consts::PI * f * t / 2.0).sin()) as i16
        })
        .collect()
}

const SCRIPT: &str = r##"
start = "hello"

[nodes.hello]
type = "play"
prompt = { file = "prompts/hello.wav" }
next = "ask"

[nodes.ask]
type = "collect"
prompt = { file = "prompts/beep.wav" }
var = "code"
min = 4
max = 6
terminator = "#"
timeout = 15
next = "goodbye"
default = "goodbye"

[nodes.goodbye]
type = "play"
prompt = { file = "prompts/bye.wav" }
next = "bye"

[nodes.bye]
type = "hangup"
"##;

/// A headless baresip that dials nobody until told; what it hears is dumped by sndfile.
fn baresip(dir: &Path) -> (Child, u16) {
    std::fs::create_dir_all(dir.join("dump")).unwrap();
    // The caller's voice: 20 s of a 440 Hz tone (aufile needs the call's 8 kHz rate).
    let voice: Vec<i16> = (0..160_000)
        .map(|i| (3000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();
    write_wav(&dir.join("voice.wav"), &voice);
    let audio = format!(
        "audio_source aufile,{}\nrtp_ports 46000-46999\nmodule aufile.so\nmodule sndfile.so\n\
         snd_path {}\n",
        dir.join("voice.wav").display(),
        dir.join("dump").display()
    );
    let (child, ctrl, _) = start(
        dir,
        "<sip:caller@127.0.0.1>;regint=0;answermode=manual;audio_codecs=PCMU",
        &audio,
        &["-t", "30"],
    );
    (child, ctrl)
}

/// Whether two frames are the same audio allowing for G.711 rounding: decoders differ by a
/// step of the law at most (libre decodes mu-law zero as 2, ours as 0), far below what a
/// different piece of the chirp would give.
fn same_audio(a: &[i16], b: &[i16]) -> bool {
    a.iter().zip(b).all(|(x, y)| {
        let (x, y) = (i32::from(*x), i32::from(*y));
        (x - y).abs() <= 4 + y.abs() / 16
    })
}

/// The fraction of `sent`'s 20 ms frames found in `heard` (allowing for codec rounding).
/// baresip's jitter buffer may shift the stream, so each frame is looked for a little after
/// where the previous one was; the first is looked for in the whole dump.
fn frames_found(heard: &[i16], sent: &[i16]) -> f64 {
    let frames: Vec<&[i16]> = sent.chunks_exact(160).collect();
    let mut found = 0;
    let mut next: Option<usize> = None;
    for f in &frames {
        let (from, to) = match next {
            Some(n) => (n, heard.len().min(n + 160 * 25 + 160)),
            None => (0, heard.len()),
        };
        let hit = (from..to.saturating_sub(159)).find(|&i| same_audio(&heard[i..i + 160], f));
        if let Some(i) = hit {
            found += 1;
            next = Some(i + 160);
        }
    }
    found as f64 / frames.len() as f64
}

/// The signaling service with the IVR call handler, running `script.toml` of `dir` with RTP
/// ports `port_min..=port_max`.
struct Engine {
    rt: tokio::runtime::Runtime,
    scripts: Arc<ScriptStore>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    addr: std::net::SocketAddr,
    records: mpsc::UnboundedReceiver<CallEvent>,
}

impl Engine {
    fn start(dir: &Path, port_min: u16, port_max: u16) -> Engine {
        Self::start_with(dir, port_min, port_max, Duration::from_secs(20))
    }

    /// [`Engine::start`] hanging up callers silent for `inactivity`.
    fn start_with(dir: &Path, port_min: u16, port_max: u16, inactivity: Duration) -> Engine {
        let script_path = dir.join("script.toml");
        let ctx = Context {
            queues: None,
            tts: None,
        };
        let scripts = Arc::new(ScriptStore::load(&script_path, ctx).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        let (records_tx, records) = mpsc::unbounded_channel::<CallEvent>();
        let recordings = Recordings::start(&dir.join("recordings"), 0).unwrap();
        let calls = Calls::new(
            CallsConfig {
                bind: "127.0.0.1".parse().unwrap(),
                announce: "127.0.0.1".parse().unwrap(),
                port_min,
                port_max,
                inactivity: Some(inactivity),
                workers: 2,
                realtime: false,
                callback_route: None,
                callback_numbers: None,
                emergency_routes: Default::default(),
                trunks: Vec::new(),
                max_calls_per_source: 0,
            },
            Arc::clone(&scripts),
            Arc::new(WorkCalendar::shipped().unwrap()),
            records_tx,
            Some(Arc::new(recordings)),
            Vec::new(),
        );
        let cfg = SipConfig {
            listen: "127.0.0.1".parse().unwrap(),
            udp_port: Port(0),
            tcp_port: Port(0),
            ..SipConfig::default()
        };
        let (addrs, task) = rt
            .block_on(start_with_handler(
                &cfg,
                Arc::new(Credentials::default()),
                Box::new(calls),
                shutdown.clone(),
            ))
            .unwrap();
        Engine {
            rt,
            scripts,
            shutdown,
            task,
            addr: addrs.udp,
            records,
        }
    }

    /// The next finished call's record, if one comes within `limit` (the records of calls
    /// starting or being queued are passed over).
    fn record(&mut self, limit: Duration) -> Option<CallRecord> {
        let records = &mut self.records;
        self.rt.block_on(async {
            tokio::time::timeout(limit, async {
                loop {
                    match records.recv().await {
                        Some(CallEvent::Ended(_, r)) => return Some(r),
                        Some(CallEvent::Started(..) | CallEvent::Queued(..)) => continue,
                        None => return None,
                    }
                }
            })
            .await
            .ok()
            .flatten()
        })
    }

    fn stop(self) {
        self.shutdown.cancel();
        self.rt.block_on(self.task).unwrap();
    }
}

#[test]
fn a_softphone_hears_the_prompt_and_its_keys_walk_the_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    let hello = chirp(1.5);
    write_wav(&dir.path().join("prompts/hello.wav"), &hello);
    write_wav(&dir.path().join("prompts/beep.wav"), &chirp(0.2));
    // A long goodbye keeps the call up past RTCP's 5 s so both sides report.
    write_wav(&dir.path().join("prompts/bye.wav"), &chirp(6.0));
    std::fs::write(dir.path().join("script.toml"), SCRIPT).unwrap();
    let mut engine = Engine::start(dir.path(), 47000, 47099);
    let phone_dir = tempfile::tempdir().unwrap();
    let (mut phone, ctrl) = baresip(phone_dir.path());
    command(ctrl, "dial", &format!("sip:12345@{}", engine.addr));
    // The greeting is 1.5 s; keys pressed while it plays would be typed ahead, but the test
    // waits for the collect prompt so the order is plain.
    std::thread::sleep(Duration::from_millis(2500));
    for key in ["1", "2", "3", "4", "#"] {
        command(ctrl, "sndcode", key);
        std::thread::sleep(Duration::from_millis(400));
    }
    let record = engine.record(Duration::from_secs(25));
    // The recording is finished (its final name) when the call ends, not when the node stops.
    let finished = record
        .as_ref()
        .and_then(|r| r.recording.clone())
        .is_some_and(|p| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if Path::new(&p).is_file() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
    // The IVR hangs up; give baresip a moment to close its dump, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    command(ctrl, "quit", "");
    let _ = phone.wait();
    engine.stop();

    let phone_log =
        std::fs::read_to_string(phone_dir.path().join("baresip.log")).unwrap_or_default();
    let record = record.unwrap_or_else(|| panic!("no call record within 20 s\n{phone_log}"));
    assert_eq!(record.called, "12345");
    assert_eq!(record.caller, "caller");
    assert_eq!(record.codec.as_deref(), Some("PCMU"));
    assert_eq!(
        record.ivr_keys, "1234#",
        "the phone's RFC 4733 keys, one each, in order: {record:?}\n{phone_log}"
    );
    assert_eq!(
        record.ivr_vars.get("code").map(String::as_str),
        Some("1234")
    );
    assert_eq!(record.ivr_path, ["hello", "ask", "goodbye", "bye"]);
    assert_eq!(record.end_reason, "ivr hung up", "{record:?}");
    assert!(record.answered_at.is_some());
    assert!(
        record.packets_received > 100,
        "the phone's audio was received: {record:?}"
    );
    // About 1.5 + 0.2 + 2 + 0.2 s of 20 ms frames went out.
    assert!(record.packets_sent > 150, "{record:?}");
    // RTCP both ways: our reports went out, the phone's came in with its view of our stream
    // and the round trip; nothing lost on loopback, little jitter.
    let q = record.quality.expect("the call's RTCP quality");
    assert!(q.reports_sent >= 1, "{q:?}");
    assert!(q.reports_received >= 1, "{q:?}");
    assert_eq!(q.received, record.packets_received, "{q:?}");
    assert_eq!(q.lost, 0, "{q:?}");
    assert!(q.jitter_ms < 10.0, "{q:?}");
    assert_eq!(q.peer_lost, Some(0), "{q:?}");
    assert!(q.rtt_ms.is_some_and(|r| r < 20.0), "{q:?}");

    // What the phone heard: its decoded dump holds the greeting as mu-law carries it.
    let dump = std::fs::read_dir(phone_dir.path().join("dump"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip wrote no decoded dump\n{phone_log}"));
    let mut reader = hound::WavReader::open(&dump).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate), (1, 8000), "{spec:?}");
    let heard: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let expected: Vec<i16> = hello.iter().map(|s| ulaw_decode(ulaw_encode(*s))).collect();
    let found = frames_found(&heard, &expected);
    assert!(
        found >= 0.95,
        "only {:.0} % of the greeting's frames reached the phone intact ({} samples heard)",
        found * 100.0,
        heard.len()
    );

    // The call's recording: the greeting on the right, the phone's 440 Hz voice on the left.
    assert!(
        finished,
        "the recording was not finished when the call ended"
    );
    let path = record.recording.clone().expect("the call was recorded");
    assert!(path.ends_with(".wav"), "{path}");
    let mut reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let seconds = left.len() as f64 / 8000.0;
    assert!((8.0..14.0).contains(&seconds), "{seconds} s recorded");
    let found = frames_found(&right, &expected);
    assert!(
        found >= 0.95,
        "only {:.0} % of the greeting is on the right",
        found * 100.0
    );
    // 440 Hz at 8 kHz crosses zero 880 times a second.
    let middle = &left[8000..16000];
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    assert!(
        (800..960).contains(&crossings),
        "{crossings} zero crossings in 1 s of the left channel"
    );
}

const QUEUE_SCRIPT: &str = r#"
start = "hello"

[nodes.hello]
type = "play"
prompt = { file = "prompts/hello.wav" }
next = "wait"

[nodes.wait]
type = "queue"
queue = "general"
digits = { "1" = "note" }

[nodes.note]
type = "play"
prompt = { file = "prompts/hello.wav" }
next = "wait"
"#;

/// SIPp scenarios against the IVR handler: a plain call the caller ends, a key by SIP INFO,
/// hold by re-INVITE, an offer without G.711 (488), and no RTP port to be had (503).
#[test]
fn sipp_calls_are_answered_held_refused_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_wav(&dir.path().join("prompts/hello.wav"), &chirp(0.5));
    std::fs::write(dir.path().join("script.toml"), QUEUE_SCRIPT).unwrap();
    let mut engine = Engine::start(dir.path(), 47100, 47199);
    let mut failures = Vec::new();
    let addr = engine.addr;
    let mut run = |file: std::path::PathBuf, service: &str| {
        let (code, errors) = sipp(addr, &file, service);
        if code != 0 {
            failures.push(format!("{} (exit {code}):\n{errors}", file.display()));
        }
    };
    let own = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(name)
    };

    // The caller stays 1.5 s: the greeting (0.5 s) plays and the queue takes the call.
    let (code, errors) = sipp_with(addr, &corpus("sipp/uac.xml"), "12345", &["-d", "1500"]);
    assert_eq!(code, 0, "{errors}");
    let plain = engine.record(Duration::from_secs(10));
    run(corpus("siphon-rs/info.xml"), "12345");
    let info = engine.record(Duration::from_secs(10));
    run(hold_scenario(dir.path()), "12345");
    let held = engine.record(Duration::from_secs(10));
    run(own("uac_ptime40.xml"), "12345");
    let ptime40 = engine.record(Duration::from_secs(10));
    run(own("invite_no_g711.xml"), "12345");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    engine.stop();

    let plain = plain.expect("a record of the plain call");
    assert_eq!(plain.end_reason, "caller hung up", "{plain:?}");
    assert_eq!(plain.queue.as_deref(), Some("general"), "{plain:?}");
    assert_eq!(plain.ivr_path, ["hello", "wait"], "{plain:?}");
    let info = info.expect("a record of the INFO call");
    // The scenario hangs up right after its INFO, during the greeting: the key is recorded
    // (typed ahead for the queue node the caller did not live to reach).
    assert_eq!(info.ivr_keys, "1", "the INFO key reached the IVR: {info:?}");
    // The hold scenario talks for 3 s, then holds (sendonly) for 6 s: no audio goes to a
    // caller who holds, so far fewer than the 9 s x 50 packets go out.
    let held = held.expect("a record of the held call");
    assert_eq!(held.codec.as_deref(), Some("PCMA"), "{held:?}");
    assert!(
        (100..300).contains(&held.packets_sent),
        "about 3 s of audio before the hold, none during it: {held:?}"
    );

    // 40 ms packets asked for: 25 a second for the 2 s call, not 50.
    let ptime40 = ptime40.expect("a record of the ptime 40 call");
    assert!(
        (40..65).contains(&ptime40.packets_sent),
        "40 ms packets: {ptime40:?}"
    );

    // Every RTP port of the range is taken by another program: 503 with Retry-After.
    let squatter = UdpSocket::bind("127.0.0.1:47200").unwrap();
    let full = Engine::start(dir.path(), 47200, 47201);
    let (code, errors) = sipp(full.addr, &own("invite_no_port.xml"), "12345");
    full.stop();
    drop(squatter);
    assert_eq!(code, 0, "no 503 when no port is free:\n{errors}");
}

/// A late offer (INVITE without SDP) is answered with our offer and takes the answer from the
/// ACK; a caller whose RTP never comes is hung up after the inactivity limit.
#[test]
fn late_offers_are_completed_by_the_ack_and_silent_callers_are_hung_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_wav(&dir.path().join("prompts/hello.wav"), &chirp(0.5));
    std::fs::write(dir.path().join("script.toml"), QUEUE_SCRIPT).unwrap();
    let own = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(name)
    };

    let mut engine = Engine::start(dir.path(), 47300, 47399);
    let (code, errors) = sipp(engine.addr, &own("uac_late_offer.xml"), "12345");
    let late = engine.record(Duration::from_secs(10));
    engine.stop();
    assert_eq!(code, 0, "{errors}");
    let late = late.expect("a record of the late-offer call");
    assert_eq!(
        late.codec.as_deref(),
        Some("PCMA"),
        "the ACK's answer chose PCMA: {late:?}"
    );
    assert!(
        late.packets_sent > 40,
        "audio went out once the ACK answered: {late:?}"
    );
    assert_eq!(late.end_reason, "caller hung up");

    // SIPp sends no RTP: after 1 s of silence the engine sends BYE, which the scenario waits
    // for (within 5 s).
    let mut engine = Engine::start_with(dir.path(), 47400, 47499, Duration::from_secs(1));
    let (code, errors) = sipp(engine.addr, &own("uac_recv_bye.xml"), "12345");
    let silent = engine.record(Duration::from_secs(10));
    engine.stop();
    assert_eq!(code, 0, "no BYE for a silent caller:\n{errors}");
    let silent = silent.expect("a record of the silent call");
    assert_eq!(silent.end_reason, "no media", "{silent:?}");
    assert_eq!(silent.packets_received, 0);
}

/// A gateway that sends keys as tones in the audio (no telephone-event offered): the keys are
/// detected in-band and walk the script like RFC 4733 ones.
#[test]
fn keys_sent_as_tones_in_the_audio_are_heard() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_wav(&dir.path().join("prompts/hello.wav"), &chirp(0.5));
    std::fs::write(dir.path().join("script.toml"), QUEUE_SCRIPT).unwrap();
    // 1 s of quiet (the greeting plays), then "1" (697 + 1209 Hz), "4" (770 + 1209 Hz) and
    // "#" (941 + 1477 Hz), each 100 ms with 100 ms between, then quiet: 2.5 s in all.
    let dtmf = |lo: f64, hi: f64| {
        (0..800).map(move |i| {
            let t = i as f64 / 8000.0;
            (5000.0
                * ((2.0 * std::f64::consts::PI * lo * t).sin()
                    + (2.0 * std::f64::consts::PI * hi * t).sin())) as i16
        })
    };
    let quiet = |n: usize| std::iter::repeat_n(0i16, n);
    let audio: Vec<u8> = quiet(8000)
        .chain(dtmf(697.0, 1209.0))
        .chain(quiet(800))
        .chain(dtmf(770.0, 1209.0))
        .chain(quiet(800))
        .chain(dtmf(941.0, 1477.0))
        .chain(quiet(7200))
        .map(ulaw_encode)
        .collect();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("keys.ulaw"), audio).unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_inband.xml");

    let mut engine = Engine::start(dir.path(), 47500, 47599);
    let (code, errors) = sipp_in(work.path(), engine.addr, &scenario, "12345", &[]);
    let record = engine.record(Duration::from_secs(10));
    engine.stop();
    assert_eq!(code, 0, "{errors}");
    let record = record.expect("a record of the call");
    assert_eq!(
        record.ivr_keys, "14#",
        "each tone heard once, in order: {record:?}"
    );
    // "1" in the queue is self-service: the script took the key.
    assert!(record.ivr_path.iter().any(|n| n == "note"), "{record:?}");
}

/// A caller (SIPp streaming 300 Hz in mu-law for 4 s) transferred by the script to a SIPp UAS
/// playing `agent` (answering in A-law, echoing what it gets); returns the call's record and
/// the directory its recording is in.
fn transfer_call(agent: &str, ports: (u16, u16)) -> (CallRecord, tempfile::TempDir) {
    transfer_call_with(agent, ports, false).0
}

/// A third party on another address (127.0.0.2) that sends RTP (a 2 kHz tone, SSRCs and
/// sequence numbers of its own, in order) and RTCP to every port of `ports` every 20 ms until
/// stopped, and counts what comes back to it.
struct Attacker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Attacker {
    fn start(ports: (u16, u16)) -> Attacker {
        let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut got = 0;
            let mut buf = [0u8; 2048];
            let mut seq: u16 = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                seq = seq.wrapping_add(1);
                let mut rtp = vec![0x80, 0x00];
                rtp.extend_from_slice(&seq.to_be_bytes());
                rtp.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                rtp.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
                rtp.extend((0..160).map(|i| {
                    let t = f64::from(i) / 8000.0;
                    ulaw_encode((8000.0 * (2.0 * std::f64::consts::PI * 2000.0 * t).sin()) as i16)
                }));
                // A receiver report (RFC 3550 6.4.2) with no report blocks.
                let rtcp = [0x80, 201, 0, 1, 0x0b, 0xad, 0xca, 0xfe];
                for port in (ports.0..=ports.1).step_by(2) {
                    let _ = socket.send_to(&rtp, ("127.0.0.1", port));
                    let _ = socket.send_to(&rtcp, ("127.0.0.1", port + 1));
                }
                while let Ok((n, _)) = socket.recv_from(&mut buf) {
                    if n > 0 {
                        got += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            got
        });
        Attacker { stop, thread }
    }

    /// Stops; how many datagrams the hotline sent it.
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// [`transfer_call`], with an [`Attacker`] on the RTP range from before the call starts to
/// after it ends when `attack`: also what the attacker received.
fn transfer_call_with(
    agent: &str,
    ports: (u16, u16),
    attack: bool,
) -> ((CallRecord, tempfile::TempDir), usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_wav(&dir.path().join("prompts/hello.wav"), &chirp(0.5));
    let agent_port = free_port();
    let uri = format!("sip:agent@127.0.0.1:{agent_port}");
    std::fs::write(
        dir.path().join("script.toml"),
        format!(
            "start = \"hello\"\n[nodes.hello]\ntype = \"play\"\nprompt = {{ file = \"prompts/hello.wav\" }}\n\
             next = \"out\"\n[nodes.out]\ntype = \"transfer\"\nuri = \"{uri}\"\n"
        ),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let voice: Vec<u8> = (0..80_000)
        .map(|i| {
            ulaw_encode(
                (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * i as f64 / 8000.0).sin()) as i16,
            )
        })
        .collect();
    std::fs::write(work.path().join("voice.ulaw"), voice).unwrap();
    let agent_scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(agent);
    let agent = std::process::Command::new("sipp")
        .current_dir(work.path())
        .arg("-sf")
        .arg(&agent_scenario)
        .args(["-i", "127.0.0.1", "-p", &agent_port.to_string()])
        .args([
            "-mp",
            &free_port().to_string(),
            "-rtp_echo",
            "-m",
            "1",
            "-nostdin",
        ])
        .args(["-timeout", "30s", "-trace_err"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("SIPp is installed");
    let mut engine = Engine::start(dir.path(), ports.0, ports.1);
    let attacker = attack.then(|| Attacker::start(ports));
    let caller = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp/uac_media_load.xml");
    let (code, errors) = sipp_in(work.path(), engine.addr, &caller, "12345", &["-d", "4000"]);
    let record = engine.record(Duration::from_secs(10));
    let stolen = attacker.map_or(0, Attacker::stop);
    let agent = agent.wait_with_output().unwrap();
    engine.stop();
    let agent_errors = common::sipp::errors_in(work.path());
    assert_eq!(code, 0, "the caller's call failed:\n{errors}");
    assert!(
        agent.status.success(),
        "the target's side failed: {agent_errors}"
    );
    let record = record.expect("a record of the transferred call");
    assert_eq!(record.transfer_to.as_deref(), Some(uri.as_str()));
    // The directory holds the recording.
    ((record, dir), stolen)
}

/// Zero crossings of a stretch of audio (a 300 Hz tone: 600 a second).
fn crossings(s: &[i16]) -> usize {
    s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

/// Issue 22, item 1: a third party sending RTP and RTCP to every port of the range from
/// before the call starts (so its packets are the first each port gets) is neither heard by
/// the agent nor by the caller, not recorded, and not followed: nothing of the call is sent
/// to it, and its packets are counted as dropped.
#[test]
fn a_third_partys_rtp_is_neither_heard_recorded_nor_followed() {
    let metrics = hotline::telemetry::prometheus();
    let ((record, _dir), stolen) = transfer_call_with("uas_agent_pcma.xml", (47900, 47939), true);
    assert_eq!(
        stolen, 0,
        "the hotline sent the attacker {stolen} datagrams"
    );
    // The caller's 4 s of 300 Hz, and the agent's echo: about 200 packets from each; the
    // attacker's ~200 to each port are not among them.
    assert!((150..260).contains(&record.packets_received), "{record:?}");
    let path = record.recording.expect("recorded");
    let mut reader = hound::WavReader::open(&path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    // One second of the bridge: the caller's 300 Hz on the left and the agent's echo of what
    // it heard on the right; a 2 kHz tone mixed in (4,000 crossings a second) would show.
    let (l, r) = (&left[16_000..24_000], &right[16_000..24_000]);
    assert!((560..640).contains(&crossings(l)), "left: {}", crossings(l));
    assert!(
        (560..640).contains(&crossings(r)),
        "right: {}",
        crossings(r)
    );
    let text = metrics.render();
    let dropped = |reason: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.starts_with("hotline_rtp_dropped_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // The caller's leg alone (the agent's is A-law: the attacker's mu-law is not even RTP of
    // that call) gets about 50 a second for over 4 s.
    assert!(dropped("rtp_source") >= 150, "{text}");
    assert!(dropped("rtcp_source") >= 100, "{text}");
}

/// A `transfer` node bridges the caller to the target (a SIPp UAS that answers in A-law and
/// echoes what it gets): the caller's mu-law goes out as A-law and comes back as mu-law, the
/// call is recorded with both sides, and the caller's hang-up ends the target's leg too.
#[test]
fn a_transfer_bridges_the_caller_to_the_target_with_transcoding() {
    let (record, _dir) = transfer_call("uas_agent_pcma.xml", (47600, 47699));
    assert_eq!(record.ivr_path, ["hello", "out"]);
    assert_eq!(record.end_reason, "caller hung up", "{record:?}");
    assert_eq!(record.codec.as_deref(), Some("PCMU"));
    // The caller's stream never stopped: 0.5 s of greeting, 1 s of ringback while the target
    // rang, then about 2.5 s of the echo through the bridge (without the ringback: ~150).
    assert!(record.packets_sent > 175, "{record:?}");

    // The recording: the caller's 300 Hz on the left; on the right the target's side, which is
    // the caller's voice echoed (A-law there, decoded here): 300 Hz too.
    let path = record.recording.expect("recorded");
    let mut reader = hound::WavReader::open(&path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(left.len() > 8000 * 3, "{} samples", left.len());
    // One second well inside the bridged part (greeting 0.5 s, ringing 1 s).
    let (l, r) = (&left[16_000..24_000], &right[16_000..24_000]);
    assert!((560..640).contains(&crossings(l)), "left: {}", crossings(l));
    assert!(
        (560..640).contains(&crossings(r)),
        "right: {}",
        crossings(r)
    );
    // While the target rang (from 0.5 s) the caller heard, and the recording kept on the
    // right, China's 450 Hz ringback: 720 zero crossings in 0.8 s.
    let ring = &right[4_800..11_200];
    assert!(
        (650..790).contains(&crossings(ring)),
        "ringback: {}",
        crossings(ring)
    );
}

/// The target holds for 1.5 s (re-INVITE sendonly, then sendrecv): its re-INVITEs are
/// answered, and meanwhile the caller hears music instead of nothing, so the stream to the
/// caller never stops; the target's side of the recording is silent while it holds.
#[test]
fn a_target_on_hold_gives_the_caller_music() {
    let (record, _dir) = transfer_call("uas_agent_holds.xml", (47800, 47899));
    assert_eq!(record.end_reason, "caller hung up", "{record:?}");
    // Bridged from about 0.5 s to 4 s: 3.5 s at 50 packets a second reach the caller, the
    // 1.5 s of hold included (without the music it would be about 100).
    assert!(record.packets_sent > 160, "{record:?}");
    let path = record.recording.expect("recorded");
    let mut reader = hound::WavReader::open(&path).unwrap();
    let right: Vec<i16> = reader
        .samples::<i16>()
        .map(Result::unwrap)
        .skip(1)
        .step_by(2)
        .collect();
    // 0.5 s greeting + 1 s talk, then the hold: from 1.7 s to 2.8 s the target sends nothing.
    let held = &right[13_600..22_400];
    let loud = held.iter().filter(|s| s.abs() > 500).count();
    assert!(loud < 800, "{loud} loud samples while the target held");
}

/// A reload while a call is in progress: that call finishes on the script it started with,
/// the next call gets the new one.
#[test]
fn a_call_in_progress_keeps_its_script_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_wav(&dir.path().join("prompts/hello.wav"), &chirp(0.5));
    std::fs::write(dir.path().join("script.toml"), QUEUE_SCRIPT).unwrap();
    let mut engine = Engine::start(dir.path(), 47700, 47799);
    let addr = engine.addr;
    let first = std::thread::spawn(move || {
        sipp_with(addr, &corpus("sipp/uac.xml"), "12345", &["-d", "3000"])
    });
    std::thread::sleep(Duration::from_millis(1000));
    // Version 2 greets from another node.
    std::fs::write(
        dir.path().join("script.toml"),
        QUEUE_SCRIPT
            .replace("start = \"hello\"", "start = \"hello2\"")
            .replace("[nodes.hello]", "[nodes.hello2]"),
    )
    .unwrap();
    let v2 = engine.scripts.reload().unwrap();
    assert_eq!(v2.start, "hello2");
    let (code, errors) = sipp_with(addr, &corpus("sipp/uac.xml"), "12345", &["-d", "1000"]);
    assert_eq!(code, 0, "{errors}");
    let (code, errors) = first.join().unwrap();
    assert_eq!(code, 0, "{errors}");
    let mut records: Vec<CallRecord> = (0..2)
        .filter_map(|_| engine.record(Duration::from_secs(10)))
        .collect();
    engine.stop();
    assert_eq!(records.len(), 2);
    records.sort_by_key(|r| r.started_at);
    assert_eq!(
        records[0].ivr_path,
        ["hello", "wait"],
        "the first call kept version 1"
    );
    assert_eq!(
        records[1].ivr_path,
        ["hello2", "wait"],
        "the second call got version 2"
    );
}
