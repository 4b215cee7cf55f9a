//! The IVR: scripts a caller walks through before (or instead of) reaching an agent.
//!
//! `script` owns the file format and its load-time validation; the interpreter that runs a
//! script against a call comes with issue 5.

pub mod script;
