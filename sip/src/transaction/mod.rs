//! RFC 3261 section 17 transactions, sans-IO, with RFC 6026's Accepted states.
//!
//! [`Transactions`] holds every client and server transaction of one endpoint. It is driven
//! from outside:
//!
//! ```text
//!  bytes from a socket ──► handle_input(now, peer, bytes)      poll_transmit() ──► socket
//!  the TU's answers    ──► respond(now, tx, response)           poll_event()    ──► the TU
//!  the TU's requests   ──► send_request(now, peer, request)     poll_timeout()  ──► sleep until
//!  the clock           ──► handle_timeout(now)
//! ```
//!
//! Nothing here reads a clock or touches a socket, so retransmissions, timeouts and races are
//! tested by jumping `now` from one deadline to the next.
//!
//! What the layer does on its own: answers an INVITE with 100 Trying at once; absorbs request
//! retransmissions and repeats the last response; retransmits requests and failure responses
//! over UDP (timers A, E, G); sends the ACK for a failure response (17.1.1.3); answers CANCEL
//! (200, then 487 to the INVITE it cancels, or 481 when there is none); detects merged requests
//! (8.2.2.2, 482); adds `received` and `rport` to the top Via of requests (18.2.1, RFC 3581) and
//! sends responses where 18.2.2 says.

mod timer;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use timer::TimerQueue;
pub use timer::{Timer, TimerConfig};

use crate::message::{Delivery, HeaderName, Message, Method, ParseError};

/// Identifies one transaction inside a [`Transactions`].
pub type TxId = u64;

/// The transport a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP: the transaction layer retransmits.
    Udp,
    /// TCP (or TLS): reliable, responses go back on the same connection.
    Tcp,
    /// SIP over WebSocket (RFC 7118): reliable.
    Ws,
}

impl TransportKind {
    /// Whether the transport itself delivers reliably (no retransmissions needed).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// How messages are delimited on this transport.
    pub fn delivery(self) -> Delivery {
        match self {
            TransportKind::Udp => Delivery::Datagram,
            TransportKind::Tcp | TransportKind::Ws => Delivery::Stream,
        }
    }
}

/// The other end of a message: an address on a transport (for TCP and WebSocket, the driver
/// maps it back to the connection the request came on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Address and port.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: TransportKind,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub peer: Peer,
    /// What.
    pub bytes: Vec<u8>,
}

/// What the transaction layer tells its user.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new request; answer it with [`Transactions::respond`].
    Request {
        /// The server transaction.
        tx: TxId,
        /// The request (its top Via carries `received`/`rport` where 18.2.1 adds them).
        request: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// An ACK that belongs to no failure response: the ACK of a 2xx, for the dialog layer.
    Ack {
        /// The ACK.
        request: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// The caller cancelled an INVITE: the CANCEL was answered 200 and the INVITE 487.
    Cancelled {
        /// The INVITE's server transaction.
        tx: TxId,
    },
    /// A response to a request sent with [`Transactions::send_request`]. After a 2xx to an
    /// INVITE, its retransmissions come here too (RFC 6026), to be ACKed by the dialog.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Message,
    },
    /// No final response in time (timer B or F): treat as 408.
    Timeout {
        /// The client transaction.
        tx: TxId,
    },
    /// A failure response to an INVITE was never ACKed (timer H).
    AckTimeout {
        /// The server transaction.
        tx: TxId,
    },
    /// A message the parser refused; if it was a request, the answer is already queued.
    Malformed {
        /// Where it came from.
        peer: Peer,
        /// Why it was refused.
        error: ParseError,
    },
}

