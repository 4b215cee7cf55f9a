//! The 12345 ticket workflow (issue 7): the working-day calendar its deadlines run on, the
//! lifecycle as a pure state machine, and its storage in PostgreSQL. The HTTP API is
//! `src/http/tickets.rs` (staff), `src/http/public.rs` (citizens) and `src/http/open311.rs`.

pub mod calendar;
pub mod citizen;
pub mod store;
pub mod terms;
pub mod workflow;
