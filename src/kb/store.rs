//! Articles in PostgreSQL, the source of truth: create, edit (optimistic versions), status
//! changes, the version history (every version's full snapshot, who and when), expiry on the
//! `valid_until` date, and bulk import that lands whole or not at all.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};

use super::Article;

/// Why a knowledge-base operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// No such article.
    #[error("no article {0}")]
    NotFound(i64),
    /// Someone changed it since the client read it.
    #[error(
        "the article was changed by someone else: it is at version {current}, you sent {given}; reload it"
    )]
    Stale {
        /// Current version.
        current: i32,
        /// Version sent.
        given: i32,
    },
    /// The request breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// An article as written by an editor or an import line (JSON Lines: one object per line).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// What the IVR speaks.
    #[serde(default)]
    pub spoken_answer: String,
    /// Category.
    pub category: String,
    /// Question variants.
    #[serde(default)]
    pub question_variants: Vec<String>,
    /// Another system's id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Owning unit's code (imports) — resolved to `unit_id`.
    #[serde(default)]
    pub unit: Option<String>,
    /// First day in force.
    #[serde(default)]
    pub valid_from: Option<NaiveDate>,
    /// Last day in force.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
}

impl Draft {
    /// What is wrong with it, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.title.trim().is_empty() {
            p.push("title: must not be empty".to_string());
        }
        if self.body.trim().is_empty() {
            p.push("body: must not be empty".to_string());
        }
        if self.category.trim().is_empty() {
            p.push("category: must not be empty".to_string());
        }
        if let (Some(a), Some(b)) = (self.valid_from, self.valid_until)
            && b < a
        {
            p.push(format!("valid_until {b} is before valid_from {a}"));
        }
        if self.spoken_answer.chars().count() > 300 {
            p.push("spoken_answer: at most 300 characters (it is read over the phone)".into());
        }
        p
    }
}

const SELECT: &str = "SELECT id, external_id, title, body, spoken_answer, category, tags,
    question_variants, unit_id, status, valid_from, valid_until, version FROM kb_articles";

/// Every article (for rebuilding the index), by id.
pub async fn all(db: &PgPool) -> Result<Vec<Article>, KbError> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY id")))
            .fetch_all(db)
            .await?,
    )
}

/// One article.
pub async fn get(db: &PgPool, id: i64) -> Result<Article, KbError> {
    let row: Option<Article> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(db)
            .await?;
    row.ok_or(KbError::NotFound(id))
}

/// Articles by id, in the order given (missing ones left out).
pub async fn many(db: &PgPool, ids: &[i64]) -> Result<Vec<Article>, KbError> {
    let mut out: Vec<Article> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = ANY($1)")))
            .bind(ids)
            .fetch_all(db)
            .await?;
    out.sort_by_key(|a| ids.iter().position(|i| *i == a.id));
    Ok(out)
}

/// The count and the sum of versions of all articles: equal to the index's when the index
/// holds every article at its current version (versions only grow).
pub async fn fingerprint(db: &PgPool) -> Result<(i64, i64), KbError> {
    let r: (i64, i64) = sqlx::query_as(
        "SELECT count(*)::bigint, COALESCE(sum(version), 0)::bigint FROM kb_articles",
    )
    .fetch_one(db)
    .await?;
    Ok(r)
}

async fn snapshot(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    actor: &str,
    action: &str,
) -> Result<Article, KbError> {
    let a: Article = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO kb_versions (article_id, version, actor, action, snapshot)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(a.id)
    .bind(a.version)
    .bind(actor)
    .bind(action)
    .bind(serde_json::to_value(&a).unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    Ok(a)
}

async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    d: &Draft,
    unit_id: Option<i64>,
    status: &str,
    actor: &str,
) -> Result<Article, KbError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO kb_articles (external_id, title, body, spoken_answer, category, tags,
             question_variants, unit_id, status, valid_from, valid_until, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&d.external_id)
    .bind(d.title.trim())
    .bind(d.body.trim())
    .bind(d.spoken_answer.trim())
    .bind(d.category.trim())
    .bind(&d.tags)
    .bind(&d.question_variants)
    .bind(unit_id)
    .bind(status)
    .bind(d.valid_from)
    .bind(d.valid_until)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await?;
    snapshot(tx, id, actor, "create").await
}

