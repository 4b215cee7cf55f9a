//! Keeps a node's search index equal to PostgreSQL.
//!
//! At start the index directory is reused only when its fingerprint (how many articles, and
//! the sum of their versions) equals the database's; otherwise (missing, corrupt, stale) it
//! is rebuilt. Versions only grow, so equal sums mean every article is indexed at its
//! current version. Then every change anywhere is announced by PostgreSQL (`NOTIFY
//! kb_articles`, id) and re-read into this node's index; a lost connection (notifications
//! possibly missed) triggers a full rebuild, and a sweep every minute expires articles past
//! their last day and rebuilds if the fingerprints drifted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::Article;
use super::index::{Filter, Hit, IndexError, KbIndex};
use super::store::{self, KbError};

/// Why the knowledge base could not start or refresh.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] KbError),
    /// The indexing thread stopped (a panic in the index).
    #[error("the indexing thread stopped: {0}")]
    Stopped(String),
}

/// Characters of a query the search reads (a suggestion reads the start of a ticket's text).
pub const MAX_QUERY_CHARS: usize = 1000;

/// The knowledge base of one node: the database and this node's index of it.
pub struct Kb {
    /// The database.
    pub db: PgPool,
    /// Whether a unit's article waits for the hotline office's approval to be published.
    pub require_approval: bool,
    index: KbIndex,
    /// What the index holds: article id -> version.
    indexed: Mutex<HashMap<i64, i32>>,
    dir: Option<PathBuf>,
}

const FINGERPRINT: &str = "fingerprint.json";

fn read_fingerprint(dir: &Path) -> Option<(i64, i64)> {
    let text = std::fs::read_to_string(dir.join(FINGERPRINT)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Today in China.
pub fn today() -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&crate::china::calendar::china_time())
        .date_naive()
}

