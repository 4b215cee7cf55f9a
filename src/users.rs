//! People who log in: roles (Art. 8), argon2id password hashes, and session tokens.
//!
//! A password is kept only as an argon2id hash in the PHC string format; a session token is 32
//! random bytes handed to the client once, and only its SHA-256 is stored, so neither a copy of
//! the `users` table nor of `sessions` lets anyone in. Tokens expire after
//! `tickets.session_hours`; logging out deletes the row.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// What someone may do (REGULATION.md Art. 8, 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes calls and files tickets; decides at intake.
    Intake,
    /// Sends tickets to units, revisits, urges, merges.
    Dispatcher,
    /// Staff of one handling unit: sees only that unit's tickets.
    UnitStaff,
    /// The office's supervisor: reviews extensions, terminations and disputes.
    Supervisor,
    /// Reads statistics; never personal data.
    Analyst,
    /// Manages users, units and the catalogue.
    Admin,
}

impl Role {
    /// The role's name as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Intake => "intake",
            Role::Dispatcher => "dispatcher",
            Role::UnitStaff => "unit_staff",
            Role::Supervisor => "supervisor",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or given role name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "intake" => Role::Intake,
            "dispatcher" => Role::Dispatcher,
            "unit_staff" => Role::UnitStaff,
            "supervisor" => Role::Supervisor,
            "analyst" => Role::Analyst,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    /// The hotline office's own staff, who see every ticket.
    pub fn is_office(self) -> bool {
        matches!(
            self,
            Role::Intake | Role::Dispatcher | Role::Supervisor | Role::Admin
        )
    }
}

/// A logged-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name (what the audit log and the history show).
    pub username: String,
    /// Name shown to colleagues.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// The handling unit, for unit staff.
    pub unit_id: Option<i64>,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The password is too short.
    #[error("a password needs at least 10 characters")]
    WeakPassword,
    /// Unit staff need a unit; no other role has one.
    #[error("unit staff need a unit, and only unit staff have one")]
    UnitMismatch,
    /// Hashing failed (never with valid parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// Too many logins at once: every hashing slot stayed taken.
    #[error("too many logins at once; try again in a few seconds")]
    Busy,
    /// The database refused.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password for storage.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < 10 {
        return Err(UserError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UserError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Whether `password` matches a stored hash (false for a malformed hash).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// At most one password hash per core at once: each takes 19 MiB and tens of milliseconds,
/// so a flood of logins (hundreds at once) would otherwise take every core and gigabytes.
fn hashing() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// How long a login waits for its turn to hash before the node answers that it is busy.
const HASH_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `f` (argon2id) on a blocking thread, once a hashing permit is free: never on the
/// async workers answering other requests, never more than one per core.
async fn hashing_off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UserError> {
    let permit = tokio::time::timeout(HASH_QUEUE_WAIT, hashing().acquire())
        .await
        .map_err(|_| UserError::Busy)?
        .map_err(|e| UserError::Hash(e.to_string()))?;
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UserError::Hash(e.to_string()));
    drop(permit);
    out
}

/// Hashes on a blocking thread (see [`hashing_off_runtime`]).
async fn hash_off_runtime(password: &str) -> Result<String, UserError> {
    let password = password.to_string();
    hashing_off_runtime(move || hash_password(&password)).await?
}

/// A hash that no password matches, verified against when the user does not exist so that
/// a wrong name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password never given").unwrap_or_default())
}

/// A new account; returns its id.
pub async fn create(
    db: &PgPool,
    username: &str,
    display_name: &str,
    role: Role,
    unit_id: Option<i64>,
    password: &str,
) -> Result<i64, UserError> {
    if (role == Role::UnitStaff) != unit_id.is_some() {
        return Err(UserError::UnitMismatch);
    }
    let hash = hash_off_runtime(password).await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO users (username, display_name, role, unit_id, password_hash)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        username,
        display_name,
        role.as_str(),
        unit_id,
        hash
    )
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// Sets a new password (the `hotline user` command, an administrator); returns whether the
/// user exists. Every session opened with the old password ends: whoever learnt it is out.
pub async fn set_password(db: &PgPool, username: &str, password: &str) -> Result<bool, UserError> {
    let hash = hash_off_runtime(password).await?;
    let mut tx = db.begin().await?;
    let n = sqlx::query("UPDATE users SET password_hash = $2 WHERE username = $1")
        .bind(username)
        .bind(hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    end_sessions(&mut tx, username).await?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Enables or disables a login; a disabled one's sessions end at once. Returns whether the
/// user exists.
pub async fn set_enabled(db: &PgPool, username: &str, enabled: bool) -> Result<bool, UserError> {
    let mut tx = db.begin().await?;
    let n = sqlx::query("UPDATE users SET enabled = $2 WHERE username = $1")
        .bind(username)
        .bind(enabled)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if !enabled {
        end_sessions(&mut tx, username).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

async fn end_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    username: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = $1)")
        .bind(username)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forgets sessions that expired (they no longer work, but their rows would pile up).
pub async fn purge_expired(db: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE expires_at <= now()")
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// A session just opened.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The bearer token, shown once.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Who it belongs to.
    pub user: User,
}

/// The SHA-256 of a secret, as stored for session tokens and Open311 API keys.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `bytes` random bytes as lower-case hex: session tokens, API keys.
pub fn random_secret(bytes: usize) -> Result<String, UserError> {
    crate::random::hex_secret(bytes).map_err(|e| UserError::Hash(e.to_string()))
}

/// Checks a name and password; opens a session valid for `hours`. `None` when either is
/// wrong or the account is disabled (the caller says which it was to nobody).
pub async fn login(
    db: &PgPool,
    username: &str,
    password: &str,
    hours: i64,
) -> Result<Option<Session>, UserError> {
    let row = sqlx::query!(
        "SELECT id, username, display_name, role, unit_id, password_hash, enabled
         FROM users WHERE username = $1",
        username
    )
    .fetch_optional(db)
    .await?;
    let (stored, row) = match row {
        Some(r) => (r.password_hash.clone(), Some(r)),
        None => (decoy_hash().to_string(), None),
    };
    let password = password.to_string();
    let ok = hashing_off_runtime(move || verify_password(&password, &stored)).await?;
    let Some(row) = row.filter(|r| ok && r.enabled) else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&row.role) else {
        return Ok(None);
    };
    let token = random_secret(32)?;
    purge_expired(db).await?;
    let expires_at = Utc::now() + Duration::hours(hours.max(1));
    sqlx::query!(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        secret_hash(&token),
        row.id,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(Some(Session {
        token,
        expires_at,
        user: User {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            role,
            unit_id: row.unit_id,
        },
    }))
}

/// The user a live session token belongs to.
pub async fn by_token(db: &PgPool, token: &str) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT u.id, u.username, u.display_name, u.role, u.unit_id
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND u.enabled",
        secret_hash(token)
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|r| {
        Some(User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role: Role::parse(&r.role)?,
            unit_id: r.unit_id,
        })
    }))
}

/// Ends a session.
pub async fn logout(db: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM sessions WHERE token_hash = $1",
        secret_hash(token)
    )
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("anything", "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(UserError::WeakPassword)
        ));
        // Salted: the same password hashes differently twice.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Intake,
            Role::Dispatcher,
            Role::UnitStaff,
            Role::Supervisor,
            Role::Analyst,
            Role::Admin,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
