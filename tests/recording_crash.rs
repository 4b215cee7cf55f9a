//! A node killed (SIGKILL) in the middle of a recorded call: the next start repairs the
//! recording, so a standard reader (hound) opens it with the audio up to the kill, both
//! channels in place, and the call's row is closed as cut off.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sipp::free_udp_port;
use common::*;
use hotline_sip::media::g711::ulaw_encode;
use sqlx::Row;

fn tone(hz: f64, amplitude: f64, n: usize) -> impl Iterator<Item = i16> {
    (0..n).map(move |i| {
        (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16
    })
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out
}

fn zero_crossings(samples: &[i16]) -> usize {
    samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count()
}

#[test]
fn a_recording_cut_by_a_kill_is_repaired_at_the_next_start() {
    let db = TestDb::create();
    let dir = shared_tempdir();
    let config = write_config(dir.path());
    // The IVR plays 30 s of 1 kHz; the caller streams 300 Hz.
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_wav(
        &dir.path().join("prompts/long.wav"),
        &tone(1000.0, 8000.0, 8000 * 30).collect::<Vec<_>>(),
    );
    let script = dir.path().join("ivr.toml");
    std::fs::write(
        &script,
        "start = \"hello\"\n[nodes.hello]\ntype = \"play\"\nprompt = { file = \"prompts/long.wav\" }\n\
         next = \"wait\"\n[nodes.wait]\ntype = \"queue\"\nqueue = \"general\"\n",
    )
    .unwrap();
    let voice: Vec<u8> = tone(300.0, 6000.0, 80_000).map(ulaw_encode).collect();
    std::fs::write(dir.path().join("voice.ulaw"), voice).unwrap();
    let node_cmd = || {
        let mut cmd = hotline();
        cmd.env("HOTLINE_DATABASE__URL", &db.url)
            .env("HOTLINE_IVR__SCRIPT", &script);
        cmd
    };

    let mut node = Node::start_with(node_cmd(), &config);
    let line = node.wait_for_line("SIP listening on", Duration::from_secs(60));
    let udp: std::net::SocketAddr = line
        .split("udp:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the SIP address in the log");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp/uac_media_load.xml");
    let mut sipp = Command::new("sipp")
        .current_dir(dir.path())
        .arg(udp.to_string())
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-s",
            "12345",
            "-m",
            "1",
            "-d",
            "30000",
            "-i",
            "127.0.0.1",
            "-p",
        ])
        .arg(free_udp_port().to_string())
        .args(["-nostdin", "-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp is installed (scripts/test.sh installs the sip-tester package)");

    // The call is up and recording; let it run about 3 s, then kill the node outright.
    let recordings = dir.path().join("recordings");
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_ending(&recordings, ".wav.part").is_empty() {
        assert!(Instant::now() < deadline, "no recording started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let pid = nix::unistd::Pid::from_raw(node.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = node.child.wait();
    let cut_after = started.elapsed().as_secs_f64();
    let _ = sipp.kill();
    let _ = sipp.wait();
    let parts = files_ending(&recordings, ".wav.part");
    assert_eq!(parts.len(), 1, "{parts:?}");
    let open_rows = db
        .rows("SELECT count(*) AS n FROM calls WHERE ended_at IS NULL")
        .remove(0)
        .get::<i64, _>("n");
    assert_eq!(
        open_rows, 1,
        "the call's row was written when it was answered"
    );

    // The next start repairs it before taking calls.
    let mut node = Node::start_with(node_cmd(), &config);
    let line = node.wait_for_line("recordings of calls cut off", Duration::from_secs(60));
    assert!(
        line.contains("recordings=1") && line.contains("calls=1"),
        "{line}"
    );
    assert!(files_ending(&recordings, ".wav.part").is_empty());
    let wavs = files_ending(&recordings, ".wav");
    assert_eq!(wavs.len(), 1, "{wavs:?}");
    let mut reader = hound::WavReader::open(&wavs[0]).expect("hound opens the repaired file");
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let seconds = left.len() as f64 / 8000.0;
    // Everything up to the kill, give or take what was still in the writer's buffer.
    assert!(
        seconds > cut_after - 1.0 && seconds < cut_after + 1.0,
        "{seconds:.2} s recorded of a call cut after {cut_after:.2} s"
    );
    // One second from the middle: the caller's 300 Hz left, the prompt's 1 kHz right.
    let mid = left.len() / 2;
    let (l, r) = (
        &left[mid - 4000..mid + 4000],
        &right[mid - 4000..mid + 4000],
    );
    assert!(
        (560..640).contains(&zero_crossings(l)),
        "left: {}",
        zero_crossings(l)
    );
    assert!(
        (1900..2100).contains(&zero_crossings(r)),
        "right: {}",
        zero_crossings(r)
    );

    let row = db
        .rows("SELECT end_reason, recording, ended_at IS NOT NULL AS ended FROM calls")
        .remove(0);
    assert_eq!(
        row.get::<Option<String>, _>("end_reason").as_deref(),
        Some("cut off")
    );
    assert!(row.get::<bool, _>("ended"));
    assert_eq!(
        row.get::<Option<String>, _>("recording").as_deref(),
        Some(wavs[0].display().to_string().as_str())
    );
}
