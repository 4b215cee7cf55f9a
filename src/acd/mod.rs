//! The automatic call distributor (issue 8): its routing core ([`routing`]: queues, agents,
//! strategies, priorities, overflow, ring-no-answer and wrap-up as pure state on a virtual
//! clock) and the task that owns it ([`service`]: fed by the IVR's queue actions and the
//! agents' HTTP API, answering snapshots), and the hotline KPIs computed from call records
//! ([`kpi`]: per queue, agent and interval; the wall board's arithmetic), and the wall
//! board's alerts ([`alerts`]), and the agents' state history ([`history`]), and what of it outlives the process
//! ([`store`]).

pub mod alerts;
pub mod frequent;
pub mod history;
pub mod kpi;
pub mod routing;
pub mod service;
pub mod store;
pub mod view;
