//! Tickets in PostgreSQL: intake, the lifecycle steps of [`super::workflow`] applied with
//! optimistic versioning and written with their history row in one transaction, lists and
//! filters, the supervision scan, duplicates and merging, the dispatch catalogue's suggestion,
//! citizens' progress queries and ratings, and unit scorecards.
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
    .fetch_one(db)
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
    .fetch_one(db)
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

/// One step of a ticket's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// State before.
    pub from_status: Option<String>,
    /// State after.
    pub to_status: String,
    /// The unit concerned.
    pub unit_id: Option<i64>,
    /// Why.
    pub reason: Option<String>,
    /// The rest (days, result, on_time, master, ...).
    pub detail: serde_json::Value,
}

/// A ticket's history, oldest first.
pub async fn history(db: &PgPool, ticket_id: i64) -> Result<Vec<Event>, StoreError> {
    Ok(sqlx::query_as::<_, Event>(
        "SELECT at, actor, action, from_status, to_status, unit_id, reason, detail
         FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await?)
}

/// The numbers of the tickets merged into this one (their callers get its outcome).
pub async fn merged_into(db: &PgPool, ticket_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT number FROM tickets WHERE master_id = $1 ORDER BY id",
        ticket_id
    )
    .fetch_all(db)
    .await?)
}

/// The catalogue's lead unit for a category in a place (Art. 24).
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Unit id.
    pub unit_id: i64,
    /// Unit name.
    pub unit_name: String,
    /// The rule's district (none: city-wide).
    pub district: Option<String>,
    /// The rule's town.
    pub town: Option<String>,
}

/// The most specific dispatch rule matching: town, then district, then city-wide.
pub async fn suggest_unit(
    db: &PgPool,
    category: &str,
    district: &str,
    town: &str,
) -> Result<Option<Suggestion>, StoreError> {
    let row = sqlx::query!(
        "SELECT r.unit_id, u.name, r.district, r.town FROM dispatch_rules r
         JOIN units u ON u.id = r.unit_id
         WHERE r.category = $1 AND u.active
           AND (r.district IS NULL OR r.district = $2)
           AND (r.town IS NULL OR r.town = $3)
         ORDER BY (r.town IS NOT NULL) DESC, (r.district IS NOT NULL) DESC
         LIMIT 1",
        category,
        district,
        town
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Suggestion {
        unit_id: r.unit_id,
        unit_name: r.name,
        district: r.district,
        town: r.town,
    }))
}

/// A ticket in a list: no caller identity beyond a masked number.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Summary {
    /// Row id, the list's cursor.
    #[serde(skip)]
    pub id: i64,
    /// Number.
    pub number: String,
    /// Status.
    pub status: String,
    /// Channel.
    pub channel: String,
    /// Request type.
    pub request_type: String,
    /// Category.
    pub category: String,
    /// District.
    pub district: String,
    /// Town.
    pub town: String,
    /// Lead unit.
    pub lead_unit: Option<i64>,
    /// Deadline.
    pub due_at: Option<DateTime<Utc>>,
    /// Filed.
    pub created_at: DateTime<Utc>,
    /// Supervised.
    pub supervised: bool,
    /// Escalation level.
    pub escalation: i16,
    /// Confidential.
    pub confidential: bool,
    /// Caller's phone (masked by the caller of [`list`] before it leaves).
    pub caller_phone: Option<String>,
    /// Version.
    pub version: i32,
}

/// Filters of the ticket list; every one optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Comma-separated statuses.
    pub status: Option<String>,
    /// Lead unit.
    pub unit: Option<i64>,
    /// Category code.
    pub category: Option<String>,
    /// District.
    pub district: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Request type.
    pub request_type: Option<String>,
    /// Only overdue (true) tickets.
    pub overdue: Option<bool>,
    /// Only supervised tickets.
    pub supervised: Option<bool>,
    /// Filed at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Filed before.
    pub to: Option<DateTime<Utc>>,
    /// The caller's full phone number (office roles only; the read is audited).
    pub caller_phone: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
    /// The cursor from the previous page.
    pub before: Option<i64>,
}

