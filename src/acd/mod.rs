//! The automatic call distributor (issue 8). So far its routing core ([`routing`]): queues,
//! agents, strategies, priorities, overflow, ring-no-answer and wrap-up as pure state on a
//! virtual clock. The task that owns it, the SIP legs to agents, call records and live events
//! come next.

pub mod routing;
