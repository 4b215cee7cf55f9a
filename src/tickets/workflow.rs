//! The 12345 ticket lifecycle as a pure state machine (REGULATION.md, Art. 16-27): what may
//! happen to a ticket in each state, by whom, and what it does to its deadlines. No database:
//! the SQL layer loads a [`Ticket`], asks [`apply`] for the next [`Ticket`], and stores it with the
//! history row in one transaction (with optimistic versioning there, not here).
//!
//! Deadlines are working days on the official calendar ([`crate::china::calendar`]): 5 to handle
//! (longer where a law sets it), extensions up to a maximum in total (Shandong: 10), 2 to
//! return a misrouted ticket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::china::calendar::{CalendarError, WorkCalendar};

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted at intake, waiting for dispatch.
    Accepted,
    /// Refused at intake with an Art. 19 reason (final).
    NotAccepted,
    /// Answered at once by the agent and closed at intake (Art. 18; final).
    AnsweredDirectly,
    /// Sent to a lead unit, not yet signed for.
    Dispatched,
    /// Signed for by the lead unit; being handled.
    Handling,
    /// Returned by the unit as outside its duties, waiting for re-dispatch or designation.
    Returned,
    /// The unit asked to end it (Art. 21), waiting for the office's review.
    TerminationRequested,
    /// Ended after review, with an explanation to the caller (final).
    Terminated,
    /// The unit replied to the citizen and to the office; waiting for the revisit (Art. 25).
    Replied,
    /// Revisited and found satisfactory (final, unless the citizen objects).
    Closed,
    /// Folded into a master ticket whose outcome reaches this caller too (final).
    Merged,
}

impl Status {
    /// The state's name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::NotAccepted => "not_accepted",
            Status::AnsweredDirectly => "answered_directly",
            Status::Dispatched => "dispatched",
            Status::Handling => "handling",
            Status::Returned => "returned",
            Status::TerminationRequested => "termination_requested",
            Status::Terminated => "terminated",
            Status::Replied => "replied",
            Status::Closed => "closed",
            Status::Merged => "merged",
        }
    }

    /// The state named `s` (as [`Status::as_str`] spells it).
    pub fn parse(s: &str) -> Option<Status> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// Whether the state named `s` is open (an unknown name is not).
    pub fn is_open_name(s: &str) -> bool {
        Status::parse(s).is_some_and(Status::is_open)
    }

    /// Whether the ticket is still being worked on (counts for deadlines and supervision).
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            Status::NotAccepted
                | Status::AnsweredDirectly
                | Status::Terminated
                | Status::Closed
                | Status::Merged
        )
    }
}

/// Art. 19: matters the hotline does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonAcceptance {
    /// For courts, arbitration, discipline inspection, administrative review or information
    /// disclosure: the caller is told the right channel.
    OtherChannel,
    /// Already in a petition procedure.
    InPetition,
    /// Involves state secrets or is against public order.
    SecretOrPublicOrder,
    /// Already lawfully concluded.
    Concluded,
}

/// The result of a revisit (Art. 25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    /// Satisfied.
    Satisfied,
    /// Basically satisfied.
    BasicallySatisfied,
    /// Dissatisfied: the ticket goes back to the same unit.
    Dissatisfied,
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An intake agent of the hotline office.
    IntakeAgent,
    /// A dispatcher of the hotline office.
    Dispatcher,
    /// A supervisor of the hotline office (reviews extensions, terminations, disputes).
    Supervisor,
    /// Staff of a handling unit, by unit id.
    UnitStaff(i64),
    /// The citizen who filed the ticket (checked by number and phone, Art. 13-14).
    Citizen,
}

