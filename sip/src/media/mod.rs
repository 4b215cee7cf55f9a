//! Media processing (issue 4). So far: the G.711 codecs, prompts and their player, the stereo recorder, in-band
//! DTMF detection, the bridge's relay and the supervisor's three-party mix.

pub mod g711;
pub mod mix;
pub mod player;
pub mod recorder;
pub mod relay;
pub mod tone;
