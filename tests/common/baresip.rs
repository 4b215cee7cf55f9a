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
