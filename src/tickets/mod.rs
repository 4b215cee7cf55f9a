//! The 12345 ticket workflow (issue 7). So far: the working-day calendar its deadlines run on,
//! and the lifecycle as a pure state machine; the SQL and the HTTP API come next.

pub mod calendar;
pub mod workflow;
