//! HTTPS (and so WSS) in the node itself: its settings (`[http.tls]`), loading and checking a
//! certificate chain and key in PEM, a self-signed certificate generated once for a first
//! start, reloading on SIGHUP, and the listener that hands axum finished TLS connections.
//!
//! A browser gives the microphone only to a secure page: `http://localhost` counts, any other
//! `http://` address does not. So with `mode = "auto"` (the default) the node serves plain
//! HTTP only when it listens on loopback, and HTTPS with a self-signed certificate otherwise.
//!
//! Handshakes run in their own tasks with a deadline (`handshake_timeout_secs`): a client that
//! stalls mid-handshake or sends garbage is dropped without holding up anyone else's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Handshakes in progress at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// Whether the HTTP server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain HTTP on loopback (a secure context for the browser); otherwise as `self-signed`.
    #[default]
    Auto,
    /// Plain HTTP (behind a TLS-terminating proxy, or for tests).
    Off,
    /// HTTPS with `cert` and `key`, which must exist.
    Files,
    /// HTTPS with `cert` and `key`, generated once (self-signed) when missing.
    SelfSigned,
}

/// `[http.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// off, auto, files or self-signed.
    pub mode: TlsMode,
    /// The certificate chain in PEM, the server's certificate first.
    pub cert: PathBuf,
    /// The private key in PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The names agents' browsers use for this node: a generated certificate is for them
    /// (besides `localhost` and the listen address), a configured one must cover them.
    pub names: Vec<String>,
    /// A plain-HTTP listener that only redirects to HTTPS (for example `0.0.0.0:80`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_from: Option<SocketAddr>,
    /// `Strict-Transport-Security` max-age in seconds sent over HTTPS; 0 sends none.
    pub hsts_max_age_secs: u64,
    /// Seconds a client has to finish its TLS handshake before it is dropped (1 to 120).
    pub handshake_timeout_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Auto,
            cert: PathBuf::from("data/tls/cert.pem"),
            key: PathBuf::from("data/tls/key.pem"),
            names: Vec::new(),
            redirect_from: None,
            hsts_max_age_secs: 31_536_000,
            handshake_timeout_secs: 10,
        }
    }
}

impl TlsConfig {
    /// Whether a server listening on `listen` speaks TLS.
    pub fn enabled(&self, listen: SocketAddr) -> bool {
        match self.mode {
            TlsMode::Off => false,
            TlsMode::Auto => !listen.ip().is_loopback(),
            TlsMode::Files | TlsMode::SelfSigned => true,
        }
    }

    /// Whether missing files are generated.
    fn generates(&self) -> bool {
        matches!(self.mode, TlsMode::Auto | TlsMode::SelfSigned)
    }

    /// What is wrong with these settings and their files, for `check-config` (files that a
    /// first start would generate are not a problem).
    pub fn problems(&self, listen: SocketAddr) -> Vec<String> {
        if !self.enabled(listen) {
            return Vec::new();
        }
        if !(1..=120).contains(&self.handshake_timeout_secs) {
            return vec![format!(
                "`http.tls.handshake_timeout_secs` is {}: expected 1 to 120 seconds",
                self.handshake_timeout_secs
            )];
        }
        if self.generates() && !self.cert.exists() && !self.key.exists() {
            return Vec::new();
        }
        match check(&self.cert, &self.key, now_unix()) {
            Ok((_, info)) => self
                .names
                .iter()
                .filter(|n| !info.covers(n))
                .map(|n| {
                    format!(
                        "`http.tls`: {} is not for {n} (`http.tls.names`; it is for {})",
                        self.cert.display(),
                        info.names.join(", ")
                    )
                })
                .collect(),
            Err(e) => vec![format!("`http.tls`: {e}")],
        }
    }
}

/// What a certificate is for and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// Last second it is valid (Unix time).
    pub not_after: i64,
    /// The names it is for (subject alternative names, else the common name).
    pub names: Vec<String>,
    /// SHA-256 of the server's certificate, hex with colons (what a browser shows).
    pub fingerprint: String,
}

