//! Tickets in PostgreSQL: intake, the lifecycle steps of [`super::workflow`] applied with
//! optimistic versioning and written with their history row in one transaction, lists and
//! filters, the supervision scan, duplicates and merging, the dispatch catalogue's suggestion,
//! citizens' progress queries and ratings, and unit scorecards.
//!
//! Intake, steps and the types are here; what is read for pages and reports (history, lists,
//! the supervision scan, duplicates, suggestions, ratings, scorecards, counts, the citizen's
//! view) is `reads.rs`'s.
//!
//! Time comes from [`Clock`], so tests walk a ticket across the Spring Festival without
//! waiting for it. Who may see what is decided by the HTTP layer; this module trusts its
//! caller's [`Actor`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::workflow::{self, Action, Actor, NonAcceptance, Rules, Satisfaction, Status};
use crate::china::calendar::WorkCalendar;

mod once;
mod reads;

pub use self::once::{Filed, IdempotencyKey, create_once};
pub use self::reads::*;

/// Where "now" comes from: the system clock, or a hand-set one for tests and drills.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that only moves when told to.
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A clock stopped at `at`.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(at)))
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock (the system clock ignores it).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Clock::Manual(t) = self {
            *t.lock().unwrap_or_else(|p| p.into_inner()) = at;
        }
    }
}

/// What the workflow runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The official working-day calendar.
    pub calendar: WorkCalendar,
    /// The province's limits.
    pub rules: Rules,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Hours a login session lasts.
    pub session_hours: i64,
}

impl Settings {
    /// From the `[tickets]` configuration, on the system clock.
    pub fn from_config(
        cfg: &super::settings::TicketsConfig,
    ) -> Result<Settings, crate::china::calendar::CalendarError> {
        Ok(Settings {
            calendar: cfg.load_calendar()?,
            rules: cfg.rules(),
            clock: Clock::System,
            session_hours: cfg.session_hours,
        })
    }
}

/// How a request reached the hotline (Art. 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A call to 12345.
    Phone,
    /// The web portal.
    Web,
    /// A mobile app (Open311 clients too).
    App,
    /// WeChat.
    Wechat,
    /// Weibo.
    Weibo,
    /// Another system through the API.
    Api,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Wechat => "wechat",
            Channel::Weibo => "weibo",
            Channel::Api => "api",
        }
    }
}

/// What the citizen asks for (Art. 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// A question (咨询).
    Consultation,
    /// A request for help (求助).
    Help,
    /// A suggestion (建议).
    Suggestion,
    /// A complaint (投诉).
    Complaint,
    /// A report of wrongdoing (举报).
    Report,
    /// Praise (表扬).
    Praise,
}

impl RequestType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Consultation => "consultation",
            RequestType::Help => "help",
            RequestType::Suggestion => "suggestion",
            RequestType::Complaint => "complaint",
            RequestType::Report => "report",
            RequestType::Praise => "praise",
        }
    }
}

/// A ticket as filed at intake.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// Channel.
    pub channel: Channel,
    /// Request type.
    pub request_type: RequestType,
    /// Category code from the catalogue.
    pub category: String,
    /// Where (street address).
    #[serde(default)]
    pub address: String,
    /// County or district.
    #[serde(default)]
    pub district: String,
    /// Town or sub-district.
    #[serde(default)]
    pub town: String,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// What the citizen said.
    pub description: String,
    /// Caller's name (none: anonymous).
    pub caller_name: Option<String>,
    /// Caller's phone (none: anonymous).
    pub caller_phone: Option<String>,
    /// The informant asked for confidentiality (Art. 11).
    #[serde(default)]
    pub confidential: bool,
    /// The SIP Call-ID of the call it came from.
    pub call_id: Option<String>,
    /// The call's recording file.
    pub recording: Option<String>,
    /// The IVR nodes the caller went through.
    #[serde(default)]
    pub ivr_path: Vec<String>,
}

