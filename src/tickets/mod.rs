//! The 12345 ticket workflow (issue 7): the lifecycle as a pure state machine over the
//! working-day calendar (`crate::china::calendar`), and its storage in PostgreSQL. The HTTP API is
//! `src/http/tickets.rs` (staff), `src/http/public.rs` (citizens) and `src/http/open311.rs`.

pub mod citizen;
pub mod settings;
pub mod store;
pub mod terms;
pub mod workflow;
