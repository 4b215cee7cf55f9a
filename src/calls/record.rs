//! The call record: what one call was (parties, times, how it ended, its IVR walk, its
//! recording and its media counters), kept in PostgreSQL's `calls` table by a writer task so
//! that no media thread ever waits on the database. The row is inserted when the call is
//! answered and completed when it ends, so a crash leaves a row (and a repairable recording)
//! for every call it cut off.
//!
//! When the database cannot take a write, the event goes to a spool file on disk (JSON Lines,
//! synced), and so does every later event until the spool has been replayed, so their order
//! holds; the spool is replayed every few seconds and at the next start. Every write is
//! idempotent (a started row is found again by Call-ID and start time), so a replay cut short
//! by a crash is simply replayed again: no record is lost or doubled.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_sip::rtp::session::Quality;
use sqlx::PgPool;
use tokio::sync::mpsc;

/// One finished call.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// The caller's number (From user).
    pub caller: String,
    /// The number dialled (Request-URI user).
    pub called: String,
    /// When the INVITE arrived.
    pub started_at: DateTime<Utc>,
    /// When the ACK confirmed the answer.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended.
    pub ended_at: DateTime<Utc>,
    /// The recording's file.
    pub recording: Option<String>,
    /// Why: `caller hung up`, `ivr hung up`, `no media`, `no ack`, `session expired`,
    /// `transfer unavailable`, `shutdown`.
    pub end_reason: String,
    /// `PCMU` or `PCMA`.
    pub codec: Option<String>,
    /// Every IVR node entered, in order.
    pub ivr_path: Vec<String>,
    /// Every key pressed, in order.
    pub ivr_keys: String,
    /// Variables the IVR collected.
    pub ivr_vars: BTreeMap<String, String>,
    /// The queue the caller was last put in.
    pub queue: Option<String>,
    /// When the caller was first put in a queue.
    #[serde(default)]
    pub queued_at: Option<DateTime<Utc>>,
    /// The agent (user id) who answered the call.
    #[serde(default)]
    pub agent_id: Option<u64>,
    /// When the agent answered.
    #[serde(default)]
    pub agent_answered_at: Option<DateTime<Utc>>,
    /// This call is a callback the hotline placed to a caller who asked for one.
    #[serde(default)]
    pub callback: bool,
    /// The caller chose to be called back (its place was kept; it hung up).
    #[serde(default)]
    pub callback_requested: bool,
    /// Every ring of an agent's phone for this call, in order.
    #[serde(default)]
    pub rings: Vec<RingRecord>,
    /// The URI the IVR transferred the caller to.
    pub transfer_to: Option<String>,
    /// Satisfaction score 1-5 from the survey.
    pub score: Option<u8>,
    /// RTP packets sent to the caller.
    pub packets_sent: u64,
    /// RTP packets received from the caller.
    pub packets_received: u64,
    /// What RTCP saw of the call's quality (loss, jitter both ways, round trip).
    #[serde(with = "quality_serde")]
    pub quality: Option<Quality>,
}

/// One ring of an agent's phone for a call: when it started and ended, and how (`answered`,
/// `no answer` (the ring timeout), `busy`, `declined`, `unavailable`, `not registered`,
/// `answered elsewhere`, `failed`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RingRecord {
    /// The agent (user id).
    pub agent: u64,
    /// When the INVITE went out.
    pub started_at: DateTime<Utc>,
    /// When the ringing ended.
    pub ended_at: DateTime<Utc>,
    /// How.
    pub result: String,
}

