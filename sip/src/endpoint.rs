//! The SIP endpoint: transactions, the registrar and the UAS core rules of RFC 3261 8.2, in
//! one sans-IO object the application drives.
//!
//! What the endpoint answers by itself: malformed requests (400, 505, ...), unknown methods
//! (501), known methods the hotline does not take (405 with Allow), unsupported Require
//! (420 with Unsupported), unsupported URI schemes (416), in-dialog requests for dialogs it
//! does not know (481), INVITEs with Max-Forwards 0 (483; it would have to forward them),
//! INVITE bodies it cannot read (415) or answers the caller will not accept (406), OPTIONS,
//! and REGISTER. Everything else reaches the application as [`EndpointEvent::Request`].

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use crate::auth::CredentialStore;
use crate::message::{HeaderName, MediaType, Message, Method, Uri};
use crate::registrar::{Registrar, RegistrarConfig};
use crate::transaction::{Event, Peer, TimerConfig, Transactions, Transmit, TxError, TxId};

/// Methods the hotline takes.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";
/// Option tags the endpoint implements (none yet: session timers arrive with the dialogs).
pub const SUPPORTED: &[&str] = &[];

/// Settings of an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// Registrar limits and realm.
    pub registrar: RegistrarConfig,
    /// The User-Agent / Server header value.
    pub server: String,
}

/// A dialog the application has established (Call-ID, our tag, their tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// What the endpoint hands to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointEvent {
    /// A request for the application (INVITE, BYE, INFO, UPDATE): answer with
    /// [`Endpoint::respond`].
    Request {
        /// Its server transaction.
        tx: TxId,
        /// The request.
        request: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// An ACK to a 2xx.
    Ack {
        /// The ACK.
        request: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// The caller hung up before the answer.
    Cancelled {
        /// The INVITE's transaction.
        tx: TxId,
    },
    /// A response to a request the application sent.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Message,
    },
    /// No answer to a request the application sent.
    Timeout {
        /// The client transaction.
        tx: TxId,
    },
    /// An agent's bindings changed (registered, refreshed or removed).
    Registration {
        /// The agent.
        aor: String,
        /// How many contacts it has now.
        contacts: usize,
    },
    /// Something the endpoint refused, for logs and metrics.
    Refused {
        /// Where it came from.
        peer: Peer,
        /// The status sent (or `None` when dropped).
        status: Option<u16>,
        /// Why.
        detail: String,
    },
}

/// One SIP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    tx: Transactions,
    registrar: Registrar,
    dialogs: HashSet<DialogKey>,
    epoch: Instant,
    events: VecDeque<EndpointEvent>,
}

impl Endpoint {
    /// An endpoint whose registrar clock starts at `now`.
    pub fn new(config: EndpointConfig, now: Instant) -> Self {
        Endpoint {
            tx: Transactions::new(config.timers),
            registrar: Registrar::new(config.registrar.clone()),
            config,
            dialogs: HashSet::new(),
            epoch: now,
            events: VecDeque::new(),
        }
    }

    fn secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The registrar, for lookups when ringing agents.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Seconds on the registrar's clock at `now`.
    pub fn registrar_time(&self, now: Instant) -> u64 {
        self.secs(now)
    }

    /// Tells the endpoint a dialog exists, so in-dialog requests for it are delivered.
    pub fn add_dialog(&mut self, key: DialogKey) {
        self.dialogs.insert(key);
    }

    /// Forgets a dialog.
    pub fn remove_dialog(&mut self, key: &DialogKey) {
        self.dialogs.remove(key);
    }

    /// Bytes from the network.
    pub fn handle_input(
        &mut self,
        now: Instant,
        peer: Peer,
        data: &[u8],
        store: &dyn CredentialStore,
    ) {
        self.tx.handle_input(now, peer, data);
        self.drain(now, store);
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant, store: &dyn CredentialStore) {
        self.tx.handle_timeout(now);
        let gone = self.registrar.expire(self.secs(now));
        for b in gone {
            let left = self.registrar.lookup(self.secs(now), &b.aor).len();
            self.events.push_back(EndpointEvent::Registration {
                aor: b.aor,
                contacts: left,
            });
        }
        self.drain(now, store);
    }

