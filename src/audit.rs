//! The append-only audit log (migration 0001; the database refuses updates and deletes,
//! migration 0004): every read of personal data and every privileged action, with who, what
//! and on which subject (REGULATION.md Art. 7, 11, 33, 36). Ticket changes are recorded in
//! their own append-only history (`ticket_events`).

use sqlx::PgPool;

/// Writes one audit row. A read of personal data must not be answered when this fails.
pub async fn record(
    db: &PgPool,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        subject,
        detail
    )
    .execute(db)
    .await?;
    Ok(())
}
