//! Hotline KPIs from call records (issue 10's arithmetic, pure): per queue, per agent and per
//! interval (15 minutes, hour, day, month, in China time), from the `calls` rows of calls that
//! reached a queue. No I/O: the caller reads the rows; tests check the sums by hand.
//!
//! Definitions (the same denominators as the live snapshot's service level):
//! - **offered**: calls that entered a queue in the interval (by the time they were first
//!   queued); callbacks the hotline placed are counted apart, as **callbacks made**;
//! - **answered**: offered calls an agent answered; **abandoned**: offered calls whose caller
//!   hung up while waiting;
//! - **answered within 15 s**: answered with at most 15 s from queueing to the agent's answer
//!   (GB/T 33358-2016); its **rate** is over answered + abandoned (calls still waiting or that
//!   left by a callback or self-service are not counted against it);
//! - **connection rate**: answered / (answered + abandoned) (GB/T 33358-2016: at least 95 %
//!   over any 24 hours);
//! - **average speed of answer**: mean seconds from queueing to the agent's answer;
//! - **average handle time**: mean seconds from the agent's answer to the end of the call
//!   (talk; wrap-up is not in the call records);
//! - **occupancy**: the agents' time on calls or in wrap-up over their staffed time
//!   (available, ringing, on a call, in wrap-up; not paused) in the interval, from the agents'
//!   state history (`agent_states`); per queue, the time of agents logged into it.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike, Utc};

use crate::china::calendar::china_time;

/// One call as the KPIs see it (a `calls` row that reached a queue).
#[derive(Debug, Clone, PartialEq)]
pub struct CallFact {
    /// The queue it was offered to.
    pub queue: String,
    /// The agent who answered it.
    pub agent: Option<u64>,
    /// When it was first queued.
    pub queued_at: DateTime<Utc>,
    /// When the agent answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// `abandoned` when the caller hung up while waiting (the record's outcome).
    pub abandoned: bool,
    /// A call the hotline placed (a callback), not one offered by a caller.
    pub callback: bool,
}

/// The interval KPIs are summed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// 15 minutes.
    Quarter,
    /// An hour.
    Hour,
    /// A day (China time).
    Day,
    /// A calendar month (China time).
    Month,
}

impl Interval {
    /// Parses `15m`, `hour`, `day`, `month`.
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "15m" | "quarter" => Some(Interval::Quarter),
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    /// The start of the interval holding `t`, in China time (UTC+8).
    pub fn start(self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        let cn = china_time();
        let local = t.with_timezone(&cn);
        let (y, mo, d, h, mi) = (
            local.year(),
            local.month(),
            local.day(),
            local.hour(),
            local.minute(),
        );
        let at = |y, mo, d, h, mi| {
            cn.with_ymd_and_hms(y, mo, d, h, mi, 0)
                .single()
                .unwrap_or(local)
        };
        match self {
            Interval::Quarter => at(y, mo, d, h, mi - mi % 15),
            Interval::Hour => at(y, mo, d, h, 0),
            Interval::Day => at(y, mo, d, 0, 0),
            Interval::Month => at(y, mo, 1, 0, 0),
        }
    }
}

impl Interval {
    /// The start of the interval after the one starting at `start`.
    pub fn next(self, start: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        match self {
            Interval::Quarter => start + chrono::TimeDelta::minutes(15),
            Interval::Hour => start + chrono::TimeDelta::hours(1),
            Interval::Day => start + chrono::TimeDelta::days(1),
            Interval::Month => start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(start + chrono::TimeDelta::days(31)),
        }
    }
}

/// The sums of one group (a queue or agent in an interval).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpi {
    /// Calls offered.
    pub offered: u32,
    /// Answered by an agent.
    pub answered: u32,
    /// Callers who hung up while waiting.
    pub abandoned: u32,
    /// Answered within 15 s of queueing.
    pub answered_15s: u32,
    /// Callbacks the hotline placed.
    pub callbacks_made: u32,
    /// Seconds from queueing to answer, summed over answered calls.
    pub wait_secs: f64,
    /// Seconds from answer to end, summed over answered calls.
    pub handle_secs: f64,
    /// Agents' seconds on calls or in wrap-up.
    pub busy_secs: f64,
    /// Agents' staffed seconds (available, ringing, on a call, in wrap-up).
    pub staffed_secs: f64,
}

