//! Hot topics (issue 10, REGULATION Art. 29): the words citizens use in new tickets,
//! segmented with jieba, counted once per ticket by China day in `ticket_terms_daily`
//! (migration 0009), and the terms of a period ranked by frequency and by how fast they rose
//! against the period before.
//!
//! The indexer runs beside the server: it takes tickets filed since its place (kept in
//! `ticket_terms_progress`) in batches, a few seconds after filing (a ticket committed late
//! under a lower id is not skipped), and adds their terms and its new place in one
//! transaction. Intake never waits for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use jieba_rs::Jieba;
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Tickets segmented per transaction.
pub const BATCH: i64 = 2000;

/// Words too common in hotline descriptions to say anything about what is happening.
const FILLER: &[&str] = &[
    "市民",
    "来电",
    "反映",
    "要求",
    "希望",
    "问题",
    "情况",
    "处理",
    "相关",
    "部门",
    "解决",
    "咨询",
    "表示",
    "现在",
    "目前",
    "已经",
    "一直",
    "多次",
    "没有",
    "无法",
    "不能",
    "可以",
    "需要",
    "进行",
    "告知",
    "请求",
    "诉求",
    "称",
    "其",
    "该",
    "此",
    "等",
    "及",
    "与",
    "对",
    "为",
    "在",
    "从",
    "这里",
    "那里",
    "这个",
    "那个",
    "什么",
    "时候",
    "怎么",
    "为什么",
    "一下",
    "还是",
    "但是",
    "因为",
    "所以",
    "如果",
    "今天",
    "昨天",
    "明天",
];

/// The distinct terms of one description worth counting: two characters or more, not a
/// number, not a stopword or hotline filler.
pub fn terms(jieba: &Jieba, text: &str) -> BTreeSet<String> {
    jieba
        .cut(text, true)
        .into_iter()
        .map(|t| t.word.trim())
        .filter(|w| w.chars().count() >= 2)
        .filter(|w| {
            !w.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_punctuation())
        })
        .filter(|w| !crate::china::text::is_stopword(w) && !FILLER.contains(w))
        .map(|w| w.to_lowercase())
        .collect()
}

/// Segments the next batch of tickets after the indexer's place and counts their terms;
/// returns how many tickets it took (0: caught up).
pub async fn index_batch(
    db: &PgPool,
    jieba: &Arc<Jieba>,
    limit: i64,
) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let last: i64 = sqlx::query_scalar("SELECT last_ticket FROM ticket_terms_progress FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<(i64, NaiveDate, String)> = sqlx::query_as(
        "SELECT id, (created_at AT TIME ZONE 'Asia/Shanghai')::date, description
           FROM tickets
          WHERE id > $1 AND created_at < now() - interval '5 seconds'
          ORDER BY id LIMIT $2",
    )
    .bind(last)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let Some(&(newest, _, _)) = rows.last() else {
        return Ok(0);
    };
    let n = rows.len();
    let jieba = Arc::clone(jieba);
    // Segmentation is CPU work: off the async threads.
    let counts = tokio::task::spawn_blocking(move || {
        let mut counts: HashMap<(NaiveDate, String), i32> = HashMap::new();
        for (_, day, description) in &rows {
            for t in terms(&jieba, description) {
                *counts.entry((*day, t)).or_default() += 1;
            }
        }
        counts
    })
    .await
    .unwrap_or_default();
    let (mut days, mut words, mut tickets) = (Vec::new(), Vec::new(), Vec::new());
    for ((day, term), count) in counts {
        days.push(day);
        words.push(term);
        tickets.push(count);
    }
    // The daily counts and the monthly roll-up in one statement, with the indexer's new place.
    sqlx::query(
        "WITH u AS (SELECT * FROM unnest($1::date[], $2::text[], $3::int[]) AS u(day, term, tickets)),
              daily AS (INSERT INTO ticket_terms_daily AS d (day, term, tickets)
                        SELECT day, term, tickets FROM u
                        ON CONFLICT (day, term) DO UPDATE SET tickets = d.tickets + EXCLUDED.tickets),
              progress AS (UPDATE ticket_terms_progress SET last_ticket = $4)
         INSERT INTO ticket_terms_monthly AS m (month, term, tickets)
         SELECT date_trunc('month', day)::date, term, sum(tickets)::int FROM u GROUP BY 1, 2
         ON CONFLICT (month, term) DO UPDATE SET tickets = m.tickets + EXCLUDED.tickets",
    )
    .bind(&days)
    .bind(&words)
    .bind(&tickets)
    .bind(newest)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Runs the indexer until `shutdown`: batch after batch while there is a backlog, then a look