/// A page of tickets, newest first; `only_unit` restricts to one unit's tickets (lead or
/// co-handling). Returns the page and the cursor of the next one.
pub async fn list(
    db: &PgPool,
    now: DateTime<Utc>,
    f: &Filter,
    only_unit: Option<i64>,
) -> Result<(Vec<Summary>, Option<i64>), StoreError> {
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT id, number, status, channel, request_type, category, district, town, lead_unit,
                due_at, created_at, supervised, escalation, confidential, caller_phone, version
         FROM tickets WHERE TRUE",
    );
    if let Some(u) = only_unit {
        q.push(" AND (lead_unit = ")
            .push_bind(u)
            .push(" OR co_units @> ARRAY[")
            .push_bind(u)
            .push("]::bigint[])");
    }
    if let Some(s) = &f.status {
        let statuses: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
        for st in &statuses {
            parse_status(st)
                .map_err(|_| StoreError::Invalid(format!("status: {st:?} is unknown")))?;
        }
        q.push(" AND status = ANY(").push_bind(statuses).push(")");
    }
    if let Some(u) = f.unit {
        q.push(" AND lead_unit = ").push_bind(u);
    }
    if let Some(c) = &f.category {
        q.push(" AND category = ").push_bind(c.clone());
    }
    if let Some(d) = &f.district {
        q.push(" AND district = ").push_bind(d.clone());
    }
    if let Some(c) = &f.channel {
        q.push(" AND channel = ").push_bind(c.clone());
    }
    if let Some(r) = &f.request_type {
        q.push(" AND request_type = ").push_bind(r.clone());
    }
    if let Some(true) = f.overdue {
        q.push(" AND status IN ('dispatched', 'handling') AND due_at IS NOT NULL AND due_at < ")
            .push_bind(now);
    }
    if let Some(s) = f.supervised {
        q.push(" AND supervised = ").push_bind(s);
    }
    if let Some(from) = f.from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND created_at < ").push_bind(to);
    }
    if let Some(p) = &f.caller_phone {
        q.push(" AND caller_phone = ").push_bind(p.clone());
    }
    if let Some(b) = f.before {
        q.push(" AND id < ").push_bind(b);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<Summary> = q.build_query_as().fetch_all(db).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((rows, next))
}

/// The supervision list (Art. 26): open tickets due before `until` (overdue ones first),
/// optionally only one unit's.
pub async fn due_before(
    db: &PgPool,
    until: DateTime<Utc>,
    only_unit: Option<i64>,
    limit: i64,
) -> Result<Vec<Summary>, StoreError> {
    Ok(sqlx::query_as::<_, Summary>(
        "SELECT id, number, status, channel, request_type, category, district, town, lead_unit,
                due_at, created_at, supervised, escalation, confidential, caller_phone, version
         FROM tickets
         WHERE due_at IS NOT NULL AND status IN ('dispatched', 'handling') AND due_at < $1
           AND ($2::bigint IS NULL OR lead_unit = $2)
         ORDER BY due_at LIMIT $3",
    )
    .bind(until)
    .bind(only_unit)
    .bind(limit.clamp(1, 1000))
    .fetch_all(db)
    .await?)
}

/// A likely duplicate and why it was suggested.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Duplicate {
    /// Number.
    pub number: String,
    /// Status.
    pub status: String,
    /// Category.
    pub category: String,
    /// Address.
    pub address: String,
    /// Filed.
    pub created_at: DateTime<Utc>,
    /// `same_caller` or `same_place`.
    pub reason: String,
}

/// Likely duplicates of `t` filed within 30 days before or after it: the same caller, or the
/// same category at the same address (or within about 300 m).
pub async fn duplicates(db: &PgPool, t: &TicketRow) -> Result<Vec<Duplicate>, StoreError> {
    let address: String = t.address.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(sqlx::query_as::<_, Duplicate>(
        "SELECT number, status, category, address, created_at,
                CASE WHEN caller_phone = $3 THEN 'same_caller' ELSE 'same_place' END AS reason
         FROM tickets
         WHERE id <> $1 AND status <> 'merged'
           AND created_at BETWEEN $2 - interval '30 days' AND $2 + interval '30 days'
           AND (caller_phone = $3
                OR (category = $4 AND (
                    ($5 <> '' AND district = $6 AND regexp_replace(address, '\\s', '', 'g') = $5)
                    OR ($7::float8 IS NOT NULL AND lat BETWEEN $7 - 0.0027 AND $7 + 0.0027
                        AND lon BETWEEN $8 - 0.0033 AND $8 + 0.0033))))
         ORDER BY created_at DESC LIMIT 20",
    )
    .bind(t.id)
    .bind(t.created_at)
    .bind(&t.caller_phone)
    .bind(&t.category)
    .bind(address)
    .bind(&t.district)
    .bind(t.lat)
    .bind(t.lon)
    .fetch_all(db)
    .await?)
}

