//! Three-party mixing for a supervisor on a call, sans-IO: one 20 ms frame of each party (the
//! caller, the agent, the supervisor) in, the frames each of them is to hear out.
//!
//! - listen: the supervisor hears caller and agent; nobody hears the supervisor;
//! - whisper: the agent hears the caller and the supervisor; the caller hears the agent only;
//! - barge: everyone hears the other two (a three-way call).
//!
//! Frames are G.711 in each leg's own law; sums saturate at full scale. A missing frame (a
//! party whose audio has not arrived) is silence.

use super::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use crate::sdp::Codec;

/// Samples in a 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// What a supervisor does on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorMode {
    /// Hears both parties; neither hears the supervisor.
    Listen,
    /// Speaks to the agent only (coaching); the caller does not hear it.
    Whisper,
    /// Joins the call: all three hear each other.
    Barge,
}

impl MonitorMode {
    /// The mode by its API name (`listen`, `whisper`, `barge`).
    pub fn parse(s: &str) -> Option<MonitorMode> {
        match s {
            "listen" => Some(MonitorMode::Listen),
            "whisper" => Some(MonitorMode::Whisper),
            "barge" => Some(MonitorMode::Barge),
            _ => None,
        }
    }

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    /// The agent hears a mix (caller and supervisor), not the caller's stream relayed.
    pub fn mixes_to_agent(self) -> bool {
        self != MonitorMode::Listen
    }

    /// The caller hears a mix (agent and supervisor), not the agent's stream relayed.
    pub fn mixes_to_caller(self) -> bool {
        self == MonitorMode::Barge
    }
}

/// One party's frame and its law (an empty frame is silence).
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    /// The G.711 bytes (up to 160).
    pub frame: &'a [u8],
    /// Their law.
    pub codec: Codec,
}

/// What each party is to hear for one frame, each in its own law.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mixed {
    /// Caller and agent (every mode).
    pub to_supervisor: [u8; FRAME],
    /// Caller and supervisor, when the mode mixes to the agent.
    pub to_agent: Option<[u8; FRAME]>,
    /// Agent and supervisor, when barging.
    pub to_caller: Option<[u8; FRAME]>,
    /// The office side (the agent, with the supervisor when whispering or barging) in the
    /// agent's law, for the recording's right channel.
    pub office: [u8; FRAME],
}

/// Mixes one frame of the three parties for `mode`.
pub fn mix(mode: MonitorMode, caller: Party<'_>, agent: Party<'_>, supervisor: Party<'_>) -> Mixed {
    let (c, a, s) = (pcm(caller), pcm(agent), pcm(supervisor));
    let speaks = mode != MonitorMode::Listen;
    let silent = [0i16; FRAME];
    let s_heard = if speaks { &s } else { &silent };
    Mixed {
        to_supervisor: encode(supervisor.codec, &c, &a),
        to_agent: mode
            .mixes_to_agent()
            .then(|| encode(agent.codec, &c, s_heard)),
        to_caller: mode
            .mixes_to_caller()
            .then(|| encode(caller.codec, &a, s_heard)),
        office: encode(agent.codec, &a, s_heard),
    }
}

/// A frame as linear samples (silence past its end).
fn pcm(p: Party<'_>) -> [i16; FRAME] {
    let mut out = [0i16; FRAME];
    for (o, &b) in out.iter_mut().zip(p.frame) {
        *o = match p.codec {
            Codec::Pcmu => ulaw_decode(b),
            Codec::Pcma => alaw_decode(b),
        };
    }
    out
}

