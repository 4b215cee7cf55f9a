//! Media processing (issue 4). So far: the G.711 codecs, prompts and their player, the stereo recorder, and in-band
//! DTMF detection.

pub mod g711;
pub mod player;
pub mod recorder;
pub mod relay;
pub mod tone;
