//! The SIP signaling service: owns the UDP socket and the TCP listener and drives the sans-IO
//! engine ([`hotline_sip::endpoint::Endpoint`]) from one task, which is the only owner of
//! transaction and registration state (no locks on the message path).
//!
//! TCP connections each get a reader (framing by Content-Length, CRLF keep-alives answered
//! with a CRLF) and a writer fed by the engine task; responses to a request over TCP go back on
//! its connection. Bounds: the largest message (`sip.max_message_bytes`), connections in all
//! and per address.
//!
//! What happens to calls is the [`CallHandler`]'s business: `serve` uses
//! [`crate::calls::Calls`] (the IVR, media threads, recordings) when an IVR script is
//! configured, else [`RefuseCalls`]: an INVITE is answered 480 with Retry-After, so carriers and
//! phones see a clean refusal, not silence.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hotline_sip::auth::{Algorithm, CredentialStore};
use hotline_sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{FrameEvent, HeaderName, Message, Method, StreamFramer};
use hotline_sip::registrar::RegistrarConfig;
use hotline_sip::transaction::{Peer, TransportKind};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SipConfig;

/// HA1 hashes of the SIP accounts, cached from PostgreSQL and reloaded on every change.
#[derive(Debug, Default)]
pub struct Credentials {
    accounts: RwLock<HashMap<String, (String, String)>>,
}

impl CredentialStore for Credentials {
    fn ha1(&self, username: &str, _realm: &str, alg: Algorithm) -> Option<String> {
        let accounts = self.accounts.read().ok()?;
        let (md5, sha256) = accounts.get(username)?;
        Some(match alg {
            Algorithm::Md5 => md5.clone(),
            Algorithm::Sha256 => sha256.clone(),
        })
    }
}

impl Credentials {
    /// Sets one account's HA1 hashes in the cache (tools and tests; the database is the
    /// source of truth and a reload replaces the cache).
    pub fn set(&self, username: &str, ha1_md5: &str, ha1_sha256: &str) {
        if let Ok(mut guard) = self.accounts.write() {
            guard.insert(
                username.to_string(),
                (ha1_md5.to_string(), ha1_sha256.to_string()),
            );
        }
    }

    /// Reads every enabled account of `realm`.
    pub async fn reload(&self, pool: &PgPool, realm: &str) -> Result<usize, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT username, ha1_md5, ha1_sha256 FROM sip_accounts WHERE enabled AND realm = $1",
            realm
        )
        .fetch_all(pool)
        .await?;
        let map: HashMap<String, (String, String)> = rows
            .into_iter()
            .map(|r| (r.username, (r.ha1_md5, r.ha1_sha256)))
            .collect();
        let n = map.len();
        if let Ok(mut guard) = self.accounts.write() {
            *guard = map;
        }
        Ok(n)
    }

    /// Keeps the cache current: LISTEN for changes, reload on each (and every minute, in case
    /// a notification was lost with a dropped connection).
    pub fn spawn_reloader(
        self: &Arc<Self>,
        pool: PgPool,
        realm: String,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let creds = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for SIP account changes");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        }
                    }
                };
                if let Err(e) = listener.listen("sip_accounts").await {
                    tracing::warn!(error = %e, "LISTEN sip_accounts failed");
                }
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = listener.recv() => {
                            if n.is_err() {
                                break; // reconnect
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    }
                    match creds.reload(&pool, &realm).await {
                        Ok(n) => tracing::debug!(accounts = n, "SIP accounts reloaded"),
                        Err(e) => tracing::warn!(error = %e, "reloading SIP accounts failed"),
                    }
                }
            }
        })
    }
}

/// What the application does with calls: the engine task hands it every endpoint event, with
/// the endpoint to act on (answer, refuse, hang up, place calls): [`crate::calls::Calls`]
/// in production, [`RefuseCalls`] without an IVR script.
pub trait CallHandler: Send + 'static {
    /// One event from the endpoint.
    fn handle(&mut self, endpoint: &mut Endpoint, now: Instant, event: EndpointEvent);

    /// Called once before the first event with a handle on the engine task, which the
    /// handler's own tasks (a call's media, an agent's timer) use to act on the endpoint, e.g.
    /// to hang up when the IVR says so.
    fn attach(&mut self, engine: EngineHandle) {
        let _ = engine;
    }

    /// A message from one of the handler's own tasks or threads (sent with
    /// [`EngineHandle::tell`]), handled on the engine task with the endpoint, e.g. a media
    /// thread asking for a call to be placed.
    fn message(&mut self, endpoint: &mut Endpoint, now: Instant, message: Box<dyn Any + Send>) {
        let _ = (endpoint, now, message);
    }
}