/// A new article (a draft unless `status` says otherwise).
pub async fn create(
    db: &PgPool,
    d: &Draft,
    unit_id: Option<i64>,
    status: &str,
    actor: &str,
) -> Result<Article, KbError> {
    let problems = d.problems();
    if !problems.is_empty() {
        return Err(KbError::Invalid(problems.join("; ")));
    }
    let mut tx = db.begin().await?;
    let a = insert(&mut tx, d, unit_id, status, actor).await?;
    tx.commit().await?;
    Ok(a)
}

/// Replaces an article's content at `version`; a published article stays published only
/// when `keep_published` (otherwise it goes back to draft and needs publishing again).
pub async fn edit(
    db: &PgPool,
    id: i64,
    version: i32,
    d: &Draft,
    keep_published: bool,
    actor: &str,
) -> Result<Article, KbError> {
    let problems = d.problems();
    if !problems.is_empty() {
        return Err(KbError::Invalid(problems.join("; ")));
    }
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE kb_articles SET title = $3, body = $4, spoken_answer = $5, category = $6,
             tags = $7, question_variants = $8, valid_from = $9, valid_until = $10,
             external_id = COALESCE($11, external_id),
             status = CASE WHEN status = 'published' AND $12 THEN 'published'
                           WHEN status = 'expired' THEN 'expired' ELSE 'draft' END,
             version = version + 1, updated_at = now(), updated_by = $13
         WHERE id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(d.title.trim())
    .bind(d.body.trim())
    .bind(d.spoken_answer.trim())
    .bind(d.category.trim())
    .bind(&d.tags)
    .bind(&d.question_variants)
    .bind(d.valid_from)
    .bind(d.valid_until)
    .bind(&d.external_id)
    .bind(keep_published)
    .bind(actor)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(db, tx, n, id, version, actor, "edit").await
}

/// Ends a versioned write: with no row changed the version was stale (the transaction's
/// connection goes back before the re-read); else the new version's snapshot is kept.
async fn finish(
    db: &PgPool,
    mut tx: Transaction<'_, Postgres>,
    changed: u64,
    id: i64,
    version: i32,
    actor: &str,
    action: &str,
) -> Result<Article, KbError> {
    if changed == 0 {
        tx.rollback().await?;
        let current = get(db, id).await?;
        return Err(KbError::Stale {
            current: current.version,
            given: version,
        });
    }
    let a = snapshot(&mut tx, id, actor, action).await?;
    tx.commit().await?;
    Ok(a)
}

/// Moves an article to `status` at `version` (publish, submit for approval, expire).
pub async fn set_status(
    db: &PgPool,
    id: i64,
    version: i32,
    status: &str,
    action: &str,
    actor: &str,
) -> Result<Article, KbError> {
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE kb_articles SET status = $3, version = version + 1, updated_at = now(),
             updated_by = $4
         WHERE id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(status)
    .bind(actor)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(db, tx, n, id, version, actor, action).await
}

/// One version in an article's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Version {
    /// Version number.
    pub version: i32,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who.
    pub actor: String,
    /// create, edit, publish, submit, expire, import.
    pub action: String,
    /// The article as it was.
    pub snapshot: serde_json::Value,
}

/// An article's history, oldest first.
pub async fn history(db: &PgPool, id: i64) -> Result<Vec<Version>, KbError> {
    Ok(sqlx::query_as::<_, Version>(
        "SELECT version, at, actor, action, snapshot FROM kb_versions
         WHERE article_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// Marks published articles whose last day is before `today` as expired (search already
/// leaves them out on the day); returns their ids.
pub async fn expire_due(db: &PgPool, today: NaiveDate) -> Result<Vec<i64>, KbError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM kb_articles WHERE status = 'published' AND valid_until < $1",
    )
    .bind(today)
    .fetch_all(db)
    .await?;
    for id in &ids {
        let a = get(db, *id).await?;
        // A concurrent edit wins; the next sweep sees the article again.
        let _ = set_status(db, *id, a.version, "expired", "expire", "system").await;
    }
    Ok(ids)
}

/// A line of an import file: its number and the draft, or why it is not one.
pub type ImportLine = (usize, Result<Draft, String>);

/// A line of an import that cannot be taken.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    /// Line number (1-based, as an editor shows it).
    pub line: usize,
    /// What is wrong.
    pub error: String,
}