/// The quality in the spool, as the `quality` column's JSON.
mod quality_serde {
    use hotline_sip::rtp::session::Quality;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(q: &Option<Quality>, s: S) -> Result<S::Ok, S::Error> {
        super::quality_json(q).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Quality>, D::Error> {
        let v: Option<serde_json::Value> = Option::deserialize(d)?;
        Ok(v.map(|v| Quality {
            received: v["received"].as_u64().unwrap_or(0),
            lost: v["lost"].as_i64().unwrap_or(0),
            jitter_ms: v["jitter_ms"].as_f64().unwrap_or(0.0),
            peer_lost: v["peer_lost"].as_i64(),
            peer_jitter_ms: v["peer_jitter_ms"].as_f64(),
            rtt_ms: v["rtt_ms"].as_f64(),
            reports_received: v["reports_received"].as_u64().unwrap_or(0),
            reports_sent: v["reports_sent"].as_u64().unwrap_or(0),
        }))
    }
}

/// The quality as JSON for the `quality` column.
fn quality_json(q: &Option<Quality>) -> Option<serde_json::Value> {
    q.map(|q| {
        serde_json::json!({
            "received": q.received,
            "lost": q.lost,
            "jitter_ms": q.jitter_ms,
            "peer_lost": q.peer_lost,
            "peer_jitter_ms": q.peer_jitter_ms,
            "rtt_ms": q.rtt_ms,
            "reports_received": q.reports_received,
            "reports_sent": q.reports_sent,
        })
    })
}

/// What the writer is told.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CallEvent {
    /// The call was answered (the record so far); `u64` is the handler's key for the call.
    Started(u64, CallRecord),
    /// The caller was queued: the record so far, with the IVR's path, keys and variables, so
    /// the agent desktop shows them while the call is still in progress.
    Queued(u64, CallRecord),
    /// The call ended (the whole record).
    Ended(u64, CallRecord),
}

impl CallRecord {
    /// Inserts the row of a call in progress (no end yet), or finds it when it is there
    /// already (a replayed spool); returns its id.
    pub async fn insert_started(&self, pool: &PgPool) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar!(
            r#"WITH existing AS (
                   SELECT id FROM calls WHERE call_id = $1 AND started_at = $4 LIMIT 1),
               inserted AS (
                   INSERT INTO calls (call_id, caller, called, started_at, answered_at, recording,
                                      codec)
                   SELECT $1, $2, $3, $4, $5, $6, $7
                   WHERE NOT EXISTS (SELECT 1 FROM existing)
                   RETURNING id)
               SELECT id AS "id!" FROM inserted UNION ALL SELECT id FROM existing"#,
            self.call_id,
            self.caller,
            self.called,
            self.started_at,
            self.answered_at,
            self.recording,
            self.codec,
        )
        .fetch_one(pool)
        .await
    }

    /// Writes the whole record: over row `id` when there is one, else as a new row.
    pub async fn complete(&self, pool: &PgPool, id: Option<i64>) -> Result<i64, sqlx::Error> {
        let vars = serde_json::to_value(&self.ivr_vars).unwrap_or_default();
        let id = match id {
            Some(id) => id,
            None => self.insert_started(pool).await?,
        };
        sqlx::query!(
            "UPDATE calls SET answered_at = $2, ended_at = $3, end_reason = $4, recording = $5,
                codec = $6, ivr_path = $7, ivr_keys = $8, ivr_vars = $9, queue = $10,
                score = $11, packets_sent = $12, packets_received = $13, quality = $14,
                transfer_to = $15, queued_at = $16, agent_id = $17, agent_answered_at = $18,
                outcome = $19, callback = $20, rings = $21
             WHERE id = $1",
            id,
            self.answered_at,
            self.ended_at,
            self.end_reason,
            self.recording,
            self.codec,
            &self.ivr_path,
            self.ivr_keys,
            vars,
            self.queue,
            self.score.map(i16::from),
            i64::try_from(self.packets_sent).unwrap_or(i64::MAX),
            i64::try_from(self.packets_received).unwrap_or(i64::MAX),
            quality_json(&self.quality),
            self.transfer_to,
            self.queued_at,
            self.agent_id.and_then(|a| i64::try_from(a).ok()),
            self.agent_answered_at,
            self.outcome(),
            self.callback,
            serde_json::to_value(&self.rings).unwrap_or_default(),
        )
        .execute(pool)
        .await?;
        if let Some(missed) = self.missed() {
            // Idempotent: a replayed spool finds the row there already.
            sqlx::query(
                "INSERT INTO missed_calls (call_row_id, caller, queue, waited_secs, missed_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_row_id) DO NOTHING",
            )
            .bind(id)
            .bind(&self.caller)
            .bind(missed.0)
            .bind(missed.1)
            .bind(self.ended_at)
            .execute(pool)
            .await?;
        }
        Ok(id)
    }

    /// How the call ended for the hotline: `answered` (by an agent), `callback` (the caller
    /// chose to be called back), `transferred` (by the
    /// IVR), `abandoned` (hung up while waiting for an agent), `self_served` (never queued),
    /// or `ended` (left the queue otherwise: no media, shutdown).
    pub fn outcome(&self) -> &'static str {
        if self.agent_id.is_some() {
            "answered"
        } else if self.callback_requested {
            "callback"
        } else if self.transfer_to.is_some() {
            "transferred"
        } else if self.missed().is_some() {
            "abandoned"
        } else if self.queue.is_none() {
            "self_served"
        } else {
            "ended"
        }
    }

    /// The queue and the seconds waited, when the caller hung up while waiting for an agent
    /// (no agent and no transfer took the call): an abandoned call, kept for calling back.
    pub fn missed(&self) -> Option<(&str, f64)> {
        let queue = self.queue.as_deref()?;
        let since = self.queued_at?;
        (self.end_reason == "caller hung up"
            && !self.callback_requested
            && self.transfer_to.is_none()
            && self.agent_id.is_none())
        .then(|| {
            let waited = (self.ended_at - since).num_milliseconds().max(0) as f64 / 1000.0;
            (queue, waited)
        })
    }
}

