//! The registrar's bindings beyond one process (issue 24): after every change of an agent's
//! bindings the engine hands the agent's live ones to [`spawn_writer`], which replaces the
//! agent's rows of `sip_bindings`; at start [`load`] reads the ones still valid and the engine
//! takes them back, so phones need not register again after a restart.
//!
//! Only UDP bindings come back: a TCP or WebSocket binding names a connection that died with the
//! process (the phone reconnects and registers again). Writes never wait on the engine task:
//! while the database is away the writer keeps each agent's latest bindings and retries.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_sip::registrar::Binding;
use hotline_sip::transaction::{Peer, TransportKind};
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;

/// The format of the rows this node writes (a newer one is skipped at start).
const VERSION: i16 = 1;

/// One binding, with its expiry on the wall clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBinding {
    /// The registrar's binding (its `expires_at` is on the clock of the process that made it).
    pub binding: Binding,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
}

/// An agent's live bindings after a change (none: unregistered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AorBindings {
    /// The agent (address of record).
    pub aor: String,
    /// Its bindings now.
    pub bindings: Vec<SavedBinding>,
}

fn transport_name(t: TransportKind) -> &'static str {
    match t {
        TransportKind::Udp => "udp",
        TransportKind::Tcp => "tcp",
        TransportKind::Ws => "ws",
    }
}

/// The UDP bindings still valid at `now`, oldest refresh first; and how many rows could not
/// be read (each logged with its key).
pub async fn load(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<(Vec<SavedBinding>, usize), sqlx::Error> {
    // Bindings that lapsed while no node ran are of no use to anyone.
    sqlx::query("DELETE FROM sip_bindings WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    let rows = sqlx::query(
        "SELECT aor, contact, source, transport, call_id, cseq, expires_at, version
           FROM sip_bindings WHERE expires_at > $1 ORDER BY expires_at",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for row in rows {
        let aor: String = row.try_get("aor").unwrap_or_default();
        let contact: String = row.try_get("contact").unwrap_or_default();
        match read(&row) {
            Ok(Some(b)) => out.push(b),
            Ok(None) => {} // a connection's binding: gone with the process
            Err(why) => {
                skipped += 1;
                tracing::warn!(aor = %aor, contact = %contact, "sip_bindings row skipped: {why}");
            }
        }
    }
    Ok((out, skipped))
}

fn read(row: &sqlx::postgres::PgRow) -> Result<Option<SavedBinding>, String> {
    let version: i16 = row.try_get("version").map_err(|e| e.to_string())?;
    if version > VERSION {
        return Err(format!(
            "written in format {version}, this node reads {VERSION}"
        ));
    }
    let transport: String = row.try_get("transport").map_err(|e| e.to_string())?;
    if transport != "udp" {
        return Ok(None);
    }
    let source: String = row.try_get("source").map_err(|e| e.to_string())?;
    let addr: SocketAddr = source
        .parse()
        .map_err(|_| format!("source {source:?} is not an address and port"))?;
    let cseq: i64 = row.try_get("cseq").map_err(|e| e.to_string())?;
    let aor: String = row.try_get("aor").map_err(|e| e.to_string())?;
    let contact: String = row.try_get("contact").map_err(|e| e.to_string())?;
    if aor.is_empty() || contact.is_empty() {
        return Err("no address of record or contact".into());
    }
    Ok(Some(SavedBinding {
        binding: Binding {
            aor,
            contact,
            expires_at: 0,
            call_id: row.try_get("call_id").map_err(|e| e.to_string())?,
            cseq: u32::try_from(cseq).map_err(|_| format!("CSeq {cseq} out of range"))?,
            source: Peer {
                addr,
                transport: TransportKind::Udp,
            },
        },
        expires_at: row.try_get("expires_at").map_err(|e| e.to_string())?,
    }))
}

async fn replace(pool: &PgPool, aor: &str, bindings: &[SavedBinding]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM sip_bindings WHERE aor = $1")
        .bind(aor)
        .execute(&mut *tx)
        .await?;
    for b in bindings {
        sqlx::query(
            "INSERT INTO sip_bindings (aor, contact, source, transport, call_id, cseq, expires_at,
                                       version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (aor, contact) DO UPDATE SET source = EXCLUDED.source,
                 transport = EXCLUDED.transport, call_id = EXCLUDED.call_id,
                 cseq = EXCLUDED.cseq, expires_at = EXCLUDED.expires_at,
                 version = EXCLUDED.version",
        )
        .bind(aor)
        .bind(&b.binding.contact)
        .bind(b.binding.source.addr.to_string())
        .bind(transport_name(b.binding.source.transport))
        .bind(&b.binding.call_id)
        .bind(i64::from(b.binding.cseq))
        .bind(b.expires_at)
        .bind(VERSION)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Writes each agent's bindings as they change, in order per agent; while the database is
/// away it keeps the latest of each agent and retries every second. Stops when the engine
/// (the sender) is gone and everything pending is written or given up after a few tries.
pub fn spawn_writer(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<AorBindings>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: BTreeMap<String, Vec<SavedBinding>> = BTreeMap::new();
        let mut open = true;
        let mut failures_at_close = 0;
        while open || !pending.is_empty() {
            if pending.is_empty() {
                match rx.recv().await {
                    Some(a) => {
                        pending.insert(a.aor, a.bindings);
                    }
                    None => open = false,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(a) => {
                        pending.insert(a.aor, a.bindings);
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            let mut failed = false;
            while let Some((aor, bindings)) = pending.pop_first() {
                if let Err(e) = replace(&pool, &aor, &bindings).await {
                    tracing::warn!(error = %e, "SIP bindings not saved yet; retrying");
                    metrics::counter!("hotline_sip_bindings_write_failures_total").increment(1);
                    pending.entry(aor).or_insert(bindings);
                    failed = true;
                    break;
                }
            }
            if failed {
                if !open {
                    failures_at_close += 1;
                    if failures_at_close >= 5 {
                        tracing::error!(agents = pending.len(), "SIP bindings lost at stop");
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
}
