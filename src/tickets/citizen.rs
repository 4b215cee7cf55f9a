//! What a citizen may learn about a ticket (REGULATION.md Art. 13), the same for the public
//! API and the IVR's `ticket_status` node: the ticket number plus its access code prove the
//! right to ask. The access code is six random digits given to the citizen at intake (the
//! agent reads it out from the agent page; an Open311 client gets it in the filing's answer);
//! staff lists never show it, so knowing a masked number from a list is not enough. The last
//! four digits of the phone on the ticket may be given as well, as a second factor: when
//! given they must match, and alone they prove nothing. A wrong number, a wrong code and wrong
//! digits look the same.
//!
//! Wrong tries are counted per ticket and per source (the client's address on the API, the
//! calling number in the IVR) in `citizen_failures`, one row per key changed under an advisory
//! lock, so parallel tries are counted one by one. Past [`FREE_TRIES_TICKET`] wrong tries on a
//! ticket, or [`FREE_TRIES_SOURCE`] from one source, each further try waits a growing time
//! (30 s, doubling, at most an hour): a million codes cannot be tried, and the citizen is
//! never locked out for long by somebody else's tries. A right answer clears both counts.
//! Successful reads are in the audit log; failed tries are only counted.

use chrono::{Datelike, Duration};
use sqlx::PgPool;

use super::store::{self, StoreError, TicketRow};
use super::workflow::Status;
use crate::china::calendar::china_time;

/// Wrong tries on one ticket before each further try waits.
pub const FREE_TRIES_TICKET: i32 = 5;
/// Wrong tries from one source (on any tickets) before each further try waits.
pub const FREE_TRIES_SOURCE: i32 = 20;
/// Failures are forgotten after an hour without one.
const FORGET_AFTER_SECS: i64 = 3600;

/// What the citizen gives to prove the right to a ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proof {
    /// The access code told at intake.
    pub access_code: String,
    /// The last four digits of the phone given on the ticket, if the citizen gave them too.
    pub phone_last4: Option<String>,
}

impl Proof {
    /// Whether this proof opens ticket `t`.
    pub fn opens(&self, t: &TicketRow) -> bool {
        // Compared without an early exit, so the time taken says nothing of how much matched.
        let (a, b) = (self.access_code.as_bytes(), t.access_code.as_bytes());
        let code = a.len() == b.len()
            && !b.is_empty()
            && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        code && self
            .phone_last4
            .as_deref()
            .is_none_or(|d| store::phone_matches(t, d))
    }
}

/// The answer to a citizen's look-up.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The number and the proof match.
    Found(Box<TicketRow>),
    /// No ticket with this number and this proof.
    NotFound,
    /// Too many wrong tries on this ticket or from this source lately: try again in this
    /// many seconds.
    Throttled(u64),
}

/// Seconds the try after `failures` wrong ones must wait, with `free` of them allowed.
pub fn wait_secs(failures: i32, free: i32) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = u32::try_from(failures - free).unwrap_or(0).min(7);
    (30_i64 << doublings).min(3600)
}

/// Checks `number` and `proof` for `actor` (`citizen` on the API, `ivr` on the phone) coming
/// from `source`; audits a successful read and counts a wrong try.
pub async fn lookup(
    db: &PgPool,
    number: &str,
    proof: &Proof,
    actor: &str,
    source: &str,
) -> Result<Lookup, StoreError> {
    let subject = format!("ticket:{number}");
    let ticket_key = format!("ticket:{number}");
    let source_key = format!("source:{source}");
    let mut keys = [ticket_key.as_str(), source_key.as_str()];
    keys.sort_unstable();
    let mut tx = db.begin().await?;
    // In key order, so two look-ups never wait for each other's second lock.
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 22))")
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    let wait: Option<i64> = sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM max(wait_until) - now()))::bigint FROM citizen_failures
         WHERE key = ANY($1) AND wait_until > now()",
    )
    .bind(&keys[..])
    .fetch_one(&mut *tx)
    .await?;
    if let Some(secs) = wait {
        tx.commit().await?;
        return Ok(Lookup::Throttled(u64::try_from(secs.max(1)).unwrap_or(1)));
    }
    // On the transaction's connection: a look-up holds one connection, never waits for two.
    let found = sqlx::query_as::<_, TicketRow>("SELECT * FROM tickets WHERE number = $1")
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?
        .filter(|t| proof.opens(t));
    let Some(t) = found else {
        for (key, free) in [
            (&ticket_key, FREE_TRIES_TICKET),
            (&source_key, FREE_TRIES_SOURCE),
        ] {
            let failures: i32 = sqlx::query_scalar(
                "INSERT INTO citizen_failures AS c (key, failures, last_at, wait_until)
                 VALUES ($1, 1, now(), now())
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN c.last_at < now() - make_interval(secs => $2)
                                   THEN 1 ELSE c.failures + 1 END,
                   last_at = now()
                 RETURNING failures",
            )
            .bind(key)
            .bind(FORGET_AFTER_SECS as f64)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE citizen_failures SET wait_until = now() + make_interval(secs => $2)
                 WHERE key = $1",
            )
            .bind(key)
            .bind(wait_secs(failures, free) as f64)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM citizen_failures WHERE last_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("hotline_citizen_lookups_failed_total", "actor" => actor.to_string())
            .increment(1);
        return Ok(Lookup::NotFound);
    };
    sqlx::query("DELETE FROM citizen_failures WHERE key = ANY($1)")
        .bind(&keys[..])
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    crate::audit::record(db, actor, "public.read", &subject, serde_json::json!({})).await?;
    Ok(Lookup::Found(Box::new(t)))
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

/// Said when the number and the code do not match.
pub const NOT_FOUND_TEXT: &str = "没有找到这个工单，请核对工单编号和查询码。";
/// Said when the ticket has had too many wrong tries.
pub const THROTTLED_TEXT: &str = "查询次数过多，请稍后再试。";

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

    #[test]
    fn the_wait_grows_from_30_seconds_to_an_hour() {
        assert_eq!(wait_secs(4, 5), 0);
        assert_eq!(wait_secs(5, 5), 30);
        assert_eq!(wait_secs(6, 5), 60);
        assert_eq!(wait_secs(9, 5), 480);
        assert_eq!(wait_secs(12, 5), 3600);
        assert_eq!(wait_secs(i32::MAX, 5), 3600);
    }
}