/// Completes the rows of calls a crash cut off, once their recordings are repaired: each row
/// still open whose recording is one of `repaired` (final path, seconds) ends when its audio
/// does, as `cut off`. Returns how many rows it closed.
pub async fn close_cut_off(pool: &PgPool, repaired: &[(std::path::PathBuf, f64)]) -> u64 {
    let mut n = 0;
    for (path, secs) in repaired {
        let path = path.display().to_string();
        let r = sqlx::query!(
            "UPDATE calls SET ended_at = COALESCE(answered_at, started_at) + make_interval(secs => $2),
                end_reason = 'cut off'
             WHERE recording = $1 AND ended_at IS NULL",
            path,
            secs,
        )
        .execute(pool)
        .await;
        match r {
            Ok(done) => n += done.rows_affected(),
            Err(e) => tracing::error!(error = %e, recording = %path, "cannot close a cut-off call"),
        }
    }
    n
}

/// The spool of records the database could not take, in `dir`.
pub fn spool_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("call-records.spool.jsonl")
}

/// How often a spool is replayed while the database is away.
const REPLAY_EVERY: Duration = Duration::from_secs(3);

struct Writer {
    pool: PgPool,
    rows: HashMap<u64, i64>,
    spool: Option<std::path::PathBuf>,
    /// Events are in the spool: later ones go there too until it is replayed.
    spooled: bool,
}

impl Writer {
    async fn apply(&mut self, event: &CallEvent) -> Result<(), sqlx::Error> {
        match event {
            CallEvent::Started(key, r) => {
                let id = r.insert_started(&self.pool).await?;
                self.rows.insert(*key, id);
            }
            CallEvent::Queued(key, r) => {
                if let Some(id) = self.rows.get(key) {
                    sqlx::query(
                        "UPDATE calls SET queue = $2, queued_at = $3, ivr_path = $4, ivr_keys = $5,
                             ivr_vars = $6
                          WHERE id = $1 AND ended_at IS NULL",
                    )
                    .bind(id)
                    .bind(&r.queue)
                    .bind(r.queued_at)
                    .bind(&r.ivr_path)
                    .bind(&r.ivr_keys)
                    .bind(serde_json::to_value(&r.ivr_vars).unwrap_or_default())
                    .execute(&self.pool)
                    .await?;
                }
            }
            CallEvent::Ended(key, r) => {
                r.complete(&self.pool, self.rows.get(key).copied()).await?;
                self.rows.remove(key);
                metrics::counter!("hotline_call_records_written_total").increment(1);
            }
        }
        Ok(())
    }

