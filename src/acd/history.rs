//! The agents' state history (`agent_states`, migration 0010): each state an agent was in,
//! with its reason and queues, from when to when; the time base of occupancy
//! ([`super::kpi::add_occupancy`]). The ACD task sends every change here
//! ([`super::service::StateChange`]); this task writes them in order, a batch per
//! transaction: the agent's open row is closed at the change and the new state opened
//! (offline is the absence of a row). A database outage holds the changes (up to
//! [`MAX_PENDING`]) and retries; rows a crashed run left open are closed when the next starts.

use std::collections::VecDeque;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::service::StateChange;

/// Changes held through a database outage before the oldest are dropped.
pub const MAX_PENDING: usize = 100_000;

/// Starts the writer; the ACD's settings take the sender.
pub fn spawn(
    db: PgPool,
    shutdown: CancellationToken,
) -> (
    mpsc::UnboundedSender<StateChange>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<StateChange>();
    let task = tokio::spawn(async move {
        if let Err(e) = close_open(&db).await {
            tracing::warn!(error = %e, "cannot close the agent states a previous run left open");
        }
        let mut pending: VecDeque<StateChange> = VecDeque::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                c = rx.recv() => match c {
                    Some(c) => pending.push_back(c),
                    None => break,
                },
            }
            while let Ok(c) = rx.try_recv() {
                pending.push_back(c);
            }
            if pending.len() > MAX_PENDING {
                let drop = pending.len() - MAX_PENDING;
                tracing::warn!(dropped = drop, "agent state history: too many changes held");
                pending.drain(..drop);
            }
            if let Err(e) = write(&db, &mut pending).await {
                tracing::warn!(error = %e, held = pending.len(), "agent state history: will retry");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        // Stopping: what is held goes in, and everyone's state ends with the node.
        while let Ok(c) = rx.try_recv() {
            pending.push_back(c);
        }
        let _ = write(&db, &mut pending).await;
        let _ = close_open(&db).await;
    });
    (tx, task)
}

/// Writes the held changes in one transaction; they are dropped from `pending` once committed.
async fn write(db: &PgPool, pending: &mut VecDeque<StateChange>) -> Result<(), sqlx::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for c in pending.iter() {
        let agent = i64::try_from(c.agent).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE agent_states SET ended_at = GREATEST($2, started_at)
              WHERE agent_id = $1 AND ended_at IS NULL",
        )
        .bind(agent)
        .bind(c.at)
        .execute(&mut *tx)
        .await?;
        if c.state != "offline" {
            sqlx::query(
                "INSERT INTO agent_states (agent_id, state, reason, queues, started_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(agent)
            .bind(c.state)
            .bind(&c.reason)
            .bind(&c.queues)
            .bind(c.at)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    pending.clear();
    Ok(())
}

async fn close_open(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE agent_states SET ended_at = GREATEST(now(), started_at) WHERE ended_at IS NULL",
    )
    .execute(db)
    .await?;
    Ok(())
}
