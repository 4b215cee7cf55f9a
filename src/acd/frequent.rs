//! Frequent callers (REGULATION.md Art. 12, 34; issue 22 item 10): a number that called more
//! than `acd.frequent_calls_per_hour` times in the last hour is flagged to the agent who takes
//! its call and on the wall board, with its calls. Nothing blocks a number: a supervisor may
//! send its calls to a dedicated queue (`frequent_caller_routes`, migration 0016), which the
//! ACD task applies when the IVR queues the caller ([`super::service::Command::Reroute`]).
//! The counts are read from the call records, so every node sees the same ones.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// A supervisor's route for a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Route {
    /// The caller's number.
    #[serde(skip)]
    pub caller: String,
    /// The queue its calls wait in.
    pub queue: String,
    /// Why (the supervisor's note).
    pub note: String,
    /// Who set it.
    pub set_by: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

/// One of a number's calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Call {
    /// The SIP Call-ID.
    pub call_id: String,
    /// When it came in.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None`: in progress).
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub end_reason: Option<String>,
    /// The queue it waited in, if any.
    pub queue: Option<String>,
}

/// A number over the threshold, or routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frequent {
    /// The number.
    pub caller: String,
    /// Its calls in the hour up to now.
    pub calls_last_hour: i64,
    /// Over the threshold.
    pub flagged: bool,
    /// Its calls in the last 24 hours, the latest first (at most 20).
    pub recent: Vec<Call>,
    /// Its tickets, all time.
    pub tickets: i64,
    /// The supervisor's route, if any.
    pub route: Option<Route>,
}

/// How many calls `caller` made in the hour up to `now`.
pub async fn calls_last_hour(
    db: &PgPool,
    caller: &str,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM calls WHERE caller = $1 AND started_at > $2 AND started_at <= $3",
    )
    .bind(caller)
    .bind(now - Duration::hours(1))
    .bind(now)
    .fetch_one(db)
    .await
}

/// The route set for `caller`, if any.
pub async fn route_of(db: &PgPool, caller: &str) -> Result<Option<Route>, sqlx::Error> {
    sqlx::query_as(
        "SELECT caller, queue, note, set_by, set_at FROM frequent_caller_routes WHERE caller = $1",
    )
    .bind(caller)
    .fetch_optional(db)
    .await
}

/// Every route (read at start, for the ACD task).
pub async fn routes(db: &PgPool) -> Result<Vec<Route>, sqlx::Error> {
    sqlx::query_as(
        "SELECT caller, queue, note, set_by, set_at FROM frequent_caller_routes ORDER BY caller",
    )
    .fetch_all(db)
    .await
}

/// Sets (or replaces) a number's route.
pub async fn set_route(
    db: &PgPool,
    caller: &str,
    queue: &str,
    note: &str,
    by: &str,
) -> Result<Route, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO frequent_caller_routes (caller, queue, note, set_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (caller) DO UPDATE
            SET queue = EXCLUDED.queue, note = EXCLUDED.note, set_by = EXCLUDED.set_by,
                set_at = now()
         RETURNING caller, queue, note, set_by, set_at",
    )
    .bind(caller)
    .bind(queue)
    .bind(note)
    .bind(by)
    .fetch_one(db)
    .await
}

/// Removes a number's route; false when it had none.
pub async fn clear_route(db: &PgPool, caller: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM frequent_caller_routes WHERE caller = $1")
        .bind(caller)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The numbers that called more than `threshold` times in the hour up to `now` (the most
/// first), then those routed that are not, each with its calls and route. `threshold` 0:
/// only the routed ones.
pub async fn list(
    db: &PgPool,
    threshold: u32,
    now: DateTime<Utc>,
) -> Result<Vec<Frequent>, sqlx::Error> {
    let counted: Vec<(String, i64)> = if threshold == 0 {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT caller, count(*) FROM calls
              WHERE started_at > $1 AND started_at <= $2 AND caller <> ''
              GROUP BY caller HAVING count(*) > $3
              ORDER BY count(*) DESC, caller LIMIT 100",
        )
        .bind(now - Duration::hours(1))
        .bind(now)
        .bind(i64::from(threshold))
        .fetch_all(db)
        .await?
    };
    let mut out = Vec::new();
    for (caller, n) in counted {
        out.push(one(db, caller, Some(n), threshold, now).await?);
    }
    for r in routes(db).await? {
        if !out.iter().any(|f| f.caller == r.caller) {
            out.push(one(db, r.caller, None, threshold, now).await?);
        }
    }
    Ok(out)
}

/// One number's view (`count`: its calls in the last hour when already known).
pub async fn one(
    db: &PgPool,
    caller: String,
    count: Option<i64>,
    threshold: u32,
    now: DateTime<Utc>,
) -> Result<Frequent, sqlx::Error> {
    let calls_last_hour = match count {
        Some(n) => n,
        None => calls_last_hour(db, &caller, now).await?,
    };
    let recent = sqlx::query_as(
        "SELECT call_id, started_at, ended_at, end_reason, queue FROM calls
          WHERE caller = $1 AND started_at > $2 AND started_at <= $3
          ORDER BY started_at DESC LIMIT 20",
    )
    .bind(&caller)
    .bind(now - Duration::hours(24))
    .bind(now)
    .fetch_all(db)
    .await?;
    let tickets = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE caller_phone = $1")
        .bind(&caller)
        .fetch_one(db)
        .await?;
    let route = route_of(db, &caller).await?;
    Ok(Frequent {
        flagged: is_flagged(calls_last_hour, threshold),
        caller,
        calls_last_hour,
        recent,
        tickets,
        route,
    })
}

/// Whether `calls` in an hour is more than the threshold (0: nobody is flagged).
pub fn is_flagged(calls: i64, threshold: u32) -> bool {
    threshold > 0 && calls > i64::from(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_the_threshold_is_flagged_and_0_turns_it_off() {
        assert!(!is_flagged(5, 5));
        assert!(is_flagged(6, 5));
        assert!(!is_flagged(1000, 0));
    }
}