/// Records the citizen's rating 1-5 (Art. 14) of a ticket that was answered.
pub async fn rate(
    db: &PgPool,
    settings: &Settings,
    t: &TicketRow,
    score: i16,
    comment: &str,
) -> Result<(), StoreError> {
    if !(1..=5).contains(&score) {
        return Err(StoreError::Invalid("score: expected 1 to 5".into()));
    }
    if !matches!(
        t.status()?,
        Status::Replied | Status::Closed | Status::Terminated | Status::AnsweredDirectly
    ) {
        return Err(StoreError::Invalid(format!(
            "a ticket that is {} has no answer to rate yet",
            t.status
        )));
    }
    let now = settings.clock.now();
    let mut tx = db.begin().await?;
    sqlx::query!(
        "UPDATE tickets SET rating = $2, updated_at = $3, version = version + 1 WHERE id = $1",
        t.id,
        score,
        now
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO ticket_events (ticket_id, at, actor, action, from_status, to_status,
                                    unit_id, reason, detail)
         VALUES ($1, $2, 'citizen', 'rate', $3, $3, $4, $5, jsonb_build_object('score', $6::int))",
        t.id,
        now,
        t.status,
        t.lead_unit,
        opt_text(comment),
        i32::from(score)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A unit's scorecard over a period (Art. 27).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Scorecard {
    /// Unit id.
    pub unit_id: i64,
    /// Unit name.
    pub unit_name: String,
    /// Tickets dispatched or designated to it.
    pub dispatched: i64,
    /// Returned by it.
    pub returned: i64,
    /// Replied by it.
    pub replied: i64,
    /// Replied within the deadline.
    pub replied_on_time: i64,
    /// Reopened after a dissatisfied revisit.
    pub reopened: i64,
    /// Revisits: satisfied.
    pub satisfied: i64,
    /// Revisits: basically satisfied.
    pub basically_satisfied: i64,
    /// Revisits: dissatisfied.
    pub dissatisfied: i64,
    /// replied_on_time / replied.
    pub on_time_rate: Option<f64>,
    /// returned / dispatched.
    pub return_rate: Option<f64>,
    /// reopened / replied.
    pub reopen_rate: Option<f64>,
    /// (satisfied + basically satisfied) / revisits.
    pub satisfaction_rate: Option<f64>,
}

/// Scorecards of every unit with activity between two China dates (inclusive), from the
/// daily summary the history maintains.
pub async fn scorecards(
    db: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Scorecard>, StoreError> {
    Ok(sqlx::query_as::<_, Scorecard>(
        "WITH s AS (
             SELECT unit_id, sum(dispatched)::bigint AS dispatched, sum(returned)::bigint AS returned,
                    sum(replied)::bigint AS replied,
                    sum(replied_on_time)::bigint AS replied_on_time,
                    sum(reopened)::bigint AS reopened, sum(satisfied)::bigint AS satisfied,
                    sum(basically)::bigint AS basically_satisfied,
                    sum(dissatisfied)::bigint AS dissatisfied
             FROM unit_daily WHERE day BETWEEN $1 AND $2 GROUP BY unit_id)
         SELECT s.*, u.name AS unit_name,
                s.replied_on_time::float8 / NULLIF(s.replied, 0) AS on_time_rate,
                s.returned::float8 / NULLIF(s.dispatched, 0) AS return_rate,
                s.reopened::float8 / NULLIF(s.replied, 0) AS reopen_rate,
                (s.satisfied + s.basically_satisfied)::float8
                    / NULLIF(s.satisfied + s.basically_satisfied + s.dissatisfied, 0)
                    AS satisfaction_rate
         FROM s JOIN units u ON u.id = s.unit_id ORDER BY u.id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// How ticket counts are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountBy {
    /// Category code.
    Category,
    /// County or district.
    District,
    /// Channel.
    Channel,
    /// Request type.
    RequestType,
    /// China day.
    Day,
    /// China month (`YYYY-MM`).
    Month,
    /// Handling unit (by name): tickets dispatched or designated to it that day.
    Unit,
}

impl CountBy {
    /// The name the API takes (`?by=`).
    pub fn name(self) -> &'static str {
        match self {
            CountBy::Category => "category",
            CountBy::District => "district",
            CountBy::Channel => "channel",
            CountBy::RequestType => "request_type",
            CountBy::Day => "day",
            CountBy::Month => "month",
            CountBy::Unit => "unit",
        }
    }
}

/// One group of a count.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Count {
    /// The group (a category code, a district, `2026-03`, ...).
    pub key: String,
    /// Tickets filed.
    pub filed: i64,
}

/// Tickets filed between two China dates (inclusive), grouped, from the daily summary the
/// filing trigger keeps; largest groups first (by day and month: in order).
pub async fn counts(
    db: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    by: CountBy,
) -> Result<Vec<Count>, StoreError> {
    // Each arm is a fixed statement: the grouping column is never spliced from input.
    let sql = match by {
        CountBy::Category => {
            "SELECT category AS key, sum(filed)::bigint AS filed FROM ticket_daily
             WHERE day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1"
        }
        CountBy::District => {
            "SELECT district AS key, sum(filed)::bigint AS filed FROM ticket_daily
             WHERE day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1"
        }
        CountBy::Channel => {
            "SELECT channel AS key, sum(filed)::bigint AS filed FROM ticket_daily
             WHERE day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1"
        }
        CountBy::RequestType => {
            "SELECT request_type AS key, sum(filed)::bigint AS filed FROM ticket_daily
             WHERE day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1"
        }
        CountBy::Day => {
            "SELECT to_char(day, 'YYYY-MM-DD') AS key, sum(filed)::bigint AS filed
             FROM ticket_daily WHERE day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1"
        }
        CountBy::Month => {
            "SELECT to_char(day, 'YYYY-MM') AS key, sum(filed)::bigint AS filed
             FROM ticket_daily WHERE day BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1"
        }
        CountBy::Unit => {
            "SELECT u.name AS key, sum(d.dispatched)::bigint AS filed
             FROM unit_daily d JOIN units u ON u.id = d.unit_id
             WHERE d.day BETWEEN $1 AND $2 GROUP BY 1 HAVING sum(d.dispatched) > 0
             ORDER BY 2 DESC, 1"
        }
    };
    Ok(sqlx::query_as::<_, Count>(sql)
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await?)
}

/// Whether `given` (four digits) are the last four digits of the ticket's phone.
pub fn phone_matches(t: &TicketRow, given: &str) -> bool {
    let digits: String = t
        .caller_phone
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    given.len() == 4
        && given.chars().all(|c| c.is_ascii_digit())
        && digits.len() >= 4
        && digits.ends_with(given)
}

/// What a citizen is told about a ticket (Art. 13): the ticket it was merged into speaks for
/// it.
pub async fn public_view(db: &PgPool, t: &TicketRow) -> Result<serde_json::Value, StoreError> {
    let (outcome, merged_into) = match t.master_id {
        Some(m) => {
            let m = get_by_id(db, m).await?;
            let number = m.number.clone();
            (m, Some(number))
        }
        None => (t.clone(), None),
    };
    let unit = match outcome.lead_unit {
        Some(u) => {
            sqlx::query_scalar!("SELECT name FROM units WHERE id = $1", u)
                .fetch_optional(db)
                .await?
        }
        None => None,
    };
    Ok(serde_json::json!({
        "number": t.number,
        "status": outcome.status,
        "merged_into": merged_into,
        "category": outcome.category,
        "filed_at": t.created_at,
        "handling_unit": unit,
        "due_at": outcome.due_at,
        "reply": outcome.reply,
        "note": outcome.public_note,
        "replied_at": outcome.replied_at,
        "rating": t.rating,
    }))
}
