//! What is particular to China and shared by several domains: the official working-day
//! calendar and China Standard Time (ticket deadlines, the IVR's time conditions, the
//! knowledge base's validity dates, the ACD's day), and Chinese text helpers (Han characters,
//! the stopwords of spoken questions) for knowledge-base search and ticket terms. It imports
//! no other module of the application.

pub mod calendar;
pub mod text;