/// Work for the engine task from outside it: runs with the endpoint, like a handler event.
pub type Command = Box<dyn FnOnce(&mut Endpoint, Instant) + Send>;

/// Sends [`Command`]s to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Input>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHandle")
    }
}

impl EngineHandle {
    /// Queues `f` to run on the engine task; `false` when the engine has stopped.
    pub async fn run(&self, f: impl FnOnce(&mut Endpoint, Instant) + Send + 'static) -> bool {
        self.tx.send(Input::Command(Box::new(f))).await.is_ok()
    }

    /// Hands `message` to the call handler on the engine task ([`CallHandler::message`]).
    pub async fn tell(&self, message: Box<dyn Any + Send>) -> bool {
        self.tx.send(Input::Message(message)).await.is_ok()
    }

    /// A SIP-over-WebSocket connection (RFC 7118) from `addr` opened: the engine sends what
    /// it has for `addr` (over [`TransportKind::Ws`]) to the returned receiver, one SIP
    /// message per item (one WebSocket message each). `None` when the engine has stopped.
    pub async fn ws_opened(&self, addr: SocketAddr) -> Option<mpsc::Receiver<Vec<u8>>> {
        let (tx, rx) = mpsc::channel(256);
        self.tx.send(Input::Opened(addr, tx)).await.ok()?;
        Some(rx)
    }

    /// One SIP message that arrived on the WebSocket connection from `addr`; `false` when the
    /// engine has stopped.
    pub async fn ws_message(&self, addr: SocketAddr, message: Vec<u8>) -> bool {
        let peer = Peer {
            addr,
            transport: TransportKind::Ws,
        };
        self.tx.send(Input::Stream(peer, message)).await.is_ok()
    }

    /// The WebSocket connection from `addr` closed.
    pub async fn ws_closed(&self, addr: SocketAddr) {
        let _ = self.tx.send(Input::Closed(addr)).await;
    }
}

/// Refuses calls with 480 and Retry-After: what a node without an IVR script does (nothing
/// could take the call).
pub struct RefuseCalls;

impl CallHandler for RefuseCalls {
    fn handle(&mut self, endpoint: &mut Endpoint, now: Instant, event: EndpointEvent) {
        match event {
            EndpointEvent::Request { tx, request, peer } => {
                if request.method() == Some(&Method::Invite) {
                    tracing::info!(
                        from = request.header(&HeaderName::From).unwrap_or(""),
                        to = request.request_uri_str().unwrap_or(""),
                        %peer.addr,
                        "call refused: call handling is not available yet"
                    );
                    let mut r = Message::response_to(&request, 480);
                    if let Some(to) = request.header(&HeaderName::To) {
                        r.replace_first_value(&HeaderName::To, &format!("{to};tag=hl{tx:x}"));
                    }
                    r.push_header(HeaderName::RetryAfter, "60");
                    r.set_body(None, Vec::new());
                    let _ = endpoint.respond(now, tx, r);
                } else {
                    let mut r = Message::response_to(&request, 481);
                    r.set_body(None, Vec::new());
                    let _ = endpoint.respond(now, tx, r);
                }
            }
            other => log_event(other),
        }
    }
}

/// Logs and counts the events every handler leaves to the service.
pub fn log_event(event: EndpointEvent) {
    match event {
        EndpointEvent::Registration { aor, contacts } => {
            tracing::info!(agent = %aor, contacts, "registration changed");
        }
        EndpointEvent::Refused {
            peer,
            status,
            detail,
        } => {
            let code = status.map_or("dropped".to_string(), |s| s.to_string());
            metrics::counter!("hotline_sip_refused_total", "status" => code).increment(1);
            tracing::debug!(%peer.addr, ?status, %detail, "SIP message refused");
        }
        _ => {}
    }
}

