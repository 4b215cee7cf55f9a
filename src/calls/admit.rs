//! Admitting a call: the INVITE's SDP offer answered on a port pair from the RTP range (or
//! refused: 415, 400, 488, 503 with Retry-After), the call handed to a media worker with the
//! script in force; and re-INVITEs and UPDATEs of calls and legs in progress (hold, unhold, a
//! new address, a session refresh).
//!
//! Before anything is bound, where the call comes from is checked: with `sip.trunks` set only
//! those addresses may call (403 otherwise), and one address that is neither a trunk nor
//! loopback holds at most `sip.max_calls_per_source` calls (503 with Retry-After beyond), so
//! one host cannot take every RTP port and every recording.

use std::net::SocketAddr;
use std::time::Instant;

use chrono::Utc;
use hotline_sip::endpoint::{DialogId, Endpoint};
use hotline_sip::message::{HeaderName, Message, Method};
use hotline_sip::sdp::{self, Direction, Local, Sdp};
use hotline_sip::transaction::TxId;

use super::media::{NewCall, ToMedia};
use super::record::CallRecord;
use super::{Call, Calls, Stage, ports};
use crate::ivr::call::IvrCall;

/// Seconds a caller refused for want of ports is asked to wait.
const RETRY_AFTER_SECS: u32 = 5;

