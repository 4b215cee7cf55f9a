//! What of the ACD outlives the process (issue 24), in PostgreSQL (migration 0012): each
//! logged-in agent's chosen state, queues, skills and phone (`acd_agents`), and each caller's
//! place in a queue with, for a kept callback, the number to call and the tries so far
//! (`acd_entries`). The ACD task keeps its state in memory and sends every change here as a
//! [`Write`]; [`spawn_writer`] applies them in order, a batch per transaction, and holds them
//! through a database outage. At start [`load`] reads them back (a row it cannot read, or one
//! of a newer format, is logged with its key and skipped), and [`close_cut_off`] puts the
//! callers whose calls died with the last process on the missed-call list.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;

/// The format of the rows this node writes (a newer one is skipped at start).
const VERSION: i16 = 1;

/// Changes held through a database outage before the oldest are dropped.
pub const MAX_PENDING: usize = 100_000;

/// What an agent chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// Taking calls.
    Available,
    /// Paused, with the reason.
    Paused(String),
}

/// A logged-in agent as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAgent {
    /// The agent.
    pub agent: u64,
    /// The SIP account its phone registers as.
    pub device: Option<String>,
    /// Queues logged into.
    pub queues: Vec<String>,
    /// Skills with proficiency.
    pub skills: Vec<(String, u8)>,
    /// Its chosen state.
    pub chosen: Chosen,
}

/// A kept callback: the number to call and the number the caller dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The caller's number.
    pub number: String,
    /// The hotline number it dialled (the callback's caller ID).
    pub called: String,
    /// Tries that failed so far.
    pub tries: u32,
    /// When the next try may be made (`None`: as soon as an agent is free).
    pub next_try_at: Option<DateTime<Utc>>,
}

/// A caller's place in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Call-ID of the call that queued (the row's key).
    pub call_id: String,
    /// The caller's number.
    pub caller: String,
    /// The queue it waits in now.
    pub queue: String,
    /// Higher goes first.
    pub priority: i32,
    /// Skills it needs.
    pub skills: Vec<String>,
    /// When it first queued (its place).
    pub queued_at: DateTime<Utc>,
    /// A kept callback.
    pub callback: Option<Callback>,
}

/// One change for the tables.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// An agent logged in, or changed its chosen state or queues.
    Agent(SavedAgent),
    /// An agent logged out.
    AgentGone(u64),
    /// A caller queued, moved queue, kept a callback or had a callback fail.
    Entry(Entry),
    /// A caller left its queue (answered, hung up, elsewhere in the script).
    EntryGone(String),
    /// The callbacks owed to a caller all failed: it goes on the missed-call list and leaves
    /// the queue.
    CallbackFailed {
        /// The entry's Call-ID (the first call's).
        call_id: String,
        /// The queue.
        queue: String,
        /// Seconds from its first queueing to the last try.
        waited_secs: f64,
    },
}