/// Imports drafts, all or nothing: every line is checked first (format, rules, unknown units,
/// duplicate external ids); with any problem nothing is written and every problem is
/// returned. An `external_id` already in the base replaces that article's content (a new
/// version); others are created. Imported articles get `status`.
pub async fn import(
    db: &PgPool,
    lines: Vec<ImportLine>,
    status: &str,
    only_unit: Option<i64>,
    actor: &str,
) -> Result<Result<Vec<Article>, Vec<RowError>>, KbError> {
    let mut errors = Vec::new();
    let mut drafts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let units: Vec<(String, i64)> = sqlx::query_as("SELECT code, id FROM units")
        .fetch_all(db)
        .await?;
    for (line, parsed) in lines {
        match parsed {
            Err(e) => errors.push(RowError { line, error: e }),
            Ok(d) => {
                let mut problems = d.problems();
                let unit_id = match &d.unit {
                    None => only_unit,
                    Some(code) => match units.iter().find(|(c, _)| c == code) {
                        Some((_, id)) => Some(*id),
                        None => {
                            problems.push(format!("unit: no handling unit with code {code:?}"));
                            None
                        }
                    },
                };
                if let (Some(mine), Some(u)) = (only_unit, unit_id)
                    && mine != u
                {
                    problems.push("unit: you may import only your own unit's articles".into());
                }
                if let Some(x) = &d.external_id
                    && !seen.insert(x.clone())
                {
                    problems.push(format!("external_id {x:?} appears twice in the file"));
                }
                if problems.is_empty() {
                    drafts.push((d, unit_id));
                } else {
                    errors.push(RowError {
                        line,
                        error: problems.join("; "),
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let mut tx = db.begin().await?;
    let mut out = Vec::with_capacity(drafts.len());
    for (d, unit_id) in &drafts {
        let existing: Option<(i64, Option<i64>)> = match &d.external_id {
            Some(x) => {
                sqlx::query_as("SELECT id, unit_id FROM kb_articles WHERE external_id = $1")
                    .bind(x)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        let a = match existing {
            Some((id, owner)) => {
                // A unit may update only its own articles: not another unit's, and not the
                // office's (no owner), which would otherwise become the unit's draft.
                if let Some(mine) = only_unit
                    && owner != Some(mine)
                {
                    tx.rollback().await?;
                    let whose = if owner.is_some() {
                        "another unit's"
                    } else {
                        "the hotline office's"
                    };
                    return Ok(Err(vec![RowError {
                        line: 0,
                        error: format!(
                            "external_id {:?} belongs to {whose} article",
                            d.external_id
                        ),
                    }]));
                }
                sqlx::query(
                    "UPDATE kb_articles SET title = $2, body = $3, spoken_answer = $4,
                         category = $5, tags = $6, question_variants = $7, unit_id = $8,
                         valid_from = $9, valid_until = $10, status = $11,
                         version = version + 1, updated_at = now(), updated_by = $12
                     WHERE id = $1",
                )
                .bind(id)
                .bind(d.title.trim())
                .bind(d.body.trim())
                .bind(d.spoken_answer.trim())
                .bind(d.category.trim())
                .bind(&d.tags)
                .bind(&d.question_variants)
                .bind(unit_id)
                .bind(d.valid_from)
                .bind(d.valid_until)
                .bind(status)
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                snapshot(&mut tx, id, actor, "import").await?
            }
            None => insert(&mut tx, d, *unit_id, status, actor).await?,
        };
        out.push(a);
    }
    tx.commit().await?;
    Ok(Ok(out))
}

/// Parses JSON Lines: one object per non-empty line.
pub fn parse_jsonl(text: &str) -> Vec<ImportLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                i + 1,
                serde_json::from_str::<Draft>(l).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// The CSV columns of import and export. List fields are joined with `|`.
pub const CSV_COLUMNS: [&str; 10] = [
    "external_id",
    "title",
    "body",
    "spoken_answer",
    "category",
    "question_variants",
    "tags",
    "unit",
    "valid_from",
    "valid_until",
];

/// Splits CSV text into records (RFC 4180: quoted fields, doubled quotes, newlines inside
/// quotes), with the line each record starts on.
pub fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                if record.iter().any(|f| !f.is_empty()) {
                    records.push((start, std::mem::take(&mut record)));
                } else {
                    record.clear();
                }
                line += 1;
                start = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {start}: a quoted field is not closed"));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push((start, record));
    }
    Ok(records)
}

/// Parses CSV with a header naming [`CSV_COLUMNS`] (any order; unknown columns refused).
pub fn parse_csv(text: &str) -> Result<Vec<ImportLine>, String> {
    let mut records = csv_records(text)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Ok(Vec::new());
    };
    for h in &header {
        if !CSV_COLUMNS.contains(&h.trim()) {
            return Err(format!(
                "line 1: unknown column {h:?}; expected {}",
                CSV_COLUMNS.join(", ")
            ));
        }
    }
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    Ok(records
        .map(|(line, r)| {
            if r.len() != header.len() {
                return (
                    line,
                    Err(format!(
                        "{} fields, the header has {}",
                        r.len(),
                        header.len()
                    )),
                );
            }
            let get = |name: &str| {
                col(name)
                    .map(|i| r[i].trim().to_string())
                    .unwrap_or_default()
            };
            let list = |name: &str| -> Vec<String> {
                get(name)
                    .split('|')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            let date = |name: &str| -> Result<Option<NaiveDate>, String> {
                let v = get(name);
                if v.is_empty() {
                    Ok(None)
                } else {
                    NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                        .map(Some)
                        .map_err(|_| format!("{name}: {v:?} is not a YYYY-MM-DD date"))
                }
            };
            let parsed = (|| {
                Ok(Draft {
                    title: get("title"),
                    body: get("body"),
                    spoken_answer: get("spoken_answer"),
                    category: get("category"),
                    question_variants: list("question_variants"),
                    external_id: Some(get("external_id")).filter(|s| !s.is_empty()),
                    tags: list("tags"),
                    unit: Some(get("unit")).filter(|s| !s.is_empty()),
                    valid_from: date("valid_from")?,
                    valid_until: date("valid_until")?,
                })
            })();
            (line, parsed)
        })
        .collect())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Articles as CSV with [`CSV_COLUMNS`] (units by code).
pub fn to_csv(articles: &[Article], unit_code: impl Fn(Option<i64>) -> String) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for a in articles {
        let fields = [
            a.external_id.clone().unwrap_or_default(),
            a.title.clone(),
            a.body.clone(),
            a.spoken_answer.clone(),
            a.category.clone(),
            a.question_variants.join("|"),
            a.tags.join("|"),
            unit_code(a.unit_id),
            a.valid_from.map(|d| d.to_string()).unwrap_or_default(),
            a.valid_until.map(|d| d.to_string()).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_quotes_commas_and_newlines() {
        let a = Article {
            id: 1,
            external_id: Some("x-1".into()),
            title: "标题, 含逗号".into(),
            body: "第一行\n第二行 \"引号\"".into(),
            spoken_answer: String::new(),
            category: "社会保险".into(),
            tags: vec!["a".into(), "b".into()],
            question_variants: vec!["问一".into(), "问二".into()],
            unit_id: None,
            status: "draft".into(),
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1),
            valid_until: None,
            version: 1,
        };
        let csv = to_csv(std::slice::from_ref(&a), |_| String::new());
        let rows = parse_csv(&csv).unwrap();
        assert_eq!(rows.len(), 1);
        let d = rows[0].1.as_ref().unwrap();
        assert_eq!(d.title, a.title);
        assert_eq!(d.body, a.body);
        assert_eq!(d.question_variants, a.question_variants);
        assert_eq!(d.valid_from, a.valid_from);
        assert!(parse_csv("title,nonsense\n").is_err());
        assert!(csv_records("\"open").is_err());
        let bad = parse_csv("title,body,category,valid_from\nt,b,c,2026-13-01\n").unwrap();
        assert!(bad[0].1.as_ref().unwrap_err().contains("valid_from"));
        assert_eq!(bad[0].0, 2);
    }
}
