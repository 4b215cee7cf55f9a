//! The app's call path on a virtual clock: the real [`Calls`] handler on a real sans-IO
//! [`Endpoint`], with the caller, the agents' phones, a supervisor's phone, the carrier
//! (callbacks) and an emergency route as sans-IO endpoints of their own on a simulated
//! network (10 ms each way). The media workers are replaced by a recorder of the news the
//! handler gives them, and the ACD by the receiving end of its channel, so each test reads
//! what a user would notice: which phones ring, what is cancelled or hung up, what the ACD
//! hears, what the call's media is told. Nothing sleeps; `run_for` jumps from one deadline to
//! the next. (RTP port pairs are still bound on 127.0.0.1 for the legs, as in production; no
//! packet is sent on them.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_sip::auth::{self, Algorithm, CredentialStore};
use hotline_sip::endpoint::{DialogId, EndReason, Endpoint, EndpointConfig, EndpointEvent};
use hotline_sip::message::{Delivery, HeaderName, Message, Method};
use hotline_sip::registrar::RegistrarConfig;
use hotline_sip::transaction::{Peer, TransportKind, TxId};
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::media::{NewCall, ToMedia};
use super::messages::TransferRequest;
use super::*;
use crate::acd::service::{AcdHandle, CallbackDial, Command as AcdCommand, RingAgents};
use crate::engine::CallHandler;
use crate::ivr::script::Context;

const HOTLINE: &str = "192.0.2.1:5060";
const CALLER: &str = "192.0.2.10:5060";
const AGENT1: &str = "192.0.2.21:5060";
const AGENT2: &str = "192.0.2.22:5060";
const SUPERVISOR: &str = "192.0.2.23:5060";
const CARRIER: &str = "192.0.2.30:5060";
const EMERGENCY: &str = "192.0.2.31:5060";
const REALM: &str = "hotline";

fn sdp(ip: &str, port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    .into_bytes()
}

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

fn udp(a: &str) -> Peer {
    Peer {
        addr: addr(a),
        transport: TransportKind::Udp,
    }
}

/// The agents' SIP accounts: 1001, 1002 and the supervisor's 1009, password `pw-<user>`.
struct Accounts;

impl CredentialStore for Accounts {
    fn ha1(&self, user: &str, realm: &str, alg: Algorithm) -> Option<String> {
        ["1001", "1002", "1009"]
            .contains(&user)
            .then(|| auth::ha1(alg, user, realm, &format!("pw-{user}")))
    }
}

/// The news the handler gave the media, one line per item: `<key> <what>`.
#[derive(Default, Clone)]
struct MediaLog(Arc<Mutex<Vec<String>>>);

impl MediaLog {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn has(&self, line: &str) -> bool {
        self.lines().iter().any(|l| l == line)
    }
}

/// Stands in for the media workers: one worker, news written down.
struct Recorder(MediaLog);

fn describe(news: &ToMedia) -> String {
    match news {
        ToMedia::Confirmed(n) => format!("confirmed answer={}", n.is_some()),
        ToMedia::Key(k) => format!("key {k}"),
        ToMedia::Update(_) => "update".into(),
        ToMedia::Ended(r) => format!("ended {r}"),
        ToMedia::Bridged { agent, .. } => format!("bridged agent={agent:?}"),
        ToMedia::AgentLeg { .. } => "agent leg".into(),
        ToMedia::AgentHungUp => "agent hung up".into(),
        ToMedia::TransferOut { uri } => format!("transfer out {uri}"),
        ToMedia::Requeue { queue, agent } => format!("requeue queue={queue:?} agent={agent:?}"),
        ToMedia::RingDone(r) => format!("ring {} {}", r.agent, r.result),
        ToMedia::Announce { place, minutes } => format!("announce {place} {minutes}"),
        ToMedia::TransferFailed(s) => format!("transfer failed {s}"),
        ToMedia::UpdateB(_) => "update b".into(),
        ToMedia::PauseRecording(p) => format!("pause recording {p}"),
        ToMedia::Speak(_) => "speak".into(),
        ToMedia::AgentHold(h) => format!("agent hold {h}"),
        ToMedia::Monitor(join) => format!("monitor {}", join.mode.name()),
        ToMedia::MonitorMode(m) => format!("monitor mode {}", m.name()),
        ToMedia::MonitorEnded => "monitor ended".into(),
    }
}

impl Media for Recorder {
    fn add(&mut self, call: NewCall) -> usize {
        self.0
            .0
            .lock()
            .unwrap()
            .push(format!("{} added {}", call.key, call.record.caller));
        0
    }

    fn news(&self, _worker: usize, key: u64, news: ToMedia) {
        self.0
            .0
            .lock()
            .unwrap()
            .push(format!("{key} {}", describe(&news)));
    }
}