/// The saturating sum of two frames in `codec`.
fn encode(codec: Codec, x: &[i16; FRAME], y: &[i16; FRAME]) -> [u8; FRAME] {
    let mut out = [0u8; FRAME];
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
        let s = a.saturating_add(b);
        *o = match codec {
            Codec::Pcmu => ulaw_encode(s),
            Codec::Pcma => alaw_encode(s),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, amplitude: f64) -> [i16; FRAME] {
        let mut out = [0i16; FRAME];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16;
        }
        out
    }

    fn law(codec: Codec, s: &[i16; FRAME]) -> [u8; FRAME] {
        encode(codec, s, &[0; FRAME])
    }

    /// The energy of `hz` in a frame (Goertzel), relative to the frame's energy.
    fn share(codec: Codec, frame: &[u8; FRAME], hz: f64) -> f64 {
        let s = pcm(Party { frame, codec });
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in &s {
            let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let total: f64 = s.iter().map(|&x| f64::from(x).powi(2)).sum();
        if total == 0.0 {
            0.0
        } else {
            power / (total * FRAME as f64 / 2.0)
        }
    }

    /// 400 Hz caller (mu-law), 1000 Hz agent (A-law), 2000 Hz supervisor (mu-law): whole
    /// cycles in 20 ms, so each tone's share is exact.
    fn frames() -> ([u8; FRAME], [u8; FRAME], [u8; FRAME]) {
        (
            law(Codec::Pcmu, &tone(400.0, 6000.0)),
            law(Codec::Pcma, &tone(1000.0, 6000.0)),
            law(Codec::Pcmu, &tone(2000.0, 6000.0)),
        )
    }

    fn run(mode: MonitorMode) -> Mixed {
        let (c, a, s) = frames();
        mix(
            mode,
            Party {
                frame: &c,
                codec: Codec::Pcmu,
            },
            Party {
                frame: &a,
                codec: Codec::Pcma,
            },
            Party {
                frame: &s,
                codec: Codec::Pcmu,
            },
        )
    }

    #[test]
    fn listening_the_supervisor_hears_both_and_nobody_hears_the_supervisor() {
        let m = run(MonitorMode::Listen);
        let sup = |hz| share(Codec::Pcmu, &m.to_supervisor, hz);
        assert!(
            sup(400.0) > 0.4 && sup(1000.0) > 0.4,
            "{} {}",
            sup(400.0),
            sup(1000.0)
        );
        assert!(sup(2000.0) < 0.01);
        assert_eq!(
            (m.to_agent, m.to_caller),
            (None, None),
            "both keep the relay"
        );
        assert!(share(Codec::Pcma, &m.office, 2000.0) < 0.01);
        assert!(share(Codec::Pcma, &m.office, 1000.0) > 0.95);
    }

    #[test]
    fn whispering_only_the_agent_hears_the_supervisor() {
        let m = run(MonitorMode::Whisper);
        let agent = m.to_agent.expect("the agent hears a mix");
        assert!(share(Codec::Pcma, &agent, 400.0) > 0.4);
        assert!(share(Codec::Pcma, &agent, 2000.0) > 0.4);
        assert!(
            share(Codec::Pcma, &agent, 1000.0) < 0.01,
            "not its own voice"
        );
        assert_eq!(
            m.to_caller, None,
            "the caller keeps hearing the agent alone"
        );
        assert!(share(Codec::Pcmu, &m.to_supervisor, 2000.0) < 0.01);
        assert!(share(Codec::Pcma, &m.office, 2000.0) > 0.4, "recorded");
    }

    #[test]
    fn barging_everyone_hears_the_other_two() {
        let m = run(MonitorMode::Barge);
        let caller = m.to_caller.expect("the caller hears a mix");
        let agent = m.to_agent.expect("the agent hears a mix");
        for (what, frame, codec, hears, not) in [
            ("caller", caller, Codec::Pcmu, [1000.0, 2000.0], 400.0),
            ("agent", agent, Codec::Pcma, [400.0, 2000.0], 1000.0),
            (
                "supervisor",
                m.to_supervisor,
                Codec::Pcmu,
                [400.0, 1000.0],
                2000.0,
            ),
        ] {
            for hz in hears {
                assert!(share(codec, &frame, hz) > 0.4, "{what} hears {hz} Hz");
            }
            assert!(
                share(codec, &frame, not) < 0.01,
                "{what} does not hear itself"
            );
        }
    }

    #[test]
    fn missing_frames_are_silence_and_loud_sums_saturate() {
        let loud = law(Codec::Pcmu, &[30_000; FRAME]);
        let m = mix(
            MonitorMode::Barge,
            Party {
                frame: &loud,
                codec: Codec::Pcmu,
            },
            Party {
                frame: &loud,
                codec: Codec::Pcmu,
            },
            Party {
                frame: &[],
                codec: Codec::Pcma,
            },
        );
        let sup = pcm(Party {
            frame: &m.to_supervisor,
            codec: Codec::Pcma,
        });
        assert!(
            sup.iter().all(|&x| x > 30_000),
            "clipped, not wrapped: {}",
            sup[0]
        );
        let caller = pcm(Party {
            frame: &m.to_caller.unwrap_or([0; FRAME]),
            codec: Codec::Pcmu,
        });
        let agent = pcm(Party {
            frame: &m.office,
            codec: Codec::Pcmu,
        });
        assert_eq!(caller, agent, "the silent supervisor adds nothing");
    }
}