impl Kpi {
    fn add(&mut self, c: &CallFact) {
        if c.callback {
            self.callbacks_made += 1;
            return;
        }
        self.offered += 1;
        if c.abandoned {
            self.abandoned += 1;
        }
        if let Some(answered) = c.answered_at {
            self.answered += 1;
            let wait = secs(answered - c.queued_at);
            self.wait_secs += wait;
            self.handle_secs += secs(c.ended_at - answered);
            if wait <= 15.0 {
                self.answered_15s += 1;
            }
        }
    }

    /// Answered within 15 s over answered + abandoned, in %.
    pub fn answer_15s_rate(&self) -> Option<f64> {
        pct(self.answered_15s, self.answered + self.abandoned)
    }

    /// Answered over answered + abandoned, in %.
    pub fn connection_rate(&self) -> Option<f64> {
        pct(self.answered, self.answered + self.abandoned)
    }

    /// Mean seconds to answer.
    pub fn average_speed_of_answer(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.wait_secs / f64::from(self.answered))
    }

    /// Mean seconds of handling (talk).
    pub fn average_handle_time(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.handle_secs / f64::from(self.answered))
    }

    /// Busy over staffed time, in %.
    pub fn occupancy(&self) -> Option<f64> {
        (self.staffed_secs > 0.0).then(|| self.busy_secs * 100.0 / self.staffed_secs)
    }
}

