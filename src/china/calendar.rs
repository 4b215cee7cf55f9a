//! China's working-day calendar, for ticket deadlines counted in working days (REGULATION.md:
//! 5 working days to handle, extensions up to 10, 2 to return a misrouted ticket).
//!
//! A working day is a Monday to Friday that is not a public holiday, or a weekend day the State
//! Council made a working day (调休, make-up day). The holidays and make-up days are data,
//! published each year (`data/cn-holidays.json`, with its source per year); administrators add
//! a year when the State Council publishes it. A date in a year the data does not cover is an
//! error, never a guess: a deadline computed on a wrong calendar is a wrong deadline.
//!
//! Counting follows administrative practice: the day of the event is not counted; the
//! deadline is the end of the n-th working day after it, in China Standard Time (UTC+8, no
//! daylight saving).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc, Weekday};
use serde::Deserialize;

/// China Standard Time.
pub fn china_time() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!("8 hours is a valid offset"))
}

/// Why the calendar cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The data has no schedule for this year yet.
    #[error(
        "no official holiday schedule for {0} in the calendar data; an administrator must add it"
    )]
    YearNotCovered(i32),
    /// The calendar file is malformed.
    #[error("calendar data: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
struct FileFormat {
    years: BTreeMap<String, YearFormat>,
}

#[derive(Debug, Deserialize)]
struct YearFormat {
    source: String,
    holidays: BTreeMap<String, Vec<String>>,
    makeup_workdays: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Year {
    source: String,
    holidays: HashSet<NaiveDate>,
    makeup: HashSet<NaiveDate>,
}

/// The official calendar, year by year.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkCalendar {
    years: BTreeMap<i32, Year>,
}

