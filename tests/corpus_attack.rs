//! The public SIP corpora (RFC 4475 torture messages, RFC 5118 IPv6 messages, the 3,017
//! PROTOS c07-sip cases) thrown at a live `hotline serve` over UDP and TCP, as an attacker
//! on the network would. The messages name foreign hosts, so the node and the sender run in a
//! network namespace of the test's own with only loopback up: whatever the node tries to
//! reach stays inside. Afterwards the node must still answer OPTIONS with 200 on both
//! transports, have no call or transaction left over, and its memory must be back near where
//! it started.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

#[path = "../sip/tests/support/protos.rs"]
mod protos;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn corpora() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOTLINE_CORPORA") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora");
    assert!(
        dir.join("manifest.tsv").is_file(),
        "corpora not found at {} (set HOTLINE_CORPORA)",
        dir.display()
    );
    dir
}

/// A network namespace with only loopback up, deleted when dropped.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let name = format!("hl-corpus-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip (iproute2)");
        assert!(ok.success(), "ip netns add {name} (the test needs root)");
        let ns = Netns(name);
        let up = ns
            .exec("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success(), "loopback up in {}", ns.0);
        ns
    }

    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, program]);
        cmd
    }

    /// Moves the calling thread into the namespace (threads it spawns follow).
    fn enter(&self) {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.0)).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The PostgreSQL server of `DATABASE_URL` by its Unix socket: the namespace has no route to
/// the server's TCP port, but a socket in the file system is reachable from any namespace.
fn socket_url(db: &TestDb) -> String {
    let rows = db.rows(
        "SELECT current_setting('unix_socket_directories') AS dirs, \
         current_setting('port') AS port, current_database() AS name",
    );
    use sqlx::Row;
    let dirs: String = rows[0].get("dirs");
    let port: String = rows[0].get("port");
    let name: String = rows[0].get("name");
    let dir = dirs
        .split(',')
        .map(str::trim)
        .find(|d| !d.is_empty() && !d.starts_with('@'))
        .expect("PostgreSQL listens on a Unix socket");
    let user = db
        .url
        .trim_start_matches("postgres://")
        .trim_start_matches("postgresql://")
        .split(['@', ':'])
        .next()
        .unwrap_or("postgres")
        .to_string();
    format!("postgres://{user}@localhost/{name}?host={dir}&port={port}")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The node's process: `ip netns exec` execs the program in place, so the child is the node.
fn node_pid(node: &Node) -> u32 {
    node.child.id()
}

fn options(n: u32, transport: &str, local: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:12345@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bKprobe{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe{n}\r\n\
         To: <sip:12345@127.0.0.1>\r\n\
         Call-ID: probe{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// OPTIONS over UDP from a fresh socket: the status line of the answer.
fn options_udp(node: SocketAddr, n: u32) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let local = sock.local_addr().unwrap().to_string();
    let mut buf = [0u8; 65536];
    for _ in 0..3 {
        sock.send_to(&options(n, "UDP", &local), node).unwrap();
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            return status_line(&buf[..len]);
        }
    }
    "no answer".into()
}

fn options_tcp(node: SocketAddr, n: u32) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&node, Duration::from_secs(2)) else {
        return "no connection".into();
    };
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = s.local_addr().unwrap().to_string();
    s.write_all(&options(n, "TCP", &local)).unwrap();
    let mut buf = [0u8; 65536];
    match s.read(&mut buf) {
        Ok(len) if len > 0 => status_line(&buf[..len]),
        _ => "no answer".into(),
    }
}

/// A value from the node's /metrics (0 when absent).
fn metric(http: SocketAddr, name: &str) -> f64 {
    let Ok(mut s) = TcpStream::connect_timeout(&http, Duration::from_secs(2)) else {
        return f64::NAN;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn corpus_messages() -> Vec<(String, Vec<u8>)> {
    let root = corpora();
    let mut out = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dat"))
            .collect();
        names.sort();
        for path in names {
            let label = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            out.push((label, std::fs::read(&path).unwrap()));
        }
    }
    let cases = root.join("protos-c07-sip/cases");
    let mut names: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let n: usize = name.parse().unwrap();
        let raw = std::fs::read(cases.join(&name)).unwrap();
        out.push((format!("protos/{name}"), protos::protos_case(n, &raw)));
    }
    out
}

