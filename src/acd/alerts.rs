//! Alerts for the supervisors' wall board, from a snapshot of queues and agents (pure): a
//! queue whose longest wait passed its service-level target, the connection rate of the last
//! 24 hours under the national floor (95 %, GB/T 33358-2016), an agent too long in one state
//! (on a call, in wrap-up, paused, ringing). They go out in every snapshot on the live feed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::view::{AgentView, QueueView};

/// When an alert is raised.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Seconds an agent may stay in a state (`on_call`, `wrap_up`, `paused`, `ringing`,
    /// `available`) before an alert; states not named never alert.
    pub stuck_secs: BTreeMap<String, u64>,
    /// The lowest acceptable connection rate over 24 hours, percent.
    pub min_connection_pct: f64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            stuck_secs: default_stuck(),
            min_connection_pct: 95.0,
        }
    }
}

/// Twenty minutes on one call, five in wrap-up, fifteen paused, one ringing.
pub fn default_stuck() -> BTreeMap<String, u64> {
    [
        ("on_call", 1200),
        ("wrap_up", 300),
        ("paused", 900),
        ("ringing", 60),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The agent states an alert may name.
pub const STATES: &[&str] = &[
    "available",
    "ringing",
    "on_call",
    "wrap_up",
    "paused",
    "offline",
];

/// One alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// `long_wait`, `connection_rate` or `agent_stuck`.
    pub kind: &'static str,
    /// What it is about: the queue's name, `hotline`, or `agent:ID`.
    pub subject: String,
    /// For people.
    pub message: String,
    /// The value now (seconds, percent).
    pub value: f64,
    /// The limit it passed.
    pub limit: f64,
}

/// The alerts for this moment. `connection_pct` is the connection rate of the last 24 hours
/// (`None` before any call was answered or abandoned).
pub fn alerts(
    queues: &[QueueView],
    agents: &[AgentView],
    connection_pct: Option<f64>,
    s: &AlertSettings,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for q in queues {
        if q.waiting > 0 && q.longest_wait_secs > q.target_secs {
            out.push(Alert {
                kind: "long_wait",
                subject: q.name.clone(),
                message: format!(
                    "queue {}: a caller has waited {} s (target {} s)",
                    q.name, q.longest_wait_secs, q.target_secs
                ),
                value: q.longest_wait_secs as f64,
                limit: q.target_secs as f64,
            });
        }
    }
    if let Some(pct) = connection_pct
        && pct < s.min_connection_pct
    {
        out.push(Alert {
            kind: "connection_rate",
            subject: "hotline".into(),
            message: format!(
                "connection rate over the last 24 hours {pct:.1} % (at least {} %)",
                s.min_connection_pct
            ),
            value: pct,
            limit: s.min_connection_pct,
        });
    }
    for a in agents {
        if let Some(&limit) = s.stuck_secs.get(a.state)
            && a.secs_in_state > limit
        {
            out.push(Alert {
                kind: "agent_stuck",
                subject: format!("agent:{}", a.id),
                message: format!(
                    "agent {} {} for {} s (limit {limit} s)",
                    a.id,
                    a.state.replace('_', " "),
                    a.secs_in_state
                ),
                value: a.secs_in_state as f64,
                limit: limit as f64,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, waiting: usize, longest: u64) -> QueueView {
        QueueView {
            name: name.into(),
            waiting,
            longest_wait_secs: longest,
            offered_today: 0,
            answered_today: 0,
            answered_in_target_today: 0,
            abandoned_today: 0,
            callbacks_today: 0,
            target_secs: 15,
            service_level_pct: None,
            abandon_rate_pct: None,
        }
    }

    fn agent(id: u64, state: &'static str, secs: u64) -> AgentView {
        AgentView {
            id,
            state,
            reason: None,
            secs_in_state: secs,
            queues: vec!["general".into()],
            answered_today: 0,
            call_id: None,
        }
    }

    #[test]
    fn a_wait_past_the_target_alerts_and_one_at_it_does_not() {
        let s = AlertSettings::default();
        let a = alerts(
            &[
                queue("general", 2, 16),
                queue("backup", 1, 15),
                queue("empty", 0, 99),
            ],
            &[],
            None,
            &s,
        );
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!((a[0].kind, a[0].subject.as_str()), ("long_wait", "general"));
        assert_eq!((a[0].value, a[0].limit), (16.0, 15.0));
    }

    #[test]
    fn the_connection_rate_alerts_under_95_percent() {
        let s = AlertSettings::default();
        assert!(alerts(&[], &[], Some(95.0), &s).is_empty());
        assert!(
            alerts(&[], &[], None, &s).is_empty(),
            "no calls yet: no rate"
        );
        let a = alerts(&[], &[], Some(94.9), &s);
        assert_eq!((a[0].kind, a[0].value), ("connection_rate", 94.9));
    }

    #[test]
    fn an_agent_too_long_in_a_state_alerts_by_that_states_limit() {
        let s = AlertSettings::default();
        let a = alerts(
            &[],
            &[
                agent(1, "on_call", 1201),
                agent(2, "on_call", 1200),
                agent(3, "paused", 901),
                agent(4, "available", 100_000),
                agent(5, "wrap_up", 301),
            ],
            None,
            &s,
        );
        let who: Vec<&str> = a.iter().map(|a| a.subject.as_str()).collect();
        assert_eq!(who, ["agent:1", "agent:3", "agent:5"]);
        assert!(
            a[1].message.contains("paused for 901 s"),
            "{}",
            a[1].message
        );
    }
}