/// every `idle`. A database outage is logged and retried.
pub fn spawn(
    db: PgPool,
    idle: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let jieba = match tokio::task::spawn_blocking(Jieba::new).await {
            Ok(j) => Arc::new(j),
            Err(e) => {
                tracing::error!(error = %e, "cannot load jieba's dictionary: no hot topics");
                return;
            }
        };
        loop {
            let wait = match index_batch(&db, &jieba, BATCH).await {
                Ok(n) if n > 0 => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "hot-topic indexer: will retry");
                    idle
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// One term of a period.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Topic {
    /// The word.
    pub term: String,
    /// Tickets of the period whose description has it.
    pub tickets: i64,
    /// The same in the period before (as long, just before).
    pub previous: i64,
}

impl Topic {
    /// How many times as frequent as before, with one added to both sides (a new term
    /// with 8 tickets is 9x, not infinitely).
    pub fn ratio(&self) -> f64 {
        (self.tickets as f64 + 1.0) / (self.previous as f64 + 1.0)
    }
}

/// A period's hot topics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HotTopics {
    /// The period (China dates, inclusive) and the one before it.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub previous_from: NaiveDate,
    pub previous_to: NaiveDate,
    /// The most frequent terms, most first.
    pub top: Vec<Topic>,
    /// The terms that rose fastest (at least `min` tickets now), fastest first.
    pub rising: Vec<Topic>,
}

/// A period split for the tables: the days before its first whole month, its whole months
/// (their first days), the days after its last whole month; an empty part is a range that
/// ends before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    head: (NaiveDate, NaiveDate),
    months: (NaiveDate, NaiveDate),
    tail: (NaiveDate, NaiveDate),
}

impl Span {
    fn of(from: NaiveDate, to: NaiveDate) -> Span {
        let first_of = |d: NaiveDate| d.with_day(1).unwrap_or(d);
        let next_month = |d: NaiveDate| {
            first_of(d)
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(d)
        };
        let prev_day = |d: NaiveDate| d.pred_opt().unwrap_or(d);
        let empty = (to.succ_opt().unwrap_or(to), to);
        // The first whole month starts on `from` or the next first of a month; the whole months
        // end where the month holding the day after `to` starts.
        let start = if from.day() == 1 {
            from
        } else {
            next_month(from)
        };
        let end = first_of(to.succ_opt().unwrap_or(to));
        if start >= end {
            return Span {
                head: (from, to),
                months: empty,
                tail: empty,
            };
        }
        let last_month = first_of(prev_day(end));
        Span {
            head: if from < start {
                (from, prev_day(start))
            } else {
                empty
            },
            months: (start, last_month),
            tail: if end <= to { (end, to) } else { empty },
        }
    }
}

