//! Media processing (issue 4). So far: the G.711 codecs the hotline speaks.

pub mod g711;