    /// When to call [`Endpoint::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tx.poll_timeout()
    }

    /// The next datagram or stream write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// Answers a request delivered as [`EndpointEvent::Request`].
    pub fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        mut response: Message,
    ) -> Result<(), TxError> {
        if !self.config.server.is_empty() && response.header_by_name("Server").is_none() {
            response.push_header(HeaderName::Other("Server".into()), &self.config.server);
        }
        self.tx.respond(now, tx, response)
    }

    /// Sends a request (the calls placed to agents).
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Message,
    ) -> Result<TxId, TxError> {
        self.tx.send_request(now, peer, request)
    }

    /// Sends outside any transaction (ACK of a 2xx, 2xx retransmissions).
    pub fn send_stateless(&mut self, peer: Peer, msg: &Message) {
        self.tx.send_stateless(peer, msg);
    }

    fn drain(&mut self, now: Instant, store: &dyn CredentialStore) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                Event::Request { tx, request, peer } => {
                    self.on_request(now, tx, request, peer, store)
                }
                Event::Ack { request, peer } => {
                    self.events.push_back(EndpointEvent::Ack { request, peer })
                }
                Event::Cancelled { tx } => self.events.push_back(EndpointEvent::Cancelled { tx }),
                Event::Response { tx, response } => self
                    .events
                    .push_back(EndpointEvent::Response { tx, response }),
                Event::Timeout { tx } => self.events.push_back(EndpointEvent::Timeout { tx }),
                Event::AckTimeout { .. } => {}
                Event::Malformed { peer, error } => self.events.push_back(EndpointEvent::Refused {
                    peer,
                    status: error.status,
                    detail: error.detail,
                }),
            }
        }
    }

    fn refuse(&mut self, now: Instant, tx: TxId, peer: Peer, mut resp: Message, why: &str) {
        let status = resp.status();
        add_tag(&mut resp, &format!("hl{tx:x}"));
        let _ = self.respond(now, tx, resp);
        self.events.push_back(EndpointEvent::Refused {
            peer,
            status,
            detail: why.to_string(),
        });
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: TxId,
        req: Message,
        peer: Peer,
        store: &dyn CredentialStore,
    ) {
        if let Some((resp, why)) = self.precheck(&req) {
            self.refuse(now, tx, peer, resp, why);
            return;
        }
        match req.method() {
            Some(Method::Options) => {
                let mut resp = reply(&req, 200, tx);
                resp.push_header(HeaderName::Allow, ALLOW);
                resp.push_header(HeaderName::Accept, "application/sdp");
                resp.push_header(HeaderName::Supported, &SUPPORTED.join(", "));
                resp.set_body(None, Vec::new());
                let _ = self.respond(now, tx, resp);
            }
            Some(Method::Register) => {
                let secs = self.secs(now);
                let before = req
                    .to_header()
                    .and_then(|t| t.uri.as_sip().and_then(|u| u.user).map(str::to_string));
                let resp = self.registrar.handle(secs, &req, peer, store);
                let ok = resp.status() == Some(200);
                let status = resp.status();
                let _ = self.respond(now, tx, resp);
                match (ok, before) {
                    (true, Some(aor)) => {
                        let contacts = self.registrar.lookup(secs, &aor).len();
                        self.events
                            .push_back(EndpointEvent::Registration { aor, contacts });
                    }
                    _ if status != Some(401) => self.events.push_back(EndpointEvent::Refused {
                        peer,
                        status,
                        detail: "REGISTER refused".into(),
                    }),
                    _ => {}
                }
            }
            _ => self.events.push_back(EndpointEvent::Request {
                tx,
                request: req,
                peer,
            }),
        }
    }

    /// RFC 3261 8.2.1 to 8.2.3, in the RFC's order: the first rule that refuses wins.
    fn precheck(&self, req: &Message) -> Option<(Message, &'static str)> {
        let method = req.method()?;
        // 8.2.1: the method.
        if method.is_extension() {
            let mut r = Message::response_to(req, 501);
            r.push_header(HeaderName::Allow, ALLOW);
            return Some((finish(r), "method not implemented"));
        }
        if !matches!(
            method,
            Method::Invite
                | Method::Ack
                | Method::Cancel
                | Method::Bye
                | Method::Options
                | Method::Register
                | Method::Info
                | Method::Update
        ) {
            let mut r = Message::response_to(req, 405);
            r.push_header(HeaderName::Allow, ALLOW);
            return Some((finish(r), "method not allowed"));
        }
        // 8.2.2.1: the Request-URI scheme.
        if !matches!(req.request_uri(), Some(Uri::Sip(_) | Uri::Tel(_))) {
            return Some((
                finish(Message::response_to(req, 416)),
                "URI scheme not supported",
            ));
        }
        // 8.2.2.2 / 12.2.2: a request inside a dialog we do not have.
        if let (Some(to), Some(from), Some(call_id)) =
            (req.to_header(), req.from_header(), req.call_id())
            && let Some(local) = to.tag()
            && !matches!(method, Method::Cancel)
        {
            let key = DialogKey {
                call_id: call_id.to_string(),
                local_tag: local.to_string(),
                remote_tag: from.tag().unwrap_or("").to_string(),
            };
            if !self.dialogs.contains(&key) {
                return Some((finish(Message::response_to(req, 481)), "no such dialog"));
            }
        }
        // 8.2.2.3: Require.
        let unsupported: Vec<&str> = req
            .tokens(&HeaderName::Require)
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() && !matches!(method, Method::Cancel) {
            let mut r = Message::response_to(req, 420);
            r.push_header(HeaderName::Unsupported, &unsupported.join(", "));
            return Some((finish(r), "unsupported extension required"));
        }
        if *method == Method::Invite {
            if req.max_forwards() == Some(0) {
                return Some((finish(Message::response_to(req, 483)), "Max-Forwards is 0"));
            }
            // 8.2.3: a body we can read, and an answer the caller accepts.
            if !req.body().is_empty()
                && !req
                    .content_type()
                    .is_some_and(|c| c.is("application", "sdp"))
            {
                let mut r = Message::response_to(req, 415);
                r.push_header(HeaderName::Accept, "application/sdp");
                return Some((finish(r), "body type not supported"));
            }
            let accepts: Vec<&str> = req.header_values(&HeaderName::Accept).collect();
            if !accepts.is_empty() && !accepts_sdp(&accepts) {
                return Some((
                    finish(Message::response_to(req, 406)),
                    "caller does not accept SDP",
                ));
            }
        }
        None
    }

    /// Live transactions (for metrics).
    pub fn transactions(&self) -> usize {
        self.tx.len()
    }
}

fn accepts_sdp(accepts: &[&str]) -> bool {
    accepts.iter().any(|v| {
        crate::message::scan::split_commas(v).any(|m| {
            MediaType::parse(m).is_ok_and(|t| {
                (t.kind == "*" && t.subtype == "*")
                    || (t.kind.eq_ignore_ascii_case("application")
                        && (t.subtype == "*" || t.subtype.eq_ignore_ascii_case("sdp")))
            })
        })
    })
}

fn finish(mut r: Message) -> Message {
    r.set_body(None, Vec::new());
    r
}

fn add_tag(r: &mut Message, tag: &str) {
    if r.to_header().is_some_and(|t| t.tag().is_none())
        && let Some(to) = r.header(&HeaderName::To).map(str::to_string)
    {
        r.replace_first_value(&HeaderName::To, &format!("{to};tag={tag}"));
    }
}

fn reply(req: &Message, code: u16, tx: TxId) -> Message {
    let mut r = Message::response_to(req, code);
    add_tag(&mut r, &format!("hl{tx:x}"));
    r
}
