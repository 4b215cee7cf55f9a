//! Driving a headless baresip (Debian package) from a test: free ports and its ctrl_tcp
//! control channel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// A port free on loopback for both UDP and TCP now.
pub fn free_port() -> u16 {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port();
    // The control port is TCP: make sure it is free there too.
    drop(TcpListener::bind(("127.0.0.1", port)).ok());
    port
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
