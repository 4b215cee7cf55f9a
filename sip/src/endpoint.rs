//! The SIP endpoint: transactions, the registrar and the UAS core rules of RFC 3261 8.2, in
//! one sans-IO object the application drives.
//!
//! What the endpoint answers by itself: malformed requests (400, 505, ...), unknown methods
//! (501), known methods the hotline does not take (405 with Allow), unsupported Require
//! (420 with Unsupported), unsupported URI schemes (416), in-dialog requests for dialogs it
//! does not know (481), INVITEs with Max-Forwards 0 (483; it would have to forward them),
//! INVITE bodies it cannot read (415) or answers the caller will not accept (406), OPTIONS,
//! and REGISTER. Everything else reaches the application as events.
//!
//! Calls: the endpoint keeps the dialogs (RFC 3261 12-15). An INVITE reaches the application
//! as [`EndpointEvent::Request`]; answering it 2xx with [`Endpoint::respond`] makes a dialog,
//! and the endpoint retransmits the 2xx until the ACK (13.3.1.4), ending the call with a BYE
//! if none comes. Inside a dialog it answers BYE, INFO and OPTIONS itself, refuses a re-INVITE
//! that crosses ours (491) and out-of-order requests (500), and hands re-INVITEs and UPDATEs to
//! the application. For calls the application places ([`Endpoint::invite`]), it ACKs the 2xx
//! (again for every retransmission), and offers CANCEL, BYE and re-INVITE.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::auth::CredentialStore;
use crate::dialog::Retransmit;
use crate::message::{HeaderName, MediaType, Message, Method, Uri};
use crate::registrar::{Registrar, RegistrarConfig};
use crate::transaction::{
    Event, Peer, TimerConfig, Transactions, Transmit, TransportKind, TxError, TxId,
};

/// Methods the hotline takes.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";
/// Option tags the endpoint implements.
pub const SUPPORTED: &[&str] = &["timer"];
/// Shortest session interval accepted (RFC 4028 Min-SE; 422 below it).
pub const MIN_SE: u32 = 90;

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

