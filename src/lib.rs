//! Hotline: the call-center application of a city's 12345 government-service hotline.
//!
//! The SIP/RTP engine lives in the `hotline-sip` crate; this crate holds configuration, the
//! database, the HTTP server and (as their issues land) the IVR, ACD, tickets and knowledge base.

pub mod acd;
pub mod audit;
pub mod calls;
pub mod china;
pub mod config;
pub mod db;
pub mod embedded;
pub mod engine;
pub mod http;
pub mod ivr;
pub mod kb;
pub mod logging;
pub mod mask;
pub mod node;
pub mod random;
pub mod serve;
pub mod telemetry;
pub mod tickets;
pub mod users;
