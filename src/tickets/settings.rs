//! `[tickets]`: the workflow's limits and the working-day calendar it counts on. The tickets
//! domain owns its settings; `crate::config` composes them into the node's configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::china::calendar::{CalendarError, WorkCalendar};

/// `[tickets]`: the workflow's limits (REGULATION.md Art. 20-23; Shandong's by default) and
/// the working-day calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// The official holiday calendar (format of `data/cn-holidays.json`); unset: the schedules
    /// shipped in the binary. Administrators point this at a file with the new year added.
    pub calendar: Option<PathBuf>,
    /// Working days a unit has to return a misrouted ticket.
    pub return_window_days: u32,
    /// Most working days of extension in total.
    pub max_extension_days: u32,
    /// Highest escalation level (1: city government office, 2: executive meeting).
    pub max_escalation: u8,
    /// Hours a login session lasts.
    pub session_hours: i64,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            calendar: None,
            return_window_days: 2,
            max_extension_days: 10,
            max_escalation: 2,
            session_hours: 12,
        }
    }
}

impl TicketsConfig {
    /// The calendar the deadlines run on: the configured file, else the shipped one.
    pub fn load_calendar(&self) -> Result<WorkCalendar, CalendarError> {
        match &self.calendar {
            None => WorkCalendar::shipped(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CalendarError::Invalid(format!("cannot read {}: {e}", path.display()))
                })?;
                WorkCalendar::from_json(&text)
            }
        }
    }

    /// The workflow's rules.
    pub fn rules(&self) -> super::workflow::Rules {
        super::workflow::Rules {
            return_window_days: self.return_window_days,
            max_extension_days: self.max_extension_days,
            max_escalation: self.max_escalation,
        }
    }
}
