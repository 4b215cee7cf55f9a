//! The SIP engine's wing: the sockets (UDP here, TCP in [`tcp`], WebSocket through the HTTP
//! server), the one task that drives the sans-IO [`hotline_sip::endpoint::Endpoint`] (the only
//! owner of transaction and registration state: no locks on the message path), the SIP
//! accounts' hashes ([`credentials`]), the WebRTC gateway for browser agents ([`webrtc`]) and
//! the `[sip]` settings ([`settings`]). It imports `hotline-sip` and nothing of the call
//! center.
//!
//! Responses to a request over TCP or WebSocket go back on its connection. Bounds: the largest
//! message (`sip.max_message_bytes`), TCP connections in all and per address.
//!
//! What happens to calls is the [`CallHandler`]'s business, and what the handler's own tasks
//! tell it is its own typed message ([`CallHandler::Msg`]): `serve` uses
//! `crate::calls::Calls` (the IVR, media threads, recordings) when an IVR script is
//! configured, else [`RefuseCalls`]: an INVITE is answered 480 with Retry-After, so carriers and
//! phones see a clean refusal, not silence.

pub mod bindings;
pub mod credentials;
pub mod settings;
pub mod tcp;
pub mod webrtc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotline_sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{HeaderName, Message, Method};
use hotline_sip::registrar::RegistrarConfig;
use hotline_sip::transaction::{Peer, TransportKind};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::credentials::Credentials;
pub use self::settings::{Port, SipConfig};

/// What the application does with calls: the engine task hands it every endpoint event, with
/// the endpoint to act on (answer, refuse, hang up, place calls): `crate::calls::Calls`
/// in production, [`RefuseCalls`] without an IVR script.
pub trait CallHandler: Send + 'static {
    /// What the handler's own tasks and threads (and the rest of the node) tell it through
    /// [`EngineHandle::tell`]: one type, so the compiler follows every message.
    type Msg: Send + 'static;

    /// One event from the endpoint.
    fn handle(&mut self, endpoint: &mut Endpoint, now: Instant, event: EndpointEvent);

    /// Called once before the first event with a handle on the engine task, which the
    /// handler's own tasks (a call's media, an agent's timer) use to act on the endpoint, e.g.
    /// to hang up when the IVR says so.
    fn attach(&mut self, engine: EngineHandle<Self::Msg>) {
        let _ = engine;
    }

    /// A message sent with [`EngineHandle::tell`], handled on the engine task with the
    /// endpoint, e.g. a media thread asking for a call to be placed.
    fn message(&mut self, endpoint: &mut Endpoint, now: Instant, message: Self::Msg) {
        let _ = (endpoint, now, message);
    }
}

impl<H: CallHandler + ?Sized> CallHandler for Box<H> {
    type Msg = H::Msg;

    fn handle(&mut self, endpoint: &mut Endpoint, now: Instant, event: EndpointEvent) {
        (**self).handle(endpoint, now, event);
    }

    fn attach(&mut self, engine: EngineHandle<Self::Msg>) {
        (**self).attach(engine);
    }

    fn message(&mut self, endpoint: &mut Endpoint, now: Instant, message: Self::Msg) {
        (**self).message(endpoint, now, message);
    }
}

/// Work for the engine task from outside it: runs with the endpoint, like a handler event.
pub type Command = Box<dyn FnOnce(&mut Endpoint, Instant) + Send>;

/// Sends [`Command`]s and the handler's messages (`M`) to the engine task.
pub struct EngineHandle<M> {
    tx: mpsc::Sender<Input<M>>,
}

impl<M> Clone for EngineHandle<M> {
    fn clone(&self) -> Self {
        EngineHandle {
            tx: self.tx.clone(),
        }
    }
}

impl<M> std::fmt::Debug for EngineHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHandle")
    }
}

