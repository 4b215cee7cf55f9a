//! The SIP accounts' digest hashes (HA1), cached from PostgreSQL for the registrar and kept
//! current by LISTEN/NOTIFY.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hotline_sip::auth::{Algorithm, CredentialStore};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// HA1 hashes of the SIP accounts, cached from PostgreSQL and reloaded on every change.
#[derive(Debug, Default)]
pub struct Credentials {
    accounts: RwLock<HashMap<String, (String, String)>>,
}

impl CredentialStore for Credentials {
    fn ha1(&self, username: &str, _realm: &str, alg: Algorithm) -> Option<String> {
        let accounts = self.accounts.read().ok()?;
        let (md5, sha256) = accounts.get(username)?;
        Some(match alg {
            Algorithm::Md5 => md5.clone(),
            Algorithm::Sha256 => sha256.clone(),
        })
    }
}

impl Credentials {
    /// Sets one account's HA1 hashes in the cache (tools and tests; the database is the
    /// source of truth and a reload replaces the cache).
    pub fn set(&self, username: &str, ha1_md5: &str, ha1_sha256: &str) {
        if let Ok(mut guard) = self.accounts.write() {
            guard.insert(
                username.to_string(),
                (ha1_md5.to_string(), ha1_sha256.to_string()),
            );
        }
    }

    /// Reads every enabled account of `realm`.
    pub async fn reload(&self, pool: &PgPool, realm: &str) -> Result<usize, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT username, ha1_md5, ha1_sha256 FROM sip_accounts WHERE enabled AND realm = $1",
            realm
        )
        .fetch_all(pool)
        .await?;
        let map: HashMap<String, (String, String)> = rows
            .into_iter()
            .map(|r| (r.username, (r.ha1_md5, r.ha1_sha256)))
            .collect();
        let n = map.len();
        if let Ok(mut guard) = self.accounts.write() {
            *guard = map;
        }
        Ok(n)
    }

    /// Keeps the cache current: LISTEN for changes, reload on each (and every minute, in case
    /// a notification was lost with a dropped connection).
    pub fn spawn_reloader(
        self: &Arc<Self>,
        pool: PgPool,
        realm: String,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let creds = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for SIP account changes");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        }
                    }
                };
                if let Err(e) = listener.listen("sip_accounts").await {
                    tracing::warn!(error = %e, "LISTEN sip_accounts failed");
                }
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = listener.recv() => {
                            if n.is_err() {
                                break; // reconnect
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    }
                    match creds.reload(&pool, &realm).await {
                        Ok(n) => tracing::debug!(accounts = n, "SIP accounts reloaded"),
                        Err(e) => tracing::warn!(error = %e, "reloading SIP accounts failed"),
                    }
                }
            }
        })
    }
}
