//! The automatic call distributor (issue 8): its routing core ([`routing`]: queues, agents,
//! strategies, priorities, overflow, ring-no-answer and wrap-up as pure state on a virtual
//! clock) and the task that owns it ([`service`]: fed by the IVR's queue actions and the
//! agents' HTTP API, answering snapshots). Ringing agents' softphones, bridging, callbacks
//! and live events come next.

pub mod routing;
pub mod service;
