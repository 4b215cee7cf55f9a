//! What a citizen may learn about a ticket (REGULATION.md Art. 13), the same for the public
//! API and the IVR's `ticket_status` node: the ticket number plus the last four digits of the
//! phone number given on it prove the right to ask. A wrong number and wrong digits look the
//! same; after [`MAX_FAILURES`] wrong tries on one ticket within 15 minutes every answer is
//! [`Lookup::Throttled`], so the digits cannot be found by trying all 10,000. Every attempt is
//! in the audit log.

use chrono::{Datelike, Duration};
use sqlx::PgPool;

use super::store::{self, StoreError, TicketRow};
use super::workflow::Status;
use crate::china::calendar::china_time;

/// Wrong tries on one ticket within 15 minutes before look-ups wait.
pub const MAX_FAILURES: i64 = 5;

/// The answer to a citizen's look-up.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The number and the digits match.
    Found(Box<TicketRow>),
    /// No ticket with this number and these digits.
    NotFound,
    /// Too many wrong tries on this ticket lately.
    Throttled,
}

/// Checks `number` and `last4` for `actor` (`citizen` on the API, `ivr` on the phone) and
/// audits the attempt.
pub async fn lookup(
    db: &PgPool,
    number: &str,
    last4: &str,
    actor: &str,
) -> Result<Lookup, StoreError> {
    let subject = format!("ticket:{number}");
    let failures = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM audit_log
           WHERE subject = $1 AND action = 'public.denied' AND at > now() - interval '15 minutes'"#,
        subject
    )
    .fetch_one(db)
    .await?;
    if failures >= MAX_FAILURES {
        return Ok(Lookup::Throttled);
    }
    let found = match store::get(db, number).await {
        Ok(t) if store::phone_matches(&t, last4) => Some(t),
        Ok(_) | Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let action = if found.is_some() {
        "public.read"
    } else {
        "public.denied"
    };
    crate::audit::record(db, actor, action, &subject, serde_json::json!({})).await?;
    Ok(match found {
        Some(t) => Lookup::Found(Box::new(t)),
        None => Lookup::NotFound,
    })
}

/// How a state is said to the citizen.
fn said(status: Status) -> &'static str {
    match status {
        Status::Accepted => "已受理，正在等待派单",
        Status::NotAccepted => "未予受理",
        Status::AnsweredDirectly => "已当场答复办结",
        Status::Dispatched => "已派发至承办单位",
        Status::Handling | Status::TerminationRequested => "正在办理中",
        Status::Returned => "正在重新派单",
        Status::Terminated => "已终止办理",
        Status::Replied => "承办单位已答复",
        Status::Closed => "已办结",
        Status::Merged => "已与同类诉求合并办理",
    }
}

/// Digits read one by one (a ticket number is not a quantity).
fn digit_by_digit(s: &str) -> String {
    s.chars()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The most a reply read over the phone runs to, in characters.
const SPOKEN_REPLY_CHARS: usize = 200;

/// What the IVR says about a ticket: its number, state, handling unit, deadline and the
/// answer (the ticket it was merged into speaks for it).
pub async fn spoken_status(db: &PgPool, t: &TicketRow) -> Result<String, StoreError> {
    let v = store::public_view(db, t).await?;
    let status = v["status"]
        .as_str()
        .and_then(Status::parse)
        .unwrap_or(Status::Accepted);
    let mut text = format!(
        "您查询的工单 {}，{}。",
        digit_by_digit(&t.number),
        said(status)
    );
    if let Some(unit) = v["handling_unit"].as_str() {
        text.push_str(&format!("承办单位：{unit}。"));
    }
    if status.is_open()
        && let Some(due) = v["due_at"]
            .as_str()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
    {
        // The deadline is 24:00 of its last day: say that day.
        let day = (due - Duration::seconds(1)).with_timezone(&china_time());
        text.push_str(&format!("办理期限：{}月{}日。", day.month(), day.day()));
    }
    for key in ["reply", "note"] {
        if let Some(s) = v[key].as_str().filter(|s| !s.trim().is_empty()) {
            let short: String = s.chars().take(SPOKEN_REPLY_CHARS).collect();
            text.push_str(&format!("答复内容：{short}。"));
            break;
        }
    }
    Ok(text)
}

/// Said when the number and digits do not match.
pub const NOT_FOUND_TEXT: &str = "没有找到这个工单，请核对工单编号和电话号码后四位。";
/// Said when the ticket has had too many wrong tries.
pub const THROTTLED_TEXT: &str = "查询次数过多，请十五分钟后再试。";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_digit_by_digit_and_every_state_has_words() {
        assert_eq!(digit_by_digit("2026"), "2 0 2 6");
        for s in [
            Status::Accepted,
            Status::NotAccepted,
            Status::AnsweredDirectly,
            Status::Dispatched,
            Status::Handling,
            Status::Returned,
            Status::TerminationRequested,
            Status::Terminated,
            Status::Replied,
            Status::Closed,
            Status::Merged,
        ] {
            assert!(!said(s).is_empty());
        }
    }
}