#[test]
fn the_corpora_sent_to_a_live_node_leave_it_answering_and_its_memory_back_near_its_start() {
    let messages = corpus_messages();
    assert!(messages.len() > 3000, "{} messages", messages.len());
    let ns = Netns::create();
    let db = TestDb::create();
    let dir = shared_tempdir();
    let config = write_config(dir.path());
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_hotline"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("HOTLINE_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOTLINE_DATABASE__URL", socket_url(&db));
    let mut node = Node::start_with(cmd, &config);
    let line = node.wait_for_line("SIP listening on", Duration::from_secs(60));
    let addr_after = |key: &str| -> SocketAddr {
        let start = line.find(key).unwrap() + key.len();
        line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (udp, tcp) = (addr_after("udp:"), addr_after("tcp:"));
    let http: SocketAddr = node
        .wait_http()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let pid = node_pid(&node);

    let report = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter();
            // Warm up the paths the corpora will take, then take the baseline.
            assert_eq!(options_udp(udp, 0), "SIP/2.0 200 OK");
            assert_eq!(options_tcp(tcp, 10), "SIP/2.0 200 OK");
            std::thread::sleep(Duration::from_millis(500));
            let before = rss_kib(pid);

            // UDP: every message from one socket, answers read as they come.
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            let mut buf = [0u8; 65536];
            let mut udp_answers = 0usize;
            for (i, (_, msg)) in messages.iter().enumerate() {
                let _ = sock.send_to(msg, udp);
                while sock.recv_from(&mut buf).is_ok() {
                    udp_answers += 1;
                }
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            // TCP: each message on a connection of its own, closed once written.
            let mut tcp_refused = 0usize;
            let started = Instant::now();
            for (_, msg) in &messages {
                match TcpStream::connect_timeout(&tcp, Duration::from_secs(1)) {
                    Ok(mut c) => {
                        let _ = c.write_all(msg);
                        let _ = c.shutdown(std::net::Shutdown::Write);
                        c.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
                        let _ = c.read(&mut buf);
                    }
                    Err(_) => tcp_refused += 1,
                }
            }
            let tcp_secs = started.elapsed().as_secs_f64();

            // The INVITEs among them that were well formed started calls nobody ACKs: the
            // node gives up on them (timer H, 32 s) and hangs up. Wait for that.
            let waited = Instant::now();
            let deadline = waited + Duration::from_secs(90);
            let (mut calls, mut txs) = (f64::NAN, f64::NAN);
            while Instant::now() < deadline {
                calls = metric(http, "hotline_calls_live");
                txs = metric(http, "hotline_sip_transactions");
                if calls == 0.0 && txs == 0.0 {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            std::thread::sleep(Duration::from_secs(1));
            let after = rss_kib(pid);
            let after_udp = options_udp(udp, 1);
            let after_tcp = options_tcp(tcp, 2);
            eprintln!(
                "{} messages; UDP answers {udp_answers}; TCP connections refused {tcp_refused} \
                 ({tcp_secs:.1} s); live calls {calls}, transactions {txs} after {:.0} s; \
                 RSS {before} KiB before, {after} KiB after",
                messages.len(),
                waited.elapsed().as_secs_f64()
            );
            (before, after, calls, txs, after_udp, after_tcp, udp_answers)
        })
        .join()
        .unwrap()
    });
    let (before, after, calls, txs, after_udp, after_tcp, udp_answers) = report;
    while let Ok(line) = node.lines.try_recv() {
        node.log.push(line);
    }
    assert!(
        matches!(node.child.try_wait(), Ok(None)),
        "the node is still running; log:\n{}",
        node.log.join("\n")
    );
    assert!(
        !node.log.iter().any(|l| l.contains("panicked")),
        "no panic in the log:\n{}",
        node.log.join("\n")
    );
    assert_eq!(after_udp, "SIP/2.0 200 OK", "OPTIONS over UDP afterwards");
    assert_eq!(after_tcp, "SIP/2.0 200 OK", "OPTIONS over TCP afterwards");
    // Most corpus messages name a Via port other than the sender's and carry no `rport`, so
    // their answers go to that port (RFC 3261 18.2.2), not back to the sender: a few hundred
    // come back here, and none would if the node had stopped reading.
    assert!(
        udp_answers > 500,
        "the node answered the UDP corpus ({udp_answers} answers)"
    );
    assert_eq!(calls, 0.0, "no call left over");
    assert_eq!(txs, 0.0, "no transaction left over");
    assert!(
        after <= before + before / 2 + 16 * 1024,
        "memory back near its start: {before} KiB before, {after} KiB after"
    );
}