    /// Appends to the spool and syncs it; false when there is no spool or it cannot be written.
    fn append(&mut self, event: &CallEvent) -> bool {
        use std::io::Write;
        let Some(path) = &self.spool else {
            return false;
        };
        let line = match serde_json::to_string(event) {
            Ok(l) => l,
            Err(_) => return false,
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                f.write_all(format!("{line}\n").as_bytes())?;
                f.sync_data()
            });
        match written {
            Ok(()) => {
                self.spooled = true;
                metrics::counter!("hotline_call_records_spooled_total").increment(1);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, spool = %path.display(), "cannot write the call-record spool");
                false
            }
        }
    }

    async fn handle(&mut self, event: CallEvent) {
        if self.spooled && self.append(&event) {
            return;
        }
        if let Err(e) = self.apply(&event).await {
            tracing::warn!(error = %e, "call record not written; spooled until the database is back");
            if !self.append(&event) {
                self.retry(event).await;
            }
        }
    }

    /// Without a spool: retry with back-off for about a minute, then give up.
    async fn retry(&mut self, event: CallEvent) {
        let mut delay = Duration::from_millis(100);
        for _ in 0..10 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
            if self.apply(&event).await.is_ok() {
                return;
            }
        }
        metrics::counter!("hotline_call_records_lost_total").increment(1);
        tracing::error!(event = ?event, "call record lost");
    }

    /// Replays the spool in order; what is left (the database went away again) stays in it.
    async fn replay(&mut self) {
        let Some(path) = self.spool.clone() else {
            return;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.spooled = false;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, spool = %path.display(), "cannot read the call-record spool");
                return;
            }
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut done = 0;
        for line in &lines {
            let event: CallEvent = match serde_json::from_str(line) {
                Ok(e) => e,
                Err(e) => {
                    // A line cut by a crash mid-write: nothing more can be made of it.
                    tracing::error!(error = %e, "unreadable line in the call-record spool skipped");
                    done += 1;
                    continue;
                }
            };
            if self.apply(&event).await.is_err() {
                break;
            }
            done += 1;
        }
        let result = if done == lines.len() {
            std::fs::remove_file(&path)
        } else {
            let rest: String = lines[done..].iter().map(|l| format!("{l}\n")).collect();
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, rest).and_then(|()| std::fs::rename(&tmp, &path))
        };
        match result {
            Ok(()) if done == lines.len() => {
                self.spooled = false;
                if done > 0 {
                    tracing::info!(
                        records = done,
                        "call-record spool replayed into the database"
                    );
                }
            }
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, spool = %path.display(), "cannot rewrite the call-record spool")
            }
        }
    }
}

/// Replays the spool the last process left in `spool_dir` (if any) into the database, before
/// the start-up decides which calls were cut off: a call whose end is in the spool was not.
pub async fn replay_spool(pool: &PgPool, spool_dir: &std::path::Path) {
    let spool = spool_path(spool_dir);
    if !spool.exists() {
        return;
    }
    let mut w = Writer {
        pool: pool.clone(),
        rows: HashMap::new(),
        spool: Some(spool),
        spooled: true,
    };
    w.replay().await;
}

/// Writes records as calls start and end, never on a media thread. While the database is away
/// records go to the spool in `spool_dir` (replayed every few seconds, at the end and at the
/// next start); without a spool directory a failed write is retried for about a minute.
pub fn spawn_writer(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<CallEvent>,
    spool_dir: Option<&std::path::Path>,
) -> tokio::task::JoinHandle<()> {
    let spool = spool_dir.map(spool_path);
    let spooled = spool.as_ref().is_some_and(|p| p.exists());
    let mut w = Writer {
        pool,
        rows: HashMap::new(),
        spool,
        spooled,
    };
    tokio::spawn(async move {
        if w.spooled {
            w.replay().await;
        }
        let mut tick = tokio::time::interval(REPLAY_EVERY);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(e) => w.handle(e).await,
                    None => break,
                },
                _ = tick.tick(), if w.spooled => w.replay().await,
            }
        }
        if w.spooled {
            w.replay().await;
        }
    })
}
