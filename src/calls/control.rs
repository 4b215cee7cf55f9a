//! What the handler does with the controls of a call in progress (the messages are
//! [`super::messages`]'s): an agent or supervisor transfers the caller or holds it, a
//! supervisor joins, changes mode or leaves, the recording pauses; and the ACD's
//! announcements of a waiting caller's place. An agent may act only on a call bridged to it.

use std::time::Instant;

use hotline_sip::endpoint::{DialogId, Endpoint};

use super::legs::{Leg, LegKind};
use super::media::ToMedia;
use super::messages::{
    HoldControl, MonitorControl, RecordingControl, TransferControl, TransferRefused, TransferTarget,
};
use super::{Calls, Stage};
use crate::acd::service::Announce;

impl Calls {
    /// Pauses or resumes a call's recording; the reply says whether the call was found.
    pub(super) fn recording_control(&mut self, control: RecordingControl) {
        let key = self.call_by_id(&control.call_id).map(|(k, _)| k);
        if let Some(key) = key {
            self.tell(key, ToMedia::PauseRecording(control.pause));
        }
        let _ = control.reply.send(key.is_some() && self.workers.is_some());
    }

    /// The call in progress with this Call-ID as an agent (`asking`; `None`: a supervisor)
    /// may act on it: its key and its agent leg (dialog, agent) if it has one. An agent may
    /// act only on a call bridged to that agent.
    fn agent_call(
        &self,
        call_id: &str,
        asking: Option<u64>,
    ) -> Result<(u64, Option<(DialogId, u64)>), TransferRefused> {
        let Some((key, call)) = self.call_by_id(call_id) else {
            return Err(TransferRefused::NoCall(call_id.to_string()));
        };
        let agent_leg = match &call.stage {
            Stage::WithAgent { leg, agent, .. } => Some((leg.clone(), *agent)),
            _ => None,
        };
        if let Some(asking) = asking
            && agent_leg.as_ref().map(|(_, a)| *a) != Some(asking)
        {
            return Err(TransferRefused::NotYours(call_id.to_string()));
        }
        Ok((key, agent_leg))
    }

    /// The agent on the call (or a supervisor) holds the caller or takes it back.
    pub(super) fn hold_control(&mut self, h: HoldControl) {
        match self.agent_call(&h.call_id, h.agent) {
            Ok((key, Some(_))) => {
                self.tell(key, ToMedia::AgentHold(h.hold));
                let _ = h.reply.send(Ok(()));
            }
            Ok((_, None)) => {
                let _ = h.reply.send(Err(TransferRefused::NoCall(h.call_id)));
            }
            Err(e) => {
                let _ = h.reply.send(Err(e));
            }
        }
    }

    /// A supervisor joins a call (its phone rings), changes mode, or leaves.
    pub(super) fn monitor_control(&mut self, ep: &mut Endpoint, now: Instant, m: MonitorControl) {
        let reply = |r| {
            let _ = m.reply.send(r);
        };
        let key = match self.agent_call(&m.call_id, None) {
            Ok((key, Some(_))) => key,
            Ok((_, None)) => return reply(Err(TransferRefused::NotTalking(m.call_id))),
            Err(e) => return reply(Err(e)),
        };
        let device_of = |l: &Leg| match &l.kind {
            LegKind::Monitor { device, .. } if l.key == key => Some(device.clone()),
            _ => None,
        };
        let on_call = self
            .up
            .iter()
            .find_map(|(d, l)| device_of(l).map(|device| (d.clone(), device)));
        let ringing = self.placed.values().find_map(device_of);
        // One supervisor at a time on a call: another's mode is not changed under them.
        let holder = on_call.as_ref().map(|(_, d)| d.clone()).or(ringing.clone());
        if let (Some(_), Some(holder), Some(asking)) = (m.mode, &holder, &m.device)
            && holder != asking
        {
            return reply(Err(TransferRefused::Monitored(m.call_id)));
        }
        let on_call = on_call.map(|(d, _)| d);
        let Some(mode) = m.mode else {
            // Leave: hang up the leg, or stop its phone ringing.
            let had_ring = self.cancel_monitor_rings(ep, now, key);
            if let Some(dialog) = on_call {
                self.up.remove(&dialog);
                let _ = ep.bye(now, &dialog);
                self.tell(key, ToMedia::MonitorEnded);
            } else if !had_ring {
                return reply(Err(TransferRefused::NoCall(format!(
                    "{} (no supervisor on it)",
                    m.call_id
                ))));
            }
            return reply(Ok("left"));
        };
        if ringing.is_some() {
            for leg in self.placed.values_mut().filter(|l| l.key == key) {
                if let LegKind::Monitor { mode: ringing, .. } = &mut leg.kind {
                    *ringing = mode;
                }
            }
            return reply(Ok("ringing"));
        }
        if on_call.is_some() {
            self.tell(key, ToMedia::MonitorMode(mode));
            return reply(Ok("changed"));
        }
        let device = m.device.unwrap_or_default();
        match self.ring_monitor(ep, now, key, device, mode) {
            Ok(()) => reply(Ok("ringing")),
            Err(device) => reply(Err(TransferRefused::NoPhone(device))),
        }
    }

    /// An agent or supervisor transfers a call in progress: the agent's leg is hung up and
    /// the worker sends the caller on (an emergency route, with ringback, or a queue).
    pub(super) fn transfer_control(&mut self, ep: &mut Endpoint, now: Instant, t: TransferControl) {
        let (key, agent_leg) = match self.agent_call(&t.call_id, t.agent) {
            Ok(x) => x,
            Err(e) => {
                let _ = t.reply.send(Err(e));
                return;
            }
        };
        let (news, done) = match &t.to {
            TransferTarget::Emergency(name) => match self.cfg.emergency_routes.get(name) {
                Some(uri) => (ToMedia::TransferOut { uri: uri.clone() }, uri.clone()),
                None => {
                    let _ = t.reply.send(Err(TransferRefused::NoRoute(name.clone())));
                    return;
                }
            },
            TransferTarget::Queue(q) => (
                ToMedia::Requeue {
                    queue: Some(q.clone()),
                    agent: None,
                },
                q.clone(),
            ),
            TransferTarget::Agent(a) => (
                ToMedia::Requeue {
                    queue: None,
                    agent: Some(*a),
                },
                format!("agent {a}"),
            ),
        };
        if let Some((dialog, _)) = agent_leg {
            self.up.remove(&dialog);
            let _ = ep.bye(now, &dialog);
        }
        // A supervisor on the call leaves with the agent (the worker hangs the leg up).
        self.up.retain(|_, l| !(l.key == key && l.is_monitor()));
        self.cancel_monitor_rings(ep, now, key);
        if let Some(call) = self.calls.get_mut(&key) {
            call.stage = Stage::Ivr;
        }
        tracing::info!(call_id = %t.call_id, to = %done, "the agent transferred the caller");
        self.tell(key, news);
        let _ = t.reply.send(Ok(done));
    }

    /// The ACD has a waiting caller told its place and the estimated wait.
    pub(super) fn announce(&self, a: Announce) {
        self.tell(
            a.call,
            ToMedia::Announce {
                place: a.place,
                minutes: a.minutes,
            },
        );
    }
}
