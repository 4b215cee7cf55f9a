//! The call record: what one call was (parties, times, how it ended, its IVR walk, its
//! recording and its media counters), kept in PostgreSQL's `calls` table by a writer task so
//! that no media thread ever waits on the database. The row is inserted when the call is
//! answered and completed when it ends, so a crash leaves a row (and a repairable recording)
//! for every call it cut off.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_sip::rtp::session::Quality;
use sqlx::PgPool;
use tokio::sync::mpsc;

/// One finished call.
#[derive(Debug, Clone, PartialEq)]
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
    /// The URI the IVR transferred the caller to.
    pub transfer_to: Option<String>,
    /// Satisfaction score 1-5 from the survey.
    pub score: Option<u8>,
    /// RTP packets sent to the caller.
    pub packets_sent: u64,
    /// RTP packets received from the caller.
    pub packets_received: u64,
    /// What RTCP saw of the call's quality (loss, jitter both ways, round trip).
    pub quality: Option<Quality>,
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
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// The call was answered (the record so far); `u64` is the handler's key for the call.
    Started(u64, CallRecord),
    /// The call ended (the whole record).
    Ended(u64, CallRecord),
}

impl CallRecord {
    /// Inserts the row of a call in progress (no end yet); returns its id.
    pub async fn insert_started(&self, pool: &PgPool) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar!(
            "INSERT INTO calls (call_id, caller, called, started_at, answered_at, recording, codec)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
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
                transfer_to = $15
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
        )
        .execute(pool)
        .await?;
        Ok(id)
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

/// Writes records as calls start and end. A failed write (database restarting) is retried
/// with back-off for about a minute before the record is logged as lost, so a short outage
/// loses nothing; events queue in memory meanwhile.
pub fn spawn_writer(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<CallEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rows: HashMap<u64, i64> = HashMap::new();
        while let Some(event) = rx.recv().await {
            let mut delay = Duration::from_millis(100);
            let mut tries = 0;
            loop {
                let result = match &event {
                    CallEvent::Started(key, r) => r.insert_started(&pool).await.map(|id| {
                        rows.insert(*key, id);
                    }),
                    CallEvent::Ended(key, r) => {
                        r.complete(&pool, rows.get(key).copied()).await.map(|_| {
                            rows.remove(key);
                            metrics::counter!("hotline_call_records_written_total").increment(1);
                        })
                    }
                };
                match result {
                    Ok(()) => break,
                    Err(e) if tries < 10 => {
                        tries += 1;
                        tracing::warn!(error = %e, "call record not written yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => {
                        metrics::counter!("hotline_call_records_lost_total").increment(1);
                        tracing::error!(error = %e, event = ?event, "call record lost");
                        break;
                    }
                }
            }
        }
    })
}