/// What someone does to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Refuse at intake (Art. 19).
    Reject(NonAcceptance),
    /// Answer at once and close (Art. 18).
    AnswerDirectly,
    /// Send to a lead unit (and co-handling units) with a time limit in working days (5 by
    /// default; longer where a law sets it).
    Dispatch {
        /// The lead unit.
        lead: i64,
        /// Co-handling units.
        co: Vec<i64>,
        /// Working days to handle.
        days: u32,
    },
    /// The lead unit signs for the ticket.
    Sign,
    /// The lead unit returns it as outside its duties (Art. 22), within the return window.
    Return,
    /// The office settles a dispute: this unit handles it and cannot return it (Art. 22).
    Designate {
        /// The designated unit.
        unit: i64,
        /// Working days to handle.
        days: u32,
    },
    /// The unit asks for more working days (Art. 20).
    RequestExtension {
        /// Working days asked for.
        days: u32,
    },
    /// The office approves the pending extension.
    ApproveExtension,
    /// The office refuses the pending extension.
    RefuseExtension,
    /// The unit replies to the citizen and the office (Art. 20).
    Reply,
    /// The unit asks to end the matter (Art. 21).
    RequestTermination,
    /// The office approves the termination.
    ApproveTermination,
    /// The office refuses it: handling goes on.
    RefuseTermination,
    /// The revisit's result (Art. 25).
    Revisit(Satisfaction),
    /// Escalate one level (Art. 23: city government office, then the executive meeting).
    Escalate,
    /// Fold into a master ticket.
    MergeInto(i64),
    /// The citizen objects to the reply (Art. 14): the ticket goes back to the same unit.
    Object,
    /// The office urges the unit to finish (Art. 26); the ticket is unchanged but counted.
    Urge,
    /// The office puts the ticket under supervision, or lifts it (Art. 26).
    Supervise(bool),
    /// A comment in the history (a co-handling unit's opinion, a call back to the citizen).
    Note,
}

impl Action {
    /// The action's name as the API and the history spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Reject(_) => "reject",
            Action::AnswerDirectly => "answer_directly",
            Action::Dispatch { .. } => "dispatch",
            Action::Sign => "sign",
            Action::Return => "return",
            Action::Designate { .. } => "designate",
            Action::RequestExtension { .. } => "request_extension",
            Action::ApproveExtension => "approve_extension",
            Action::RefuseExtension => "refuse_extension",
            Action::Reply => "reply",
            Action::RequestTermination => "request_termination",
            Action::ApproveTermination => "approve_termination",
            Action::RefuseTermination => "refuse_termination",
            Action::Revisit(_) => "revisit",
            Action::Escalate => "escalate",
            Action::MergeInto(_) => "merge",
            Action::Object => "object",
            Action::Urge => "urge",
            Action::Supervise(_) => "supervise",
            Action::Note => "note",
        }
    }
}

/// Limits that differ by province (Shandong's by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Working days a unit has to return a misrouted ticket, from dispatch.
    pub return_window_days: u32,
    /// Most working days of extension in total.
    pub max_extension_days: u32,
    /// Highest escalation level (1: city government office, 2: executive meeting).
    pub max_escalation: u8,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            return_window_days: 2,
            max_extension_days: 10,
            max_escalation: 2,
        }
    }
}

/// What the lifecycle needs to know of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Current state.
    pub status: Status,
    /// The lead unit, once dispatched.
    pub lead_unit: Option<i64>,
    /// Co-handling units.
    pub co_units: Vec<i64>,
    /// Whether the lead unit was designated by the office (then it cannot return it).
    pub designated: bool,
    /// When it was last dispatched (the return window runs from here).
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When the handling must be finished.
    pub due_at: Option<DateTime<Utc>>,
    /// Working days granted in extensions so far.
    pub extension_days: u32,
    /// An extension asked for and not yet decided.
    pub pending_extension: Option<u32>,
    /// Escalation level (0: none).
    pub escalation: u8,
    /// Times reopened after a dissatisfied revisit.
    pub reopen_count: u32,
    /// The revisit result, once revisited.
    pub satisfaction: Option<Satisfaction>,
    /// Under supervision by the office (Art. 26).
    pub supervised: bool,
}

impl Ticket {
    /// A ticket just accepted at intake.
    pub fn accepted() -> Ticket {
        Ticket {
            status: Status::Accepted,
            lead_unit: None,
            co_units: Vec::new(),
            designated: false,
            dispatched_at: None,
            due_at: None,
            extension_days: 0,
            pending_extension: None,
            escalation: 0,
            reopen_count: 0,
            satisfaction: None,
            supervised: false,
        }
    }
}

