//! Filing a ticket at most once per client key (issue 22, item 15): a client that sends an
//! `Idempotency-Key` with its POST and retries after a lost answer or a 5xx gets the ticket the
//! first try filed, not a second one.
//!
//! The key is remembered with the ticket in `ticket_idempotency`, in the ticket's own
//! transaction: a ticket is never filed without its key, nor a key kept for a ticket that was
//! rolled back. Keys are scoped by who sent them (a login, or an Open311 client), so one client
//! cannot read another's ticket by guessing its key, and a key is kept for [`KEEP_HOURS`]. Two
//! tries with one key at once are put in line by an advisory lock on the key, so the second
//! waits and then finds the first's ticket. A key sent again with a different request is
//! refused: it is a client's bug, and answering the first ticket would hide it.

use sha2::{Digest, Sha256};

use super::*;

/// How long a key is remembered.
pub const KEEP_HOURS: i64 = 24;

/// A client's idempotency key: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value; the error says what is wrong with it.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let ok = (1..=128).contains(&raw.len()) && raw.iter().all(|b| (0x21..=0x7e).contains(b));
        match std::str::from_utf8(raw) {
            Ok(s) if ok => Ok(Self(s.to_string())),
            _ => Err(
                "Idempotency-Key: expected 1 to 128 printable ASCII characters \
                      without spaces"
                    .into(),
            ),
        }
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ticket filed by [`create_once`].
#[derive(Debug)]
pub enum Filed {
    /// Filed now.
    New(TicketRow),
    /// Filed by an earlier request with the same key; nothing was filed now.
    Replayed(TicketRow),
}

impl Filed {
    /// The ticket, however it came.
    pub fn row(&self) -> &TicketRow {
        match self {
            Filed::New(r) | Filed::Replayed(r) => r,
        }
    }
}

/// The request's fingerprint: a key must come back with the same request.
fn fingerprint(t: &NewTicket) -> Vec<u8> {
    Sha256::digest(format!("{t:?}").as_bytes()).to_vec()
}

/// Files `t` as [`create`] does; with a key, at most once per `by` and key.
pub async fn create_once(
    db: &PgPool,
    settings: &Settings,
    t: &NewTicket,
    by: &str,
    key: Option<&IdempotencyKey>,
) -> Result<Filed, StoreError> {
    let Some(key) = key else {
        return create(db, settings, t, by).await.map(Filed::New);
    };
    let now = settings.clock.now();
    let fresh = now - chrono::Duration::hours(KEEP_HOURS);
    let hash = fingerprint(t);
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 15))")
        .bind(format!("{by}\n{}", key.as_str()))
        .execute(&mut *tx)
        .await?;
    let prior: Option<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT request_hash, ticket_id FROM ticket_idempotency
         WHERE scope = $1 AND key = $2 AND created_at > $3",
    )
    .bind(by)
    .bind(key.as_str())
    .bind(fresh)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((prior_hash, ticket_id)) = prior {
        tx.commit().await?;
        if prior_hash != hash {
            return Err(StoreError::Invalid(format!(
                "Idempotency-Key {:?} was used for a different request; use a new key for a \
                 new ticket",
                key.as_str()
            )));
        }
        return get_by_id(db, ticket_id).await.map(Filed::Replayed);
    }
    let row = create_on(&mut tx, settings, t, by).await?;
    sqlx::query(
        "INSERT INTO ticket_idempotency (scope, key, request_hash, ticket_id, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash, ticket_id = EXCLUDED.ticket_id,
             created_at = EXCLUDED.created_at",
    )
    .bind(by)
    .bind(key.as_str())
    .bind(&hash)
    .bind(row.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM ticket_idempotency WHERE created_at <= $1")
        .bind(fresh)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Filed::New(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_printable_ascii_of_1_to_128_characters() {
        assert!(IdempotencyKey::parse(b"9f1c2e7a-0d4b-4e51-8a8e-3c1f0b7d2a11").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 128]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 129],
            b"two words",
            b"tab\there",
            "键".as_bytes(),
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
