//! Dialogs (RFC 3261 12): the state two user agents share after an INVITE is answered, and
//! how requests inside it are built and checked. The [`crate::endpoint::Endpoint`] owns the
//! dialogs and drives them; this module holds their data and rules.

use std::time::{Duration, Instant};

use crate::message::{HeaderName, Message, Method, NameAddr};
use crate::transaction::{Peer, TxId};

/// Identifies a dialog: Call-ID and both tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Which side of the INVITE we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We answered the INVITE (a citizen's call).
    Uas,
    /// We sent the INVITE (a call placed to an agent).
    Uac,
}

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Its identity.
    pub id: DialogId,
    /// UAS or UAC.
    pub role: Role,
    /// Our address with our tag (From of our requests).
    pub local: String,
    /// Their address with their tag (To of our requests).
    pub remote: String,
    /// Their Contact URI: the Request-URI of our requests.
    pub remote_target: String,
    /// Route set, in the order our requests carry it.
    pub route_set: Vec<String>,
    /// Our Contact.
    pub local_contact: String,
    /// Our last CSeq.
    pub local_cseq: u32,
    /// Their last CSeq (None until they send a request in the dialog).
    pub remote_cseq: Option<u32>,
    /// Where their requests came from and ours go (the source address: callers are behind NAT).
    pub peer: Peer,
    /// Our re-INVITE in progress (RFC 3261 14.1: a second one waits; theirs gets 491).
    pub local_reinvite: Option<TxId>,
    /// Their re-INVITE in progress (ours must wait).
    pub remote_reinvite: Option<TxId>,
    /// UAS: the 2xx to the INVITE, retransmitted until the ACK (13.3.1.4).
    pub(crate) unacked_2xx: Option<Retransmit>,
    /// UAC: the ACK for the 2xx, repeated when the 2xx is (13.2.2.4).
    pub(crate) ack: Option<Vec<u8>>,
    /// Whether the ACK arrived (UAS) or was sent (UAC).
    pub confirmed: bool,
    /// RFC 4028 session timer, when the peer refreshes: the interval and when to give up.
    pub session: Option<SessionTimer>,
}

/// A session timer the peer refreshes (RFC 4028): without a refresh before `expires_at`, the
/// call is ended with a BYE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The negotiated Session-Expires.
    pub interval: Duration,
    /// When the BYE goes: the interval minus min(32 s, interval/3) after the last refresh.
    pub expires_at: Instant,
}

impl SessionTimer {
    /// A timer refreshed at `now`.
    pub fn refreshed(interval: Duration, now: Instant) -> SessionTimer {
        let margin = (interval / 3).min(Duration::from_secs(32));
        SessionTimer {
            interval,
            expires_at: now + interval - margin,
        }
    }
}

/// A 2xx being retransmitted.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    pub bytes: Vec<u8>,
    pub next: Instant,
    pub interval: Duration,
    pub give_up: Instant,
    pub invite_cseq: u32,
}

impl Dialog {
    /// The UAS dialog made by answering `invite` with `response` (12.1.1).
    pub fn uas(invite: &Message, response: &Message, peer: Peer) -> Option<Dialog> {
        let from = invite.from_header()?;
        let to = response.to_header()?;
        let call_id = invite.call_id()?.to_string();
        let remote_target = invite.contacts().find_map(|c| match c {
            crate::message::ContactValue::Addr(a) => Some(a.uri.raw().to_string()),
            crate::message::ContactValue::Star => None,
        })?;
        let local_contact = response
            .header(&HeaderName::Contact)
            .unwrap_or_default()
            .to_string();
        Some(Dialog {
            id: DialogId {
                call_id,
                local_tag: to.tag()?.to_string(),
                remote_tag: from.tag().unwrap_or("").to_string(),
            },
            role: Role::Uas,
            local: response.header(&HeaderName::To)?.to_string(),
            remote: invite.header(&HeaderName::From)?.to_string(),
            remote_target,
            // The UAS keeps the Record-Route order (12.1.1).
            route_set: invite.record_routes().map(|r| raw_name_addr(&r)).collect(),
            local_contact,
            local_cseq: 0,
            remote_cseq: invite.cseq().map(|c| c.seq),
            peer,
            local_reinvite: None,
            remote_reinvite: None,
            unacked_2xx: None,
            ack: None,
            confirmed: false,
            session: None,
        })
    }