pub use crate::dialog::{Dialog, DialogId, Role, SessionTimer};

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// The peer did not refresh the session in time (RFC 4028); a BYE was sent.
    SessionExpired,
    /// We answered but no ACK came within 64*T1; a BYE was sent.
    NoAck,
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
    /// The ACK to our 2xx arrived: the call is up.
    CallConfirmed {
        /// The dialog.
        dialog: DialogId,
        /// The ACK (it carries the SDP answer when our 2xx held the offer).
        ack: Message,
    },
    /// A call ended by the peer, or by us for want of an ACK.
    CallEnded {
        /// The dialog.
        dialog: DialogId,
        /// Why.
        reason: EndReason,
    },
    /// A re-INVITE or UPDATE inside a dialog (hold, unhold, refresh): answer it with
    /// [`Endpoint::respond`].
    Modify {
        /// The dialog.
        dialog: DialogId,
        /// The server transaction.
        tx: TxId,
        /// The request.
        request: Message,
    },
    /// An INFO inside a dialog (DTMF relay), already answered 200.
    Info {
        /// The dialog.
        dialog: DialogId,
        /// The request.
        request: Message,
    },
    /// A provisional response to a call we placed (ringing).
    Progress {
        /// The INVITE's transaction.
        tx: TxId,
        /// The response.
        response: Message,
    },
    /// A call we placed was answered; the ACK is sent.
    Answered {
        /// The INVITE's transaction.
        tx: TxId,
        /// The new dialog.
        dialog: DialogId,
        /// The 2xx (its body is the SDP answer).
        response: Message,
    },
    /// A call we placed failed (busy, declined, cancelled, no answer: 408).
    Failed {
        /// The INVITE's transaction.
        tx: TxId,
        /// The final status.
        status: u16,
    },
    /// Our re-INVITE crossed theirs (491): try again after a random 2.1 to 4 s (14.1).
    Glare {
        /// The dialog.
        dialog: DialogId,
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
    dialogs: HashMap<DialogId, Dialog>,
    /// INVITEs we are answering: the request, its source, and its dialog for a re-INVITE.
    server_invites: HashMap<TxId, (Message, Peer, Option<DialogId>)>,
    /// INVITEs we sent: the request, its destination, and its dialog for a re-INVITE.
    client_invites: HashMap<TxId, (Message, Peer, Option<DialogId>)>,
    /// UPDATEs we are answering, with their dialog (a 2xx refreshes its session timer).
    server_updates: HashMap<TxId, DialogId>,
    local: SocketAddr,
    id_prefix: String,
    counter: u64,
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
            dialogs: HashMap::new(),
            server_invites: HashMap::new(),
            client_invites: HashMap::new(),
            server_updates: HashMap::new(),
            local: SocketAddr::from(([127, 0, 0, 1], 5060)),
            id_prefix: random_prefix(),
            counter: 0,
            epoch: now,
            events: VecDeque::new(),
        }
    }

    /// The address our Via and Contact name (the bound UDP socket).
    pub fn set_local_addr(&mut self, addr: SocketAddr) {
        self.local = addr;
    }

    /// A unique token for branches, tags and Call-IDs.
    pub fn unique(&mut self) -> String {
        self.counter += 1;
        format!("{}{:x}", self.id_prefix, self.counter)
    }

    fn via(&mut self, transport: TransportKind) -> String {
        let t = match transport {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Ws => "WS",
        };
        let branch = self.unique();
        format!("SIP/2.0/{t} {};rport;branch=z9hG4bK{branch}", self.local)
    }

    /// Our Contact header value for `user`.
    pub fn contact(&self, user: &str) -> String {
        format!("<sip:{user}@{}>", self.local)
    }

    /// A dialog, by id.
    pub fn dialog(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// Number of dialogs held.
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
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

    /// Takes back a binding kept from before a restart, `left` seconds from lapsing at `now`
    /// (its `expires_at` is set from it); false when the registrar does not take it.
    pub fn restore_binding(
        &mut self,
        now: Instant,
        mut binding: crate::registrar::Binding,
        left: u64,
    ) -> bool {
        let secs = self.secs(now);
        binding.expires_at = secs + left;
        self.registrar.restore(secs, binding)
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
        self.retransmit_2xx(now);
        let expired: Vec<DialogId> = self
            .dialogs
            .values()
            .filter(|d| d.session.is_some_and(|s| s.expires_at <= now))
            .map(|d| d.id.clone())
            .collect();
        for id in expired {
            let _ = self.bye(now, &id);
            self.events.push_back(EndpointEvent::CallEnded {
                dialog: id,
                reason: EndReason::SessionExpired,
            });
        }
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
        let retransmits = self
            .dialogs
            .values()
            .filter_map(|d| d.unacked_2xx.as_ref().map(|r| r.next.min(r.give_up)));
        let sessions = self
            .dialogs
            .values()
            .filter_map(|d| d.session.map(|s| s.expires_at));
        self.tx
            .poll_timeout()
            .into_iter()
            .chain(retransmits)
            .chain(sessions)
            .min()
    }

    /// 13.3.1.4: the 2xx goes again at T1, 2*T1, ... up to T2, until the ACK or 64*T1.
    fn retransmit_2xx(&mut self, now: Instant) {
        let t2 = self.config.timers.t2;
        let mut failed = Vec::new();
        let mut sends = Vec::new();
        for d in self.dialogs.values_mut() {
            let Some(r) = d.unacked_2xx.as_mut() else {
                continue;
            };
            if now >= r.give_up {
                d.unacked_2xx = None;
                failed.push(d.id.clone());
            } else if now >= r.next {
                if !d.peer.transport.is_reliable() {
                    sends.push((d.peer, r.bytes.clone()));
                }
                r.interval = (r.interval * 2).min(t2);
                r.next = now + r.interval;
            }
        }
        for (peer, bytes) in sends {
            self.tx.send_raw(peer, bytes);
        }
        for id in failed {
            // The call cannot be confirmed: end it (13.3.1.4).
            let _ = self.bye(now, &id);
            self.events.push_back(EndpointEvent::CallEnded {
                dialog: id,
                reason: EndReason::NoAck,
            });
        }
    }

    /// The next datagram or stream write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// Answers a request delivered as [`EndpointEvent::Request`] or [`EndpointEvent::Modify`].
    /// A 2xx to an INVITE makes (or, for a re-INVITE, keeps) a dialog and is retransmitted
    /// until the ACK.
    pub fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        mut response: Message,
    ) -> Result<(), TxError> {
        if !self.config.server.is_empty() && response.header_by_name("Server").is_none() {
            response.push_header(HeaderName::Other("Server".into()), &self.config.server);
        }
        let code = response.status().unwrap_or(0);
        let invite = self.server_invites.get(&tx).cloned();
        // A dialog-making response needs our Contact (12.1.1); supply it if the caller did not.
        if let Some((req, _, _)) = &invite
            && (101..300).contains(&code)
            && response.header(&HeaderName::Contact).is_none()
        {
            let user = req
                .request_uri()
                .and_then(|u| u.as_sip().and_then(|s| s.user).map(str::to_string))
                .unwrap_or_else(|| "hotline".into());
            let contact = self.contact(&user);
            response.push_header(HeaderName::Contact, &contact);
        }
        let session = match &invite {
            Some((req, _, _)) if (200..300).contains(&code) => session_interval(req),
            _ => None,
        };
        if let Some(se) = session
            && response.header(&HeaderName::SessionExpires).is_none()
        {
            // RFC 4028 9: the caller supports timers, so it refreshes; we watch.
            response.push_header(HeaderName::SessionExpires, &format!("{se};refresher=uac"));
            response.push_header(HeaderName::Require, "timer");
        }
        if let Some((req, peer, existing)) = &invite
            && (200..300).contains(&code)
        {
            let id = match existing {
                Some(id) => id.clone(),
                None => {
                    let d = Dialog::uas(req, &response, *peer).ok_or(TxError::Invalid(
                        "2xx to an INVITE needs a To tag and both Contacts",
                    ))?;
                    let id = d.id.clone();
                    self.dialogs.insert(id.clone(), d);
                    id
                }
            };
            let t1 = self.config.timers.t1;
            let give_up = now + self.config.timers.t1x64();
            let invite_cseq = req.cseq().map_or(0, |c| c.seq);
            let bytes = response.to_bytes();
            if let Some(d) = self.dialogs.get_mut(&id) {
                d.unacked_2xx = Some(Retransmit {
                    bytes,
                    next: now + t1,
                    interval: t1,
                    give_up,
                    invite_cseq,
                });
                d.session = session
                    .map(|se| SessionTimer::refreshed(Duration::from_secs(u64::from(se)), now));
            }
        }
        if let Some(id) = self.server_updates.get(&tx).cloned()
            && code >= 200
        {
            self.server_updates.remove(&tx);
            if (200..300).contains(&code)
                && let Some(d) = self.dialogs.get_mut(&id)
                && let Some(s) = d.session
            {
                d.session = Some(SessionTimer::refreshed(s.interval, now));
            }
        }
        let result = self.tx.respond(now, tx, response);
        if code >= 200 {
            if let Some((_, _, Some(id))) = &invite
                && let Some(d) = self.dialogs.get_mut(id)
            {
                d.remote_reinvite = None;
            }
            self.server_invites.remove(&tx);
        }
        result
    }

    /// A new INVITE to `target` (an agent's contact), from our `from_user`, with an SDP offer.
    /// Returns the transaction; the call's fate arrives as Progress, Answered or Failed.
    pub fn invite(
        &mut self,
        now: Instant,
        peer: Peer,
        target: &str,
        from_user: &str,
        sdp: Option<&[u8]>,
    ) -> Result<TxId, TxError> {
        let via = self.via(peer.transport);
        let tag = self.unique();
        let call_id = format!("{}@hotline", self.unique());
        let mut m = Message::request(Method::Invite, target);
        m.push_header(HeaderName::Via, &via);
        m.push_header(HeaderName::MaxForwards, "70");
        m.push_header(
            HeaderName::From,
            &format!("<sip:{from_user}@{}>;tag={tag}", self.local),
        );
        m.push_header(HeaderName::To, &format!("<{target}>"));
        m.push_header(HeaderName::CallId, &call_id);
        m.push_header(HeaderName::CSeq, "1 INVITE");
        m.push_header(HeaderName::Contact, &self.contact(from_user));
        m.push_header(HeaderName::Allow, ALLOW);
        match sdp {
            Some(body) => m.set_body(Some("application/sdp"), body.to_vec()),
            None => m.set_body(None, Vec::new()),
        }
        let tx = self.tx.send_request(now, peer, m.clone())?;
        self.client_invites.insert(tx, (m, peer, None));
        Ok(tx)
    }

    /// Cancels a call we placed that has no final answer yet (9.1).
    pub fn cancel(&mut self, now: Instant, invite_tx: TxId) -> Result<TxId, TxError> {
        let (invite, peer, _) = self
            .client_invites
            .get(&invite_tx)
            .cloned()
            .ok_or(TxError::Unknown)?;
        let mut c = Message::request(Method::Cancel, invite.request_uri_str().unwrap_or_default());
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            if let Some(v) = invite.header(&name) {
                c.push_header(name, v);
            }
        }
        let seq = invite.cseq().map_or(1, |c| c.seq);
        c.push_header(HeaderName::CSeq, &format!("{seq} CANCEL"));
        c.push_header(HeaderName::MaxForwards, "70");
        for r in invite.header_values(&HeaderName::Route) {
            c.push_header(HeaderName::Route, r);
        }
        c.set_body(None, Vec::new());
        self.tx.send_request(now, peer, c)
    }

    /// Ends a call (either role): BYE inside the dialog, which is then forgotten.
    pub fn bye(&mut self, now: Instant, id: &DialogId) -> Result<TxId, TxError> {
        let mut d = self.dialogs.remove(id).ok_or(TxError::Unknown)?;
        let via = self.via(d.peer.transport);
        let mut bye = d.request(Method::Bye, &via, None);
        bye.set_body(None, Vec::new());
        self.tx.send_request(now, d.peer, bye)
    }

    /// Sends a re-INVITE (hold, unhold) with a new offer. Refused while either side's
    /// re-INVITE is pending (14.1).
    pub fn reinvite(&mut self, now: Instant, id: &DialogId, sdp: &[u8]) -> Result<TxId, TxError> {
        let via = {
            let transport = self.dialogs.get(id).ok_or(TxError::Unknown)?.peer.transport;
            self.via(transport)
        };
        let d = self.dialogs.get_mut(id).ok_or(TxError::Unknown)?;
        if d.local_reinvite.is_some() || d.remote_reinvite.is_some() || d.unacked_2xx.is_some() {
            return Err(TxError::State);
        }
        let mut m = d.request(Method::Invite, &via, None);
        m.set_body(Some("application/sdp"), sdp.to_vec());
        let peer = d.peer;
        let tx = self.tx.send_request(now, peer, m.clone())?;
        if let Some(d) = self.dialogs.get_mut(id) {
            d.local_reinvite = Some(tx);
        }
        self.client_invites.insert(tx, (m, peer, Some(id.clone())));
        Ok(tx)
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
                Event::Ack { request, peer } => self.on_ack(request, peer),
                Event::Cancelled { tx } => {
                    self.server_invites.remove(&tx);
                    self.events.push_back(EndpointEvent::Cancelled { tx })
                }
                Event::Response { tx, response } => self.on_response(now, tx, response),
                Event::Timeout { tx } => {
                    if let Some((_, _, dialog)) = self.client_invites.remove(&tx) {
                        self.end_local_reinvite(dialog.as_ref(), tx);
                        self.events
                            .push_back(EndpointEvent::Failed { tx, status: 408 });
                    } else {
                        self.events.push_back(EndpointEvent::Timeout { tx });
                    }
                }
                Event::AckTimeout { .. } => {}
                Event::Malformed { peer, error } => self.events.push_back(EndpointEvent::Refused {
                    peer,
                    status: error.status,
                    detail: error.detail,
                }),
            }
        }
    }

    fn dialog_of(&self, msg: &Message, incoming_request: bool) -> Option<DialogId> {
        let (from, to) = (msg.from_header()?, msg.to_header()?);
        // In a request from the peer, To carries our tag; in a response to us, From does.
        let (local, remote) = if incoming_request {
            (to.tag()?, from.tag().unwrap_or(""))
        } else {
            (from.tag()?, to.tag()?)
        };
        let id = DialogId {
            call_id: msg.call_id()?.to_string(),
            local_tag: local.to_string(),
            remote_tag: remote.to_string(),
        };
        self.dialogs.contains_key(&id).then_some(id)
    }

    fn on_ack(&mut self, ack: Message, peer: Peer) {
        let Some(id) = self.dialog_of(&ack, true) else {
            self.events
                .push_back(EndpointEvent::Ack { request: ack, peer });
            return;
        };
        let seq = ack.cseq().map_or(0, |c| c.seq);
        let Some(d) = self.dialogs.get_mut(&id) else {
            return;
        };
        match &d.unacked_2xx {
            Some(r) if r.invite_cseq == seq => {
                d.unacked_2xx = None;
                let first = !d.confirmed;
                d.confirmed = true;
                if first {
                    self.events
                        .push_back(EndpointEvent::CallConfirmed { dialog: id, ack });
                } else {
                    self.events
                        .push_back(EndpointEvent::Ack { request: ack, peer });
                }
            }
            _ => {} // a retransmitted ACK: absorbed
        }
    }

    fn end_local_reinvite(&mut self, dialog: Option<&DialogId>, tx: TxId) {
        if let Some(d) = dialog.and_then(|id| self.dialogs.get_mut(id))
            && d.local_reinvite == Some(tx)
        {
            d.local_reinvite = None;
        }
    }

    fn on_response(&mut self, now: Instant, tx: TxId, response: Message) {
        let Some((invite, peer, dialog)) = self.client_invites.get(&tx).cloned() else {
            self.events
                .push_back(EndpointEvent::Response { tx, response });
            return;
        };
        let code = response.status().unwrap_or(0);
        match code {
            100..=199 => {
                if dialog.is_none() && code > 100 {
                    self.events
                        .push_back(EndpointEvent::Progress { tx, response });
                }
            }
            200..=299 => {
                // The first 2xx makes the dialog; a retransmission of it gets the same ACK.
                let id = match dialog.clone() {
                    Some(id) => Some(id),
                    None => Dialog::uac(&invite, &response, peer).map(|d| {
                        let id = d.id.clone();
                        self.dialogs.entry(id.clone()).or_insert(d);
                        id
                    }),
                };
                let Some(id) = id else {
                    return; // a 2xx without Contact or To tag cannot be ACKed into a dialog
                };
                let existing_ack = self.dialogs.get(&id).and_then(|d| d.ack.clone());
                let via = self.via(peer.transport);
                let first = existing_ack.is_none() || dialog.is_some();
                let invite_seq = invite.cseq().map_or(1, |c| c.seq);
                let ack_bytes = match (existing_ack, dialog.is_some()) {
                    (Some(bytes), false) => bytes,
                    _ => {
                        let Some(d) = self.dialogs.get_mut(&id) else {
                            return;
                        };
                        let mut ack = d.request(Method::Ack, &via, Some(invite_seq));
                        ack.set_body(None, Vec::new());
                        let bytes = ack.to_bytes();
                        d.ack = Some(bytes.clone());
                        d.confirmed = true;
                        bytes
                    }
                };
                let target = self.dialogs.get(&id).map_or(peer, |d| d.peer);
                self.tx.send_raw(target, ack_bytes);
                // RFC 4028: a callee that refreshes itself (refresher=uas) is watched like a
                // caller is; we never ask to be the refresher (our INVITEs do not offer it).
                if first
                    && let Some((se, params)) = response.session_expires()
                    && params
                        .get("refresher")
                        .flatten()
                        .is_some_and(|r| r.eq_ignore_ascii_case("uas"))
                    && let Some(d) = self.dialogs.get_mut(&id)
                {
                    d.session = Some(SessionTimer::refreshed(
                        Duration::from_secs(u64::from(se)),
                        now,
                    ));
                }
                if first {
                    if dialog.is_some() {
                        self.end_local_reinvite(Some(&id), tx);
                        self.events
                            .push_back(EndpointEvent::Response { tx, response });
                    } else {
                        self.events.push_back(EndpointEvent::Answered {
                            tx,
                            dialog: id,
                            response,
                        });
                    }
                }
            }
            _ => {
                self.client_invites.remove(&tx);
                match dialog {
                    Some(id) => {
                        self.end_local_reinvite(Some(&id), tx);
                        if code == 491 {
                            self.events.push_back(EndpointEvent::Glare { dialog: id });
                        } else {
                            self.events
                                .push_back(EndpointEvent::Response { tx, response });
                        }
                    }
                    None => self
                        .events
                        .push_back(EndpointEvent::Failed { tx, status: code }),
                }
            }
        }
    }

    /// A request inside one of our dialogs (12.2.2).
    fn on_dialog_request(
        &mut self,
        now: Instant,
        tx: TxId,
        id: DialogId,
        req: Message,
        peer: Peer,
    ) {
        let Some(d) = self.dialogs.get_mut(&id) else {
            return;
        };
        if !d.accept_remote_cseq(&req) {
            let r = finish(Message::response_to(&req, 500));
            let _ = self.respond(now, tx, r);
            return;
        }
        match req.method() {
            Some(Method::Bye) => {
                self.dialogs.remove(&id);
                let _ = self.respond(now, tx, finish(Message::response_to(&req, 200)));
                self.events.push_back(EndpointEvent::CallEnded {
                    dialog: id,
                    reason: EndReason::RemoteBye,
                });
            }
            Some(Method::Invite) => {
                if d.local_reinvite.is_some() {
                    // 14.2: our own re-INVITE is pending.
                    let _ = self.respond(now, tx, finish(Message::response_to(&req, 491)));
                } else if d.remote_reinvite.is_some() || d.unacked_2xx.is_some() {
                    let mut r = Message::response_to(&req, 500);
                    r.push_header(HeaderName::RetryAfter, "1");
                    let _ = self.respond(now, tx, finish(r));
                } else {
                    d.remote_reinvite = Some(tx);
                    d.peer = peer;
                    self.server_invites
                        .insert(tx, (req.clone(), peer, Some(id.clone())));
                    self.events.push_back(EndpointEvent::Modify {
                        dialog: id,
                        tx,
                        request: req,
                    });
                }
            }
            Some(Method::Update) => {
                // A refresh: the session timer restarts when we answer it 2xx.
                self.server_updates.insert(tx, id.clone());
                self.events.push_back(EndpointEvent::Modify {
                    dialog: id,
                    tx,
                    request: req,
                })
            }
            Some(Method::Info) => {
                let _ = self.respond(now, tx, finish(Message::response_to(&req, 200)));
                self.events.push_back(EndpointEvent::Info {
                    dialog: id,
                    request: req,
                });
            }
            _ => {
                let _ = self.respond(now, tx, finish(Message::response_to(&req, 200)));
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
        if let Some(id) = self.dialog_of(&req, true) {
            self.on_dialog_request(now, tx, id, req, peer);
            return;
        }
        if req.method() == Some(&Method::Invite) {
            self.server_invites.insert(tx, (req.clone(), peer, None));
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
        if req.to_header().is_some_and(|t| t.tag().is_some())
            && !matches!(method, Method::Cancel)
            && self.dialog_of(req, true).is_none()
        {
            return Some((finish(Message::response_to(req, 481)), "no such dialog"));
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
        if *method == Method::Invite
            && let Some((se, _)) = req.session_expires()
            && se < MIN_SE
        {
            // RFC 4028 8.1: too short an interval.
            let mut r = Message::response_to(req, 422);
            r.push_header(HeaderName::MinSe, &MIN_SE.to_string());
            return Some((finish(r), "session interval too small"));
        }
        if *method == Method::Invite
            && req.to_header().is_some_and(|t| t.tag().is_none())
            && !req
                .contacts()
                .any(|c| matches!(c, crate::message::ContactValue::Addr(_)))
        {
            // 8.1.1.8: an INVITE must say where to reach its sender, or no dialog can exist.
            return Some((
                finish(Message::response_to(req, 400)),
                "INVITE without Contact",
            ));
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

/// The session interval to grant an INVITE (RFC 4028): its Session-Expires when the caller
/// supports timers (raised to our Min-SE), else none.
fn session_interval(req: &Message) -> Option<u32> {
    let supports = req
        .tokens(&HeaderName::Supported)
        .chain(req.tokens(&HeaderName::Require))
        .any(|t| t.eq_ignore_ascii_case("timer"));
    if !supports {
        return None;
    }
    req.session_expires().map(|(se, _)| se.max(MIN_SE))
}

fn random_prefix() -> String {
    let mut b = [0u8; 6];
    // Without OS randomness the counter still keeps tokens unique within this process.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn reply(req: &Message, code: u16, tx: TxId) -> Message {
    let mut r = Message::response_to(req, code);
    add_tag(&mut r, &format!("hl{tx:x}"));
    r
}
