//! The running node answers SIP over UDP and TCP on loopback: OPTIONS, REGISTER with digest
//! authentication against accounts in PostgreSQL (picked up live), refusals, keep-alives.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use hotline_sip::auth::{Algorithm, authorization, ha1};
use hotline_sip::message::{Delivery, HeaderName, Message};
use nix::sys::signal::Signal;

fn options(branch: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:12345@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:12345@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register(cseq: u32, auth: Option<&str>) -> String {
    let mut m = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKreg{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=r1\r\nTo: <sip:1001@127.0.0.1>\r\n\
         Call-ID: reg-it-1\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:5099>\r\nExpires: 300\r\n"
    );
    if let Some(a) = auth {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

fn udp_exchange(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Message {
    sock.send_to(msg.as_bytes(), to).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .expect("an answer within the timeout");
        let m = Message::parse(&buf[..n], Delivery::Datagram).unwrap();
        if m.status().is_some_and(|s| s >= 200) {
            return m;
        }
    }
}

#[test]
fn options_register_and_refusals_over_udp_and_tcp() {
    let mut n = start_sip_node("");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // OPTIONS: 200 with what we allow.
    let r = udp_exchange(&sock, n.udp, &options("o1", "opt-1"));
    assert_eq!(r.status(), Some(200));
    assert!(r.header(&HeaderName::Allow).unwrap().contains("INVITE"));
    let via = r.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(sock.local_addr().unwrap().port())));

    // The account is created while the node runs: LISTEN/NOTIFY reloads the cache.
    let (md5, sha) = (
        ha1(Algorithm::Md5, "1001", "hotline", "pw-1001"),
        ha1(Algorithm::Sha256, "1001", "hotline", "pw-1001"),
    );
    n.db.execute(format!(
        "INSERT INTO sip_accounts (username, realm, ha1_md5, ha1_sha256) VALUES ('1001', 'hotline', '{md5}', '{sha}')"
    ));

    // REGISTER: challenged, then a wrong password refused, then the right one bound.
    let mut cseq = 1;
    let mut bound = None;
    for _ in 0..50 {
        let challenge = udp_exchange(&sock, n.udp, &register(cseq, None));
        assert_eq!(challenge.status(), Some(401));
        let algs: Vec<String> = challenge
            .auths(&HeaderName::WwwAuthenticate)
            .map(|a| a.param("algorithm").unwrap())
            .collect();
        assert_eq!(algs, ["SHA-256", "MD5"]);
        let nonce = challenge
            .auths(&HeaderName::WwwAuthenticate)
            .next()
            .unwrap()
            .param("nonce")
            .unwrap();
        let good = authorization(
            Algorithm::Sha256,
            "1001",
            "hotline",
            "pw-1001",
            &nonce,
            1,
            "c1",
            "REGISTER",
            "sip:127.0.0.1",
        );
        let r = udp_exchange(&sock, n.udp, &register(cseq + 1, Some(&good)));
        cseq += 2;
        if r.status() == Some(200) {
            bound = Some(r);
            break;
        }
        // Not yet reloaded: the user is unknown for a moment.
        assert_eq!(r.status(), Some(403));
        std::thread::sleep(Duration::from_millis(100));
    }
    let bound = bound.expect("the new account registers within 5 s");
    assert_eq!(bound.contacts().count(), 1);

    let challenge = udp_exchange(&sock, n.udp, &register(cseq, None));
    let nonce = challenge
        .auths(&HeaderName::WwwAuthenticate)
        .next()
        .unwrap()
        .param("nonce")
        .unwrap();
    let bad = authorization(
        Algorithm::Md5,
        "1001",
        "hotline",
        "wrong",
        &nonce,
        1,
        "c2",
        "REGISTER",
        "sip:127.0.0.1",
    );
    assert_eq!(
        udp_exchange(&sock, n.udp, &register(cseq + 1, Some(&bad))).status(),
        Some(403)
    );

    // Garbage is dropped, a broken request gets 400, and the node keeps serving.
    sock.send_to(b"\x00\x01 not sip at all", n.udp).unwrap();
    let broken = options("o2", "opt-2").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    assert_eq!(udp_exchange(&sock, n.udp, &broken).status(), Some(400));
    assert_eq!(
        udp_exchange(&sock, n.udp, &options("o3", "opt-3")).status(),
        Some(200)
    );

    // A call is refused cleanly until the call path exists.
    let invite = options("i1", "inv-1").replace("OPTIONS", "INVITE").replace(
        "Content-Length: 0",
        "Contact: <sip:probe@127.0.0.1:9>\r\nContent-Length: 0",
    );
    let r = udp_exchange(&sock, n.udp, &invite);
    assert_eq!(r.status(), Some(480));
    assert_eq!(r.header(&HeaderName::RetryAfter), Some("60"));

    // TCP: the answer comes back on the connection; a CRLF CRLF ping gets a CRLF pong.
    let mut tcp = TcpStream::connect(n.tcp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(
        options("t1", "tcp-1")
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
            .as_bytes(),
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let k = tcp.read(&mut buf).unwrap();
    let r = Message::parse(&buf[..k], Delivery::Stream).unwrap();
    assert_eq!(r.status(), Some(200));
    tcp.write_all(b"\r\n\r\n").unwrap();
    let k = tcp.read(&mut buf).unwrap();
    assert_eq!(&buf[..k], b"\r\n");
    // A stream that cannot be framed is closed.
    tcp.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\nl: 7\r\n\r\nhello")
        .unwrap();
    assert_eq!(tcp.read(&mut buf).unwrap_or(0), 0, "connection closed");
    // A request too large for sip.max_message_bytes gets 513, then the connection closes.
    let mut big = TcpStream::connect(n.tcp).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let huge = options("t2", "tcp-2")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("Content-Length: 0", "Content-Length: 100000");
    big.write_all(huge.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = big.read_to_end(&mut got);
    assert!(
        got.starts_with(b"SIP/2.0 513 "),
        "{}",
        String::from_utf8_lossy(&got)
    );

    let code = n
        .node
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(30));
    assert_eq!(code, 0, "{}", n.node.log.join("\n"));
    assert!(
        !n.node.log.iter().any(|l| l.contains("pw-1001")),
        "no password in the log"
    );
}

#[test]
fn sip_account_command_stores_only_hashes_and_the_phone_registers() {
    let mut n = start_sip_node("");
    let dir = tempfile::tempdir().unwrap();
    let set = |args: &[&str], stdin: &str| {
        let mut cmd = hotline();
        cmd.current_dir(dir.path())
            .env("HOTLINE_DATABASE__URL", &n.db.url)
            .arg("sip-account")
            .args(args);
        common::run_with_stdin(cmd, stdin)
    };
    assert!(
        !set(&["2002"], "short\n").status.success(),
        "too short a password"
    );
    assert!(
        !set(&["bad name"], "long-enough-pw\n").status.success(),
        "bad user name"
    );
    let out = set(&["2002"], "long-enough-pw\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The account cache reloads on NOTIFY: try for up to 5 s until the expected answer.
    let register_until = |first_cseq: u32, want: u16| -> bool {
        (0..50u32).any(|attempt| {
            let cseq = first_cseq + 10 * attempt;
            let reg = |c: u32, auth: Option<&str>| register(c, auth).replace("1001", "2002");
            let challenge = udp_exchange(&sock, n.udp, &reg(cseq, None));
            let nonce = challenge
                .auths(&HeaderName::WwwAuthenticate)
                .next()
                .unwrap()
                .param("nonce")
                .unwrap();
            let cred = authorization(
                Algorithm::Sha256,
                "2002",
                "hotline",
                "long-enough-pw",
                &nonce,
                1,
                "c",
                "REGISTER",
                "sip:127.0.0.1",
            );
            let got = udp_exchange(&sock, n.udp, &reg(cseq + 1, Some(&cred))).status();
            if got != Some(want) {
                std::thread::sleep(Duration::from_millis(100));
            }
            got == Some(want)
        })
    };
    assert!(register_until(1, 200), "the new account does not register");
    // Disabled: the next REGISTER is refused.
    assert!(set(&["2002", "--disable"], "").status.success());
    let refused = register_until(1000, 403);
    assert!(refused, "a disabled account still registers");
    assert_eq!(
        n.node
            .signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)),
        0
    );
}