/// A ticket row, every column.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct TicketRow {
    /// Row id (internal; the API names tickets by number).
    #[serde(skip)]
    pub id: i64,
    /// The human-readable number: China date and a sequence (`20261128000042`).
    pub number: String,
    /// Channel.
    pub channel: String,
    /// Request type.
    pub request_type: String,
    /// Category code.
    pub category: String,
    /// Street address.
    pub address: String,
    /// County or district.
    pub district: String,
    /// Town or sub-district.
    pub town: String,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Description.
    pub description: String,
    /// Caller's name.
    pub caller_name: Option<String>,
    /// Caller's phone.
    pub caller_phone: Option<String>,
    /// Confidential (Art. 11).
    pub confidential: bool,
    /// SIP Call-ID.
    pub call_id: Option<String>,
    /// Recording file.
    pub recording: Option<String>,
    /// IVR path.
    pub ivr_path: Vec<String>,
    /// Status.
    pub status: String,
    /// Lead unit id.
    pub lead_unit: Option<i64>,
    /// Co-handling unit ids.
    pub co_units: Vec<i64>,
    /// Designated by the office after a dispute.
    pub designated: bool,
    /// Last dispatch.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// Deadline.
    pub due_at: Option<DateTime<Utc>>,
    /// Working days of extension granted.
    pub extension_days: i32,
    /// Extension waiting for review.
    pub pending_extension: Option<i32>,
    /// Escalation level.
    pub escalation: i16,
    /// Times reopened.
    pub reopen_count: i32,
    /// Times returned by a unit.
    pub return_count: i32,
    /// Revisit result.
    pub satisfaction: Option<String>,
    /// The citizen's rating 1-5 (Art. 14).
    pub rating: Option<i16>,
    /// Under supervision.
    pub supervised: bool,
    /// Urging notices sent.
    pub urged_count: i32,
    /// The master ticket it was merged into.
    #[serde(skip)]
    pub master_id: Option<i64>,
    /// The unit's reply to the citizen.
    pub reply: Option<String>,
    /// What the citizen was told at intake or termination.
    pub public_note: Option<String>,
    /// When the unit replied.
    pub replied_at: Option<DateTime<Utc>>,
    /// Whether that reply met the deadline.
    pub replied_on_time: Option<bool>,
    /// When it reached a final state.
    pub closed_at: Option<DateTime<Utc>>,
    /// Who filed it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic version: send it back with every change.
    pub version: i32,
    /// The citizen's six-digit access code (Art. 13, 14): with the number it proves the right
    /// to follow the ticket. Never serialised; the office's view adds it (audited).
    #[serde(skip)]
    pub access_code: String,
}

impl TicketRow {
    /// The state.
    pub fn status(&self) -> Result<Status, StoreError> {
        parse_status(&self.status)
    }

    /// Whether the unit handles this ticket (lead or co-handling).
    pub fn involves(&self, unit: i64) -> bool {
        self.lead_unit == Some(unit) || self.co_units.contains(&unit)
    }

    /// What the workflow needs of it.
    fn lifecycle(&self) -> Result<workflow::Ticket, StoreError> {
        Ok(workflow::Ticket {
            status: self.status()?,
            lead_unit: self.lead_unit,
            co_units: self.co_units.clone(),
            designated: self.designated,
            dispatched_at: self.dispatched_at,
            due_at: self.due_at,
            extension_days: u32::try_from(self.extension_days).unwrap_or(0),
            pending_extension: self.pending_extension.and_then(|d| u32::try_from(d).ok()),
            escalation: u8::try_from(self.escalation).unwrap_or(0),
            reopen_count: u32::try_from(self.reopen_count).unwrap_or(0),
            satisfaction: self.satisfaction.as_deref().and_then(parse_satisfaction),
            supervised: self.supervised,
        })
    }
}

fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Invalid(format!("status {s:?} is unknown")))
}

