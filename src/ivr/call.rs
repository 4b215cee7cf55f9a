//! One IVR call's media, sans-IO: a [`Session`] joined to an RTP stream.
//!
//! Prompts the session plays go out as G.711 RTP frames paced on the media clock (start +
//! n x 20 ms, so nothing drifts); when a prompt's last frame is sent the session hears
//! `PromptDone`. RFC 4733 telephone-events coming in become key presses (one per press,
//! however many updates and end packets carry it); when the caller's side agreed no
//! telephone-event, keys sent as tones in the audio are detected (Goertzel) instead. The
//! session's timers run on the same clock. Between prompts the stream carries silence, so the caller's side keeps receiving
//! media (NAT bindings, jitter buffers). Everything else the session asks for (queue,
//! transfer, hang-up, look-ups) comes out of [`IvrCall::poll_action`] for the application.
//!
//! No sockets and no clock: the driver passes `now`, feeds datagrams in, and sends what
//! [`IvrCall::poll_transmit`] returns when [`IvrCall::poll_timeout`] is due.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use hotline_sip::media::g711::{alaw_decode, ulaw_decode};
use hotline_sip::media::player::{Player, Prompt};
use hotline_sip::media::tone::ToneDetector;
use hotline_sip::rtp::dtmf::DtmfReceiver;
use hotline_sip::rtp::{RtpPacket, RtpSender};
use hotline_sip::sdp::Codec;

use super::script::Script;
use super::session::{Action, Event, Facts, Session};

/// Samples in one 20 ms frame at 8 kHz.
const FRAME: usize = 160;

/// One frame of silence in each law.
const SILENCE_PCMU: [u8; FRAME] = [Codec::Pcmu.silence(); FRAME];
const SILENCE_PCMA: [u8; FRAME] = [Codec::Pcma.silence(); FRAME];

/// One call in the IVR.
#[derive(Debug)]
pub struct IvrCall {
    script: Arc<Script>,
    session: Session,
    codec: Codec,
    telephone_event: Option<u8>,
    sender: RtpSender,
    ssrc: u32,
    seed: u64,
    /// Packet time in ms (20, 40 or 60: whole frames).
    ptime: u32,
    /// The payload being assembled.
    payload: Vec<u8>,
    dtmf: DtmfReceiver,
    /// In-band detection, when the caller's side offered no telephone-event (gateways that
    /// send keys as tones in the audio).
    inband: Option<ToneDetector>,
    /// The prompt playing, if any.
    player: Option<Player>,
    /// The session's timer: token and deadline.
    timer: Option<(u64, Instant)>,
    /// Packets ready to send.
    transmit: VecDeque<Vec<u8>>,
    /// Buffers of sent packets handed back ([`IvrCall::recycle`]), so the 50 packets a second
    /// reuse a few allocations.
    spare: Vec<Vec<u8>>,
    /// Actions for the application.
    actions: VecDeque<Action>,
    /// Every key the caller pressed, in order (bounded), for the call record.
    keys: String,
    started: bool,
    /// Bridged to an agent: the bridge carries the caller's stream, the IVR sends nothing.
    connected: bool,
    /// Played in a loop while the caller waits in a queue and nothing else is said.
    hold_music: Vec<Arc<Prompt>>,
    /// A callback: the call starts waiting for its agent instead of at the script's start.
    callback: bool,
}

/// Keys kept for the call record; a caller leaning on the keypad cannot grow it further.
const MAX_KEYS: usize = 256;

impl IvrCall {
    /// A call that will speak `codec` and receive digits on payload type `telephone_event`
    /// (as negotiated in SDP), sending as `ssrc`.
    pub fn new(
        script: Arc<Script>,
        codec: Codec,
        telephone_event: Option<u8>,
        ssrc: u32,
        seed: u64,
    ) -> Self {
        IvrCall {
            session: Session::new(Arc::clone(&script)),
            script,
            codec,
            telephone_event,
            sender: RtpSender::new(ssrc, codec.payload_type(), 20, seed),
            ssrc,
            seed,
            ptime: 20,
            payload: Vec::with_capacity(3 * FRAME),
            dtmf: DtmfReceiver::new(),
            inband: telephone_event.is_none().then(ToneDetector::new),
            player: None,
            timer: None,
            transmit: VecDeque::new(),
            spare: Vec::new(),
            actions: VecDeque::new(),
            keys: String::new(),
            started: false,
            connected: false,
            hold_music: Vec::new(),
            callback: false,
        }
    }

