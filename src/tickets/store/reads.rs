//! What is read of tickets for pages and reports: a ticket's history and merges, the dispatch
//! catalogue's suggestion, lists and filters, the supervision scan, duplicates, citizens'
//! ratings, unit scorecards and counts, and the citizen's view of a ticket.

use super::*;

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