impl Calls {
    pub(super) fn invite(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: TxId,
        request: Message,
        source: std::net::IpAddr,
    ) {
        if self.node.draining() {
            // A front proxy or trunk tries another node (RFC 3261 21.5.4).
            metrics::counter!("hotline_calls_refused_total", "reason" => "draining").increment(1);
            let mut r = final_response(&request, 503, tx);
            r.push_header(
                HeaderName::RetryAfter,
                &self.node.retry_after_secs().to_string(),
            );
            r.push_header(
                HeaderName::Other("Warning".into()),
                "399 hotline \"this node is draining: try another\"",
            );
            let _ = ep.respond(now, tx, r);
            return;
        }
        let trunk = self.cfg.trunks.iter().any(|n| n.contains(&source));
        if !self.cfg.trunks.is_empty() && !trunk {
            metrics::counter!("hotline_calls_refused_total", "reason" => "not_a_trunk")
                .increment(1);
            tracing::warn!(%source, "call refused: not from a trunk in sip.trunks");
            let mut r = final_response(&request, 403, tx);
            r.push_header(
                HeaderName::Other("Warning".into()),
                "399 hotline \"calls come through the carrier's trunks\"",
            );
            let _ = ep.respond(now, tx, r);
            return;
        }
        let cap = self.cfg.max_calls_per_source;
        if cap > 0
            && !trunk
            && !source.is_loopback()
            && self.per_source.get(&source).copied().unwrap_or(0) >= cap
        {
            metrics::counter!("hotline_calls_refused_total", "reason" => "per_source").increment(1);
            tracing::warn!(%source, cap, "call refused: too many calls from one address");
            let mut r = final_response(&request, 503, tx);
            r.push_header(HeaderName::RetryAfter, &RETRY_AFTER_SECS.to_string());
            r.push_header(
                HeaderName::Other("Warning".into()),
                "399 hotline \"too many calls from this address\"",
            );
            let _ = ep.respond(now, tx, r);
            return;
        }
        // The offer, if the INVITE has one.
        let offer = match body_sdp(&request) {
            Ok(o) => o,
            Err(status) => {
                let mut r = final_response(&request, status, tx);
                if status == 415 {
                    r.push_header(HeaderName::Other("Accept".into()), "application/sdp");
                }
                let _ = ep.respond(now, tx, r);
                return;
            }
        };
        let Some((local, socket, rtcp_socket)) = self.bind_leg() else {
            metrics::counter!("hotline_calls_refused_total", "reason" => "ports").increment(1);
            tracing::warn!("call refused: no RTP port free");
            let mut r = final_response(&request, 503, tx);
            r.push_header(HeaderName::RetryAfter, &RETRY_AFTER_SECS.to_string());
            let _ = ep.respond(now, tx, r);
            return;
        };
        let port = local.addr.port();
        self.taken += 1;
        let (body, negotiated) = match &offer {
            Some(o) => match sdp::answer(o, local) {
                Ok((answer, n)) => (answer, Some(n)),
                Err(e) => {
                    self.release_port(port);
                    tracing::info!(error = %e, "call refused: SDP offer not acceptable");
                    let mut r = final_response(&request, e.status(), tx);
                    r.push_header(
                        HeaderName::Other("Warning".into()),
                        &format!("304 hotline \"{e}\""),
                    );
                    let _ = ep.respond(now, tx, r);
                    return;
                }
            },
            None => (sdp::offer(local, Direction::SendRecv), None),
        };
        let tag = format!("hl{}", ep.unique());
        let mut ok = Message::response_to(&request, 200);
        if let Some(to) = request.header(&HeaderName::To) {
            ok.replace_first_value(&HeaderName::To, &format!("{to};tag={tag}"));
        }
        ok.push_header(HeaderName::Allow, hotline_sip::endpoint::ALLOW);
        ok.set_body(Some("application/sdp"), body.to_string().into_bytes());
        if let Err(e) = ep.respond(now, tx, ok) {
            tracing::warn!(error = ?e, "answering the call failed");
            self.release_port(port);
            return;
        }
        let dialog = DialogId {
            call_id: request.call_id().unwrap_or_default().to_string(),
            local_tag: tag,
            remote_tag: request
                .from_header()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default(),
        };
        let user_of = |uri: Option<hotline_sip::message::Uri<'_>>| {
            uri.and_then(|u| u.as_sip().and_then(|s| s.user).map(str::to_string))
                .unwrap_or_default()
        };
        let caller = user_of(request.from_header().map(|f| f.uri));
        let called = user_of(request.request_uri());
        let call = self.ivr_call(negotiated);
        let key = self.taken;
        let new = NewCall {
            key,
            socket,
            rtcp_socket,
            port,
            call,
            negotiated,
            dialog: dialog.clone(),
            record: new_record(&dialog.call_id, &caller, &called),
        };
        let Some(workers) = self.start_workers() else {
            // Answered but nothing can carry the audio: hang up at once.
            let _ = ep.bye(now, &dialog);
            self.release_port(port);
            return;
        };
        let worker = workers.add(new);
        let from = if caller.is_empty() {
            "anonymous".to_string()
        } else {
            caller
        };
        metrics::counter!("hotline_calls_answered_total").increment(1);
        let call = Call {
            worker,
            dialog,
            caller: from,
            source,
            local,
            offered: offer.is_none(),
            codec: negotiated.map_or(sdp::Codec::Pcmu, |n| n.codec),
            stage: Stage::Ivr,
        };
        self.admit(key, call);
    }

    /// A call now in a media worker: known by its key and its caller's dialog from here on.
    pub(super) fn admit(&mut self, key: u64, call: Call) {
        if !call.source.is_unspecified() {
            *self.per_source.entry(call.source).or_default() += 1;
        }
        self.by_dialog.insert(call.dialog.clone(), key);
        self.calls.insert(key, call);
        metrics::gauge!("hotline_calls_live").set(self.by_dialog.len() as f64);
    }

    /// A caller's run through the script in force, on what the offer/answer agreed (G.711
    /// mu-law at 20 ms until an INVITE without SDP learns it at the ACK), with fresh RTP
    /// origins and the music on hold.
    pub(super) fn ivr_call(&self, negotiated: Option<sdp::Negotiated>) -> IvrCall {
        IvrCall::new(
            self.scripts.current(),
            negotiated.map_or(sdp::Codec::Pcmu, |n| n.codec),
            negotiated.and_then(|n| n.dtmf),
            (crate::random::u64() >> 32) as u32,
            crate::random::u64(),
        )
        .with_ptime(negotiated.map_or(20, |n| n.ptime))
        .with_hold_music(self.music_on_hold.clone())
    }

    /// A port pair for a new leg and our side of its SDP (`None`: the range is used up).
    pub(super) fn bind_leg(&self) -> Option<(Local, std::net::UdpSocket, std::net::UdpSocket)> {
        let (port, socket, rtcp_socket) = ports::bind_pair(&self.ports, self.cfg.bind)?;
        let local = Local {
            addr: SocketAddr::new(self.cfg.announce, port),
            session_id: crate::random::u64() >> 33,
            version: 1,
        };
        Some((local, socket, rtcp_socket))
    }

    /// A re-INVITE or UPDATE: hold, unhold, a new address, or a session refresh.
    pub(super) fn modify(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        dialog: DialogId,
        tx: TxId,
        request: Message,
    ) {
        // The caller's leg, or a transfer target's.
        let caller = self.by_dialog.get(&dialog).copied();
        let (key, local, leg_b) = if let Some((key, call)) =
            caller.and_then(|k| self.calls.get_mut(&k).map(|c| (k, c)))
        {
            (key, &mut call.local, false)
        } else if let Some(leg) = self.up.get_mut(&dialog).filter(|l| !l.is_monitor()) {
            (leg.key, &mut leg.local, true)
        } else if self.up.contains_key(&dialog) {
            // A supervisor's leg keeps the media it was set up with: a re-offer is refused and
            // the leg goes on as it was (RFC 3261 14.1), rather than 481 ending it.
            let _ = ep.respond(now, tx, final_response(&request, 488, tx));
            return;
        } else {
            let _ = ep.respond(now, tx, final_response(&request, 481, tx));
            return;
        };
        let mut ok = Message::response_to(&request, 200);
        let mut news = None;
        match body_sdp(&request) {
            Err(status) => {
                let _ = ep.respond(now, tx, final_response(&request, status, tx));
                return;
            }
            // A refresh without SDP (UPDATE) changes nothing.
            Ok(None) if request.method() == Some(&Method::Update) => ok.set_body(None, Vec::new()),
            Ok(None) => {
                local.version += 1;
                let offer = sdp::offer(*local, Direction::SendRecv);
                ok.set_body(Some("application/sdp"), offer.to_string().into_bytes());
            }
            Ok(Some(offer)) => {
                let mut next = *local;
                next.version += 1;
                match sdp::answer(&offer, next) {
                    Ok((answer, n)) => {
                        *local = next;
                        news = Some(if leg_b {
                            ToMedia::UpdateB(n)
                        } else {
                            ToMedia::Update(n)
                        });
                        ok.set_body(Some("application/sdp"), answer.to_string().into_bytes());
                    }
                    Err(e) => {
                        // The call goes on as it was (RFC 3264 8: a refused re-offer keeps
                        // the old session).
                        let _ = ep.respond(now, tx, final_response(&request, e.status(), tx));
                        return;
                    }
                }
            }
        }
        if let Some(n) = news {
            self.tell(key, n);
        }
        let _ = ep.respond(now, tx, ok);
    }
}

