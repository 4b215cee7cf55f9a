//! Driving a headless baresip (Debian package) from a test: free ports and its ctrl_tcp
//! control channel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// A port free on loopback for both UDP and TCP now, picked below the kernel's ephemeral range
/// (32768-60999): a port the kernel hands out could be taken again, before baresip binds it, as
/// the local port of one of the many client connections the other tests open (PostgreSQL,
/// HTTP), and baresip would then run without its control port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Each test process starts at its own place in 20000-31999 and walks on from there.
    let base = 20_000 + (std::process::id() % 600) as u16 * 20;
    // Four apart: baresip's SIP listener takes the port above its own for SIP over TLS.
    for _ in 0..3_000 {
        let port = 20_000 + (base - 20_000 + NEXT.fetch_add(4, Ordering::Relaxed)) % 12_000;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no port free in 20000-31999")
}

/// Sends one command over ctrl_tcp (a JSON netstring).
pub fn command(ctrl_port: u16, cmd: &str, params: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", ctrl_port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("baresip control port: {e}"),
        }
    };
    let json = format!(r#"{{"command":"{cmd}","params":"{params}","token":"t"}}"#);
    s.write_all(format!("{}:{json},", json.len()).as_bytes())
        .unwrap();
}

/// Starts a headless baresip in `dir` with one `account` (an accounts line): SIP on a free
/// loopback port, commands over ctrl_tcp, what it hears played to nowhere (aubridge);
/// `audio` is the config lines of its audio source, RTP port range and any more modules;
/// `args` more command-line arguments. Returns the child, its control port and its SIP port.
pub fn start(
    dir: &std::path::Path,
    account: &str,
    audio: &str,
    args: &[&str],
) -> (std::process::Child, u16, u16) {
    use std::process::{Command, Stdio};
    let (sip_port, ctrl_port) = (free_port(), free_port());
    std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
    std::fs::write(
        dir.join("config"),
        format!(
            // net_interface: SDP names the address baresip sends from (else the host's first
            // interface, which the hotline's RTP latch rightly does not take for a loopback source).
            "poll_method epoll\nnet_interface 127.0.0.1\nsip_listen 127.0.0.1:{sip_port}\naudio_player aubridge,x\n\
             audio_alert aubridge,x\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n\
             module aubridge.so\nmodule ctrl_tcp.so\n{audio}module_tmp account.so\n\
             module_app menu.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             dns_server 127.0.0.1:53\n"
        ),
    )
    .unwrap();
    let out = std::fs::File::create(dir.join("baresip.log")).unwrap();
    let child = Command::new("baresip")
        .arg("-f")
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("baresip is installed (scripts/test.sh installs the baresip package)");
    (child, ctrl_port, sip_port)
}

/// A headless baresip softphone in `dir`: `account` (an accounts line), speaking a sine of
/// `hz` (ausine, which runs at 48 kHz stereo only) and recording what it hears (sndfile:
/// `dump-*-dec.wav` in `dir`). Returns the child, its control port and its SIP port.
pub fn softphone(dir: &std::path::Path, account: &str, hz: u32) -> (std::process::Child, u16, u16) {
    let audio = format!(
        "audio_source ausine,{hz}\nausrc_srate 48000\nausrc_channels 2\nauplay_srate 48000\n\
         rtp_ports 44000-44999\nmodule ausine.so\nmodule sndfile.so\nsnd_path {}\n",
        dir.display()
    );
    start(dir, account, &audio, &[])
}

/// The samples of the recording of what a [`softphone`] heard (its `*-dec.wav`), and their
/// rate.
pub fn heard(dir: &std::path::Path) -> (Vec<i16>, u32) {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("no *-dec.wav in {}", dir.display()));
    let mut reader = hound::WavReader::open(&path).unwrap();
    let rate = reader.spec().sample_rate;
    (reader.samples::<i16>().map(Result::unwrap).collect(), rate)
}

/// The share of a stretch's energy at `hz` (Goertzel over whole seconds, averaged): about
/// 1 for a pure tone, 0.5 each for two tones of equal level, near 0 for an absent one.
pub fn tone_share(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let block = rate as usize;
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let (mut sum, mut n) = (0.0, 0);
    for chunk in samples.chunks_exact(block) {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in chunk {
            let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let total: f64 = chunk.iter().map(|&x| f64::from(x).powi(2)).sum();
        if total > 0.0 {
            sum += power / (total * block as f64 / 2.0);
        }
        n += 1;
    }
    if n == 0 { 0.0 } else { sum / f64::from(n) }
}