/// A call the transaction layer cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No such transaction (it ended, or never was).
    #[error("no such transaction")]
    Unknown,
    /// The transaction's state does not allow it (a second final response, say).
    #[error("not allowed in the transaction's state")]
    State,
    /// The message cannot start a transaction (no Via branch, no CSeq, ...).
    #[error("message cannot start a transaction: {0}")]
    Invalid(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    /// RFC 3261: branch with the magic cookie, sent-by, method (ACK counts as INVITE).
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 peers: the request's identity without a usable branch.
    Legacy {
        request_uri: String,
        call_id: String,
        from_tag: String,
        cseq: u32,
        method: String,
        via: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client INVITE: Calling; client non-INVITE and server non-INVITE: Trying.
    Initial,
    Proceeding,
    Completed,
    /// Server INVITE after the ACK.
    Confirmed,
    /// RFC 6026: after a 2xx to an INVITE.
    Accepted,
    Terminated,
}

#[derive(Debug)]
struct Tx {
    server: bool,
    invite: bool,
    state: State,
    /// Server, until the final response: the address the request came from (counted in
    /// `per_source`).
    source: Option<IpAddr>,
    peer: Peer,
    request: Message,
    /// Client: the request's bytes (for retransmission). Server: the last response sent.
    last_sent: Option<Vec<u8>>,
    /// The ACK sent for a failure response (client INVITE), for its retransmissions.
    ack: Option<Vec<u8>>,
    interval: Duration,
    deadlines: [Option<Instant>; 13],
    server_key: Option<ServerKey>,
    client_key: Option<ClientKey>,
    merge_key: Option<(String, String, u32, String)>,
    /// Server: the To of the last response sent (its tag must be kept by a 487).
    last_to: Option<String>,
}

impl Tx {
    fn arm(&mut self, queue: &mut TimerQueue, id: TxId, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
        queue.push(at, id, timer);
    }

    fn disarm(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }
}

/// Every transaction of one endpoint.
#[derive(Debug)]
pub struct Transactions {
    config: TimerConfig,
    next_id: TxId,
    txs: HashMap<TxId, Tx>,
    server_index: HashMap<ServerKey, TxId>,
    client_index: HashMap<ClientKey, TxId>,
    merge_index: HashMap<(String, String, u32, String), TxId>,
    /// Server transactions still waiting for their final response, per source address, and
    /// the most one address may have waiting (a flood indicator: answered ones only absorb
    /// retransmissions and cost little, so a busy trunk is not limited by them).
    per_source: HashMap<IpAddr, usize>,
    max_per_source: usize,
    /// The most transactions held at once, answered ones included: spoofed sources each
    /// under `max_per_source` still cannot grow the table without bound.
    max_transactions: usize,
    queue: TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// Where a response to a request from `peer` goes (RFC 3261 18.2.2, RFC 3581): over a
/// reliable transport, back on the connection; over UDP, to the source address when `rport`
/// was asked for, else to the source IP and the sent-by port.
fn response_peer(request: &Message, peer: Peer) -> Peer {
    if peer.transport.is_reliable() {
        return peer;
    }
    let Some(via) = request.top_via() else {
        return peer;
    };
    if via.rport().is_some() {
        return peer;
    }
    let port = via.port.unwrap_or(5060);
    Peer {
        addr: SocketAddr::new(peer.addr.ip(), port),
        transport: peer.transport,
    }
}

fn host_is(host: &crate::message::Host<'_>, ip: IpAddr) -> bool {
    host.ip() == Some(ip)
}

impl Transactions {
    /// An endpoint with the given timer values.
    pub fn new(config: TimerConfig) -> Self {
        Transactions {
            config,
            next_id: 1,
            txs: HashMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            merge_index: HashMap::new(),
            per_source: HashMap::new(),
            max_per_source: 1000,
            max_transactions: 100_000,
            queue: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The most requests from one source address that may wait for their final response at
    /// once; beyond it new ones from that address are answered 503 with Retry-After
    /// (default 1000).
    pub fn set_max_per_source(&mut self, max: usize) {
        self.max_per_source = max.max(1);
    }

    /// The most transactions held at once; beyond it new requests are answered 503 with
    /// Retry-After and hold nothing (default 100,000).
    pub fn set_max_transactions(&mut self, max: usize) {
        self.max_transactions = max.max(1);
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Transactions::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek()
    }

    /// Bytes received from `peer`.
    pub fn handle_input(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        match Message::parse(data, peer.transport.delivery()) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(error) => {
                if let Some(reply) = error.reply() {
                    self.transmits.push_back(Transmit { peer, bytes: reply });
                }
                self.events.push_back(Event::Malformed { peer, error });
            }
        }
    }

    /// A parsed message received from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: Message) {
        if msg.is_request() {
            self.on_request(now, peer, msg);
        } else {
            self.on_response(now, msg);
        }
    }

    fn alloc(&mut self) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn server_key(msg: &Message) -> Option<ServerKey> {
        let via = msg.top_via()?;
        let method = match msg.method()? {
            Method::Ack => "INVITE".to_string(),
            m => m.as_str().to_string(),
        };
        if via.has_rfc3261_branch() {
            let sent_by = match via.port {
                Some(p) => format!("{}:{p}", via.host),
                None => via.host.to_string(),
            };
            return Some(ServerKey::Branch {
                branch: via.branch()?.to_string(),
                sent_by: sent_by.to_ascii_lowercase(),
                method,
            });
        }
        let cseq = msg.cseq()?;
        Some(ServerKey::Legacy {
            request_uri: msg.request_uri_str()?.to_string(),
            call_id: msg.call_id()?.to_string(),
            from_tag: msg.from_header()?.tag().unwrap_or("").to_string(),
            cseq: cseq.seq,
            method,
            via: msg.header(&HeaderName::Via)?.to_string(),
        })
    }

    /// RFC 3261 18.2.1 and RFC 3581: note where the request really came from in its top Via.
    fn stamp_via(msg: &mut Message, peer: Peer) {
        let Some(via) = msg.top_via() else {
            return;
        };
        let needs_received = !host_is(&via.host, peer.addr.ip());
        let wants_rport = via.rport() == Some(None);
        if !needs_received && !wants_rport {
            return;
        }
        let mut value = format!(
            "{}/{}/{} {}",
            via.protocol, via.version, via.transport, via.host
        );
        if let Some(p) = via.port {
            value.push_str(&format!(":{p}"));
        }
        for (name, v) in via.params.iter() {
            if name.eq_ignore_ascii_case("received")
                || (wants_rport && name.eq_ignore_ascii_case("rport"))
            {
                continue;
            }
            value.push(';');
            value.push_str(name);
            if let Some(v) = v {
                value.push('=');
                value.push_str(v);
            }
        }
        value.push_str(&format!(";received={}", peer.addr.ip()));
        if wants_rport {
            value.push_str(&format!(";rport={}", peer.addr.port()));
        }
        msg.replace_first_value(&HeaderName::Via, &value);
    }

    fn on_request(&mut self, now: Instant, peer: Peer, mut msg: Message) {
        Self::stamp_via(&mut msg, peer);
        let Some(key) = Self::server_key(&msg) else {
            return; // a request the parser accepted always has a Via, CSeq and Call-ID
        };
        let is_ack = msg.method() == Some(&Method::Ack);
        if let Some(&id) = self.server_index.get(&key) {
            self.on_retransmission_or_ack(now, id, is_ack, msg, peer);
            return;
        }
        if is_ack {
            self.events.push_back(Event::Ack { request: msg, peer });
            return;
        }
        let is_cancel = msg.method() == Some(&Method::Cancel);
        let invite = msg.method() == Some(&Method::Invite);
        let reply_peer = response_peer(&msg, peer);
        let held = self.per_source.get(&peer.addr.ip()).copied().unwrap_or(0);
        if held >= self.max_per_source || self.txs.len() >= self.max_transactions {
            // One address flooding us gets a stateless 503; everyone else is served. Past the
            // global cap everyone is refused until transactions end.
            let mut busy = Message::response_to(&msg, 503);
            busy.push_header(HeaderName::RetryAfter, "5");
            busy.set_body(None, Vec::new());
            self.transmits.push_back(Transmit {
                peer: reply_peer,
                bytes: busy.to_bytes(),
            });
            return;
        }
        *self.per_source.entry(peer.addr.ip()).or_insert(0) += 1;
        // Merged request (8.2.2.2): same From tag, Call-ID and CSeq as a live transaction but
        // another branch, outside a dialog.
        let merge_key = match (
            msg.to_header(),
            msg.from_header(),
            msg.call_id(),
            msg.cseq(),
        ) {
            (Some(to), Some(from), Some(call_id), Some(cseq)) if to.tag().is_none() => Some((
                from.tag().unwrap_or("").to_string(),
                call_id.to_string(),
                cseq.seq,
                cseq.method.to_string(),
            )),
            _ => None,
        };
        let merged = merge_key
            .as_ref()
            .and_then(|k| self.merge_index.get(k))
            .is_some_and(|other| self.txs.contains_key(other));
        let id = self.alloc();
        let tx = Tx {
            server: true,
            invite,
            state: State::Initial,
            source: Some(peer.addr.ip()),
            peer: reply_peer,
            request: msg.clone(),
            last_sent: None,
            ack: None,
            interval: self.config.t1,
            deadlines: [None; 13],
            server_key: Some(key.clone()),
            client_key: None,
            merge_key: if merged { None } else { merge_key.clone() },
            last_to: None,
        };
        self.txs.insert(id, tx);
        self.server_index.insert(key, id);
        if !invite && let Some(tx) = self.txs.get_mut(&id) {
            tx.arm(
                &mut self.queue,
                id,
                Timer::Unanswered,
                now + self.config.t1x64(),
            );
        }
        if merged {
            let _ = self.respond(now, id, Message::response_to(&msg, 482));
            return;
        }
        if let Some(k) = merge_key {
            self.merge_index.insert(k, id);
        }
        if invite {
            if let Some(tx) = self.txs.get_mut(&id) {
                tx.state = State::Proceeding;
            }
            let _ = self.respond(now, id, Message::response_to(&msg, 100));
        }
        if is_cancel {
            self.on_cancel(now, id, &msg);
            return;
        }
        self.events.push_back(Event::Request {
            tx: id,
            request: msg,
            peer,
        });
    }

    fn on_retransmission_or_ack(
        &mut self,
        now: Instant,
        id: TxId,
        is_ack: bool,
        msg: Message,
        peer: Peer,
    ) {
        let t4 = self.config.t4;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if is_ack {
            match tx.state {
                State::Completed if tx.invite => {
                    tx.state = State::Confirmed;
                    tx.disarm(Timer::G);
                    tx.disarm(Timer::H);
                    let wait = if tx.peer.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        t4
                    };
                    tx.arm(&mut self.queue, id, Timer::I, now + wait);
                }
                State::Accepted => self.events.push_back(Event::Ack { request: msg, peer }),
                _ => {}
            }
            return;
        }
        // A retransmitted request: repeat the last response, if the state says so.
        let repeat = match tx.state {
            State::Proceeding | State::Completed => tx.last_sent.clone(),
            _ => None,
        };
        if let Some(bytes) = repeat {
            self.transmits.push_back(Transmit {
                peer: tx.peer,
                bytes,
            });
        }
    }

    fn on_cancel(&mut self, now: Instant, cancel_id: TxId, cancel: &Message) {
        let invite_key = match Self::server_key(cancel) {
            Some(ServerKey::Branch {
                branch, sent_by, ..
            }) => ServerKey::Branch {
                branch,
                sent_by,
                method: "INVITE".into(),
            },
            Some(ServerKey::Legacy {
                request_uri,
                call_id,
                from_tag,
                cseq,
                via,
                ..
            }) => ServerKey::Legacy {
                request_uri,
                call_id,
                from_tag,
                cseq,
                method: "INVITE".into(),
                via,
            },
            None => return,
        };
        let target = self.server_index.get(&invite_key).copied();
        let Some(invite_id) = target else {
            let _ = self.respond(now, cancel_id, Message::response_to(cancel, 481));
            return;
        };
        let _ = self.respond(now, cancel_id, Message::response_to(cancel, 200));
        let pending = self
            .txs
            .get(&invite_id)
            .is_some_and(|t| t.state == State::Proceeding);
        if pending {
            let invite = self
                .txs
                .get(&invite_id)
                .map(|t| (t.request.clone(), t.last_to.clone()));
            if let Some((invite, last_to)) = invite {
                let mut resp = Message::response_to(&invite, 487);
                // Keep the tag of a provisional response already sent, else make one.
                match last_to {
                    Some(to) if has_tag(&to) => {
                        resp.replace_first_value(&HeaderName::To, &to);
                    }
                    _ => add_to_tag(&mut resp, invite_id),
                }
                let _ = self.respond(now, invite_id, resp);
            }
            self.events.push_back(Event::Cancelled { tx: invite_id });
        }
    }

    /// Sends a response on a server transaction.
    pub fn respond(&mut self, now: Instant, id: TxId, response: Message) -> Result<(), TxError> {
        let (t1, t1x64) = (self.config.t1, self.config.t1x64());
        let tx = self.txs.get_mut(&id).ok_or(TxError::Unknown)?;
        if !tx.server {
            return Err(TxError::State);
        }
        let code = response
            .status()
            .ok_or(TxError::Invalid("not a response"))?;
        let allowed = matches!(tx.state, State::Initial | State::Proceeding);
        if !allowed {
            return Err(TxError::State);
        }
        let bytes = response.to_bytes();
        let reliable = tx.peer.transport.is_reliable();
        self.transmits.push_back(Transmit {
            peer: tx.peer,
            bytes: bytes.clone(),
        });
        tx.last_sent = Some(bytes);
        tx.last_to = response.header(&HeaderName::To).map(str::to_string);
        if code >= 200
            && let Some(ip) = tx.source.take()
        {
            release(&mut self.per_source, ip);
        }
        match (tx.invite, code) {
            (_, 100..=199) => tx.state = State::Proceeding,
            (true, 200..=299) => {
                tx.state = State::Accepted;
                tx.arm(&mut self.queue, id, Timer::L, now + t1x64);
            }
            (true, _) => {
                tx.state = State::Completed;
                if !reliable {
                    tx.interval = t1;
                    tx.arm(&mut self.queue, id, Timer::G, now + t1);
                }
                tx.arm(&mut self.queue, id, Timer::H, now + t1x64);
            }
            (false, _) => {
                tx.state = State::Completed;
                let wait = if reliable { Duration::ZERO } else { t1x64 };
                tx.arm(&mut self.queue, id, Timer::J, now + wait);
            }
        }
        Ok(())
    }

    /// Starts a client transaction. The request must carry a top Via with an RFC 3261
    /// branch and a CSeq; ACK is not a transaction (send it with [`Transactions::send_stateless`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Message,
    ) -> Result<TxId, TxError> {
        let method = request.method().ok_or(TxError::Invalid("not a request"))?;
        if *method == Method::Ack {
            return Err(TxError::Invalid("ACK is sent without a transaction"));
        }
        let via = request.top_via().ok_or(TxError::Invalid("no Via"))?;
        if !via.has_rfc3261_branch() {
            return Err(TxError::Invalid("Via branch without the z9hG4bK cookie"));
        }
        let key = ClientKey {
            branch: via.branch().unwrap_or("").to_string(),
            method: method.as_str().to_string(),
        };
        if self.client_index.contains_key(&key) {
            return Err(TxError::Invalid("branch already in use"));
        }
        let invite = *method == Method::Invite;
        let bytes = request.to_bytes();
        let id = self.alloc();
        let mut tx = Tx {
            server: false,
            invite,
            state: State::Initial,
            source: None,
            peer,
            request,
            last_sent: Some(bytes.clone()),
            ack: None,
            interval: self.config.t1,
            deadlines: [None; 13],
            server_key: None,
            client_key: Some(key.clone()),
            merge_key: None,
            last_to: None,
        };
        let (retransmit, give_up) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !peer.transport.is_reliable() {
            tx.arm(&mut self.queue, id, retransmit, now + self.config.t1);
        }
        tx.arm(&mut self.queue, id, give_up, now + self.config.t1x64());
        self.txs.insert(id, tx);
        self.client_index.insert(key, id);
        self.transmits.push_back(Transmit { peer, bytes });
        Ok(id)
    }

    /// Sends a message outside any transaction (the ACK of a 2xx, a 2xx retransmission).
    pub fn send_stateless(&mut self, peer: Peer, msg: &Message) {
        self.transmits.push_back(Transmit {
            peer,
            bytes: msg.to_bytes(),
        });
    }

    /// Sends bytes already serialized (a 2xx retransmission).
    pub fn send_raw(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, bytes });
    }

    fn on_response(&mut self, now: Instant, msg: Message) {
        let (Some(via), Some(cseq), Some(code)) = (msg.top_via(), msg.cseq(), msg.status()) else {
            return;
        };
        let key = ClientKey {
            branch: via.branch().unwrap_or("").to_string(),
            method: cseq.method.to_string(),
        };
        let Some(&id) = self.client_index.get(&key) else {
            return; // stray response: no transaction, dropped (RFC 3261 18.1.2)
        };
        let (t2, t4, t1x64) = (self.config.t2, self.config.t4, self.config.t1x64());
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.peer.transport.is_reliable();
        match (tx.invite, tx.state, code) {
            (_, State::Initial | State::Proceeding, 100..=199) => {
                tx.state = State::Proceeding;
                tx.disarm(Timer::A);
                if !tx.invite && tx.deadlines[Timer::E as usize].is_some() {
                    // Proceeding retransmits every T2 (17.1.2.2).
                    tx.interval = t2;
                }
                self.events.push_back(Event::Response {
                    tx: id,
                    response: msg,
                });
            }
            (true, State::Initial | State::Proceeding, 200..=299) => {
                tx.state = State::Accepted;
                tx.disarm(Timer::A);
                tx.disarm(Timer::B);
                tx.arm(&mut self.queue, id, Timer::M, now + t1x64);
                self.events.push_back(Event::Response {
                    tx: id,
                    response: msg,
                });
            }
            (true, State::Accepted, 200..=299) => {
                self.events.push_back(Event::Response {
                    tx: id,
                    response: msg,
                });
            }
            (true, State::Initial | State::Proceeding, _) => {
                tx.state = State::Completed;
                tx.disarm(Timer::A);
                tx.disarm(Timer::B);
                let ack = build_ack(&tx.request, &msg).to_bytes();
                self.transmits.push_back(Transmit {
                    peer: tx.peer,
                    bytes: ack.clone(),
                });
                tx.ack = Some(ack);
                let wait = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                tx.arm(&mut self.queue, id, Timer::D, now + wait);
                self.events.push_back(Event::Response {
                    tx: id,
                    response: msg,
                });
            }
            (true, State::Completed, 300..=699) => {
                if let Some(ack) = tx.ack.clone() {
                    self.transmits.push_back(Transmit {
                        peer: tx.peer,
                        bytes: ack,
                    });
                }
            }
            (false, State::Initial | State::Proceeding, 200..=699) => {
                tx.state = State::Completed;
                tx.disarm(Timer::E);
                tx.disarm(Timer::F);
                let wait = if reliable { Duration::ZERO } else { t4 };
                tx.arm(&mut self.queue, id, Timer::K, now + wait);
                self.events.push_back(Event::Response {
                    tx: id,
                    response: msg,
                });
            }
            _ => {} // retransmissions the state absorbs
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, id, timer)) = self.queue.pop_due(now) {
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            if tx.deadlines[timer as usize] != Some(at) {
                continue; // cancelled or re-armed since
            }
            tx.deadlines[timer as usize] = None;
            let t2 = self.config.t2;
            match timer {
                Timer::A | Timer::E | Timer::G => {
                    if let Some(bytes) = tx.last_sent.clone() {
                        self.transmits.push_back(Transmit {
                            peer: tx.peer,
                            bytes,
                        });
                    }
                    tx.interval = match timer {
                        Timer::A => tx.interval * 2,
                        _ if tx.state == State::Proceeding && timer == Timer::E => t2,
                        _ => (tx.interval * 2).min(t2),
                    };
                    let next = at + tx.interval;
                    tx.arm(&mut self.queue, id, timer, next);
                }
                Timer::B | Timer::F => {
                    self.events.push_back(Event::Timeout { tx: id });
                    self.terminate(id);
                }
                Timer::H => {
                    self.events.push_back(Event::AckTimeout { tx: id });
                    self.terminate(id);
                }
                Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M => {
                    self.terminate(id);
                }
                Timer::Unanswered => {
                    if matches!(tx.state, State::Initial | State::Proceeding) {
                        self.terminate(id);
                    }
                }
            }
        }
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(mut tx) = self.txs.remove(&id) {
            tx.state = State::Terminated;
            if let Some(k) = tx.server_key.take() {
                self.server_index.remove(&k);
            }
            if let Some(k) = tx.client_key.take() {
                self.client_index.remove(&k);
            }
            if let Some(k) = tx.merge_key.take()
                && self.merge_index.get(&k) == Some(&id)
            {
                self.merge_index.remove(&k);
            }
            if let Some(ip) = tx.source.take() {
                release(&mut self.per_source, ip);
            }
        }
    }

    /// Timer entries queued, live or stale (for tests and metrics).
    pub fn queued_timers(&self) -> usize {
        self.queue.len()
    }
}