impl CertInfo {
    /// Whole days until it expires (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// Whether a browser reaching the node as `name` accepts it (a `*.` name covers one label).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(parent) => name
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => n == name,
            }
        })
    }

    /// Its expiry as a date and time in China time.
    pub fn expires(&self) -> String {
        chrono::DateTime::from_timestamp(self.not_after, 0)
            .map(|t| {
                t.with_timezone(&crate::china::calendar::china_time())
                    .format("%Y-%m-%d %H:%M:%S +08:00")
                    .to_string()
            })
            .unwrap_or_default()
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Reads the chain and key, checks that they match and that the certificate is valid at `now`.
pub fn check(cert: &Path, key: &Path, now: i64) -> Result<(CertifiedKey, CertInfo), String> {
    let pem = std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain ({e})", cert.display()))?;
    let Some(first) = chain.first() else {
        return Err(format!("{}: no PEM certificate in it", cert.display()));
    };
    let info = info_of(first).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: no PEM private key in it ({e})", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("{}: unusable private key ({e})", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        format!(
            "{} does not match the certificate in {}",
            key.display(),
            cert.display()
        )
    })?;
    if info.not_after < now {
        return Err(format!("{}: expired on {}", cert.display(), info.expires()));
    }
    Ok((certified, info))
}

fn info_of(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate ({e})"))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push((*d).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(std::net::Ipv4Addr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty()
        && let Some(cn) = x509.subject().iter_common_name().next()
        && let Ok(cn) = cn.as_str()
    {
        names.push(cn.to_string());
    }
    let fingerprint = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertInfo {
        not_after: x509.validity().not_after.timestamp(),
        names,
        fingerprint,
    })
}

/// Writes a self-signed certificate for `localhost`, the listen address and `names` into
/// `cert` and `key` (the key readable by this user only).
fn generate(cert: &Path, key: &Path, listen: SocketAddr, names: &[String]) -> Result<(), String> {
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !listen.ip().is_unspecified() {
        sans.push(listen.ip().to_string());
    }
    sans.extend(names.iter().cloned());
    sans.dedup();
    let made = rcgen::generate_simple_self_signed(sans)
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    for p in [cert, key] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    write_private(key, made.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, made.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The certificate the server presents, replaced by [`Certificates::reload`].
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, CertInfo)>,
}

impl Certificates {
    /// Loads the configured certificate, generating a self-signed one first where the mode
    /// allows and neither file exists.
    pub fn load(cfg: &TlsConfig, listen: SocketAddr) -> Result<Arc<Certificates>, String> {
        if cfg.generates() && !cfg.cert.exists() && !cfg.key.exists() {
            generate(&cfg.cert, &cfg.key, listen, &cfg.names)?;
            tracing::warn!(
                cert = %cfg.cert.display(),
                "generated a self-signed certificate: browsers warn until it is trusted or \
                 replaced (README, HTTPS)"
            );
        }
        let (key, info) = check(&cfg.cert, &cfg.key, now_unix())?;
        Ok(Arc::new(Certificates {
            cert: cfg.cert.clone(),
            key: cfg.key.clone(),
            current: RwLock::new((Arc::new(key), info)),
        }))
    }

    /// What is being served.
    pub fn info(&self) -> CertInfo {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Reads the files again; on any problem the certificate in use stays.
    pub fn reload(&self) -> Result<CertInfo, String> {
        let (key, info) = check(&self.cert, &self.key, now_unix())?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(key), info.clone());
        Ok(info)
    }

    /// The rustls configuration serving these certificates (HTTP/1.1; the WebSocket upgrade
    /// needs it).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(c))
    }

    /// Logs what is served and exports its days to expiry.
    pub fn announce(&self) {
        let info = self.info();
        metrics::gauge!("hotline_tls_certificate_days_left").set(info.days_left(now_unix()) as f64);
        tracing::info!(
            cert = %self.cert.display(),
            names = ?info.names,
            expires = %info.expires(),
            sha256 = %info.fingerprint,
            "HTTPS certificate"
        );
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .clone(),
        )
    }
}

/// Reloads the certificates on each SIGHUP until `shutdown`; connections and calls stay.
pub fn spawn_reloader(
    certs: Arc<Certificates>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            match certs.reload() {
                Ok(_) => {
                    tracing::info!("SIGHUP: HTTPS certificate reloaded");
                    certs.announce();
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: HTTPS certificate kept"),
            }
        }
    }))
}

