//! Media processing (issue 4). So far: the G.711 codecs and in-band DTMF detection.

pub mod g711;
pub mod tone;