/// Starts the writer: the ACD's settings take the sender.
pub fn spawn_writer(pool: PgPool) -> (mpsc::UnboundedSender<Write>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
    let task = tokio::spawn(async move {
        let mut pending: VecDeque<Write> = VecDeque::new();
        let mut open = true;
        let mut tries_at_close = 0;
        while open || !pending.is_empty() {
            if pending.is_empty() {
                match rx.recv().await {
                    Some(w) => pending.push_back(w),
                    None => break,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(w) => pending.push_back(w),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            if pending.len() > MAX_PENDING {
                let drop = pending.len() - MAX_PENDING;
                tracing::error!(dropped = drop, "ACD state: too many changes held");
                pending.drain(..drop);
            }
            if let Err(e) = write(&pool, &mut pending).await {
                metrics::counter!("hotline_acd_state_write_failures_total").increment(1);
                tracing::warn!(error = %e, held = pending.len(), "ACD state not saved yet; retrying");
                if !open {
                    tries_at_close += 1;
                    if tries_at_close >= 5 {
                        tracing::error!(held = pending.len(), "ACD state lost at stop");
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    (tx, task)
}

fn id(agent: u64) -> i64 {
    i64::try_from(agent).unwrap_or(i64::MAX)
}

/// Writes the held changes in one transaction; they leave `pending` once committed.
async fn write(pool: &PgPool, pending: &mut VecDeque<Write>) -> Result<(), sqlx::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for w in pending.iter() {
        match w {
            Write::Agent(a) => {
                let (chosen, reason) = match &a.chosen {
                    Chosen::Available => ("available", None),
                    Chosen::Paused(r) => ("paused", Some(r.as_str())),
                };
                let skills = serde_json::to_value(&a.skills).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO acd_agents (agent_id, device, queues, skills, chosen, reason,
                                             updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, now(), $7)
                     ON CONFLICT (agent_id) DO UPDATE SET device = EXCLUDED.device,
                         queues = EXCLUDED.queues, skills = EXCLUDED.skills,
                         chosen = EXCLUDED.chosen, reason = EXCLUDED.reason,
                         updated_at = now(), version = EXCLUDED.version",
                )
                .bind(id(a.agent))
                .bind(&a.device)
                .bind(&a.queues)
                .bind(skills)
                .bind(chosen)
                .bind(reason)
                .bind(VERSION)
                .execute(&mut *tx)
                .await?;
            }
            Write::AgentGone(agent) => {
                sqlx::query("DELETE FROM acd_agents WHERE agent_id = $1")
                    .bind(id(*agent))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Entry(e) => {
                let cb = e.callback.as_ref();
                sqlx::query(
                    "INSERT INTO acd_entries (call_id, caller, queue, priority, skills, queued_at,
                                              callback, called, tries, next_try_at, updated_at,
                                              version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11)
                     ON CONFLICT (call_id) DO UPDATE SET caller = EXCLUDED.caller,
                         queue = EXCLUDED.queue, priority = EXCLUDED.priority,
                         skills = EXCLUDED.skills, queued_at = EXCLUDED.queued_at,
                         callback = EXCLUDED.callback, called = EXCLUDED.called,
                         tries = EXCLUDED.tries, next_try_at = EXCLUDED.next_try_at,
                         updated_at = now(), version = EXCLUDED.version",
                )
                .bind(&e.call_id)
                .bind(&e.caller)
                .bind(&e.queue)
                .bind(e.priority)
                .bind(&e.skills)
                .bind(e.queued_at)
                .bind(cb.map(|c| c.number.as_str()))
                .bind(cb.map(|c| c.called.as_str()))
                .bind(cb.map_or(0, |c| i32::try_from(c.tries).unwrap_or(i32::MAX)))
                .bind(cb.and_then(|c| c.next_try_at))
                .bind(VERSION)
                .execute(&mut *tx)
                .await?;
            }
            Write::EntryGone(call_id) => {
                sqlx::query("DELETE FROM acd_entries WHERE call_id = $1")
                    .bind(call_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::CallbackFailed {
                call_id,
                queue,
                waited_secs,
            } => {
                // The caller's first call (the one that kept the place) is its row on the list.
                sqlx::query(
                    "INSERT INTO missed_calls (call_row_id, caller, queue, waited_secs, missed_at,
                                               reason)
                     SELECT c.id, c.caller, $2, $3, now(), 'callback_failed'
                       FROM calls c WHERE c.call_id = $1
                      ORDER BY c.started_at DESC LIMIT 1
                     ON CONFLICT (call_row_id) DO NOTHING",
                )
                .bind(call_id)
                .bind(queue)
                .bind(waited_secs)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM acd_entries WHERE call_id = $1")
                    .bind(call_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    pending.clear();
    Ok(())
}

/// What the last process left: agents logged in, kept callbacks (in their order of service),
/// and how many rows could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Agents logged in.
    pub agents: Vec<SavedAgent>,
    /// Kept callbacks, the first queued first.
    pub callbacks: Vec<Entry>,
    /// Rows skipped (each logged with its key).
    pub skipped: usize,
}

/// Reads the agents and kept callbacks back. Entries without a callback are the places of
/// callers whose calls died with the process: [`close_cut_off`] lists those.
pub async fn load(pool: &PgPool) -> Result<Saved, sqlx::Error> {
    let mut saved = Saved::default();
    let rows = sqlx::query(
        "SELECT agent_id, device, queues, skills, chosen, reason, version
           FROM acd_agents ORDER BY agent_id",
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        match read_agent(&row) {
            Ok(a) => saved.agents.push(a),
            Err(why) => {
                saved.skipped += 1;
                let key: Option<i64> = row.try_get("agent_id").ok();
                tracing::warn!(agent = ?key, "acd_agents row skipped: {why}");
            }
        }
    }
    let rows = sqlx::query(
        "SELECT call_id, caller, queue, priority, skills, queued_at, callback, called, tries,
                next_try_at, version
           FROM acd_entries WHERE callback IS NOT NULL ORDER BY queued_at",
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        match read_entry(&row) {
            Ok(e) => saved.callbacks.push(e),
            Err(why) => {
                saved.skipped += 1;
                let key: Option<String> = row.try_get("call_id").ok();
                tracing::warn!(call_id = ?key, "acd_entries row skipped: {why}");
            }
        }
    }
    Ok(saved)
}

fn text(e: sqlx::Error) -> String {
    e.to_string()
}

fn read_agent(row: &sqlx::postgres::PgRow) -> Result<SavedAgent, String> {
    let version: i16 = row.try_get("version").map_err(text)?;
    if version > VERSION {
        return Err(format!(
            "written in format {version}, this node reads {VERSION}"
        ));
    }
    let agent: i64 = row.try_get("agent_id").map_err(text)?;
    let skills: serde_json::Value = row.try_get("skills").map_err(text)?;
    let skills: Vec<(String, u8)> = serde_json::from_value(skills)
        .map_err(|e| format!("skills are not [name, level] pairs: {e}"))?;
    let chosen: String = row.try_get("chosen").map_err(text)?;
    let reason: Option<String> = row.try_get("reason").map_err(text)?;
    let chosen = match (chosen.as_str(), reason) {
        ("available", _) => Chosen::Available,
        ("paused", Some(r)) if !r.trim().is_empty() => Chosen::Paused(r),
        ("paused", _) => return Err("paused without a reason".into()),
        (other, _) => return Err(format!("unknown state {other:?}")),
    };
    Ok(SavedAgent {
        agent: u64::try_from(agent).map_err(|_| format!("agent id {agent}"))?,
        device: row.try_get("device").map_err(text)?,
        queues: row.try_get("queues").map_err(text)?,
        skills,
        chosen,
    })
}

fn read_entry(row: &sqlx::postgres::PgRow) -> Result<Entry, String> {
    let version: i16 = row.try_get("version").map_err(text)?;
    if version > VERSION {
        return Err(format!(
            "written in format {version}, this node reads {VERSION}"
        ));
    }
    let number: Option<String> = row.try_get("callback").map_err(text)?;
    let called: Option<String> = row.try_get("called").map_err(text)?;
    let tries: i32 = row.try_get("tries").map_err(text)?;
    let callback = match (number, called) {
        (Some(n), Some(c)) if !n.trim().is_empty() => Some(Callback {
            number: n,
            called: c,
            tries: u32::try_from(tries).map_err(|_| format!("tries {tries}"))?,
            next_try_at: row.try_get("next_try_at").map_err(text)?,
        }),
        _ => return Err("a callback without the number to call or the number dialled".into()),
    };
    let queue: String = row.try_get("queue").map_err(text)?;
    if queue.trim().is_empty() {
        return Err("no queue".into());
    }
    Ok(Entry {
        call_id: row.try_get("call_id").map_err(text)?,
        caller: row.try_get("caller").map_err(text)?,
        queue,
        priority: row.try_get("priority").map_err(text)?,
        skills: row.try_get("skills").map_err(text)?,
        queued_at: row.try_get("queued_at").map_err(text)?,
        callback,
    })
}

/// Closes the calls the last process left open (its crash or stop cut them: no process ended
/// them) as `cut off` (those whose recordings were repaired have their end already), puts their callers on the missed-call list (`cut_off`, with the queue
/// they waited in if any), and drops the queue places of callers without a kept callback.
/// Run at start, after the call-record spool is replayed and the recordings are repaired.
/// Returns how many calls it closed.
pub async fn close_cut_off(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let cut: Vec<(i64,)> = sqlx::query_as(
        "UPDATE calls
            SET ended_at = COALESCE(ended_at, GREATEST(now(), COALESCE(answered_at, started_at))),
                end_reason = 'cut off', outcome = 'cut_off'
          WHERE ended_at IS NULL OR (end_reason = 'cut off' AND outcome IS NULL)
         RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<i64> = cut.into_iter().map(|(id,)| id).collect();
    sqlx::query(
        "INSERT INTO missed_calls (call_row_id, caller, queue, waited_secs, missed_at, reason)
         SELECT c.id, c.caller, COALESCE(e.queue, c.queue, ''),
                EXTRACT(EPOCH FROM c.ended_at - COALESCE(e.queued_at, c.queued_at, c.started_at))::float8,
                c.ended_at, 'cut_off'
           FROM calls c LEFT JOIN acd_entries e ON e.call_id = c.call_id AND e.callback IS NULL
          WHERE c.id = ANY($1)
         ON CONFLICT (call_row_id) DO NOTHING",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM acd_entries WHERE callback IS NULL")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}