/// A TCP listener whose connections come out with their TLS handshake done.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `shutdown`, each handshake in its own task.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
        shutdown: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = tcp.accept() => match got {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::debug!(error = %e, "HTTPS accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor stopped (shutdown): wait for the server's own graceful end.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// `app` with `Strict-Transport-Security` on every answer (none when `max_age` is 0).
pub fn with_hsts(app: axum::Router, max_age: u64) -> axum::Router {
    if max_age == 0 {
        return app;
    }
    let Ok(value) = axum::http::HeaderValue::from_str(&format!("max-age={max_age}")) else {
        return app;
    };
    app.layer(axum::middleware::map_response(
        move |mut r: axum::response::Response| {
            r.headers_mut()
                .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, value.clone());
            std::future::ready(r)
        },
    ))
}

/// A plain-HTTP app that sends every request to the same host and path over HTTPS on `port`
/// (308, so a POST stays a POST).
pub fn redirect_to_https(port: u16) -> axum::Router {
    use axum::http::{StatusCode, Uri, header};
    use axum::response::IntoResponse;
    axum::Router::new().fallback(move |headers: axum::http::HeaderMap, uri: Uri| async move {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
        let Some(host) = host else {
            return (
                StatusCode::BAD_REQUEST,
                "缺少 Host 头 / Host header required",
            )
                .into_response();
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = if port == 443 {
            format!("https://{}{path}", host.host())
        } else if host.host().contains(':') {
            format!(
                "https://[{}]:{port}{path}",
                host.host().trim_matches(['[', ']'])
            )
        } else {
            format!("https://{}:{port}{path}", host.host())
        };
        (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, a panic is a failure report
    use super::*;

    fn listen() -> SocketAddr {
        "10.77.0.1:8443".parse().unwrap()
    }

    #[test]
    fn a_first_start_generates_a_certificate_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TlsConfig {
            mode: TlsMode::SelfSigned,
            cert: dir.path().join("tls/cert.pem"),
            key: dir.path().join("tls/key.pem"),
            names: vec!["hotline.example.cn".into()],
            ..TlsConfig::default()
        };
        assert!(cfg.problems(listen()).is_empty());
        let first = Certificates::load(&cfg, listen()).unwrap().info();
        assert!(
            first.names.contains(&"10.77.0.1".to_string()),
            "{:?}",
            first.names
        );
        assert!(first.names.contains(&"hotline.example.cn".to_string()));
        assert!(first.days_left(now_unix()) > 300);
        let again = Certificates::load(&cfg, listen()).unwrap().info();
        assert_eq!(first.fingerprint, again.fingerprint);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }

    #[test]
    fn a_configured_certificate_must_cover_the_names_browsers_use() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec![
            "*.hotline.example.cn".to_string(),
            "10.77.0.1".to_string(),
        ])
        .unwrap();
        let cfg = TlsConfig {
            mode: TlsMode::Files,
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
            names: vec!["desk.hotline.example.cn".into(), "10.77.0.1".into()],
            ..TlsConfig::default()
        };
        std::fs::write(&cfg.cert, made.cert.pem()).unwrap();
        std::fs::write(&cfg.key, made.signing_key.serialize_pem()).unwrap();
        assert_eq!(cfg.problems(listen()), Vec::<String>::new());
        let wrong = TlsConfig {
            names: vec!["a.b.hotline.example.cn".into(), "hotline.example.cn".into()],
            ..cfg
        };
        let problems = wrong.problems(listen());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("c.pem is not for a.b.hotline.example.cn (`http.tls.names`; it is for *.hotline.example.cn, 10.77.0.1)"),
            "{problems:?}"
        );
    }

    #[test]
    fn auto_is_plain_on_loopback_only() {
        let cfg = TlsConfig::default();
        assert!(!cfg.enabled("127.0.0.1:8080".parse().unwrap()));
        assert!(!cfg.enabled("[::1]:8080".parse().unwrap()));
        assert!(cfg.enabled(listen()));
        assert!(cfg.enabled("0.0.0.0:8080".parse().unwrap()));
    }

    #[test]
    fn a_missing_file_a_foreign_key_and_an_expired_certificate_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
        let (cert, key, other) = (
            dir.path().join("a.pem"),
            dir.path().join("a.key"),
            dir.path().join("b.key"),
        );
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        std::fs::write(&other, b.signing_key.serialize_pem()).unwrap();
        let now = now_unix();
        assert!(check(&cert, &key, now).is_ok());
        let e = check(&dir.path().join("none.pem"), &key, now).unwrap_err();
        assert!(
            e.starts_with("cannot read ") && e.contains("none.pem"),
            "{e}"
        );
        let e = check(&cert, &other, now).unwrap_err();
        assert!(e.contains("b.key does not match the certificate in"), "{e}");
        let e = check(&key, &key, now).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        // rcgen's certificates run to 4096; one second past that is past its expiry.
        let (_, info) = check(&cert, &key, now).unwrap();
        let e = check(&cert, &key, info.not_after + 1).unwrap_err();
        assert!(e.contains("a.pem: expired on "), "{e}");
    }
}