/// A stretch of one agent's state history (an `agent_states` row).
#[derive(Debug, Clone, PartialEq)]
pub struct StateSpan {
    /// The agent.
    pub agent: u64,
    /// The queues it was logged into.
    pub queues: Vec<String>,
    /// `available`, `ringing`, `on_call`, `wrap_up`, `paused`, ...
    pub state: String,
    /// From, to (the row's end, or now for the state an agent is in).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Adds the agents' busy and staffed time of `spans` to `table`, split at the intervals'
/// boundaries and clipped to `from..to`; intervals with staffed time and no calls get rows.
pub fn add_occupancy(
    table: &mut BTreeMap<(DateTime<FixedOffset>, String), Kpi>,
    spans: &[StateSpan],
    interval: Interval,
    by: By,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    for s in spans {
        let staffed = matches!(
            s.state.as_str(),
            "available" | "ringing" | "on_call" | "wrap_up"
        );
        if !staffed {
            continue;
        }
        let busy = matches!(s.state.as_str(), "on_call" | "wrap_up");
        let keys: Vec<String> = match by {
            By::Queue => s.queues.clone(),
            By::Agent => vec![s.agent.to_string()],
        };
        let (mut t, end) = (s.start.max(from), s.end.min(to));
        while t < end {
            let start = interval.start(t);
            let next = interval.next(start).with_timezone(&Utc).min(end);
            let d = secs(next - t);
            for k in &keys {
                let e = table.entry((start, k.clone())).or_default();
                e.staffed_secs += d;
                if busy {
                    e.busy_secs += d;
                }
            }
            t = next;
        }
    }
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

fn pct(n: u32, of: u32) -> Option<f64> {
    (of > 0).then(|| f64::from(n) * 100.0 / f64::from(of))
}

/// What to group by besides the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Per queue.
    Queue,
    /// Per agent (only calls an agent answered).
    Agent,
}

/// The KPIs of `calls`, per interval start and queue name or agent id.
pub fn kpis(
    calls: &[CallFact],
    interval: Interval,
    by: By,
) -> BTreeMap<(DateTime<FixedOffset>, String), Kpi> {
    let mut out: BTreeMap<(DateTime<FixedOffset>, String), Kpi> = BTreeMap::new();
    for c in calls {
        let key = match by {
            By::Queue => c.queue.clone(),
            By::Agent => match c.agent {
                Some(a) => a.to_string(),
                None => continue,
            },
        };
        out.entry((interval.start(c.queued_at), key))
            .or_default()
            .add(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(agent: u64, state: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> StateSpan {
        StateSpan {
            agent,
            queues: vec!["general".into()],
            state: state.into(),
            start: from,
            end: to,
        }
    }

    /// Agent 1 from 08:50: available until 09:05, on a call until 09:20, wrap-up until 09:21,
    /// paused until 09:40, available until 10:00. Agent 2 on a call 09:10-09:14 and available
    /// until 09:30. Asked for 09:00-10:00 by quarter hour and by hour:
    /// - 09:00-09:15: agent 1 staffed 15 min, busy 10; agent 2 staffed 5, busy 4;
    ///   general: busy 14 of 20 min = 70 %;
    /// - 09:15-09:30: agent 1 staffed 6 (5 on call, 1 wrap-up), busy 6; agent 2 staffed 15,
    ///   busy 0; general 6 of 21;
    /// - 09:30-09:45: agent 1 available 09:40-09:45: 5, busy 0;
    /// - the hour, agent 1: staffed 15 + 6 + 20 = 41 min, busy 16 min (39.0 %).
    #[test]
    fn occupancy_is_busy_over_staffed_time_split_at_interval_boundaries() {
        let spans = [
            span(1, "available", at(8, 50, 0), at(9, 5, 0)),
            span(1, "on_call", at(9, 5, 0), at(9, 20, 0)),
            span(1, "wrap_up", at(9, 20, 0), at(9, 21, 0)),
            span(1, "paused", at(9, 21, 0), at(9, 40, 0)),
            span(1, "available", at(9, 40, 0), at(10, 30, 0)),
            span(2, "on_call", at(9, 10, 0), at(9, 14, 0)),
            span(2, "available", at(9, 14, 0), at(9, 30, 0)),
        ];
        let (from, to) = (at(9, 0, 0), at(10, 0, 0));
        let mut q = BTreeMap::new();
        add_occupancy(&mut q, &spans, Interval::Quarter, By::Queue, from, to);
        let get = |t: &BTreeMap<_, Kpi>, h, m, k: &str| {
            t.get(&(Interval::Quarter.start(at(h, m, 0)), k.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        let first = get(&q, 9, 0, "general");
        assert_eq!(
            (first.busy_secs, first.staffed_secs),
            (14.0 * 60.0, 20.0 * 60.0)
        );
        assert_eq!(first.occupancy(), Some(70.0));
        let second = get(&q, 9, 15, "general");
        assert_eq!(
            (second.busy_secs, second.staffed_secs),
            (6.0 * 60.0, 21.0 * 60.0)
        );
        let third = get(&q, 9, 30, "general");
        assert_eq!((third.busy_secs, third.staffed_secs), (0.0, 5.0 * 60.0));
        assert_eq!(third.occupancy(), Some(0.0));
        assert!(!q.contains_key(&(Interval::Quarter.start(at(8, 45, 0)), "general".into())));
        let mut h = BTreeMap::new();
        add_occupancy(&mut h, &spans, Interval::Hour, By::Agent, from, to);
        let one = &h[&(Interval::Hour.start(at(9, 0, 0)), "1".to_string())];
        assert_eq!(
            (one.busy_secs, one.staffed_secs),
            (16.0 * 60.0, 41.0 * 60.0)
        );
        assert_eq!(format!("{:.1}", one.occupancy().unwrap_or(0.0)), "39.0");
        let month = Interval::Month.next(Interval::Month.start(at(9, 0, 0)));
        assert_eq!(month.to_rfc3339(), "2026-04-01T00:00:00+08:00");
    }

    /// 2026-03-02 (a Monday) at `h:m:s` China time.
    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        china_time()
            .with_ymd_and_hms(2026, 3, 2, h, m, s)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn call(
        queue: &str,
        agent: Option<u64>,
        queued: DateTime<Utc>,
        wait: Option<i64>,
        talk: i64,
    ) -> CallFact {
        let answered_at = wait.map(|w| queued + chrono::TimeDelta::seconds(w));
        CallFact {
            queue: queue.into(),
            agent,
            queued_at: queued,
            answered_at,
            ended_at: answered_at.unwrap_or(queued) + chrono::TimeDelta::seconds(talk),
            abandoned: false,
            callback: false,
        }
    }

    /// Eight calls by hand:
    /// general 09:00-09:15: answered after 5 s (talk 120), 15 s (talk 60), 40 s (talk 300);
    ///   abandoned after 30 s; a callback placed at 09:10 (answered after 3 s, talk 90).
    /// general 09:20: answered after 10 s (talk 200).
    /// elderly 09:05: answered after 20 s (talk 100); abandoned at 09:50.
    fn day() -> Vec<CallFact> {
        let mut abandoned = call("general", None, at(9, 3, 0), None, 30);
        abandoned.abandoned = true;
        let mut callback = call("general", Some(2), at(9, 10, 0), Some(3), 90);
        callback.callback = true;
        let mut old_abandoned = call("elderly", None, at(9, 50, 0), None, 12);
        old_abandoned.abandoned = true;
        vec![
            call("general", Some(1), at(9, 0, 0), Some(5), 120),
            call("general", Some(2), at(9, 1, 0), Some(15), 60),
            call("general", Some(1), at(9, 14, 59), Some(40), 300),
            abandoned,
            callback,
            call("general", Some(2), at(9, 20, 0), Some(10), 200),
            call("elderly", Some(1), at(9, 5, 0), Some(20), 100),
            old_abandoned,
        ]
    }

    #[test]
    fn quarter_hours_per_queue_add_up_by_hand() {
        let k = kpis(&day(), Interval::Quarter, By::Queue);
        let q =
            |h, m, name: &str| k[&(Interval::Quarter.start(at(h, m, 0)), name.to_string())].clone();
        let g = q(9, 0, "general");
        // Offered 4 (the callback is apart), answered 3, abandoned 1, within 15 s: 5 s and 15 s.
        assert_eq!(
            (
                g.offered,
                g.answered,
                g.abandoned,
                g.answered_15s,
                g.callbacks_made
            ),
            (4, 3, 1, 2, 1)
        );
        assert_eq!(g.answer_15s_rate(), Some(50.0)); // 2 / (3 + 1)
        assert_eq!(g.connection_rate(), Some(75.0)); // 3 / 4
        assert_eq!(g.average_speed_of_answer(), Some(20.0)); // (5 + 15 + 40) / 3
        assert_eq!(g.average_handle_time(), Some(160.0)); // (120 + 60 + 300) / 3
        let g2 = q(9, 15, "general");
        assert_eq!((g2.offered, g2.answered, g2.answered_15s), (1, 1, 1));
        let e1 = q(9, 0, "elderly");
        assert_eq!((e1.offered, e1.answered, e1.answered_15s), (1, 1, 0)); // 20 s is late
        let e4 = q(9, 45, "elderly");
        assert_eq!((e4.offered, e4.abandoned), (1, 1));
        assert_eq!(e4.connection_rate(), Some(0.0));
        assert_eq!(e4.average_speed_of_answer(), None);
        assert_eq!(k.len(), 4);
    }

    #[test]
    fn a_day_per_queue_and_per_agent() {
        let k = kpis(&day(), Interval::Day, By::Queue);
        let day_start = Interval::Day.start(at(9, 0, 0));
        assert_eq!(day_start.to_rfc3339(), "2026-03-02T00:00:00+08:00");
        let g = &k[&(day_start, "general".to_string())];
        assert_eq!(
            (g.offered, g.answered, g.abandoned, g.answered_15s),
            (5, 4, 1, 3)
        );
        assert_eq!(g.connection_rate(), Some(80.0));
        assert_eq!(g.answer_15s_rate(), Some(60.0));
        assert_eq!(g.average_speed_of_answer(), Some(17.5)); // (5 + 15 + 40 + 10) / 4
        let e = &k[&(day_start, "elderly".to_string())];
        assert_eq!((e.offered, e.answered, e.abandoned), (2, 1, 1));

        let a = kpis(&day(), Interval::Day, By::Agent);
        let one = &a[&(day_start, "1".to_string())];
        // Agent 1: 5 s/120, 40 s/300, 20 s/100.
        assert_eq!((one.answered, one.answered_15s), (3, 1));
        assert_eq!(one.average_handle_time(), Some(520.0 / 3.0));
        let two = &a[&(day_start, "2".to_string())];
        // Agent 2: 15 s/60, 10 s/200, and the callback placed.
        assert_eq!(
            (two.answered, two.answered_15s, two.callbacks_made),
            (2, 2, 1)
        );
        assert_eq!(two.average_handle_time(), Some(130.0));
    }

    #[test]
    fn intervals_start_in_china_time() {
        // 23:59 UTC on 1 March is 07:59 on 2 March in China.
        let t = Utc
            .with_ymd_and_hms(2026, 3, 1, 23, 59, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(
            Interval::Day.start(t).to_rfc3339(),
            "2026-03-02T00:00:00+08:00"
        );
        assert_eq!(
            Interval::Hour.start(t).to_rfc3339(),
            "2026-03-02T07:00:00+08:00"
        );
        assert_eq!(
            Interval::Quarter.start(t).to_rfc3339(),
            "2026-03-02T07:45:00+08:00"
        );
        assert_eq!(
            Interval::Month.start(t).to_rfc3339(),
            "2026-03-01T00:00:00+08:00"
        );
        assert_eq!(Interval::parse("15m"), Some(Interval::Quarter));
        assert_eq!(Interval::parse("week"), None);
    }
}
