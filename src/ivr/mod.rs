//! The IVR: scripts a caller walks through before (or instead of) reaching an agent.
//!
//! `script` owns the file format and its load-time validation; `session` runs a script
//! against one call, sans-IO (events in, actions out); `call` joins a session to its RTP
//! stream (prompts out, RFC 4733 keys in); `facts` answers its conditions for a
//! real call (China time, the official working-day calendar); `walk` is a dry run for script
//! authors; `store` holds the script in force and reloads it.

pub mod call;
pub mod facts;
pub mod script;
pub mod session;
pub mod store;
pub mod tts;
pub mod walk;