fn parse_satisfaction(s: &str) -> Option<Satisfaction> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn satisfaction_str(s: Satisfaction) -> &'static str {
    match s {
        Satisfaction::Satisfied => "satisfied",
        Satisfaction::BasicallySatisfied => "basically_satisfied",
        Satisfaction::Dissatisfied => "dissatisfied",
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such ticket (or unit, category).
    #[error("{0}")]
    NotFound(String),
    /// Someone changed the ticket since the client read it.
    #[error(
        "the ticket was changed by someone else: it is now at version {current} ({status}), you sent version {given}; reload it and try again"
    )]
    Stale {
        /// Current version.
        current: i32,
        /// Version the client sent.
        given: i32,
        /// Current status.
        status: String,
    },
    /// The lifecycle refuses the step.
    #[error(transparent)]
    Workflow(#[from] workflow::WorkflowError),
    /// The request is incomplete or refers to something unusable.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Who takes a step: a name for the history and the role the workflow checks.
#[derive(Debug, Clone)]
pub struct By {
    /// Username (or `citizen`, or `open311:<client>`).
    pub name: String,
    /// The workflow's view of them.
    pub actor: Actor,
}

/// Files a new ticket; it starts `accepted` with its intake in the history.
pub async fn create(
    db: &PgPool,
    settings: &Settings,
    t: &NewTicket,
    by: &str,
) -> Result<TicketRow, StoreError> {
    let mut conn = db.acquire().await?;
    create_on(&mut conn, settings, t, by).await
}

/// [`create`] on a connection the caller holds, so the ticket can be filed in its transaction.
pub async fn create_on(
    db: &mut sqlx::PgConnection,
    settings: &Settings,
    t: &NewTicket,
    by: &str,
) -> Result<TicketRow, StoreError> {
    if t.description.trim().is_empty() {
        return Err(StoreError::Invalid("description: must not be empty".into()));
    }
    if t.lat.is_some() != t.lon.is_some() {
        return Err(StoreError::Invalid(
            "lat and lon: give both or neither".into(),
        ));
    }
    let category_ok = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM categories WHERE code = $1 AND active) AS \"e!\"",
        t.category
    )
    .fetch_one(&mut *db)
    .await?;
    if !category_ok {
        return Err(StoreError::Invalid(format!(
            "category: {:?} is not in the dispatch catalogue",
            t.category
        )));
    }
    let now = settings.clock.now();
    let blank = |s: &Option<String>| {
        s.as_ref()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let row = sqlx::query_as::<_, TicketRow>(
        "WITH t AS (
             INSERT INTO tickets (number, channel, request_type, category, address, district,
                 town, lat, lon, description, caller_name, caller_phone, confidential, call_id,
                 recording, ivr_path, status, created_by, created_at, updated_at)
             VALUES (to_char($1 AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')
                         || lpad(nextval('ticket_number_seq')::text, 6, '0'),
                     $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     'accepted', $17, $1, $1)
             RETURNING *),
         e AS (
             INSERT INTO ticket_events (ticket_id, at, actor, action, to_status, detail)
             SELECT id, $1, $17, 'create', 'accepted',
                    jsonb_build_object('channel', channel, 'category', category) FROM t)
         SELECT * FROM t",
    )
    .bind(now)
    .bind(t.channel.as_str())
    .bind(t.request_type.as_str())
    .bind(&t.category)
    .bind(t.address.trim())
    .bind(t.district.trim())
    .bind(t.town.trim())
    .bind(t.lat)
    .bind(t.lon)
    .bind(t.description.trim())
    .bind(blank(&t.caller_name))
    .bind(blank(&t.caller_phone))
    .bind(t.confidential)
    .bind(&t.call_id)
    .bind(&t.recording)
    .bind(&t.ivr_path)
    .bind(by)
    .fetch_one(&mut *db)
    .await?;
    Ok(row)
}

/// A ticket by number.
pub async fn get(db: &PgPool, number: &str) -> Result<TicketRow, StoreError> {
    sqlx::query_as::<_, TicketRow>("SELECT * FROM tickets WHERE number = $1")
        .bind(number)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no ticket {number}")))
}

/// A ticket by row id.
pub async fn get_by_id(db: &PgPool, id: i64) -> Result<TicketRow, StoreError> {
    sqlx::query_as::<_, TicketRow>("SELECT * FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no ticket with id {id}")))
}

