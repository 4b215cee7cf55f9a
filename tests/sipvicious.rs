//! SIPVicious (Debian `sipvicious`), the tool toll fraudsters scan with, against a running
//! node on loopback: `svmap` finds it, `svwar` cannot tell a real extension from a made-up one
//! by any method, and `svcrack` against a real account is throttled: it does not find the
//! password, and only a few of its guesses in a fixed time are checked at all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::sipp::free_udp_port;
use common::*;

fn tool(name: &str, args: &[&str]) -> String {
    // Bounded: a scan that waits for answers it will never get ends here.
    let out = Command::new("timeout")
        .arg("15")
        .arg(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e} (install Debian's sipvicious)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ {name} {}\n{text}", args.join(" "));
    text
}

fn account(n: &SipNode, name: &str, password: &str) {
    let mut cmd = hotline();
    cmd.env("HOTLINE_DATABASE__URL", &n.db.url)
        .arg("sip-account")
        .arg(name);
    let out = run_with_stdin(cmd, &format!("{password}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sipvicious_finds_the_node_but_no_extension_and_cracks_no_password() {
    let n = start_sip_node("digest_algorithms = [\"MD5\"]\n");
    account(&n, "1001", "correct horse battery");
    account(&n, "1005", "another long password");
    let target = format!("udp://{}", n.udp);
    // The account cache reloads on NOTIFY.
    std::thread::sleep(Duration::from_secs(2));

    let map = tool(
        "svmap",
        &[
            "-P",
            &free_udp_port().to_string(),
            "-p",
            &n.udp.port().to_string(),
            "127.0.0.1",
        ],
    );
    assert!(
        map.contains(&n.udp.to_string()),
        "svmap found the node:\n{map}"
    );

    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let port = free_udp_port().to_string();
        let war = tool(
            "svwar",
            &[
                "-P",
                &port,
                "--force",
                "--maximumtime",
                "10",
                "-m",
                method,
                "-e",
                "1000-1010",
                &target,
            ],
        );
        // The table lists what it thinks exists: never a real account (1001, 1005), which
        // answers exactly as a made-up one does.
        for real in ["| 1001 ", "| 1005 "] {
            assert!(
                !war.contains(real),
                "svwar -m {method} told {real} apart:\n{war}"
            );
        }
    }
    let started = Instant::now();
    let dictionary = tempfile::NamedTempFile::new().unwrap();
    // The right password is the eighth guess: a node without a throttle is cracked.
    let mut words: Vec<String> = (0..300).map(|i| format!("guess{i:04}")).collect();
    words.insert(7, "correct horse battery".into());
    std::fs::write(dictionary.path(), words.join("\n")).unwrap();
    let crack = tool(
        "svcrack",
        &[
            "-x",
            "127.0.0.1",
            "-P",
            &free_udp_port().to_string(),
            "-u",
            "1001",
            "-d",
            dictionary.path().to_str().unwrap(),
            "-vv",
            "--maximumtime",
            "10",
            &target,
        ],
    );
    let elapsed = started.elapsed();
    // svcrack logs each password it sends; only those answered with a fresh challenge can be
    // sent, and after the registrar's 5 failures the address gets 403 without one.
    let tried = crack
        .lines()
        .filter(|l| l.starts_with("DEBUG:ASipOfRedWine:trying "))
        .count();
    println!("svcrack sent {tried} guesses in {elapsed:?}");
    assert!(!crack.contains("The password for"), "cracked:\n{crack}");
    assert!(
        (1..=5).contains(&tried),
        "{tried} guesses were checked in {elapsed:?}, not at most 5:\n{crack}"
    );
    // The right password is refused from the guessing address now, and accepted from
    // another: the owner's phone elsewhere is not locked out.
    assert_eq!(register(n.udp, "127.0.0.1", "correct horse battery"), 403);
    assert_eq!(register(n.udp, "127.0.0.2", "correct horse battery"), 200);
}

/// A REGISTER of 1001 from `ip` with `password` through the challenge: the final status.
fn register(node: std::net::SocketAddr, ip: &str, password: &str) -> u16 {
    use hotline_sip::auth::{Algorithm, authorization};
    let sock = std::net::UdpSocket::bind(format!("{ip}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bKsv{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=sv\r\nTo: <sip:1001@127.0.0.1>\r\n\
             Call-ID: sv-{me}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@{me}>\r\n{auth}\
             Content-Length: 0\r\n\r\n"
        )
    };
    let exchange = |msg: String| -> String {
        sock.send_to(msg.as_bytes(), node).unwrap();
        let mut buf = [0u8; 8192];
        let (k, _) = sock.recv_from(&mut buf).expect("an answer");
        String::from_utf8_lossy(&buf[..k]).into_owned()
    };
    let status = |r: &str| r[8..11].parse::<u16>().unwrap();
    let first = exchange(request(1, ""));
    if status(&first) != 401 {
        return status(&first);
    }
    let nonce = first
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let auth = authorization(
        Algorithm::Md5,
        "1001",
        "hotline",
        password,
        nonce,
        1,
        "c1",
        "REGISTER",
        "sip:127.0.0.1",
    );
    status(&exchange(request(2, &format!("Authorization: {auth}\r\n"))))
}
