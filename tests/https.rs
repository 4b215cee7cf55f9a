//! HTTPS in the node itself: a real `hotline serve` with `[http.tls]`, reached by a rustls
//! client that trusts only the node's certificate; the certificate replaced on SIGHUP without
//! dropping an open connection; plain HTTP redirected; clients that send garbage or stall in
//! the handshake dropped without holding anyone up; bad certificates refused by
//! `check-config` and `serve` with the file and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Node, hotline, shared_tempdir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn write_cert(dir: &Path, name: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let made =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn config(dir: &Path, tls: &str) -> std::path::PathBuf {
    let path = common::write_config(dir);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace("[http]\n", &format!("[http.tls]\n{tls}\n[http]\n"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A TLS client that trusts only the certificate in `ca`.
fn client(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, ca: &Path) -> Result<Tls, std::io::Error> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(
        client(ca),
        ServerName::try_from("localhost".to_string()).unwrap(),
    )
    .map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The handshake happens on first use.
    tls.flush()?;
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// One request on an open connection (keep-alive); the whole answer's head and body.
fn get(tls: &mut Tls, path: &str) -> String {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed mid-answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + length {
                return text;
            }
        }
    }
}

fn https_addr(node: &mut Node) -> SocketAddr {
    let line = node.wait_for_line("HTTP listening on https://", Duration::from_secs(90));
    let start = line.find("https://").unwrap() + "https://".len();
    line[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether the server closes `s` within `limit` (a read gives end of file or an error).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert, then the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return start.elapsed() < limit,
        }
    }
}

#[test]
fn the_node_serves_https_reloads_its_certificate_and_redirects_plain_http() {
    let dir = shared_tempdir();
    let (cert, key) = write_cert(dir.path(), "first", &["localhost"]);
    let cfg = config(
        dir.path(),
        &format!(
            "mode = \"files\"\ncert = {:?}\nkey = {:?}\nredirect_from = \"127.0.0.1:0\"\nhandshake_timeout_secs = 2\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let mut node = Node::start(&cfg);
    let addr = https_addr(&mut node);
    let line = node.wait_for_line("HTTPS certificate", Duration::from_secs(30));
    assert!(line.contains("localhost"), "{line}");
    let redirect = node.wait_for_line("redirects to HTTPS", Duration::from_secs(30));

    // A client that trusts the node's certificate gets its pages, with HSTS.
    let mut open = connect(addr, &cert).unwrap();
    let answer = get(&mut open, "/health");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );
    // One that trusts another certificate refuses the node's.
    let (stranger, _) = write_cert(dir.path(), "stranger", &["localhost"]);
    assert!(connect(addr, &stranger).is_err());

    // Garbage and a stalled handshake: both dropped, and nobody else waits for them.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap(); // half a ClientHello
    let t = Instant::now();
    let mut other = connect(addr, &cert).unwrap();
    assert!(get(&mut other, "/health").starts_with("HTTP/1.1 200"));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(
        closed_within(&mut garbage, Duration::from_secs(1)),
        "garbage is dropped at once"
    );
    assert!(
        closed_within(&mut stalled, Duration::from_secs(5)),
        "a stalled handshake is dropped"
    );

    // SIGHUP: new connections get the new certificate; the open one goes on.
    let (second, second_key) = write_cert(dir.path(), "second", &["localhost"]);
    std::fs::copy(&second, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    let pid = nix::unistd::Pid::from_raw(node.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    node.wait_for_line("HTTPS certificate reloaded", Duration::from_secs(10));
    assert!(connect(addr, &second).is_ok());
    assert!(connect(addr, &stranger).is_err());
    assert!(get(&mut open, "/health").starts_with("HTTP/1.1 200"));
    // A broken file on the next SIGHUP keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    node.wait_for_line("HTTPS certificate kept", Duration::from_secs(10));
    assert!(connect(addr, &second).is_ok());

    // Plain HTTP on the redirect port goes to the same path over HTTPS.
    let from: SocketAddr = redirect
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("redirect address in the log");
    let mut plain = TcpStream::connect(from).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /agent/?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    let answer = answer.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 308"), "{answer}");
    assert!(
        answer.contains(&format!(
            "location: https://localhost:{}/agent/?x=1",
            addr.port()
        )),
        "{answer}"
    );
}

#[test]
fn a_first_start_in_self_signed_mode_generates_a_certificate_once_and_check_config_reads_it() {
    let dir = shared_tempdir();
    let cfg = config(
        dir.path(),
        &format!(
            "mode = \"self-signed\"\ncert = {:?}\nkey = {:?}\n",
            dir.path().join("tls/cert.pem").display().to_string(),
            dir.path().join("tls/key.pem").display().to_string()
        ),
    );
    let mut node = Node::start(&cfg);
    let generated = node.wait_for_line(
        "generated a self-signed certificate",
        Duration::from_secs(90),
    );
    assert!(generated.contains("cert.pem"), "{generated}");
    let addr = https_addr(&mut node);
    let line = node.wait_for_line("HTTPS certificate", Duration::from_secs(30));
    let mut tls = connect(addr, &dir.path().join("tls/cert.pem")).unwrap();
    assert!(get(&mut tls, "/health").starts_with("HTTP/1.1 200"));
    drop(tls);
    assert_eq!(
        node.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30)),
        0
    );
    // check-config now reads the generated files and prints when they expire.
    let out = hotline()
        .arg("--config")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let sha = line
        .split("sha256=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        stdout.contains(&format!("SHA-256 {sha}")),
        "the same certificate: {stdout} / {line}"
    );
    assert!(stdout.contains("expires "), "{stdout}");
}

#[test]
fn bad_certificates_fail_check_config_and_serve_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path(), "a", &["localhost"]);
    let (_, other_key) = write_cert(dir.path(), "b", &["localhost"]);
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let old_key = rcgen::KeyPair::generate().unwrap();
    let old = params.self_signed(&old_key).unwrap();
    let (expired, expired_key) = (dir.path().join("old.pem"), dir.path().join("old.key"));
    std::fs::write(&expired, old.pem()).unwrap();
    std::fs::write(&expired_key, old_key.serialize_pem()).unwrap();
    let cases = [
        (dir.path().join("missing.pem"), key.clone(), "cannot read "),
        (
            cert.clone(),
            other_key,
            "b.key does not match the certificate in ",
        ),
        (expired, expired_key, "old.pem: expired on 2021-01-01"),
    ];
    for (c, k, reason) in cases {
        let path = dir.path().join("hotline.toml");
        std::fs::write(
            &path,
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[http.tls]\nmode = \"files\"\ncert = {:?}\nkey = {:?}\n",
                c.display().to_string(),
                k.display().to_string()
            ),
        )
        .unwrap();
        let out = hotline()
            .arg("--config")
            .arg(&path)
            .arg("check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("`http.tls`") && err.contains(reason),
            "{reason}: {err}"
        );
        let out = hotline()
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(reason), "serve: {reason}: {err}");
    }
}