    /// A callback the hotline placed: when answered the caller waits for its agent with music
    /// on hold; the script's `after_agent` node follows the agent.
    pub fn for_callback(mut self) -> Self {
        self.callback = true;
        self
    }

    /// Music on hold for the callers the script puts in a queue (silence without it).
    pub fn with_hold_music(mut self, music: Vec<Arc<Prompt>>) -> Self {
        self.hold_music = music;
        self
    }

    /// The caller is bridged to an agent: the IVR falls silent (its timers wait) until
    /// [`IvrCall::agent_hung_up`].
    pub fn set_connected(&mut self) {
        self.connected = true;
        self.player = None;
    }

    /// Sends packets of `ms` (20, 40 or 60: what SDP agreed; anything else is taken as 20).
    /// Set before the call starts.
    pub fn with_ptime(mut self, ms: u32) -> Self {
        let ms = if matches!(ms, 20 | 40 | 60) { ms } else { 20 };
        if !self.started && ms != self.ptime {
            self.ptime = ms;
            self.sender = RtpSender::new(self.ssrc, self.codec.payload_type(), ms, self.seed);
        }
        self
    }

    /// The sequence number and timestamp of the last packet sent (a bridge taking over the
    /// caller's stream continues from them).
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        self.sender.last_sent()
    }

    /// The SSRC our stream is sent as.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A re-INVITE changed the codec or the telephone-event payload type.
    pub fn set_codec(&mut self, codec: Codec, telephone_event: Option<u8>) {
        self.codec = codec;
        self.telephone_event = telephone_event;
        if telephone_event.is_some() {
            self.inband = None;
        } else if self.inband.is_none() {
            self.inband = Some(ToneDetector::new());
        }
        self.sender.set_payload_type(codec.payload_type());
    }

    /// The session (its path and variables, for the call record).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The call is answered: the script starts and the first frame goes out now.
    pub fn start(&mut self, now: Instant, facts: &dyn Facts) {
        if self.started {
            return;
        }
        self.started = true;
        if self.callback {
            self.session.wait_for_callback();
        } else {
            self.event(now, Event::Start, facts);
        }
        self.handle_timeout(now, facts);
    }

    /// The application has spoken a look-up (knowledge, ticket status): play these prompts,
    /// then the script goes on.
    pub fn speak(&mut self, prompts: Vec<Arc<Prompt>>) {
        self.player = Some(Player::new(prompts, false));
        self.sender.talkspurt();
    }

    /// The agent hung up; the caller stays for the survey if the script has one. The IVR's
    /// stream continues after `last`, the bridge's last packet to the caller.
    pub fn agent_hung_up(&mut self, now: Instant, last: Option<(u16, u32)>, facts: &dyn Facts) {
        self.resume_after_bridge(now, last);
        self.event(now, Event::AgentHungUp, facts);
    }

    /// The bridge to the agent is gone: the IVR's stream (music on hold, while the caller
    /// waits again) continues after `last`, the bridge's last packet to the caller.
    pub fn resume_after_bridge(&mut self, now: Instant, last: Option<(u16, u32)>) {
        if std::mem::take(&mut self.connected)
            && let Some((seq, ts)) = last
        {
            self.sender.resume_after(now, seq, ts);
        }
    }

    /// A datagram from the caller's RTP port.
    pub fn handle_rtp(&mut self, now: Instant, datagram: &[u8], facts: &dyn Facts) {
        if let Ok(p) = RtpPacket::parse(datagram) {
            self.handle_packet(now, &p, facts);
        } // not RTP: ignored
    }

    /// An RTP packet from the caller, already parsed (the driver reads it once for all).
    pub fn handle_packet(&mut self, now: Instant, p: &RtpPacket<'_>, facts: &dyn Facts) {
        if Some(p.payload_type) == self.telephone_event {
            if let Some(d) = self.dtmf.on_packet(p.ssrc, p.timestamp, p.payload) {
                self.digit(now, d.digit, facts);
            }
            return;
        }
        // The caller's voice: the IVR listens only for keys sent as tones, and only when no
        // telephone-event was agreed (so one key is never heard both ways).
        if p.payload_type != self.codec.payload_type() {
            return;
        }
        let Some(detector) = self.inband.as_mut() else {
            return;
        };
        let mut linear = [0i16; 480];
        let n = p.payload.len().min(linear.len());
        for (out, b) in linear.iter_mut().zip(&p.payload[..n]) {
            *out = match self.codec {
                Codec::Pcmu => ulaw_decode(*b),
                Codec::Pcma => alaw_decode(*b),
            };
        }
        for key in detector.push(&linear[..n]) {
            self.digit(now, key, facts);
        }
    }

    /// A key pressed, however it came (RFC 4733 in [`IvrCall::handle_rtp`], SIP INFO, in-band
    /// detection): all take this way, so the script sees the same events.
    pub fn digit(&mut self, now: Instant, key: char, facts: &dyn Facts) {
        if self.keys.len() < MAX_KEYS {
            // A secret's keys (an access code) are kept as `*` in the call record.
            self.keys.push(if self.session.in_secret_input() {
                '*'
            } else {
                key
            });
        }
        self.event(now, Event::Digit(key), facts);
    }

    /// Every key the caller pressed, in order (the first 256).
    pub fn keys(&self) -> &str {
        &self.keys
    }

    /// When [`IvrCall::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.started || self.session.is_done() || self.connected {
            return None;
        }
        let media = self.sender.next_due();
        match (media, self.timer.map(|(_, at)| at)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends the frames that are due and fires the session's timer when it is due.
    pub fn handle_timeout(&mut self, now: Instant, facts: &dyn Facts) {
        if self.connected {
            return;
        }
        if let Some((token, at)) = self.timer
            && at <= now
        {
            self.timer = None;
            self.event(now, Event::Timeout(token), facts);
        }
        // Packets due by now (a late wake-up sends the ones it missed, keeping the clock); each
        // carries `ptime / 20` frames.
        let per_packet = (self.ptime / 20).max(1);
        let mut sent = 0;
        'packets: while !self.session.is_done()
            && self.sender.next_due().is_none_or(|due| due <= now)
            && sent < 50
        {
            sent += 1;
            self.payload.clear();
            for _ in 0..per_packet {
                if !self.advance_prompt(now, facts) {
                    break 'packets;
                }
                let codec = self.codec;
                if self.player.is_none() && self.session.is_queued() && !self.hold_music.is_empty()
                {
                    // The end of the music is a PromptDone the queue ignores; it starts over.
                    self.player = Some(Player::new(self.hold_music.clone(), false));
                }
                // The frame is borrowed from the decoded prompt (or the silence constant).
                let frame = match self.player.as_mut().and_then(|p| p.next_frame(codec)) {
                    Some(f) => f,
                    None => match codec {
                        Codec::Pcmu => &SILENCE_PCMU[..],
                        Codec::Pcma => &SILENCE_PCMA[..],
                    },
                };
                self.payload.extend_from_slice(frame);
            }
            let mut packet = self.spare.pop().unwrap_or_default();
            packet.clear();
            packet.extend_from_slice(self.sender.packet(now, &self.payload));
            self.transmit.push_back(packet);
        }
    }

    /// The next packet to send to the caller.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// Hands back a packet's buffer once it is sent, for the next packet to reuse.
    pub fn recycle(&mut self, packet: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(packet);
        }
    }

    /// The next thing the application must do (queue, transfer, hang up, look up, score).
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Ends the prompts whose last frame has played, now that the next frame is due, so the
    /// next prompt's first frame follows with no gap. `false` when the script has ended the
    /// call.
    fn advance_prompt(&mut self, now: Instant, facts: &dyn Facts) -> bool {
        // Bounded: each round is a prompt that ended; empty prompts in a row are few.
        for _ in 0..16 {
            match &self.player {
                Some(p) if p.finished() => {
                    self.player = None;
                    self.event(now, Event::PromptDone, facts);
                    if self.session.is_done() {
                        return false;
                    }
                }
                _ => break,
            }
        }
        true
    }

    fn event(&mut self, now: Instant, event: Event, facts: &dyn Facts) {
        for action in self.session.handle(event, facts) {
            match action {
                Action::Play { prompt } => {
                    // A prompt without audio (a text loaded without speech) plays as nothing.
                    let audio: Vec<_> = self.script.prompt(&prompt).into_iter().collect();
                    self.player = Some(Player::new(audio, false));
                    self.sender.talkspurt();
                }
                Action::StopPrompt => self.player = None,
                Action::Timer { token, after } => self.timer = Some((token, now + after)),
                other => self.actions.push_back(other),
            }
        }
    }
}

#[cfg(test)]
mod tests;
