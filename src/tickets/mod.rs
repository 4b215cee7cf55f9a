//! The 12345 ticket workflow (issue 7). So far: the working-day calendar its deadlines run on.

pub mod calendar;