/// A party on the network: a sans-IO endpoint and what it was told.
struct Party {
    ep: Endpoint,
    events: Vec<EndpointEvent>,
    /// Requests it received, in order (method names), for "was it cancelled?".
    received: Vec<String>,
}

struct Net {
    now: Instant,
    hotline: Endpoint,
    calls: Calls,
    parties: BTreeMap<SocketAddr, Party>,
    in_flight: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    media: MediaLog,
    acd: mpsc::UnboundedReceiver<AcdCommand>,
    _dir: tempfile::TempDir,
}

fn script(dir: &Path) -> Arc<ScriptStore> {
    let path = dir.join("script.toml");
    std::fs::write(
        &path,
        "start = \"queue\"\n[nodes.queue]\ntype = \"queue\"\nqueue = \"general\"\n",
    )
    .unwrap();
    let ctx = Context {
        queues: None,
        tts: None,
    };
    match ScriptStore::load(&path, ctx) {
        Ok(s) => Arc::new(s),
        Err(problems) => panic!("test script: {problems:?}"),
    }
}

impl Net {
    /// The hotline with an RTP range of its own (`ports`: first port of 40) and every party.
    fn new(ports: u16) -> Net {
        let now = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let config = EndpointConfig {
            registrar: RegistrarConfig {
                realm: REALM.into(),
                algorithms: vec![Algorithm::Md5],
                ..RegistrarConfig::default()
            },
            ..EndpointConfig::default()
        };
        let mut hotline = Endpoint::new(config, now);
        hotline.set_local_addr(addr(HOTLINE));
        let (records, _) = mpsc::unbounded_channel();
        let (acd, acd_rx) = AcdHandle::channel();
        let cfg = CallsConfig {
            bind: "127.0.0.1".parse().unwrap(),
            announce: "192.0.2.1".parse().unwrap(),
            port_min: ports,
            port_max: ports + 39,
            inactivity: None,
            workers: 1,
            realtime: false,
            callback_route: Some(format!("sip:{{number}}@{CARRIER}")),
            callback_numbers: crate::config::AcdConfig::default()
                .callback_numbers()
                .unwrap(),
            emergency_routes: [("110".to_string(), format!("sip:110@{EMERGENCY}"))].into(),
            trunks: Vec::new(),
            max_calls_per_source: 0,
        };
        let media = MediaLog::default();
        let mut calls = Calls::new(
            cfg,
            script(dir.path()),
            Arc::new(crate::china::calendar::WorkCalendar::shipped().unwrap()),
            records,
            None,
            Vec::new(),
        )
        .with_acd(acd);
        calls.workers = Some(Box::new(Recorder(media.clone())));
        let mut parties = BTreeMap::new();
        for a in [CALLER, AGENT1, AGENT2, SUPERVISOR, CARRIER, EMERGENCY] {
            let mut ep = Endpoint::new(EndpointConfig::default(), now);
            ep.set_local_addr(addr(a));
            parties.insert(
                addr(a),
                Party {
                    ep,
                    events: Vec::new(),
                    received: Vec::new(),
                },
            );
        }
        let mut net = Net {
            now,
            hotline,
            calls,
            parties,
            in_flight: Vec::new(),
            media,
            acd: acd_rx,
            _dir: dir,
        };
        net.register("1001", AGENT1);
        net.register("1002", AGENT2);
        net.register("1009", SUPERVISOR);
        // Each phone's registration is news for the ACD (an agent restored at start waits
        // for it); the tests below look at what comes after.
        assert_eq!(
            net.acd_heard(),
            [
                "PhoneAttached { device: \"1001\" }",
                "PhoneAttached { device: \"1002\" }",
                "PhoneAttached { device: \"1009\" }"
            ]
        );
        net
    }