/// The record of a call just answered: its parties and start.
pub(super) fn new_record(call_id: &str, caller: &str, called: &str) -> CallRecord {
    let now = Utc::now();
    CallRecord {
        call_id: call_id.to_string(),
        caller: caller.to_string(),
        called: called.to_string(),
        started_at: now,
        answered_at: None,
        ended_at: now,
        recording: None,
        end_reason: String::new(),
        codec: None,
        ivr_path: Vec::new(),
        ivr_keys: String::new(),
        ivr_vars: Default::default(),
        queue: None,
        queued_at: None,
        agent_id: None,
        agent_answered_at: None,
        callback: false,
        callback_requested: false,
        rings: Vec::new(),
        transfer_to: None,
        score: None,
        packets_sent: 0,
        packets_received: 0,
        quality: None,
    }
}

/// The SDP offer of a request: `Ok(None)` without a body; `Err(status)` for a body that is
/// not SDP (415) or not valid SDP (400).
fn body_sdp(request: &Message) -> Result<Option<Sdp>, u16> {
    if request.body().is_empty() {
        return Ok(None);
    }
    let is_sdp = request.content_type().is_some_and(|t| {
        t.kind.eq_ignore_ascii_case("application") && t.subtype.eq_ignore_ascii_case("sdp")
    });
    if !is_sdp {
        return Err(415);
    }
    let text = std::str::from_utf8(request.body()).map_err(|_| 400u16)?;
    Sdp::parse(text).map(Some).map_err(|e| e.status())
}

/// A final non-2xx response without a body, with a To tag when the request has none.
pub(super) fn final_response(request: &Message, status: u16, tx: TxId) -> Message {
    let mut r = Message::response_to(request, status);
    if request.to_header().is_some_and(|t| t.tag().is_none())
        && let Some(to) = request.header(&HeaderName::To)
    {
        r.replace_first_value(&HeaderName::To, &format!("{to};tag=hl{tx:x}"));
    }
    r.set_body(None, Vec::new());
    r
}