fn release(per_source: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = per_source.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_source.remove(&ip);
        }
    }
}

fn has_tag(name_addr: &str) -> bool {
    crate::message::NameAddr::parse(name_addr, false).is_ok_and(|a| a.tag().is_some())
}

/// A To tag for responses the layer makes itself (487): stable per transaction.
fn add_to_tag(resp: &mut Message, id: TxId) {
    if let Some(to) = resp.to_header()
        && to.tag().is_none()
    {
        let value = format!(
            "{};tag=hl{id:x}",
            resp.header(&HeaderName::To).unwrap_or_default()
        );
        resp.replace_first_value(&HeaderName::To, &value);
    }
}

/// The ACK for a failure response (17.1.1.3): the INVITE's Request-URI, Call-ID, From, CSeq
/// number and top Via, the response's To, and the INVITE's Route set.
fn build_ack(invite: &Message, response: &Message) -> Message {
    let uri = invite.request_uri_str().unwrap_or("sip:invalid");
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(top) = invite
        .header(&HeaderName::Via)
        .and_then(|v| crate::message::scan::split_commas(v).next())
    {
        ack.push_header(HeaderName::Via, top);
    }
    if let Some(mf) = invite.header(&HeaderName::MaxForwards) {
        ack.push_header(HeaderName::MaxForwards, mf);
    }
    for name in [HeaderName::From] {
        if let Some(v) = invite.header(&name) {
            ack.push_header(name, v);
        }
    }
    if let Some(to) = response.header(&HeaderName::To) {
        ack.push_header(HeaderName::To, to);
    }
    if let Some(c) = invite.call_id() {
        ack.push_header(HeaderName::CallId, c);
    }
    if let Some(cseq) = invite.cseq() {
        ack.push_header(HeaderName::CSeq, &format!("{} ACK", cseq.seq));
    }
    for r in invite.header_values(&HeaderName::Route) {
        ack.push_header(HeaderName::Route, r);
    }
    ack.set_body(None, Vec::new());
    ack
}

#[cfg(test)]
mod tests;