/// Why an action is refused; the API answers 409 (state) or 403 (actor) or 422 (rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The action does not exist in the current state.
    #[error("cannot {action} a ticket that is {}", current.as_str())]
    Illegal {
        /// The ticket's state.
        current: Status,
        /// What was tried.
        action: &'static str,
    },
    /// This actor may not take this action on this ticket.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A rule of the regulation refuses it.
    #[error("{0}")]
    Rule(String),
    /// The calendar cannot compute the deadline.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// Applies `action` by `actor` at `now`; returns the ticket after it.
pub fn apply(
    t: &Ticket,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
    calendar: &WorkCalendar,
    rules: &Rules,
) -> Result<Ticket, WorkflowError> {
    use Action as A;
    use Status as S;
    let illegal = || WorkflowError::Illegal {
        current: t.status,
        action: action.name(),
    };
    let office = matches!(actor, Actor::Dispatcher | Actor::Supervisor);
    let is_lead = |a: &Actor| matches!(a, Actor::UnitStaff(u) if Some(*u) == t.lead_unit);
    let mut next = t.clone();
    match (t.status, action) {
        (S::Accepted, A::Reject(_)) | (S::Accepted, A::AnswerDirectly) => {
            if !matches!(actor, Actor::IntakeAgent | Actor::Dispatcher) {
                return Err(WorkflowError::Forbidden(
                    "only the hotline office decides at intake",
                ));
            }
            next.status = if matches!(action, A::AnswerDirectly) {
                S::AnsweredDirectly
            } else {
                S::NotAccepted
            };
        }
        (S::Accepted | S::Returned, A::Dispatch { lead, co, days }) => {
            if !office {
                return Err(WorkflowError::Forbidden(
                    "only the hotline office dispatches",
                ));
            }
            if co.contains(lead) {
                return Err(WorkflowError::Rule(
                    "the lead unit is also listed as co-handling".into(),
                ));
            }
            next.status = S::Dispatched;
            next.lead_unit = Some(*lead);
            next.co_units = co.clone();
            next.designated = false;
            next.dispatched_at = Some(now);
            next.due_at = Some(calendar.deadline(now, *days)?);
            next.extension_days = 0;
            next.pending_extension = None;
        }
        (S::Returned, A::Designate { unit, days }) => {
            if !matches!(actor, Actor::Supervisor) {
                return Err(WorkflowError::Forbidden(
                    "only a supervisor settles a dispute",
                ));
            }
            next.status = S::Dispatched;
            next.lead_unit = Some(*unit);
            next.designated = true;
            next.dispatched_at = Some(now);
            next.due_at = Some(calendar.deadline(now, *days)?);
        }
        (S::Dispatched, A::Sign) => {
            if !is_lead(actor) {
                return Err(WorkflowError::Forbidden(
                    "only the lead unit signs for a ticket",
                ));
            }
            next.status = S::Handling;
        }
        (S::Dispatched | S::Handling, A::Return) => {
            if !is_lead(actor) {
                return Err(WorkflowError::Forbidden(
                    "only the lead unit returns a ticket",
                ));
            }
            if t.designated {
                return Err(WorkflowError::Rule(
                    "a unit designated by the hotline office cannot return the ticket (Art. 22)"
                        .into(),
                ));
            }
            let since = t.dispatched_at.ok_or_else(illegal)?;
            let window_end = calendar.deadline(since, rules.return_window_days)?;
            if now >= window_end {
                return Err(WorkflowError::Rule(format!(
                    "the {} working days to return a misrouted ticket ended at {window_end}",
                    rules.return_window_days
                )));
            }
            next.status = S::Returned;
            next.lead_unit = None;
            next.co_units.clear();
            next.due_at = None;
            next.dispatched_at = None;
        }
        (S::Handling, A::RequestExtension { days }) => {
            if !is_lead(actor) {
                return Err(WorkflowError::Forbidden(
                    "only the lead unit asks for an extension",
                ));
            }
            if t.pending_extension.is_some() {
                return Err(WorkflowError::Rule(
                    "an extension is already waiting for review".into(),
                ));
            }
            let total = t.extension_days.checked_add(*days);
            if *days == 0 || total.is_none_or(|d| d > rules.max_extension_days) {
                return Err(WorkflowError::Rule(format!(
                    "extensions may total at most {} working days ({} granted so far)",
                    rules.max_extension_days, t.extension_days
                )));
            }
            next.pending_extension = Some(*days);
        }
        (S::Handling, A::ApproveExtension | A::RefuseExtension) => {
            if !matches!(actor, Actor::Supervisor) {
                return Err(WorkflowError::Forbidden(
                    "only a supervisor reviews extensions",
                ));
            }
            let days = t.pending_extension.ok_or_else(illegal)?;
            next.pending_extension = None;
            if matches!(action, A::ApproveExtension) {
                let due = t.due_at.ok_or_else(illegal)?;
                next.due_at = Some(calendar.extend(due, days)?);
                next.extension_days += days;
            }
        }
        (S::Handling, A::Reply) => {
            if !is_lead(actor) {
                return Err(WorkflowError::Forbidden("only the lead unit replies"));
            }
            next.status = S::Replied;
        }
        (S::Handling, A::RequestTermination) => {
            if !is_lead(actor) {
                return Err(WorkflowError::Forbidden(
                    "only the lead unit asks to end a ticket",
                ));
            }
            next.status = S::TerminationRequested;
        }
        (S::TerminationRequested, A::ApproveTermination | A::RefuseTermination) => {
            if !matches!(actor, Actor::Supervisor) {
                return Err(WorkflowError::Forbidden(
                    "only a supervisor reviews a termination",
                ));
            }
            next.status = if matches!(action, A::ApproveTermination) {
                S::Terminated
            } else {
                S::Handling
            };
        }
        (S::Replied, A::Revisit(result)) => {
            if !office {
                return Err(WorkflowError::Forbidden("only the hotline office revisits"));
            }
            next.satisfaction = Some(*result);
            if *result == Satisfaction::Dissatisfied {
                // Back to the same unit, with a fresh default time limit.
                next.status = S::Handling;
                next.reopen_count += 1;
                next.due_at = Some(calendar.deadline(now, 5)?);
            } else {
                next.status = S::Closed;
            }
        }
        (s, A::Escalate) if s.is_open() => {
            if !office {
                return Err(WorkflowError::Forbidden(
                    "only the hotline office escalates",
                ));
            }
            if t.escalation >= rules.max_escalation {
                return Err(WorkflowError::Rule(
                    "already at the highest escalation level".into(),
                ));
            }
            next.escalation += 1;
        }
        (S::Replied | S::Closed, A::Object) => {
            if !matches!(
                actor,
                Actor::Citizen | Actor::Dispatcher | Actor::Supervisor
            ) {
                return Err(WorkflowError::Forbidden(
                    "only the citizen (or the office on the citizen's behalf) objects",
                ));
            }
            next.status = S::Handling;
            next.reopen_count += 1;
            next.satisfaction = Some(Satisfaction::Dissatisfied);
            next.due_at = Some(calendar.deadline(now, 5)?);
        }
        (S::Dispatched | S::Handling, A::Urge) => {
            if !office {
                return Err(WorkflowError::Forbidden("only the hotline office urges"));
            }
        }
        (s, A::Supervise(on)) if s.is_open() => {
            if !matches!(actor, Actor::Supervisor) {
                return Err(WorkflowError::Forbidden(
                    "only a supervisor sets supervision",
                ));
            }
            next.supervised = *on;
        }
        (_, A::Note) => {
            if matches!(actor, Actor::Citizen) {
                return Err(WorkflowError::Forbidden(
                    "citizens rate or object, not note",
                ));
            }
        }
        (s, A::MergeInto(_)) if s.is_open() => {
            if !office {
                return Err(WorkflowError::Forbidden(
                    "only the hotline office merges tickets",
                ));
            }
            next.status = S::Merged;
        }
        _ => return Err(illegal()),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cal() -> WorkCalendar {
        WorkCalendar::shipped().unwrap()
    }

    /// 10:00 Beijing time on a day of 2026.
    fn at(month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, 2, 0, 0).unwrap()
    }

    /// The end (24:00 Beijing) of a day of 2026.
    fn end_of(month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, 16, 0, 0).unwrap()
    }

    fn run(
        t: &Ticket,
        action: Action,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<Ticket, WorkflowError> {
        apply(t, &action, &actor, now, &cal(), &Rules::default())
    }

    fn dispatched(now: DateTime<Utc>) -> Ticket {
        run(
            &Ticket::accepted(),
            Action::Dispatch {
                lead: 7,
                co: vec![8],
                days: 5,
            },
            Actor::Dispatcher,
            now,
        )
        .unwrap()
    }

    /// Dispatched at `d` and signed for by the lead unit at `s`.
    fn signed(d: DateTime<Utc>, s: DateTime<Utc>) -> Ticket {
        run(&dispatched(d), Action::Sign, Actor::UnitStaff(7), s).unwrap()
    }

    #[test]
    fn dispatch_before_the_spring_festival_counts_working_days_only() {
        let t = dispatched(at(2, 12));
        assert_eq!(t.status, Status::Dispatched);
        // Thu 12 Feb + 5 working days (Fri 13, Sat 14 make-up, Tue 24 to Thu 26): end of 26 Feb.
        assert_eq!(t.due_at, Some(end_of(2, 26)));
    }

    #[test]
    fn an_extension_adds_working_days_to_the_deadline_within_the_maximum() {
        let t = signed(at(2, 12), at(2, 13));
        let t = run(
            &t,
            Action::RequestExtension { days: 3 },
            Actor::UnitStaff(7),
            at(2, 25),
        )
        .unwrap();
        assert_eq!(
            run(
                &t,
                Action::RequestExtension { days: 1 },
                Actor::UnitStaff(7),
                at(2, 25)
            )
            .unwrap_err(),
            WorkflowError::Rule("an extension is already waiting for review".into())
        );
        assert!(matches!(
            run(&t, Action::ApproveExtension, Actor::UnitStaff(7), at(2, 25)),
            Err(WorkflowError::Forbidden(_))
        ));
        let t = run(&t, Action::ApproveExtension, Actor::Supervisor, at(2, 25)).unwrap();
        // 26 Feb + 3 working days: Fri 27, Sat 28 (make-up), Mon 2 March.
        assert_eq!(t.due_at, Some(end_of(3, 2)));
        assert_eq!(t.extension_days, 3);
        let too_much = run(
            &t,
            Action::RequestExtension { days: 8 },
            Actor::UnitStaff(7),
            at(2, 26),
        );
        assert!(matches!(too_much, Err(WorkflowError::Rule(m)) if m.contains("at most 10")));
        // A number of days that would overflow the total is refused the same way.
        let overflow = run(
            &t,
            Action::RequestExtension { days: u32::MAX },
            Actor::UnitStaff(7),
            at(2, 26),
        );
        assert!(matches!(overflow, Err(WorkflowError::Rule(m)) if m.contains("at most 10")));
    }

    #[test]
    fn a_return_within_two_working_days_and_not_after() {
        // Dispatched Fri 13 Feb: the window runs through Sat 14 (make-up) and Tue 24.
        let t = dispatched(at(2, 13));
        let back = run(&t, Action::Return, Actor::UnitStaff(7), at(2, 24)).unwrap();
        assert_eq!(back.status, Status::Returned);
        assert_eq!(back.lead_unit, None);
        let late = run(&t, Action::Return, Actor::UnitStaff(7), at(2, 25));
        assert!(matches!(late, Err(WorkflowError::Rule(m)) if m.contains("2 working days")));
        // Another unit cannot return it.
        assert!(matches!(
            run(&t, Action::Return, Actor::UnitStaff(8), at(2, 14)),
            Err(WorkflowError::Forbidden(_))
        ));
    }

    #[test]
    fn a_designated_unit_cannot_return_the_ticket() {
        let back = run(
            &dispatched(at(3, 2)),
            Action::Return,
            Actor::UnitStaff(7),
            at(3, 3),
        )
        .unwrap();
        assert!(matches!(
            run(
                &back,
                Action::Designate { unit: 7, days: 5 },
                Actor::Dispatcher,
                at(3, 4)
            ),
            Err(WorkflowError::Forbidden(_))
        ));
        let d = run(
            &back,
            Action::Designate { unit: 7, days: 5 },
            Actor::Supervisor,
            at(3, 4),
        )
        .unwrap();
        assert!(d.designated);
        let again = run(&d, Action::Return, Actor::UnitStaff(7), at(3, 4));
        assert!(matches!(again, Err(WorkflowError::Rule(m)) if m.contains("designated")));
    }

    #[test]
    fn termination_is_requested_then_reviewed() {
        let t = signed(at(3, 2), at(3, 2));
        let t = run(
            &t,
            Action::RequestTermination,
            Actor::UnitStaff(7),
            at(3, 3),
        )
        .unwrap();
        let refused = run(&t, Action::RefuseTermination, Actor::Supervisor, at(3, 4)).unwrap();
        assert_eq!(refused.status, Status::Handling);
        let ended = run(&t, Action::ApproveTermination, Actor::Supervisor, at(3, 4)).unwrap();
        assert_eq!(ended.status, Status::Terminated);
        assert!(!ended.status.is_open());
    }

    #[test]
    fn a_dissatisfied_revisit_reopens_to_the_same_unit() {
        let t = signed(at(3, 2), at(3, 2));
        let t = run(&t, Action::Reply, Actor::UnitStaff(7), at(3, 3)).unwrap();
        let reopened = run(
            &t,
            Action::Revisit(Satisfaction::Dissatisfied),
            Actor::Dispatcher,
            at(3, 4),
        )
        .unwrap();
        assert_eq!(reopened.status, Status::Handling);
        assert_eq!(reopened.lead_unit, Some(7));
        assert_eq!(reopened.reopen_count, 1);
        // Wed 4 March + 5 working days: Wed 11 March.
        assert_eq!(reopened.due_at, Some(end_of(3, 11)));
        let closed = run(
            &t,
            Action::Revisit(Satisfaction::BasicallySatisfied),
            Actor::Dispatcher,
            at(3, 4),
        )
        .unwrap();
        assert_eq!(closed.status, Status::Closed);
    }

    #[test]
    fn illegal_transitions_name_the_current_state() {
        let t = Ticket::accepted();
        let e = run(&t, Action::Reply, Actor::UnitStaff(7), at(3, 2)).unwrap_err();
        assert_eq!(e.to_string(), "cannot reply a ticket that is accepted");
        let closed = run(&t, Action::AnswerDirectly, Actor::IntakeAgent, at(3, 2)).unwrap();
        let e = run(
            &closed,
            Action::Dispatch {
                lead: 1,
                co: vec![],
                days: 5,
            },
            Actor::Dispatcher,
            at(3, 2),
        )
        .unwrap_err();
        assert_eq!(
            e,
            WorkflowError::Illegal {
                current: Status::AnsweredDirectly,
                action: "dispatch"
            }
        );
        let merged = run(
            &dispatched(at(3, 2)),
            Action::MergeInto(99),
            Actor::Dispatcher,
            at(3, 2),
        )
        .unwrap();
        assert_eq!(merged.status, Status::Merged);
        assert!(run(&merged, Action::Escalate, Actor::Supervisor, at(3, 2)).is_err());
    }

    #[test]
    fn escalation_stops_at_the_top_level() {
        let mut t = dispatched(at(3, 2));
        for _ in 0..2 {
            t = run(&t, Action::Escalate, Actor::Supervisor, at(3, 2)).unwrap();
        }
        assert_eq!(t.escalation, 2);
        assert!(matches!(
            run(&t, Action::Escalate, Actor::Supervisor, at(3, 2)),
            Err(WorkflowError::Rule(_))
        ));
    }

    #[test]
    fn a_deadline_past_the_calendar_is_an_error() {
        let e = run(
            &Ticket::accepted(),
            Action::Dispatch {
                lead: 7,
                co: vec![],
                days: 5,
            },
            Actor::Dispatcher,
            Utc.with_ymd_and_hms(2026, 12, 29, 2, 0, 0).unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            WorkflowError::Calendar(CalendarError::YearNotCovered(2027))
        );
    }
}