impl Kb {
    /// Opens (or rebuilds) the index in `dir` (`None`: in memory, always rebuilt).
    pub async fn open(
        db: PgPool,
        dir: Option<PathBuf>,
        require_approval: bool,
    ) -> Result<Arc<Kb>, ServiceError> {
        let (index, fresh, dir) = match KbIndex::open(dir.as_deref()) {
            Ok((i, fresh)) => (i, fresh, dir),
            // Another process holds the directory (two nodes configured with one index
            // directory): search still works from memory, rebuilt from the database.
            Err(e) => {
                tracing::warn!(error = %e, "cannot use the knowledge-base index directory: indexing in memory");
                let (i, fresh) = KbIndex::open(None)?;
                (i, fresh, None)
            }
        };
        let kb = Arc::new(Kb {
            db,
            require_approval,
            index,
            indexed: Mutex::new(HashMap::new()),
            dir,
        });
        let in_db = store::fingerprint(&kb.db).await?;
        let on_disk = kb.dir.as_deref().and_then(read_fingerprint);
        if fresh || on_disk != Some(in_db) || kb.index.len() as i64 != in_db.0 {
            let t = std::time::Instant::now();
            let n = kb.rebuild().await?;
            tracing::info!(
                articles = n,
                ms = t.elapsed().as_millis() as u64,
                "knowledge-base index rebuilt"
            );
        } else {
            let all = store::all(&kb.db).await?;
            let mut map = kb.lock();
            for a in &all {
                map.insert(a.id, a.version);
            }
            tracing::info!(articles = all.len(), "knowledge-base index reused");
        }
        Ok(kb)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i32>> {
        self.indexed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_fingerprint(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        let fp = {
            let map = self.lock();
            (
                map.len() as i64,
                map.values().map(|v| i64::from(*v)).sum::<i64>(),
            )
        };
        let tmp = dir.join("fingerprint.tmp");
        let ok = serde_json::to_string(&fp)
            .ok()
            .and_then(|s| std::fs::write(&tmp, s).ok())
            .and_then(|()| std::fs::rename(&tmp, dir.join(FINGERPRINT)).ok());
        if ok.is_none() {
            tracing::warn!(dir = %dir.display(), "cannot write the index fingerprint");
        }
    }

    /// Runs index work (segmenting, writing, committing: milliseconds to seconds) on a
    /// blocking thread, never on the async workers that answer requests.
    async fn indexing<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Kb) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let kb = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&kb))
            .await
            .map_err(|e| ServiceError::Stopped(e.to_string()))?
    }

    /// Replaces the index with every article in the database; returns how many.
    pub async fn rebuild(self: &Arc<Self>) -> Result<usize, ServiceError> {
        let all = store::all(&self.db).await?;
        self.indexing(move |kb| {
            kb.index.rebuild(&all)?;
            {
                let mut map = kb.lock();
                map.clear();
                for a in &all {
                    map.insert(a.id, a.version);
                }
            }
            kb.write_fingerprint();
            Ok(all.len())
        })
        .await
    }

    /// Re-reads these articles into the index.
    pub async fn refresh(self: &Arc<Self>, ids: &[i64]) -> Result<(), ServiceError> {
        let articles = store::many(&self.db, ids).await?;
        self.put(articles).await
    }

    /// Puts articles just written into the index.
    pub async fn put(self: &Arc<Self>, articles: Vec<Article>) -> Result<(), ServiceError> {
        self.indexing(move |kb| kb.put_now(&articles)).await
    }

    fn put_now(&self, articles: &[Article]) -> Result<(), ServiceError> {
        // Only newer versions replace what is indexed (notifications may arrive late).
        let newer: Vec<Article> = {
            let map = self.lock();
            articles
                .iter()
                .filter(|a| map.get(&a.id).is_none_or(|v| *v < a.version))
                .cloned()
                .collect()
        };
        if newer.is_empty() {
            return Ok(());
        }
        self.index.upsert(&newer)?;
        {
            let mut map = self.lock();
            for a in &newer {
                map.insert(a.id, a.version);
            }
        }
        self.write_fingerprint();
        Ok(())
    }

    /// Searches this node's index (China's today for validity), on the first
    /// [`MAX_QUERY_CHARS`] characters of `q`.
    pub fn search(&self, q: &str, filter: &Filter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        let q = match q.char_indices().nth(MAX_QUERY_CHARS) {
            Some((end, _)) => &q[..end],
            None => q,
        };
        self.index.search(q, filter, today(), limit)
    }

    /// [`Kb::search`] on a blocking thread: a long text (a whole ticket to suggest articles
    /// for) never stalls the async workers that also carry SIP and the ACD.
    pub async fn search_off(
        self: &Arc<Self>,
        q: String,
        filter: Filter,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let kb = Arc::clone(self);
        tokio::task::spawn_blocking(move || kb.search(&q, &filter, limit))
            .await
            .unwrap_or_else(|e| Err(IndexError::Stopped(e.to_string())))
    }

    /// Articles in this node's index.
    pub fn indexed(&self) -> usize {
        self.lock().len()
    }

    /// Follows every change until `shutdown`: LISTEN, re-read, sweep.
    pub fn spawn_follower(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let kb = Arc::clone(self);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&kb.db).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for knowledge-base changes");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        }
                    }
                };
                if let Err(e) = listener.listen("kb_articles").await {
                    tracing::warn!(error = %e, "LISTEN kb_articles failed");
                    continue;
                }
                if !first {
                    // Changes may have been missed while the connection was down.
                    if let Err(e) = kb.rebuild().await {
                        tracing::warn!(error = %e, "knowledge-base rebuild failed");
                    }
                }
                first = false;
                let mut sweep = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        n = listener.recv() => match n {
                            Ok(n) => {
                                if let Ok(id) = n.payload().parse::<i64>()
                                    && let Err(e) = kb.refresh(&[id]).await
                                {
                                    tracing::warn!(error = %e, id, "re-reading an article failed");
                                }
                            }
                            Err(_) => break, // reconnect, then rebuild
                        },
                        _ = sweep.tick() => kb.sweep().await,
                    }
                }
            }
        })
    }

    /// Expires articles past their last day; rebuilds when the index drifted.
    async fn sweep(self: &Arc<Self>) {
        if let Err(e) = store::expire_due(&self.db, today()).await {
            tracing::warn!(error = %e, "expiring knowledge-base articles failed");
        }
        let ours = {
            let map = self.lock();
            (
                map.len() as i64,
                map.values().map(|v| i64::from(*v)).sum::<i64>(),
            )
        };
        match store::fingerprint(&self.db).await {
            Ok(fp) if fp != ours => {
                tracing::info!("knowledge-base index behind the database: rebuilding");
                if let Err(e) = self.rebuild().await {
                    tracing::warn!(error = %e, "knowledge-base rebuild failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "knowledge-base fingerprint failed"),
        }
    }
}