/// A lifecycle step as the API takes it: the action and what the history and the citizen
/// are told.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    /// Refuse at intake with an Art. 19 reason; `note` tells the caller where to go instead
    /// (required for `other_channel`).
    Reject {
        /// The Art. 19 reason.
        reason: NonAcceptance,
        /// What the caller was told.
        #[serde(default)]
        note: String,
    },
    /// Answer at once and close (Art. 18).
    AnswerDirectly {
        /// The answer given.
        answer: String,
    },
    /// Send to a lead unit; without `lead_unit`, the catalogue's suggestion; without `days`,
    /// the category's time limit.
    Dispatch {
        /// Lead unit id.
        lead_unit: Option<i64>,
        /// Co-handling unit ids.
        #[serde(default)]
        co_units: Vec<i64>,
        /// Working days to handle.
        days: Option<u32>,
    },
    /// The lead unit signs for it.
    Sign,
    /// The lead unit returns it (Art. 22).
    Return {
        /// Why it is outside the unit's duties.
        reason: String,
    },
    /// A supervisor designates the unit after a dispute; final.
    Designate {
        /// Unit id.
        unit: i64,
        /// Working days to handle (default: the category's).
        days: Option<u32>,
        /// The decision's grounds.
        reason: String,
    },
    /// The lead unit asks for more time (Art. 20).
    RequestExtension {
        /// Working days.
        days: u32,
        /// Why, and the plan.
        reason: String,
    },
    /// A supervisor approves the pending extension.
    ApproveExtension {
        /// Remark.
        #[serde(default)]
        note: String,
    },
    /// A supervisor refuses it.
    RefuseExtension {
        /// Why.
        reason: String,
    },
    /// The unit's reply to the citizen and the office (Art. 20).
    Reply {
        /// The reply.
        reply: String,
    },
    /// The unit asks to end the matter (Art. 21).
    RequestTermination {
        /// Why.
        reason: String,
    },
    /// A supervisor ends it; the explanation goes to the caller.
    ApproveTermination {
        /// What the caller is told.
        explanation: String,
    },
    /// A supervisor refuses: handling goes on.
    RefuseTermination {
        /// Why.
        reason: String,
    },
    /// The revisit's result (Art. 25).
    Revisit {
        /// Satisfaction.
        result: Satisfaction,
        /// Remark.
        #[serde(default)]
        note: String,
    },
    /// Escalate one level (Art. 23).
    Escalate {
        /// Why.
        reason: String,
    },
    /// Fold into a master ticket.
    Merge {
        /// The master ticket's number.
        into: String,
    },
    /// The citizen objects to the reply (the office records it on their behalf).
    Object {
        /// What the citizen said.
        reason: String,
    },
    /// Urge the unit (Art. 26).
    Urge {
        /// The notice.
        message: String,
    },
    /// Put under supervision or lift it.
    Supervise {
        /// On or off.
        on: bool,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// A comment in the history.
    Note {
        /// The comment.
        text: String,
    },
}

fn required(what: &str, s: &str) -> Result<String, StoreError> {
    let s = s.trim();
    if s.is_empty() {
        Err(StoreError::Invalid(format!("{what}: must not be empty")))
    } else {
        Ok(s.to_string())
    }
}

