//! The call record: what one call was (parties, times, how it ended, its IVR walk and its
//! media counters), kept in PostgreSQL's `calls` table by a writer task so that no call's
//! media task ever waits on the database.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
    /// Satisfaction score 1-5 from the survey.
    pub score: Option<u8>,
    /// RTP packets sent to the caller.
    pub packets_sent: u64,
    /// RTP packets received from the caller.
    pub packets_received: u64,
}

impl CallRecord {
    /// Inserts the record; returns its row id.
    pub async fn insert(&self, pool: &PgPool) -> Result<i64, sqlx::Error> {
        let vars = serde_json::to_value(&self.ivr_vars).unwrap_or_default();
        let id = sqlx::query_scalar!(
            "INSERT INTO calls (call_id, caller, called, started_at, answered_at, ended_at,
                end_reason, codec, ivr_path, ivr_keys, ivr_vars, queue, score, packets_sent,
                packets_received)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING id",
            self.call_id,
            self.caller,
            self.called,
            self.started_at,
            self.answered_at,
            self.ended_at,
            self.end_reason,
            self.codec,
            &self.ivr_path,
            self.ivr_keys,
            vars,
            self.queue,
            self.score.map(i16::from),
            i64::try_from(self.packets_sent).unwrap_or(i64::MAX),
            i64::try_from(self.packets_received).unwrap_or(i64::MAX),
        )
        .fetch_one(pool)
        .await?;
        Ok(id)
    }
}

/// Writes records as calls end. A failed insert (database restarting) is retried with
/// back-off for about a minute before the record is logged as lost, so a short outage loses
/// nothing; records queue in memory meanwhile.
pub fn spawn_writer(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<CallRecord>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(record) = rx.recv().await {
            let mut delay = Duration::from_millis(100);
            let mut tries = 0;
            loop {
                match record.insert(&pool).await {
                    Ok(_) => {
                        metrics::counter!("hotline_call_records_written_total").increment(1);
                        break;
                    }
                    Err(e) if tries < 10 => {
                        tries += 1;
                        tracing::warn!(error = %e, call_id = %record.call_id, "call record not written yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => {
                        metrics::counter!("hotline_call_records_lost_total").increment(1);
                        tracing::error!(error = %e, record = ?record, "call record lost");
                        break;
                    }
                }
            }
        }
    })
}