/// The bound addresses of the running service, and a handle on its engine task.
#[derive(Debug, Clone)]
pub struct SignalingAddrs {
    /// UDP.
    pub udp: SocketAddr,
    /// TCP.
    pub tcp: SocketAddr,
    /// The engine task (for other parts of the node: the HTTP API tells the call handler).
    pub engine: EngineHandle,
}

/// Socket buffers of the SIP UDP socket (and the WebRTC port): a burst of thousands of calls a second must queue in
/// the kernel, not be dropped (the default ~200 KiB overflows near 2,000 calls/s on loopback).
const UDP_BUFFER_BYTES: usize = 4 << 20;

pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: an unprivileged process is capped by net.core.rmem_max / wmem_max.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

enum Input {
    Stream(Peer, Vec<u8>),
    Opened(SocketAddr, mpsc::Sender<Vec<u8>>),
    Closed(SocketAddr),
    Command(Command),
    Message(Box<dyn Any + Send>),
}

/// Binds the sockets and starts the engine task and the TCP accept loop, refusing calls.
pub async fn start(
    cfg: &SipConfig,
    creds: Arc<Credentials>,
    shutdown: CancellationToken,
) -> anyhow::Result<(SignalingAddrs, tokio::task::JoinHandle<()>)> {
    start_with_handler(cfg, creds, Box::new(RefuseCalls), shutdown).await
}

/// [`start`] with the application's call handler.
pub async fn start_with_handler(
    cfg: &SipConfig,
    creds: Arc<Credentials>,
    mut handler: Box<dyn CallHandler>,
    shutdown: CancellationToken,
) -> anyhow::Result<(SignalingAddrs, tokio::task::JoinHandle<()>)> {
    let udp = bind_udp(SocketAddr::new(cfg.listen, cfg.udp_port.0))
        .with_context(|| format!("cannot bind SIP UDP {}:{}", cfg.listen, cfg.udp_port))?;
    let tcp = TcpListener::bind((cfg.listen, cfg.tcp_port.0))
        .await
        .with_context(|| format!("cannot bind SIP TCP {}:{}", cfg.listen, cfg.tcp_port))?;
    let (tx, rx) = mpsc::channel::<Input>(4096);
    let addrs = SignalingAddrs {
        udp: udp.local_addr()?,
        tcp: tcp.local_addr()?,
        engine: EngineHandle { tx: tx.clone() },
    };
    handler.attach(EngineHandle { tx: tx.clone() });
    tokio::spawn(accept_loop(
        tcp,
        tx,
        cfg.max_message_bytes,
        cfg.max_tcp_connections,
        cfg.max_tcp_connections_per_ip,
        shutdown.clone(),
    ));
    let endpoint_config = EndpointConfig {
        registrar: RegistrarConfig {
            realm: cfg.realm.clone(),
            algorithms: cfg.algorithms(),
            ..RegistrarConfig::default()
        },
        server: format!("Hotline/{}", env!("CARGO_PKG_VERSION")),
        ..EndpointConfig::default()
    };
    let max = cfg.max_message_bytes;
    let task = tokio::spawn(engine_loop(
        udp,
        rx,
        endpoint_config,
        creds,
        handler,
        max,
        shutdown,
    ));
    Ok((addrs, task))
}

