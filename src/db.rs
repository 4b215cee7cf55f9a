//! PostgreSQL: the connection pool, the embedded migrations, and the readiness check.
//!
//! Which server is used is decided here: `database.url` from the configuration, else the
//! `DATABASE_URL` environment variable, else the private cluster of [`crate::embedded`].

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The numbered migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The external server's URL, if one is configured: `database.url` wins over `DATABASE_URL`.
pub fn external_url(configured: Option<&str>) -> Option<String> {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|u| !u.trim().is_empty())
}

/// Opens a pool. The first connection is made now, so a wrong URL fails at start-up.
pub async fn connect(opts: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts.application_name("hotline"))
        .await
}

/// Applies every migration not yet applied.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// What `/ready` reports about the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DbReadiness {
    /// The server answered a query.
    pub reachable: bool,
    /// Versions of the compiled-in migrations that are not applied (or applied with another
    /// checksum, which means a shipped migration was edited).
    pub pending_migrations: Vec<i64>,
    /// Why the database is not ready, if it is not.
    pub error: Option<String>,
}

impl DbReadiness {
    /// Reachable with every migration applied.
    pub fn is_ready(&self) -> bool {
        self.reachable && self.pending_migrations.is_empty() && self.error.is_none()
    }
}

/// Asks the database whether it is reachable and fully migrated, within `timeout`.
pub async fn readiness(pool: &PgPool, timeout: Duration) -> DbReadiness {
    match tokio::time::timeout(timeout, readiness_inner(pool)).await {
        Ok(r) => r,
        Err(_) => DbReadiness {
            reachable: false,
            pending_migrations: Vec::new(),
            error: Some(format!("no answer within {} ms", timeout.as_millis())),
        },
    }
}

async fn readiness_inner(pool: &PgPool) -> DbReadiness {
    let all_pending = || {
        MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .collect::<Vec<_>>()
    };
    let exists = sqlx::query_scalar!(
        r#"SELECT to_regclass('public._sqlx_migrations') IS NOT NULL AS "exists!""#
    )
    .fetch_one(pool)
    .await;
    match exists {
        Err(e) => DbReadiness {
            reachable: false,
            pending_migrations: Vec::new(),
            error: Some(format!("database unreachable: {e}")),
        },
        Ok(false) => DbReadiness {
            reachable: true,
            pending_migrations: all_pending(),
            error: None,
        },
        Ok(true) => {
            // The table is sqlx's; its name cannot be checked at build time on a fresh
            // database, so this one query is unchecked.
            let applied: Result<Vec<(i64, Vec<u8>)>, _> = sqlx::query_as(
                "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await;
            match applied {
                Err(e) => DbReadiness {
                    reachable: true,
                    pending_migrations: Vec::new(),
                    error: Some(format!("cannot read the migration table: {e}")),
                },
                Ok(applied) => DbReadiness {
                    reachable: true,
                    pending_migrations: MIGRATOR
                        .iter()
                        .filter(|m| m.migration_type.is_up_migration())
                        .filter(|m| {
                            !applied
                                .iter()
                                .any(|(v, sum)| *v == m.version && **sum == *m.checksum)
                        })
                        .map(|m| m.version)
                        .collect(),
                    error: None,
                },
            }
        }
    }
}