    /// The UAC dialog made by a 2xx to our `invite` (12.1.2).
    pub fn uac(invite: &Message, response: &Message, peer: Peer) -> Option<Dialog> {
        let to = response.to_header()?;
        let from = invite.from_header()?;
        let remote_target = response.contacts().find_map(|c| match c {
            crate::message::ContactValue::Addr(a) => Some(a.uri.raw().to_string()),
            crate::message::ContactValue::Star => None,
        })?;
        let mut route_set: Vec<String> = response
            .record_routes()
            .map(|r| raw_name_addr(&r))
            .collect();
        route_set.reverse(); // the UAC reverses Record-Route (12.1.2)
        Some(Dialog {
            id: DialogId {
                call_id: invite.call_id()?.to_string(),
                local_tag: from.tag()?.to_string(),
                remote_tag: to.tag()?.to_string(),
            },
            role: Role::Uac,
            local: invite.header(&HeaderName::From)?.to_string(),
            remote: response.header(&HeaderName::To)?.to_string(),
            remote_target,
            route_set,
            local_contact: invite
                .header(&HeaderName::Contact)
                .unwrap_or_default()
                .to_string(),
            local_cseq: invite.cseq()?.seq,
            remote_cseq: None,
            peer,
            local_reinvite: None,
            remote_reinvite: None,
            unacked_2xx: None,
            ack: None,
            confirmed: false,
            session: None,
        })
    }

    /// A new request inside the dialog (12.2.1.1), with a fresh branch, the next CSeq (except
    /// for ACK, which takes `ack_cseq`), the route set, and `via_host` in the Via.
    pub fn request(&mut self, method: Method, via: &str, ack_cseq: Option<u32>) -> Message {
        let cseq = match (method.clone(), ack_cseq) {
            (Method::Ack, Some(c)) => c,
            _ => {
                self.local_cseq += 1;
                self.local_cseq
            }
        };
        let mut m = Message::request(method.clone(), &self.remote_target);
        m.push_header(HeaderName::Via, via);
        m.push_header(HeaderName::MaxForwards, "70");
        m.push_header(HeaderName::From, &self.local);
        m.push_header(HeaderName::To, &self.remote);
        m.push_header(HeaderName::CallId, &self.id.call_id);
        m.push_header(HeaderName::CSeq, &format!("{cseq} {method}"));
        for r in &self.route_set {
            m.push_header(HeaderName::Route, r);
        }
        if matches!(method, Method::Invite | Method::Update) && !self.local_contact.is_empty() {
            m.push_header(HeaderName::Contact, &self.local_contact);
        }
        m
    }

    /// Checks the CSeq of a request from the peer (12.2.2): it must rise (ACK and CANCEL
    /// repeat the INVITE's). Returns false for an out-of-order request (answer 500).
    pub fn accept_remote_cseq(&mut self, req: &Message) -> bool {
        let Some(cseq) = req.cseq() else {
            return false;
        };
        if matches!(req.method(), Some(Method::Ack | Method::Cancel)) {
            return true;
        }
        match self.remote_cseq {
            Some(last) if cseq.seq <= last => false,
            _ => {
                self.remote_cseq = Some(cseq.seq);
                true
            }
        }
    }
}

/// A name-addr as it stands in a header (`<sip:p1.example.com;lr>`), for copying into Route.
fn raw_name_addr(a: &NameAddr<'_>) -> String {
    let mut s = format!("<{}>", a.uri.raw());
    if !a.params.is_empty() {
        s.push_str(a.params.raw());
    }
    s
}