async fn engine_loop(
    udp: UdpSocket,
    mut rx: mpsc::Receiver<Input>,
    config: EndpointConfig,
    creds: Arc<Credentials>,
    mut handler: Box<dyn CallHandler>,
    max_message: usize,
    shutdown: CancellationToken,
) {
    let mut endpoint = Endpoint::new(config, Instant::now());
    if let Ok(addr) = udp.local_addr() {
        endpoint.set_local_addr(addr);
    }
    let mut conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let deadline = endpoint
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    metrics::counter!("hotline_sip_messages_received_total", "transport" => "udp").increment(1);
                    if n > max_message {
                        metrics::counter!("hotline_sip_dropped_total", "reason" => "oversize").increment(1);
                        continue;
                    }
                    let peer = Peer { addr: from, transport: TransportKind::Udp };
                    endpoint.handle_input(Instant::now(), peer, &buf[..n], creds.as_ref());
                }
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            Some(input) = rx.recv() => match input {
                Input::Stream(peer, bytes) => {
                    let transport = if peer.transport == TransportKind::Ws { "ws" } else { "tcp" };
                    metrics::counter!("hotline_sip_messages_received_total", "transport" => transport).increment(1);
                    endpoint.handle_input(Instant::now(), peer, &bytes, creds.as_ref());
                }
                Input::Opened(addr, sender) => { conns.insert(addr, sender); }
                Input::Closed(addr) => { conns.remove(&addr); }
                Input::Command(f) => f(&mut endpoint, Instant::now()),
                Input::Message(m) => handler.message(&mut endpoint, Instant::now(), m),
            },
            _ = tokio::time::sleep_until(deadline) => endpoint.handle_timeout(Instant::now(), creds.as_ref()),
        }
        while let Some(ev) = endpoint.poll_event() {
            handler.handle(&mut endpoint, Instant::now(), ev);
        }
        while let Some(t) = endpoint.poll_transmit() {
            match t.peer.transport {
                TransportKind::Udp => {
                    if let Err(e) = udp.send_to(&t.bytes, t.peer.addr).await {
                        tracing::debug!(error = %e, to = %t.peer.addr, "UDP send failed");
                    }
                }
                TransportKind::Tcp | TransportKind::Ws => match conns.get(&t.peer.addr) {
                    Some(c) => {
                        if c.try_send(t.bytes).is_err() {
                            tracing::debug!(to = %t.peer.addr, "TCP writer full or gone; message dropped");
                        }
                    }
                    None => tracing::debug!(to = %t.peer.addr, "no connection for a TCP message"),
                },
            }
        }
        metrics::gauge!("hotline_sip_transactions").set(endpoint.transactions() as f64);
        metrics::gauge!("hotline_sip_registered_agents")
            .set(endpoint.registrar().registered_agents() as f64);
    }
    tracing::info!("SIP signaling stopped");
}

async fn accept_loop(
    listener: TcpListener,
    engine: mpsc::Sender<Input>,
    max_message: usize,
    max_conns: usize,
    max_per_ip: usize,
    shutdown: CancellationToken,
) {
    let counts: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = match counts.lock() {
            Ok(mut c) => {
                let total: usize = c.values().sum();
                let mine = c.entry(addr.ip()).or_insert(0);
                if total >= max_conns || *mine >= max_per_ip {
                    false
                } else {
                    *mine += 1;
                    true
                }
            }
            Err(_) => false,
        };
        if !admitted {
            metrics::counter!("hotline_sip_dropped_total", "reason" => "tcp_limit").increment(1);
            drop(stream);
            continue;
        }
        let counts = Arc::clone(&counts);
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, addr, engine, max_message, shutdown).await;
            if let Ok(mut c) = counts.lock()
                && let Some(n) = c.get_mut(&addr.ip())
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.remove(&addr.ip());
                }
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    engine: mpsc::Sender<Input>,
    max_message: usize,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
    if engine
        .send(Input::Opened(addr, out_tx.clone()))
        .await
        .is_err()
    {
        return;
    }
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let peer = Peer {
        addr,
        transport: TransportKind::Tcp,
    };
    let mut framer = StreamFramer::new(max_message);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_event() {
                Ok(Some(FrameEvent::Message(m))) => {
                    if engine.send(Input::Stream(peer, m)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(FrameEvent::KeepAlive)) => {
                    // RFC 5626 4.4.1: a CRLF CRLF ping gets a CRLF pong.
                    let _ = out_tx.send(b"\r\n".to_vec()).await;
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be framed any further (RFC 4475 3.1.2.3, 3.3.9):
                    // nothing after this point can be trusted, so the connection closes,
                    // after a 513 when an oversize request's headers could be read.
                    if let Some(reply) = e.reply {
                        let _ = out_tx.send(reply).await;
                    }
                    metrics::counter!("hotline_sip_dropped_total", "reason" => "framing")
                        .increment(1);
                    tracing::debug!(%addr, status = e.status, detail = e.detail, "closing a TCP connection");
                    break 'read;
                }
            }
        }
    }
    // The engine drops its sender on Closed; the writer then flushes what is queued and ends.
    let _ = engine.send(Input::Closed(addr)).await;
    drop(out_tx);
    let _ = writer_task.await;
}
