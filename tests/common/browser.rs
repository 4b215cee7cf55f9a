//! A headless Chromium run for the browser tests: `node web/tests/SCRIPT` (playwright-core
//! driving Debian's chromium) against a running center, its step lines read as they come; the
//! fake microphone's tone; a SIPp caller.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::center::{Center, scenario};
use super::sipp::sipp_in;
use super::write_wav;

/// Where the screenshots go (kept by CI as artifacts).
pub fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ci-artifacts")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser run: its stdout lines as they come, its stderr collected.
pub struct Browser {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    err: std::thread::JoinHandle<String>,
}

impl Browser {
    /// Runs `web/tests/{script}` against the center, its screenshots into
    /// `ci-artifacts/{out}`.
    pub fn start(center: &Center, script: &str, out: &str, env: &[(&str, &str)]) -> Browser {
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        assert!(
            web.join("node_modules/playwright-core").exists(),
            "run scripts/web.sh first (scripts/test.sh does)"
        );
        let mut cmd = Command::new("node");
        cmd.current_dir(&web)
            .arg(format!("tests/{script}"))
            .env("BASE", &center.http.base)
            .env("OUT", artifacts(out))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node is installed");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        Browser { child, lines, err }
    }

    /// The next line starting with `prefix`, within `secs`.
    pub fn expect(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let err = std::mem::replace(&mut self.err, std::thread::spawn(String::new));
                    panic!(
                        "the browser did not get to {prefix:?} within {secs} s:\n{}",
                        err.join().unwrap_or_default()
                    );
                }
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's fake microphone: `hz` for 20 s, as a WAV in the center's work folder.
pub fn microphone(center: &Center, hz: f64) -> PathBuf {
    let tone = center.work.path().join(format!("browser-{hz}.wav"));
    let samples: Vec<i16> = (0..8000 * 20)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16)
        .collect();
    write_wav(&tone, &samples);
    tone
}

/// A caller on its own thread: dials 12345 and speaks 300 Hz for `ms` after the answer.
pub fn caller(center: &Center, ms: u32) -> std::thread::JoinHandle<(i32, String)> {
    let work = center.work.path().to_path_buf();
    let udp = center.node.udp;
    std::thread::spawn(move || {
        sipp_in(
            &work,
            udp,
            &scenario("../../benches/sipp/uac_media_load.xml"),
            "12345",
            &["-d", &ms.to_string()],
        )
    })
}
