//! The facts an IVR condition asks about, for a real call: China time of day and the official
//! working-day calendar (make-up days count as working days, holidays do not).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

use super::session::Facts;
use crate::china::calendar::{WorkCalendar, china_time};

/// The world as one call sees it when a condition is evaluated.
#[derive(Debug, Clone)]
pub struct CallFacts {
    /// The caller's number.
    pub caller: String,
    /// Minutes since midnight, China time.
    pub minute_of_day: u16,
    /// Whether today is a working day.
    pub workday: bool,
    /// Callers waiting, by queue.
    pub waiting: HashMap<String, u32>,
    /// The hotline may call this caller back.
    pub may_call_back: bool,
}

impl CallFacts {
    /// Facts at `now` for `caller`. A year the calendar does not cover yet falls back to
    /// Monday to Friday (and logs it), so the hotline keeps routing while an administrator
    /// adds the year's schedule.
    pub fn new(
        caller: &str,
        now: DateTime<Utc>,
        calendar: &WorkCalendar,
        waiting: HashMap<String, u32>,
    ) -> Self {
        let local = now.with_timezone(&china_time());
        let day = local.date_naive();
        let workday = calendar.is_working_day(day).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "IVR: assuming Monday to Friday");
            !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
        });
        // hour < 24 and minute < 60, so this fits in u16.
        let minute_of_day = (local.hour() * 60 + local.minute()) as u16;
        CallFacts {
            caller: caller.to_string(),
            minute_of_day,
            workday,
            waiting,
            may_call_back: true,
        }
    }
}

impl Facts for CallFacts {
    fn caller(&self) -> &str {
        &self.caller
    }
    fn minute_of_day(&self) -> u16 {
        self.minute_of_day
    }
    fn workday(&self) -> bool {
        self.workday
    }
    fn may_call_back(&self) -> bool {
        self.may_call_back
    }
    fn waiting(&self, queue: &str) -> u32 {
        self.waiting.get(queue).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(utc: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(utc)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn facts(utc: &str) -> CallFacts {
        let cal = WorkCalendar::shipped().unwrap();
        CallFacts::new("13812345678", at(utc), &cal, HashMap::new())
    }

    #[test]
    fn the_time_of_day_is_china_time() {
        // 23:30 UTC on a Thursday is 07:30 on Friday in Beijing.
        let f = facts("2026-11-26T23:30:00Z");
        assert_eq!(f.minute_of_day(), 7 * 60 + 30);
        assert!(f.workday());
    }

    #[test]
    fn national_day_is_a_holiday_and_a_make_up_saturday_is_a_workday() {
        assert!(!facts("2026-10-01T02:00:00Z").workday());
        // 2026-02-14 is a Saturday that the State Council made a working day.
        assert!(facts("2026-02-14T02:00:00Z").workday());
        // An ordinary Saturday.
        assert!(!facts("2026-11-28T02:00:00Z").workday());
        // Sunday 16:30 UTC is already Monday in Beijing.
        assert!(facts("2026-11-29T16:30:00Z").workday());
    }

    #[test]
    fn a_year_the_calendar_lacks_falls_back_to_weekdays() {
        let cal = WorkCalendar::shipped().unwrap();
        let monday = Utc.with_ymd_and_hms(2031, 1, 6, 2, 0, 0).unwrap();
        let sunday = Utc.with_ymd_and_hms(2031, 1, 5, 2, 0, 0).unwrap();
        assert!(CallFacts::new("1", monday, &cal, HashMap::new()).workday());
        assert!(!CallFacts::new("1", sunday, &cal, HashMap::new()).workday());
    }
}