fn opt_text(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

async fn category_days(db: &PgPool, category: &str) -> Result<u32, StoreError> {
    let days = sqlx::query_scalar!(
        "SELECT time_limit_days FROM categories WHERE code = $1",
        category
    )
    .fetch_optional(db)
    .await?
    .unwrap_or(5);
    Ok(u32::try_from(days).unwrap_or(5))
}

async fn check_units(db: &PgPool, ids: &[i64]) -> Result<(), StoreError> {
    let found: Vec<i64> =
        sqlx::query_scalar!("SELECT id FROM units WHERE id = ANY($1) AND active", ids)
            .fetch_all(db)
            .await?;
    match ids.iter().find(|i| !found.contains(i)) {
        Some(missing) => Err(StoreError::Invalid(format!(
            "unit {missing} does not exist or is not active"
        ))),
        None => Ok(()),
    }
}

/// Applies a step to ticket `number`, which the client read at `version`. Returns the ticket
/// after it.
pub async fn apply(
    db: &PgPool,
    settings: &Settings,
    number: &str,
    version: i32,
    step: &Step,
    by: &By,
) -> Result<TicketRow, StoreError> {
    let t = get(db, number).await?;
    if t.version != version {
        return Err(StoreError::Stale {
            current: t.version,
            given: version,
            status: t.status.clone(),
        });
    }
    let now = settings.clock.now();
    let before = t.lifecycle()?;
    // What the step says, where it goes, and the action the lifecycle checks.
    let mut reason: Option<String> = None;
    let mut public_note: Option<String> = None;
    let mut reply: Option<String> = None;
    let mut master: Option<i64> = None;
    let mut detail = serde_json::Map::new();
    let action = match step {
        Step::Reject { reason: why, note } => {
            if *why == NonAcceptance::OtherChannel && note.trim().is_empty() {
                return Err(StoreError::Invalid(
                    "note: tell the caller which channel handles this (Art. 19)".into(),
                ));
            }
            detail.insert(
                "reason_code".into(),
                serde_json::to_value(why).unwrap_or_default(),
            );
            public_note = opt_text(note);
            reason = public_note.clone();
            Action::Reject(*why)
        }
        Step::AnswerDirectly { answer } => {
            public_note = Some(required("answer", answer)?);
            Action::AnswerDirectly
        }
        Step::Dispatch {
            lead_unit,
            co_units,
            days,
        } => {
            let lead = match lead_unit {
                Some(u) => *u,
                None => suggest_unit(db, &t.category, &t.district, &t.town)
                    .await?
                    .map(|s| s.unit_id)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "lead_unit: the catalogue has no unit for {:?} in {:?}; name one",
                            t.category, t.district
                        ))
                    })?,
            };
            let mut all = co_units.clone();
            all.push(lead);
            check_units(db, &all).await?;
            let days = match days {
                Some(d) if (1..=60).contains(d) => *d,
                Some(d) => {
                    return Err(StoreError::Invalid(format!(
                        "days: {d} is not 1 to 60 working days"
                    )));
                }
                None => category_days(db, &t.category).await?,
            };
            detail.insert("days".into(), days.into());
            detail.insert("co_units".into(), co_units.clone().into());
            Action::Dispatch {
                lead,
                co: co_units.clone(),
                days,
            }
        }
        Step::Sign => Action::Sign,
        Step::Return { reason: why } => {
            reason = Some(required("reason", why)?);
            Action::Return
        }
        Step::Designate {
            unit,
            days,
            reason: why,
        } => {
            reason = Some(required("reason", why)?);
            check_units(db, &[*unit]).await?;
            let days = match days {
                Some(d) => *d,
                None => category_days(db, &t.category).await?,
            };
            detail.insert("days".into(), days.into());
            Action::Designate { unit: *unit, days }
        }
        Step::RequestExtension { days, reason: why } => {
            reason = Some(required("reason", why)?);
            detail.insert("days".into(), (*days).into());
            Action::RequestExtension { days: *days }
        }
        Step::ApproveExtension { note } => {
            reason = opt_text(note);
            Action::ApproveExtension
        }
        Step::RefuseExtension { reason: why } => {
            reason = Some(required("reason", why)?);
            Action::RefuseExtension
        }
        Step::Reply { reply: text } => {
            reply = Some(required("reply", text)?);
            let on_time = t.due_at.is_none_or(|d| now <= d);
            detail.insert("on_time".into(), on_time.into());
            Action::Reply
        }
        Step::RequestTermination { reason: why } => {
            reason = Some(required("reason", why)?);
            Action::RequestTermination
        }
        Step::ApproveTermination { explanation } => {
            public_note = Some(required("explanation", explanation)?);
            Action::ApproveTermination
        }
        Step::RefuseTermination { reason: why } => {
            reason = Some(required("reason", why)?);
            Action::RefuseTermination
        }
        Step::Revisit { result, note } => {
            reason = opt_text(note);
            detail.insert("result".into(), satisfaction_str(*result).into());
            Action::Revisit(*result)
        }
        Step::Escalate { reason: why } => {
            reason = Some(required("reason", why)?);
            Action::Escalate
        }
        Step::Merge { into } => {
            let m = get(db, into).await.map_err(|_| {
                StoreError::Invalid(format!("into: no ticket {into} to merge into"))
            })?;
            if m.id == t.id {
                return Err(StoreError::Invalid(
                    "into: a ticket cannot absorb itself".into(),
                ));
            }
            if !m.status()?.is_open() || m.master_id.is_some() {
                return Err(StoreError::Invalid(format!(
                    "into: ticket {into} is {} and cannot absorb others",
                    m.status
                )));
            }
            master = Some(m.id);
            detail.insert("master".into(), m.number.clone().into());
            Action::MergeInto(m.id)
        }
        Step::Object { reason: why } => {
            reason = Some(required("reason", why)?);
            Action::Object
        }
        Step::Urge { message } => {
            reason = Some(required("message", message)?);
            Action::Urge
        }
        Step::Supervise { on, reason: why } => {
            reason = opt_text(why);
            detail.insert("on".into(), (*on).into());
            Action::Supervise(*on)
        }
        Step::Note { text } => {
            reason = Some(required("text", text)?);
            Action::Note
        }
    };
    let after = workflow::apply(
        &before,
        &action,
        &by.actor,
        now,
        &settings.calendar,
        &settings.rules,
    )?;
    if let Some(due) = after.due_at.filter(|_| after.due_at != before.due_at) {
        detail.insert("due_at".into(), due.to_rfc3339().into());
    }
    // The unit the step concerns, for the history and the scorecards.
    let unit = match &action {
        Action::Return => before.lead_unit,
        _ => after.lead_unit.or(before.lead_unit),
    };
    let closed_at = if after.status.is_open() {
        None
    } else {
        Some(t.closed_at.unwrap_or(now))
    };
    let replied_on_time = detail.get("on_time").and_then(|v| v.as_bool());
    let mut tx = db.begin().await?;
    let row = sqlx::query_as::<_, TicketRow>(
        "UPDATE tickets SET status = $3, lead_unit = $4, co_units = $5, designated = $6,
             dispatched_at = $7, due_at = $8, extension_days = $9, pending_extension = $10,
             escalation = $11, reopen_count = $12, satisfaction = $13, supervised = $14,
             return_count = return_count + $15, urged_count = urged_count + $16,
             master_id = COALESCE($17, master_id), reply = COALESCE($18, reply),
             public_note = COALESCE($19, public_note),
             replied_at = CASE WHEN $18::text IS NULL THEN replied_at ELSE $20 END,
             replied_on_time = COALESCE($21, replied_on_time), closed_at = $22,
             updated_at = $20, version = version + 1
         WHERE id = $1 AND version = $2
         RETURNING *",
    )
    .bind(t.id)
    .bind(version)
    .bind(after.status.as_str())
    .bind(after.lead_unit)
    .bind(&after.co_units)
    .bind(after.designated)
    .bind(after.dispatched_at)
    .bind(after.due_at)
    .bind(i32::try_from(after.extension_days).unwrap_or(i32::MAX))
    .bind(after.pending_extension.and_then(|d| i32::try_from(d).ok()))
    .bind(i16::from(after.escalation))
    .bind(i32::try_from(after.reopen_count).unwrap_or(i32::MAX))
    .bind(after.satisfaction.map(satisfaction_str))
    .bind(after.supervised)
    .bind(i32::from(matches!(action, Action::Return)))
    .bind(i32::from(matches!(action, Action::Urge)))
    .bind(master)
    .bind(&reply)
    .bind(&public_note)
    .bind(now)
    .bind(replied_on_time)
    .bind(closed_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        // Someone else's change landed between our read and our write. The transaction's
        // connection goes back first: holding it while asking for another would starve a
        // pool full of writers racing on one ticket.
        tx.rollback().await?;
        let current = get(db, number).await?;
        return Err(StoreError::Stale {
            current: current.version,
            given: version,
            status: current.status,
        });
    };
    sqlx::query!(
        "INSERT INTO ticket_events (ticket_id, at, actor, action, from_status, to_status,
                                    unit_id, reason, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        t.id,
        now,
        by.name,
        action.name(),
        t.status,
        row.status,
        unit,
        reason,
        serde_json::Value::Object(detail)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}