    /// A phone at `at` registers as `user` (digest, MD5), straight to the hotline.
    fn register(&mut self, user: &str, at: &str) {
        let request = |cseq: u32, authorization: Option<String>| {
            let mut m = format!(
                "REGISTER sip:192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bK-reg-{user}-{cseq}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@192.0.2.1>;tag=r{user}\r\nTo: <sip:{user}@192.0.2.1>\r\n\
                 Call-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{at}>\r\nExpires: 3600\r\n"
            );
            if let Some(a) = authorization {
                m.push_str(&format!("Authorization: {a}\r\n"));
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            m.into_bytes()
        };
        self.hotline
            .handle_input(self.now, udp(at), &request(1, None), &Accounts);
        let challenge = self.drain_to_hotline_reply();
        let www = challenge
            .header(&HeaderName::WwwAuthenticate)
            .expect("a challenge")
            .to_string();
        let nonce = www
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a nonce")
            .to_string();
        let value = auth::authorization(
            Algorithm::Md5,
            user,
            REALM,
            &format!("pw-{user}"),
            &nonce,
            1,
            "c0ffee",
            "REGISTER",
            "sip:192.0.2.1",
        );
        self.hotline
            .handle_input(self.now, udp(at), &request(2, Some(value)), &Accounts);
        let ok = self.drain_to_hotline_reply();
        assert_eq!(ok.status(), Some(200), "{user} registers");
    }

    /// The hotline's answer to a REGISTER fed straight in (nothing else is in flight).
    fn drain_to_hotline_reply(&mut self) -> Message {
        while let Some(ev) = self.hotline.poll_event() {
            self.calls.handle(&mut self.hotline, self.now, ev);
        }
        let t = self.hotline.poll_transmit().expect("an answer");
        Message::parse(&t.bytes, Delivery::Datagram).unwrap()
    }

    fn party(&mut self, a: &str) -> &mut Party {
        self.parties.get_mut(&addr(a)).unwrap()
    }

    /// Moves what everyone sent onto the wire and hands events over: the hotline's to the
    /// call handler, the parties' to their logs.
    fn collect(&mut self) {
        loop {
            let mut moved = false;
            while let Some(ev) = self.hotline.poll_event() {
                self.calls.handle(&mut self.hotline, self.now, ev);
                moved = true;
            }
            while let Some(t) = self.hotline.poll_transmit() {
                self.in_flight.push((
                    self.now + Duration::from_millis(10),
                    addr(HOTLINE),
                    t.peer.addr,
                    t.bytes,
                ));
                moved = true;
            }
            for (a, p) in &mut self.parties {
                while let Some(t) = p.ep.poll_transmit() {
                    self.in_flight.push((
                        self.now + Duration::from_millis(10),
                        *a,
                        t.peer.addr,
                        t.bytes,
                    ));
                    moved = true;
                }
                while let Some(e) = p.ep.poll_event() {
                    match &e {
                        EndpointEvent::Request { tx, request, .. } => {
                            p.received
                                .push(request.method().map(|m| m.to_string()).unwrap_or_default());
                            // A phone rings at once (180), as real ones do.
                            if request.method() == Some(&Method::Invite) {
                                let ringing = reply(request, 180, *a, None);
                                let _ = p.ep.respond(self.now, *tx, ringing);
                            }
                        }
                        EndpointEvent::Cancelled { .. } => p.received.push("CANCEL".into()),
                        _ => {}
                    }
                    p.events.push(e);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs the network and every timer for `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.collect();
            let next = self
                .in_flight
                .iter()
                .map(|(at, ..)| *at)
                .chain(self.hotline.poll_timeout())
                .chain(self.parties.values().filter_map(|p| p.ep.poll_timeout()))
                .min();
            let Some(next) = next.filter(|n| *n <= until) else {
                self.now = until;
                self.collect();
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, ..)| *at <= now);
            self.in_flight = later;
            for (_, from, to, bytes) in due {
                if to == addr(HOTLINE) {
                    self.hotline
                        .handle_input(now, udp_of(from), &bytes, &Accounts);
                } else if let Some(p) = self.parties.get_mut(&to) {
                    p.ep.handle_input(now, udp(HOTLINE), &bytes, &Accounts);
                }
            }
            self.hotline.handle_timeout(now, &Accounts);
            for p in self.parties.values_mut() {
                p.ep.handle_timeout(now, &Accounts);
            }
        }
    }

    /// The caller dials 12345 and acknowledges the answer: the call's key.
    fn call_in(&mut self) -> u64 {
        self.dial();
        assert_eq!(self.calls.live(), 1, "the call is answered");
        let key = *self.calls.calls.keys().next().unwrap();
        assert!(self.media.has(&format!("{key} added 13800138000")));
        assert!(self.media.has(&format!("{key} confirmed answer=false")));
        key
    }

    /// The ACD offers call `key` to these agents (id, SIP account).
    fn offer(&mut self, key: u64, agents: &[(u64, &str)]) {
        let r = RingAgents {
            call: key,
            agents: agents
                .iter()
                .map(|(a, d)| (*a, Some(d.to_string())))
                .collect(),
            callback: None,
        };
        self.tell(Control::Offer(Offer::Ring(r)));
    }

    fn tell(&mut self, control: Control) {
        self.calls.message(&mut self.hotline, self.now, control);
        self.run_for(Duration::from_millis(60));
    }

    /// The INVITE a party was sent last, with its server transaction.
    fn invite_at(&self, a: &str) -> (TxId, Message) {
        self.parties[&addr(a)]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                EndpointEvent::Request { tx, request, .. }
                    if request.method() == Some(&Method::Invite) =>
                {
                    Some((*tx, request.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{a} was sent no INVITE"))
    }

    /// A party answers the INVITE it was sent with `status` (200 with SDP `body`).
    fn answer(&mut self, a: &str, status: u16, body: Option<Vec<u8>>) {
        let (tx, invite) = self.invite_at(a);
        let r = reply(&invite, status, addr(a), body);
        let now = self.now;
        self.party(a).ep.respond(now, tx, r).unwrap();
        self.run_for(Duration::from_millis(100));
    }

    /// The dialog a party has with the hotline, once it answered.
    fn dialog_of(&self, a: &str) -> DialogId {
        self.parties[&addr(a)]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                EndpointEvent::CallConfirmed { dialog, .. } => Some(dialog.clone()),
                EndpointEvent::Answered { dialog, .. } => Some(dialog.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{a} has no call"))
    }

    /// A party hangs up its call with the hotline.
    fn hang_up(&mut self, a: &str) {
        let d = self.dialog_of(a);
        let now = self.now;
        self.party(a).ep.bye(now, &d).unwrap();
        self.run_for(Duration::from_millis(100));
    }

    fn received(&self, a: &str) -> Vec<String> {
        self.parties[&addr(a)].received.clone()
    }

    /// The party's calls that ended, and how (BYE from the hotline: RemoteBye).
    fn ended(&self, a: &str) -> Vec<EndReason> {
        self.parties[&addr(a)]
            .events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::CallEnded { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    /// What the handler told the ACD since last asked.
    fn acd_heard(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(c) = self.acd.try_recv() {
            out.push(match c {
                AcdCommand::Answered { call, agent } => format!("answered {call} {agent}"),
                AcdCommand::RingFailed { call, agent, miss } => {
                    format!("ring failed {call} {agent} miss={miss}")
                }
                AcdCommand::CallbackAnswered { call, .. } => format!("callback answered {call}"),
                AcdCommand::CallbackFailed { call, status } => {
                    format!("callback failed {call} {status}")
                }
                other => format!("{other:?}"),
            });
        }
        out
    }

    /// The media worker ends call `key` (as it does when the script hangs up).
    fn media_ends(&mut self, key: u64) {
        let dialog = self.calls.calls[&key].dialog.clone();
        self.calls.finished.lock().unwrap().push((dialog, key));
    }

    /// An agent (`None`: a supervisor) transfers the call with this Call-ID.
    fn transfer(
        &mut self,
        id: &str,
        to: TransferTarget,
        agent: Option<u64>,
    ) -> Result<String, TransferRefused> {
        let call_id = id.to_string();
        self.control(|reply| {
            Control::Transfer(TransferControl {
                call_id,
                to,
                agent,
                reply,
            })
        })
    }

    /// The worker of call `key` asks for a transfer call to the emergency route.
    fn place_transfer(&mut self, key: u64) {
        let local = self.calls.calls[&key].local;
        self.tell(Control::PlaceTransfer(TransferRequest {
            worker: 0,
            key,
            uri: format!("sip:110@{EMERGENCY}"),
            target: addr(EMERGENCY),
            from_user: "12345".into(),
            offer: sdp("192.0.2.1", local.addr.port()),
            local,
        }));
    }

    /// The agent's transfer/hold/monitor control and its answer.
    fn control<T>(
        &mut self,
        make: impl FnOnce(oneshot::Sender<Result<T, TransferRefused>>) -> Control,
    ) -> Result<T, TransferRefused> {
        let (tx, mut rx) = oneshot::channel();
        self.tell(make(tx));
        rx.try_recv().expect("the handler answered")
    }
}

/// A party's response to an INVITE, its To tagged after its address.
fn reply(invite: &Message, status: u16, at: SocketAddr, body: Option<Vec<u8>>) -> Message {
    let mut r = Message::response_to(invite, status);
    let to = invite.header(&HeaderName::To).unwrap().to_string();
    r.replace_first_value(&HeaderName::To, &format!("{to};tag=p{}", at.ip()));
    match body {
        Some(b) => r.set_body(Some("application/sdp"), b),
        None => r.set_body(None, Vec::new()),
    }
    r
}

fn udp_of(a: SocketAddr) -> Peer {
    Peer {
        addr: a,
        transport: TransportKind::Udp,
    }
}

fn call_id(net: &Net, key: u64) -> String {
    net.calls.calls[&key].dialog.call_id.clone()
}

/// The caller is bridged to agent 1 (offered alone), who answers.
fn bridged(net: &mut Net) -> u64 {
    let key = net.call_in();
    net.offer(key, &[(1, "1001")]);
    net.answer(AGENT1, 200, Some(sdp("192.0.2.21", 31000)));
    assert!(net.media.has(&format!("{key} bridged agent=Some(1)")));
    assert_eq!(net.acd_heard(), [format!("answered {key} 1")]);
    key
}

#[test]
fn an_offered_call_rings_every_agent_and_the_first_answer_takes_it() {
    let mut net = Net::new(46000);
    let key = net.call_in();
    net.offer(key, &[(1, "1001"), (2, "1002")]);
    // Both phones ring, from the caller's number, with an offer for one agent leg.
    for a in [AGENT1, AGENT2] {
        let (_, invite) = net.invite_at(a);
        assert!(
            invite
                .header(&HeaderName::From)
                .unwrap()
                .contains("13800138000")
        );
        assert!(
            std::str::from_utf8(invite.body())
                .unwrap()
                .contains("m=audio")
        );
    }
    assert_eq!(
        net.media
            .lines()
            .iter()
            .filter(|l| l.ends_with("agent leg"))
            .count(),
        1
    );
    net.answer(AGENT2, 200, Some(sdp("192.0.2.22", 31000)));
    // Agent 1's phone stops ringing; agent 2 is bridged; the ACD puts agent 2 on the call.
    assert_eq!(net.received(AGENT1), ["INVITE", "CANCEL"]);
    assert!(net.media.has(&format!("{key} ring 1 answered elsewhere")));
    assert!(net.media.has(&format!("{key} ring 2 answered")));
    assert!(net.media.has(&format!("{key} bridged agent=Some(2)")));
    assert_eq!(net.acd_heard(), [format!("answered {key} 2")]);
    assert_eq!(
        net.calls.calls[&key].stage,
        Stage::WithAgent {
            agent_leg: net.calls.calls[&key].stage.agent_leg().unwrap(),
            leg: net.dialog_of(AGENT2).flipped(),
            agent: 2
        }
    );
}

/// The hotline's view of a dialog the party sees from the other side.
trait Flip {
    fn flipped(self) -> DialogId;
}

impl Flip for DialogId {
    fn flipped(self) -> DialogId {
        DialogId {
            call_id: self.call_id,
            local_tag: self.remote_tag,
            remote_tag: self.local_tag,
        }
    }
}

#[test]
fn a_ring_the_acd_stops_is_cancelled_and_recorded_as_no_answer() {
    let mut net = Net::new(46040);
    let key = net.call_in();
    net.offer(key, &[(1, "1001")]);
    net.tell(Control::Offer(Offer::Stop(
        crate::acd::service::StopRinging {
            call: key,
            agents: vec![1],
        },
    )));
    assert_eq!(net.received(AGENT1), ["INVITE", "CANCEL"]);
    assert!(net.media.has(&format!("{key} ring 1 no answer")));
    // The agent leg stays set up for the next offer: the next agent rings on the same port.
    net.offer(key, &[(2, "1002")]);
    assert_eq!(
        net.media
            .lines()
            .iter()
            .filter(|l| l.ends_with("agent leg"))
            .count(),
        1
    );
    let port = |a: &str| {
        let (_, i) = net.invite_at(a);
        let body = String::from_utf8(i.body().to_vec()).unwrap();
        body.lines()
            .find(|l| l.starts_with("m=audio"))
            .unwrap()
            .to_string()
    };
    assert_eq!(port(AGENT1), port(AGENT2));
}

#[test]
fn a_busy_phone_counts_a_miss_and_an_unregistered_one_never_rings() {
    let mut net = Net::new(46080);
    let key = net.call_in();
    net.offer(key, &[(1, "1001"), (3, "1003")]);
    net.answer(AGENT1, 486, None);
    assert!(net.media.has(&format!("{key} ring 1 busy")));
    assert!(net.media.has(&format!("{key} ring 3 not registered")));
    let heard = net.acd_heard();
    assert!(
        heard.contains(&format!("ring failed {key} 3 miss=true")),
        "{heard:?}"
    );
    assert!(
        heard.contains(&format!("ring failed {key} 1 miss=true")),
        "{heard:?}"
    );
    assert!(
        net.calls.calls[&key].stage.agent_leg().is_some(),
        "the agent leg stays for the next offer"
    );
}

#[test]
fn an_answer_without_usable_sdp_is_hung_up_and_counts_as_a_failed_ring() {
    let mut net = Net::new(46120);
    let key = net.call_in();
    net.offer(key, &[(1, "1001")]);
    net.answer(AGENT1, 200, Some(b"not sdp".to_vec()));
    assert_eq!(
        net.ended(AGENT1),
        [EndReason::RemoteBye],
        "the phone is hung up"
    );
    assert!(net.media.has(&format!("{key} ring 1 failed")));
    assert_eq!(net.acd_heard(), [format!("ring failed {key} 1 miss=true")]);
    assert!(!net.media.lines().iter().any(|l| l.contains("bridged")));
}

#[test]
fn a_caller_who_hangs_up_while_agents_ring_stops_their_phones() {
    let mut net = Net::new(46160);
    let key = net.call_in();
    net.offer(key, &[(1, "1001"), (2, "1002")]);
    net.hang_up(CALLER);
    assert_eq!(net.received(AGENT1), ["INVITE", "CANCEL"]);
    assert_eq!(net.received(AGENT2), ["INVITE", "CANCEL"]);
    assert!(net.media.has(&format!("{key} ended caller hung up")));
    assert_eq!(net.calls.live(), 0);
    assert!(
        net.calls.placed.is_empty(),
        "nothing rings for the call any more"
    );
}

#[test]
fn hold_is_the_agent_on_the_call_s_alone() {
    let mut net = Net::new(46200);
    let key = bridged(&mut net);
    let id = call_id(&net, key);
    let hold = |agent, id: &str| {
        let id = id.to_string();
        move |reply| {
            Control::Hold(HoldControl {
                call_id: id,
                hold: true,
                agent,
                reply,
            })
        }
    };
    assert_eq!(
        net.control(hold(Some(2), &id)),
        Err(TransferRefused::NotYours(id.clone()))
    );
    assert_eq!(net.control(hold(Some(1), &id)), Ok(()));
    assert!(net.media.has(&format!("{key} agent hold true")));
    assert_eq!(
        net.control(hold(None, "no-such-call")),
        Err(TransferRefused::NoCall("no-such-call".into()))
    );
}

#[test]
fn an_agent_who_hangs_up_leaves_the_caller_to_the_script_and_can_no_longer_act() {
    let mut net = Net::new(46240);
    let key = bridged(&mut net);
    let id = call_id(&net, key);
    net.hang_up(AGENT1);
    assert!(net.media.has(&format!("{key} agent hung up")));
    assert_eq!(net.calls.calls[&key].stage, Stage::Ivr);
    assert!(net.ended(CALLER).is_empty(), "the caller stays on");
    let r = net.control(|reply| {
        Control::Hold(HoldControl {
            call_id: id.clone(),
            hold: true,
            agent: Some(1),
            reply,
        })
    });
    assert_eq!(r, Err(TransferRefused::NotYours(id)));
}

#[test]
fn an_agent_sends_the_caller_back_to_a_queue_and_its_leg_is_hung_up() {
    let mut net = Net::new(46280);
    let key = bridged(&mut net);
    let id = call_id(&net, key);
    let r = net.transfer(&id, TransferTarget::Queue("elderly".into()), Some(1));
    assert_eq!(r, Ok("elderly".to_string()));
    assert_eq!(net.ended(AGENT1), [EndReason::RemoteBye]);
    assert!(
        net.media
            .has(&format!("{key} requeue queue=Some(\"elderly\") agent=None"))
    );
    assert_eq!(net.calls.calls[&key].stage, Stage::Ivr);
    // An unknown emergency route is refused and changes nothing.
    let r = net.transfer(&id, TransferTarget::Emergency("999".into()), None);
    assert_eq!(r, Err(TransferRefused::NoRoute("999".into())));
    assert_eq!(net.calls.calls[&key].stage, Stage::Ivr);
    assert!(!net.media.lines().iter().any(|l| l.contains("transfer out")));
}

#[test]
fn an_emergency_transfer_places_the_call_and_bridges_the_route_when_it_answers() {
    let mut net = Net::new(46320);
    let key = bridged(&mut net);
    let id = call_id(&net, key);
    let r = net.transfer(&id, TransferTarget::Emergency("110".into()), Some(1));
    let uri = format!("sip:110@{EMERGENCY}");
    assert_eq!(r.as_deref(), Ok(uri.as_str()));
    assert!(net.media.has(&format!("{key} transfer out {uri}")));
    // The worker asks for the call to be placed (what it does on TransferOut).
    net.place_transfer(key);
    assert_eq!(net.calls.calls[&key].stage, Stage::Transferred);
    net.answer(EMERGENCY, 200, Some(sdp("192.0.2.31", 32000)));
    assert!(net.media.has(&format!("{key} bridged agent=None")));
    // The route hangs up: the call ends.
    net.hang_up(EMERGENCY);
    assert!(
        net.media
            .has(&format!("{key} ended transfer target hung up"))
    );
}

#[test]
fn a_transfer_target_that_does_not_answer_fails_the_transfer() {
    let mut net = Net::new(46360);
    let key = net.call_in();
    net.place_transfer(key);
    net.answer(EMERGENCY, 480, None);
    assert!(net.media.has(&format!("{key} transfer failed 480")));
}

#[test]
fn a_kept_callback_calls_the_caller_and_rings_the_agent_once_it_answers() {
    let mut net = Net::new(46400);
    net.tell(Control::Offer(Offer::Ring(RingAgents {
        call: 7,
        agents: vec![(1, Some("1001".into()))],
        callback: Some(CallbackDial {
            number: "13900139000".into(),
            called: "12345".into(),
            queue: "general".into(),
        }),
    })));
    // The carrier is called, to the caller's number, from the number the caller dialled.
    let (_, invite) = net.invite_at(CARRIER);
    assert_eq!(
        invite.request_uri_str(),
        Some(format!("sip:13900139000@{CARRIER}").as_str())
    );
    assert!(invite.header(&HeaderName::From).unwrap().contains("12345"));
    assert!(
        net.received(AGENT1).is_empty(),
        "no agent rings before the caller answers"
    );
    net.answer(CARRIER, 200, Some(sdp("192.0.2.30", 33000)));
    assert!(net.media.has("7 added 13900139000"));
    assert!(net.media.has("7 confirmed answer=false"));
    assert_eq!(net.acd_heard(), ["callback answered 7"]);
    assert_eq!(net.received(AGENT1), ["INVITE"]);
    let (_, ring) = net.invite_at(AGENT1);
    assert!(
        ring.header(&HeaderName::From)
            .unwrap()
            .contains("13900139000")
    );
}

#[test]
fn a_callback_nobody_answers_is_reported_to_the_acd_and_its_port_given_back() {
    let mut net = Net::new(46440);
    net.tell(Control::Offer(Offer::Ring(RingAgents {
        call: 8,
        agents: vec![(1, Some("1001".into()))],
        callback: Some(CallbackDial {
            number: "13900139000".into(),
            called: "12345".into(),
            queue: "general".into(),
        }),
    })));
    let held = net.calls.ports.lock().unwrap().in_use();
    net.answer(CARRIER, 486, None);
    assert_eq!(net.acd_heard(), ["callback failed 8 486"]);
    assert_eq!(net.calls.ports.lock().unwrap().in_use(), held - 1);
    assert!(net.received(AGENT1).is_empty());
}

/// Toll fraud (issue 22, item 7): a kept callback to a number outside `acd.callback_numbers`
/// (an international number an unauthenticated INVITE put in its From) is never dialled.
#[test]
fn a_callback_to_an_international_number_is_not_dialled() {
    let mut net = Net::new(46460);
    let held = net.calls.ports.lock().unwrap().in_use();
    net.tell(Control::Offer(Offer::Ring(RingAgents {
        call: 9,
        agents: vec![(1, Some("1001".into()))],
        callback: Some(CallbackDial {
            number: "0088216123456".into(),
            called: "12345".into(),
            queue: "general".into(),
        }),
    })));
    assert_eq!(net.acd_heard(), ["callback failed 9 0"]);
    assert!(net.received(CARRIER).is_empty(), "nothing dialled");
    assert_eq!(net.calls.ports.lock().unwrap().in_use(), held);
}

#[test]
fn a_supervisor_joins_changes_mode_and_leaves_one_at_a_time() {
    let mut net = Net::new(46480);
    let key = bridged(&mut net);
    let id = call_id(&net, key);
    let monitor = |device: &str, mode: Option<MonitorMode>| {
        let (id, device) = (id.clone(), device.to_string());
        move |reply| {
            Control::Monitor(MonitorControl {
                call_id: id,
                device: Some(device),
                mode,
                reply,
            })
        }
    };
    assert_eq!(
        net.control(monitor("1009", Some(MonitorMode::Listen))),
        Ok("ringing")
    );
    let (_, ring) = net.invite_at(SUPERVISOR);
    assert!(ring.header(&HeaderName::From).unwrap().contains("monitor"));
    // Another supervisor cannot take the call over meanwhile.
    assert_eq!(
        net.control(monitor("1002", Some(MonitorMode::Barge))),
        Err(TransferRefused::Monitored(id.clone()))
    );
    net.answer(SUPERVISOR, 200, Some(sdp("192.0.2.23", 34000)));
    assert!(net.media.has(&format!("{key} monitor listen")));
    assert_eq!(
        net.control(monitor("1009", Some(MonitorMode::Whisper))),
        Ok("changed")
    );
    assert!(net.media.has(&format!("{key} monitor mode whisper")));
    assert_eq!(net.control(monitor("1009", None)), Ok("left"));
    assert_eq!(net.ended(SUPERVISOR), [EndReason::RemoteBye]);
    assert!(net.media.has(&format!("{key} monitor ended")));
    // Nothing to monitor once the agent is gone.
    net.hang_up(AGENT1);
    assert_eq!(
        net.control(monitor("1009", Some(MonitorMode::Listen))),
        Err(TransferRefused::NotTalking(id))
    );
}

#[test]
fn a_supervisor_on_the_call_goes_with_the_agent() {
    let mut net = Net::new(46520);
    let key = bridged(&mut net);
    let id = call_id(&net, key);
    let r = net.control(|reply| {
        Control::Monitor(MonitorControl {
            call_id: id.clone(),
            device: Some("1009".into()),
            mode: Some(MonitorMode::Listen),
            reply,
        })
    });
    assert_eq!(r, Ok("ringing"));
    net.answer(SUPERVISOR, 200, Some(sdp("192.0.2.23", 34000)));
    net.hang_up(AGENT1);
    assert!(net.media.has(&format!("{key} agent hung up")));
    assert!(
        !net.calls.up.values().any(|l| l.is_monitor()),
        "the supervisor's leg is forgotten (the worker hangs it up)"
    );
}

#[test]
fn the_end_of_a_call_in_its_worker_stops_what_still_rings_for_it() {
    let mut net = Net::new(46560);
    let key = net.call_in();
    net.offer(key, &[(1, "1001")]);
    net.media_ends(key);
    // The next event the handler sees makes it forget the call.
    net.tell(Control::Offer(Offer::Announce(
        crate::acd::service::Announce {
            call: key,
            place: 1,
            minutes: 1,
        },
    )));
    assert_eq!(net.received(AGENT1), ["INVITE", "CANCEL"]);
    assert!(net.calls.calls.is_empty());
    assert!(
        !net.media.has(&format!("{key} announce 1 1")),
        "a call gone hears nothing"
    );
}

#[test]
fn a_re_invite_of_the_caller_or_the_agent_reaches_the_call_s_media() {
    let mut net = Net::new(46600);
    let key = bridged(&mut net);
    let d = net.dialog_of(CALLER);
    let now = net.now;
    net.party(CALLER)
        .ep
        .reinvite(now, &d, &sdp("192.0.2.10", 30002))
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(net.media.has(&format!("{key} update")));
    let d = net.dialog_of(AGENT1);
    let now = net.now;
    net.party(AGENT1)
        .ep
        .reinvite(now, &d, &sdp("192.0.2.21", 31002))
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(net.media.has(&format!("{key} update b")));
}

impl Net {
    /// The caller dials 12345 (its INVITE and what follows for 100 ms).
    fn dial(&mut self) {
        let offer = sdp("192.0.2.10", 30000);
        let now = self.now;
        self.party(CALLER)
            .ep
            .invite(
                now,
                udp(HOTLINE),
                "sip:12345@192.0.2.1",
                "13800138000",
                Some(&offer),
            )
            .unwrap();
        self.run_for(Duration::from_millis(100));
    }

    /// The caller dials 12345 once more; the final statuses of the caller's failed calls.
    fn dial_again(&mut self) -> Vec<u16> {
        self.dial();
        self.parties[&addr(CALLER)]
            .events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::Failed { status, .. } => Some(*status),
                _ => None,
            })
            .collect()
    }
}

/// Issue 22, item 7: one address that is not a trunk holds at most its cap of calls (503
/// beyond, and a place again once a call ends); a trunk is not capped.
#[test]
fn one_address_holds_at_most_its_cap_of_calls_and_a_trunk_is_not_capped() {
    let mut net = Net::new(46600);
    net.calls.cfg.max_calls_per_source = 2;
    let first = net.call_in();
    assert_eq!(net.dial_again(), Vec::<u16>::new());
    assert_eq!(net.calls.live(), 2);
    assert_eq!(net.dial_again(), [503], "the third call is refused");
    assert_eq!(net.calls.live(), 2);
    // A call ends: the address may call again.
    net.media_ends(first);
    net.tell(Control::Count);
    assert_eq!(net.dial_again(), [503], "answered, nothing more failed");
    assert_eq!(net.calls.live(), 2);
    // The same address listed as a trunk carries any number of calls.
    net.calls.cfg.trunks = vec!["192.0.2.0/28".parse().unwrap()];
    assert_eq!(net.dial_again(), [503]);
    assert_eq!(net.calls.live(), 3);
}

/// Issue 22, item 7: with `sip.trunks` set, a call from anywhere else is refused 403 and
/// nothing is bound for it.
#[test]
fn with_trunks_set_a_call_from_elsewhere_is_refused() {
    let mut net = Net::new(46640);
    net.calls.cfg.trunks = vec!["198.51.100.0/24".parse().unwrap()];
    assert_eq!(net.dial_again(), [403]);
    assert_eq!(net.calls.live(), 0);
    net.calls.cfg.trunks = vec!["192.0.2.10/32".parse().unwrap()];
    assert_eq!(net.dial_again(), [403], "the trunk's call is answered");
    assert_eq!(net.calls.live(), 1);
}