impl<M: Send + 'static> EngineHandle<M> {
    /// Queues `f` to run on the engine task; `false` when the engine has stopped.
    pub async fn run(&self, f: impl FnOnce(&mut Endpoint, Instant) + Send + 'static) -> bool {
        self.tx.send(Input::Command(Box::new(f))).await.is_ok()
    }

    /// The SIP accounts with a live binding now; `None` when the engine has stopped.
    pub async fn registered(&self) -> Option<std::collections::HashSet<String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let asked = self
            .run(move |ep, now| {
                let secs = ep.registrar_time(now);
                let live = ep
                    .registrar()
                    .aors()
                    .filter(|aor| !ep.registrar().lookup(secs, aor).is_empty())
                    .map(str::to_string)
                    .collect();
                let _ = tx.send(live);
            })
            .await;
        if !asked {
            return None;
        }
        rx.await.ok()
    }

    /// Hands `message` to the call handler on the engine task ([`CallHandler::message`]).
    pub async fn tell(&self, message: M) -> bool {
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
/// could take the call). Messages of type `M` are dropped (a reply channel in one closes, so
/// whoever asked hears that nothing handles calls here).
pub struct RefuseCalls<M = std::convert::Infallible>(std::marker::PhantomData<fn() -> M>);

impl<M> Default for RefuseCalls<M> {
    fn default() -> Self {
        RefuseCalls(std::marker::PhantomData)
    }
}

impl<M: Send + 'static> CallHandler for RefuseCalls<M> {
    type Msg = M;

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
pub struct SignalingAddrs<M> {
    /// UDP.
    pub udp: SocketAddr,
    /// TCP.
    pub tcp: SocketAddr,
    /// The engine task (for other parts of the node: the HTTP API tells the call handler).
    pub engine: EngineHandle<M>,
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

pub(crate) enum Input<M> {
    Stream(Peer, Vec<u8>),
    Opened(SocketAddr, mpsc::Sender<Vec<u8>>),
    Closed(SocketAddr),
    Command(Command),
    Message(M),
}

/// Binds the sockets and starts the engine task and the TCP accept loop, refusing calls.
pub async fn start(
    cfg: &SipConfig,
    creds: Arc<Credentials>,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    SignalingAddrs<std::convert::Infallible>,
    tokio::task::JoinHandle<()>,
)> {
    start_with_handler(cfg, creds, RefuseCalls::default(), shutdown).await
}

/// Registrations beyond the process: the bindings to take back at start, and where each
/// agent's bindings go after a change ([`bindings`]). The default keeps them in memory only.
#[derive(Debug, Default)]
pub struct Registrations {
    /// Bindings saved by the last process, still valid.
    pub restore: Vec<bindings::SavedBinding>,
    /// Where an agent's bindings go after each change.
    pub changed: Option<mpsc::UnboundedSender<bindings::AorBindings>>,
}

/// [`start`] with the application's call handler.
pub async fn start_with_handler<H: CallHandler>(
    cfg: &SipConfig,
    creds: Arc<Credentials>,
    handler: H,
    shutdown: CancellationToken,
) -> anyhow::Result<(SignalingAddrs<H::Msg>, tokio::task::JoinHandle<()>)> {
    start_with_registrations(cfg, creds, handler, Registrations::default(), shutdown).await
}

/// [`start_with_handler`] whose registrations outlive the process.
pub async fn start_with_registrations<H: CallHandler>(
    cfg: &SipConfig,
    creds: Arc<Credentials>,
    mut handler: H,
    registrations: Registrations,
    shutdown: CancellationToken,
) -> anyhow::Result<(SignalingAddrs<H::Msg>, tokio::task::JoinHandle<()>)> {
    let udp = bind_udp(SocketAddr::new(cfg.listen, cfg.udp_port.0))
        .with_context(|| format!("cannot bind SIP UDP {}:{}", cfg.listen, cfg.udp_port))?;
    let tcp = TcpListener::bind((cfg.listen, cfg.tcp_port.0))
        .await
        .with_context(|| format!("cannot bind SIP TCP {}:{}", cfg.listen, cfg.tcp_port))?;
    let (tx, rx) = mpsc::channel::<Input<H::Msg>>(4096);
    let addrs = SignalingAddrs {
        udp: udp.local_addr()?,
        tcp: tcp.local_addr()?,
        engine: EngineHandle { tx: tx.clone() },
    };
    handler.attach(EngineHandle { tx: tx.clone() });
    tokio::spawn(tcp::accept_loop(
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
        registrations,
        shutdown,
    ));
    Ok((addrs, task))
}

/// An agent's live bindings now, with their expiry on the wall clock.
fn saved_bindings(endpoint: &Endpoint, aor: &str) -> bindings::AorBindings {
    let now = Instant::now();
    let (secs, wall) = (endpoint.registrar_time(now), chrono::Utc::now());
    let bindings = endpoint
        .registrar()
        .lookup(secs, aor)
        .into_iter()
        .map(|b| {
            let left = i64::try_from(b.expires_at.saturating_sub(secs)).unwrap_or(i64::MAX);
            bindings::SavedBinding {
                binding: b.clone(),
                expires_at: wall + chrono::Duration::seconds(left.min(86_400 * 365)),
            }
        })
        .collect();
    bindings::AorBindings {
        aor: aor.to_string(),
        bindings,
    }
}

#[allow(clippy::too_many_arguments)]
async fn engine_loop<H: CallHandler>(
    udp: UdpSocket,
    mut rx: mpsc::Receiver<Input<H::Msg>>,
    config: EndpointConfig,
    creds: Arc<Credentials>,
    mut handler: H,
    max_message: usize,
    registrations: Registrations,
    shutdown: CancellationToken,
) {
    let mut endpoint = Endpoint::new(config, Instant::now());
    if let Ok(addr) = udp.local_addr() {
        endpoint.set_local_addr(addr);
    }
    let (started, wall) = (Instant::now(), chrono::Utc::now());
    let mut restored = 0;
    for saved in registrations.restore {
        let left = (saved.expires_at - wall).num_seconds();
        if let Ok(left) = u64::try_from(left)
            && left > 0
            && endpoint.restore_binding(started, saved.binding, left)
        {
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!(
            bindings = restored,
            agents = endpoint.registrar().registered_agents(),
            "SIP registrations of the last run restored: these phones need not register again"
        );
    }
    let changed = registrations.changed;
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
            if let (Some(tx), EndpointEvent::Registration { aor, .. }) = (&changed, &ev) {
                let _ = tx.send(saved_bindings(&endpoint, aor));
            }
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