/// The hot topics of `from..=to`: the `limit` most frequent terms, and the `limit` that rose
/// fastest against the period of the same length just before among terms in at least
/// `min` tickets now.
pub async fn hot_topics(
    db: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
    min: i64,
) -> Result<HotTopics, sqlx::Error> {
    let days = (to - from).num_days() + 1;
    let previous_to = from - chrono::Days::new(1);
    let previous_from = from - chrono::Days::new(days.max(1) as u64);
    // One pass over both periods, each read as whole months from the roll-up and the days
    // at either end from the daily table: every term of the period with its count before.
    let (cur, prev) = (Span::of(from, to), Span::of(previous_from, previous_to));
    let mut all: Vec<Topic> = sqlx::query_as(
        "WITH rows AS (
             SELECT term, tickets, true AS cur FROM ticket_terms_daily
              WHERE day BETWEEN $1 AND $2 OR day BETWEEN $3 AND $4
             UNION ALL
             SELECT term, tickets, true FROM ticket_terms_monthly WHERE month BETWEEN $5 AND $6
             UNION ALL
             SELECT term, tickets, false FROM ticket_terms_daily
              WHERE day BETWEEN $7 AND $8 OR day BETWEEN $9 AND $10
             UNION ALL
             SELECT term, tickets, false FROM ticket_terms_monthly WHERE month BETWEEN $11 AND $12)
         SELECT term, (sum(tickets) FILTER (WHERE cur))::bigint AS tickets,
                COALESCE(sum(tickets) FILTER (WHERE NOT cur), 0)::bigint AS previous
           FROM rows GROUP BY term HAVING sum(tickets) FILTER (WHERE cur) > 0",
    )
    .bind(cur.head.0)
    .bind(cur.head.1)
    .bind(cur.tail.0)
    .bind(cur.tail.1)
    .bind(cur.months.0)
    .bind(cur.months.1)
    .bind(prev.head.0)
    .bind(prev.head.1)
    .bind(prev.tail.0)
    .bind(prev.tail.1)
    .bind(prev.months.0)
    .bind(prev.months.1)
    .fetch_all(db)
    .await?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut rising: Vec<Topic> = all.iter().filter(|t| t.tickets >= min).cloned().collect();
    rising.sort_by(|a, b| {
        b.ratio()
            .total_cmp(&a.ratio())
            .then(b.tickets.cmp(&a.tickets))
            .then_with(|| a.term.cmp(&b.term))
    });
    rising.truncate(limit);
    all.sort_by(|a, b| b.tickets.cmp(&a.tickets).then_with(|| a.term.cmp(&b.term)));
    all.truncate(limit);
    let top = all;
    Ok(HotTopics {
        from,
        to,
        previous_from,
        previous_to,
        top,
        rising,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_gives_its_content_words_once() {
        let jieba = Jieba::new();
        let t = terms(
            &jieba,
            "市民来电反映：小区停水已经三天，停水没有通知，要求自来水公司尽快恢复供水。12345",
        );
        assert!(
            t.contains("停水") && t.contains("小区") && t.contains("供水"),
            "{t:?}"
        );
        for noise in ["市民", "来电", "反映", "要求", "没有", "12345", "，", "水"] {
            assert!(!t.contains(noise), "{noise} kept: {t:?}");
        }
    }

    #[test]
    fn a_period_is_read_as_whole_months_and_the_days_at_either_end() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let covers = |span: Span, day: NaiveDate| {
            let within = |(a, b): (NaiveDate, NaiveDate)| a <= day && day <= b;
            within(span.head) || within(span.tail)
        };
        // A year to 28 November: 29-30 November, December to October whole, 1-28 November.
        let y = Span::of(d("2025-11-29"), d("2026-11-28"));
        assert_eq!(y.head, (d("2025-11-29"), d("2025-11-30")));
        assert_eq!(y.months, (d("2025-12-01"), d("2026-10-01")));
        assert_eq!(y.tail, (d("2026-11-01"), d("2026-11-28")));
        // Whole months only.
        let q = Span::of(d("2026-01-01"), d("2026-03-31"));
        assert_eq!(q.months, (d("2026-01-01"), d("2026-03-01")));
        assert!(q.head.0 > q.head.1 && q.tail.0 > q.tail.1, "{q:?}");
        // Inside one month: days only.
        let w = Span::of(d("2026-03-02"), d("2026-03-08"));
        assert_eq!(w.head, (d("2026-03-02"), d("2026-03-08")));
        assert!(w.months.0 > w.months.1);
        // Every day of a long odd period is read exactly once.
        let (from, to) = (d("2026-01-15"), d("2026-04-10"));
        let s = Span::of(from, to);
        let mut day = from;
        while day <= to {
            let in_month =
                s.months.0 <= day.with_day(1).unwrap() && day.with_day(1).unwrap() <= s.months.1;
            assert!(covers(s, day) != in_month, "{day}: {s:?}");
            day = day.succ_opt().unwrap();
        }
    }

    #[test]
    fn rising_is_measured_against_the_period_before_with_one_added() {
        let t = |tickets, previous| Topic {
            term: "x".into(),
            tickets,
            previous,
        };
        assert_eq!(t(8, 0).ratio(), 9.0);
        assert_eq!(t(9, 9).ratio(), 1.0);
        assert!(t(30, 2).ratio() > t(100, 50).ratio());
    }
}