impl WorkCalendar {
    /// Reads the JSON format of `data/cn-holidays.json`, checking every date: well formed,
    /// in its year, not both a holiday and a make-up day, make-up days on weekends, holidays
    /// not listed twice, a source named.
    pub fn from_json(text: &str) -> Result<WorkCalendar, CalendarError> {
        let file: FileFormat =
            serde_json::from_str(text).map_err(|e| CalendarError::Invalid(e.to_string()))?;
        let mut years = BTreeMap::new();
        for (year_text, y) in file.years {
            let year: i32 = year_text.parse().map_err(|_| {
                CalendarError::Invalid(format!("year {year_text:?} is not a number"))
            })?;
            if y.source.trim().is_empty() {
                return Err(CalendarError::Invalid(format!("{year}: no source given")));
            }
            let date = |s: &String, what: &str| -> Result<NaiveDate, CalendarError> {
                let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    CalendarError::Invalid(format!("{year}: {what} {s:?} is not a YYYY-MM-DD date"))
                })?;
                if d.year() != year {
                    return Err(CalendarError::Invalid(format!(
                        "{year}: {what} {s} is in another year"
                    )));
                }
                Ok(d)
            };
            let mut holidays = HashSet::new();
            for (name, days) in &y.holidays {
                for s in days {
                    if !holidays.insert(date(s, name)?) {
                        return Err(CalendarError::Invalid(format!("{year}: {s} listed twice")));
                    }
                }
            }
            let mut makeup = HashSet::new();
            for s in &y.makeup_workdays {
                let d = date(s, "make-up day")?;
                if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                    return Err(CalendarError::Invalid(format!(
                        "{year}: make-up day {s} is not a Saturday or Sunday"
                    )));
                }
                if holidays.contains(&d) {
                    return Err(CalendarError::Invalid(format!(
                        "{year}: {s} is both a holiday and a make-up day"
                    )));
                }
                makeup.insert(d);
            }
            years.insert(
                year,
                Year {
                    source: y.source,
                    holidays,
                    makeup,
                },
            );
        }
        Ok(WorkCalendar { years })
    }

    /// The calendar shipped with Hotline (the State Council schedules in
    /// `data/cn-holidays.json`).
    pub fn shipped() -> Result<WorkCalendar, CalendarError> {
        Self::from_json(include_str!("../../data/cn-holidays.json"))
    }

    /// The years covered, with the source of each.
    pub fn coverage(&self) -> impl Iterator<Item = (i32, &str)> {
        self.years.iter().map(|(y, d)| (*y, d.source.as_str()))
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> Result<bool, CalendarError> {
        let y = self
            .years
            .get(&day.year())
            .ok_or(CalendarError::YearNotCovered(day.year()))?;
        if y.makeup.contains(&day) {
            return Ok(true);
        }
        if y.holidays.contains(&day) {
            return Ok(false);
        }
        Ok(!matches!(day.weekday(), Weekday::Sat | Weekday::Sun))
    }

    /// The n-th working day after `day` (`day` itself not counted). `n = 0` is `day`.
    pub fn add_working_days(&self, day: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        let mut d = day;
        let mut left = n;
        while left > 0 {
            d = d
                .succ_opt()
                .ok_or_else(|| CalendarError::Invalid("date out of range".into()))?;
            if self.is_working_day(d)? {
                left -= 1;
            }
        }
        Ok(d)
    }

    /// Working days after `from` up to and including `to` (0 when `to` is not after `from`).
    pub fn working_days_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<u32, CalendarError> {
        let mut n = 0;
        let mut d = from;
        while d < to {
            d = d
                .succ_opt()
                .ok_or_else(|| CalendarError::Invalid("date out of range".into()))?;
            if self.is_working_day(d)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The deadline of something started at `at` with `n` working days: the end (24:00 China
    /// time) of the n-th working day after the day of `at`, as an instant.
    pub fn deadline(&self, at: DateTime<Utc>, n: u32) -> Result<DateTime<Utc>, CalendarError> {
        let local_day = at.with_timezone(&china_time()).date_naive();
        end_of_day(self.add_working_days(local_day, n)?)
    }

    /// A deadline moved by `n` more working days (an extension): from the end of its last
    /// day to the end of the n-th working day after that day.
    pub fn extend(&self, due: DateTime<Utc>, n: u32) -> Result<DateTime<Utc>, CalendarError> {
        let last_day = (due - Duration::seconds(1))
            .with_timezone(&china_time())
            .date_naive();
        end_of_day(self.add_working_days(last_day, n)?)
    }
}

/// The next year, when `now` is within 60 days of its start and the calendar does not cover
/// it yet: deadlines will soon reach into it and be refused.
pub fn missing_soon(calendar: &WorkCalendar, now: DateTime<Utc>) -> Option<i32> {
    let next = now.with_timezone(&china_time()).year() + 1;
    let start = NaiveDate::from_ymd_opt(next, 1, 1)?;
    let soon = (now + Duration::days(60))
        .with_timezone(&china_time())
        .date_naive()
        >= start;
    (soon && !calendar.years.contains_key(&next)).then_some(next)
}

/// 24:00 China time at the end of `day`, as an instant.
pub fn end_of_day(day: NaiveDate) -> Result<DateTime<Utc>, CalendarError> {
    let end = (day + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| CalendarError::Invalid("date out of range".into()))?;
    china_time()
        .from_local_datetime(&end)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| CalendarError::Invalid("no such local time".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn cal() -> WorkCalendar {
        WorkCalendar::shipped().unwrap()
    }

    #[test]
    fn a_missing_next_year_is_announced_in_the_last_60_days() {
        use chrono::TimeZone;
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 4, 0, 0).unwrap();
        assert_eq!(missing_soon(&cal(), at(2026, 10, 1)), None);
        assert_eq!(missing_soon(&cal(), at(2026, 11, 28)), Some(2027));
        assert_eq!(missing_soon(&cal(), at(2025, 12, 1)), None, "2026 is there");
    }

    #[test]
    fn the_shipped_data_covers_2025_and_2026_with_sources() {
        let years: Vec<i32> = cal().coverage().map(|(y, _)| y).collect();
        assert_eq!(years, [2025, 2026]);
        assert!(cal().coverage().all(|(_, s)| s.contains("State Council")));
    }

    #[test]
    fn weekends_holidays_and_make_up_days() {
        let c = cal();
        assert!(c.is_working_day(day("2026-02-13")).unwrap(), "a Friday");
        assert!(
            c.is_working_day(day("2026-02-14")).unwrap(),
            "a Saturday made a working day"
        );
        assert!(
            !c.is_working_day(day("2026-02-17")).unwrap(),
            "Spring Festival, a Tuesday"
        );
        assert!(
            !c.is_working_day(day("2026-02-22")).unwrap(),
            "a holiday Sunday"
        );
        assert!(
            !c.is_working_day(day("2026-03-07")).unwrap(),
            "an ordinary Saturday"
        );
        assert!(
            c.is_working_day(day("2026-02-28")).unwrap(),
            "the second make-up Saturday"
        );
    }

    #[test]
    fn five_working_days_across_the_spring_festival() {
        let c = cal();
        // Thursday 12 February 2026: Fri 13 (1), Sat 14 make-up (2), 15-23 Spring Festival,
        // Tue 24 (3), Wed 25 (4), Thu 26 (5).
        assert_eq!(
            c.add_working_days(day("2026-02-12"), 5).unwrap(),
            day("2026-02-26")
        );
        // A misrouted ticket returned within 2 working days of Friday 13 February: Sat 14,
        // then Tue 24, not Monday 16.
        assert_eq!(
            c.add_working_days(day("2026-02-13"), 2).unwrap(),
            day("2026-02-24")
        );
        assert_eq!(
            c.working_days_between(day("2026-02-12"), day("2026-02-26"))
                .unwrap(),
            5
        );
        // 2025 National Day (1-8 October): from Tuesday 30 September, Thu 9 (1), Fri 10 (2),
        // Sat 11, a make-up day (3), Mon 13 (4).
        assert_eq!(
            c.add_working_days(day("2025-09-30"), 2).unwrap(),
            day("2025-10-10")
        );
        assert_eq!(
            c.add_working_days(day("2025-09-30"), 3).unwrap(),
            day("2025-10-11")
        );
        assert_eq!(
            c.add_working_days(day("2025-09-30"), 4).unwrap(),
            day("2025-10-13")
        );
    }

    #[test]
    fn a_deadline_is_the_end_of_the_day_in_china() {
        let c = cal();
        // 16:30 UTC on 11 February is 00:30 on 12 February in Beijing.
        let at = Utc.with_ymd_and_hms(2026, 2, 11, 16, 30, 0).unwrap();
        let due = c.deadline(at, 5).unwrap();
        assert_eq!(
            due,
            Utc.with_ymd_and_hms(2026, 2, 26, 16, 0, 0).unwrap(),
            "27 Feb 00:00 +08:00"
        );
    }

    #[test]
    fn a_year_without_data_is_an_error_not_a_guess() {
        let c = cal();
        assert_eq!(
            c.add_working_days(day("2026-12-28"), 5),
            Err(CalendarError::YearNotCovered(2027))
        );
        assert_eq!(
            c.is_working_day(day("2024-05-01")),
            Err(CalendarError::YearNotCovered(2024))
        );
    }

    #[test]
    fn malformed_data_is_refused_with_the_reason() {
        let bad = |json: &str| WorkCalendar::from_json(json).unwrap_err().to_string();
        let year = |h: &str, m: &str| {
            format!(
                r#"{{"years":{{"2027":{{"source":"notice","holidays":{{"X":[{h}]}},"makeup_workdays":[{m}]}}}}}}"#
            )
        };
        assert!(bad(&year(r#""2027-13-01""#, "")).contains("not a YYYY-MM-DD"));
        assert!(bad(&year(r#""2026-10-01""#, "")).contains("another year"));
        assert!(bad(&year(r#""2027-02-06""#, r#""2027-02-06""#)).contains("both"));
        assert!(bad(&year("", r#""2027-02-08""#)).contains("not a Saturday or Sunday"));
        assert!(bad(&year(r#""2027-02-09","2027-02-09""#, "")).contains("twice"));
        assert!(
            bad(r#"{"years":{"2027":{"source":" ","holidays":{},"makeup_workdays":[]}}}"#)
                .contains("no source")
        );
        assert!(WorkCalendar::from_json(&year(r#""2027-02-09""#, r#""2027-02-06""#)).is_ok());
    }
}
