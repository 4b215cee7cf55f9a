//! Hotline's SIP/RTP engine.
//!
//! This crate knows nothing of queues, tickets or HTTP. It is built sans-IO (see
//! `../shared/DESIGN.md`): bytes and the current time go in; datagrams to send, events and the
//! next deadline come out. The application owns the sockets and the clock.
//!
//! - [`dialog`]: dialog state and in-dialog request building (RFC 3261 12).
//! - [`endpoint`]: transactions, registrar and the UAS rules of RFC 3261 8.2 in one object.
//! - [`media`]: media ports: G.711 mu-law and A-law by table, prompts and their player, the
//!   stereo recorder, relays between legs (with transcoding), the supervisor's mix, in-band
//!   DTMF detection (Goertzel).
//! - [`message`]: the strict RFC 3261 parser and serializer, typed headers, URIs, and stream
//!   framing; the ABNF's character classes in their own module, read sixteen octets at a
//!   time where the CPU can (SSE2/SSSE3, the crate's only `unsafe`).
//! - [`auth`]: digest authentication (SHA-256, MD5), nonces that expire and resist replay.
//! - [`registrar`]: REGISTER with digest authentication, bindings, throttling.
//! - [`rtp`]: RTP packets (RFC 3550), telephone-event payloads (RFC 4733), the jitter buffer,
//!   RTCP packets and the per-leg RTCP session, port allocation and latching.
//! - [`sdp`]: SDP parsing and the RFC 3264 offer/answer for G.711 and telephone-event.
//! - [`transaction`]: RFC 3261 client and server transactions (with RFC 6026), timers as data.
#![warn(missing_docs)]

pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod media;
pub mod message;
pub mod registrar;
pub mod rtp;
pub mod sdp;
pub mod transaction;
