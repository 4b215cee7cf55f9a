//! The search index of the knowledge base: derived from PostgreSQL, never the source of truth.
//!
//! One tantivy document per article. Title, question variants and body are indexed with
//! jieba's search-mode segmentation (tantivy-jieba) and stored for highlighting; beside them
//! two fields built by [`super::text`]: Han character pairs (survive a wrong character or a
//! different cut) and pinyin pairs (survive a homophone). A query is segmented with the same
//! jieba analyzer, its stopwords dropped, everyday words widened to official ones, and every
//! term becomes an optional clause: title and question variants weigh more than the body,
//! whole words more than pairs. Filters (status, validity on the day, category, unit) are
//! required clauses. Expired articles leave search on their `valid_until` day without
//! waiting for anyone to change their status.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use chrono::NaiveDate;
use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::Article;
use super::snippet;
use super::text;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy refused.
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The directory could not be prepared.
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    /// The search thread stopped.
    #[error("search stopped: {0}")]
    Stopped(String),
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    external_id: Field,
    title: Field,
    questions: Field,
    body: Field,
    grams: Field,
    pinyin: Field,
    category: Field,
    unit: Field,
    status: Field,
    valid_from: Field,
    valid_until: Field,
}

const JIEBA: &str = "jieba";

/// Characters of the body shown under a result around the words that matched...
const PASSAGE_CHARS: usize = 150;
/// ...and from its beginning when only pairs or pinyin matched.
const OPENING_CHARS: usize = 80;
const WHITESPACE: &str = "whitespace";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(JIEBA)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let tokens = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WHITESPACE)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let f = Fields {
        id: b.add_i64_field("id", INDEXED | STORED | FAST),
        external_id: b.add_text_field("external_id", STRING | STORED),
        title: b.add_text_field("title", words.clone()),
        questions: b.add_text_field("questions", words.clone()),
        body: b.add_text_field("body", words),
        grams: b.add_text_field("grams", tokens.clone()),
        pinyin: b.add_text_field("pinyin", tokens),
        category: b.add_text_field("category", STRING | STORED),
        unit: b.add_i64_field("unit", INDEXED | STORED),
        status: b.add_text_field("status", STRING | STORED),
        valid_from: b.add_i64_field("valid_from", INDEXED | FAST),
        valid_until: b.add_i64_field("valid_until", INDEXED | FAST),
    };
    (b.build(), f)
}

/// Days since 1970-01-01 (the index's date unit).
fn day_number(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce()) - 719_163
}

use chrono::Datelike;

/// What a search is limited to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this category.
    pub category: Option<String>,
    /// Only this unit's articles.
    pub unit: Option<i64>,
    /// Only this status (default: published and valid today).
    pub status: Option<String>,
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Article id.
    pub id: i64,
    /// The id another system gave it (imports keep it).
    pub external_id: Option<String>,
    /// The relevance score (higher is better; comparable within one search only).
    pub score: f32,
    /// Title.
    pub title: String,
    /// Category.
    pub category: String,
    /// The passage of the body (or title) that matched, with `<b>` around matched words.
    pub snippet: String,
}

/// Which signals a query uses beyond jieba's words (all by default; the quality benchmark
/// turns them off one by one to measure what each adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// Han character pairs.
    pub pairs: bool,
    /// Pinyin pairs.
    pub pinyin: bool,
    /// Everyday-to-official synonyms.
    pub synonyms: bool,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            pairs: true,
            pinyin: true,
            synonyms: true,
        }
    }
}

/// The index.
pub struct KbIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
    signals: Signals,
}

impl KbIndex {
    /// Opens the index in `dir` (created when missing), or in memory when `dir` is `None`.
    /// A directory that cannot be opened as this index (corrupt, another schema) is emptied
    /// and created again: the caller then rebuilds it from PostgreSQL.
    pub fn open(dir: Option<&Path>) -> Result<(KbIndex, bool), IndexError> {
        let (schema, f) = schema();
        let (index, fresh) = match dir {
            None => (Index::create_in_ram(schema), true),
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                match Index::open_in_dir(dir) {
                    Ok(i) if i.schema() == schema => (i, false),
                    Ok(_) | Err(_) => {
                        if dir.exists() {
                            tracing::warn!(dir = %dir.display(), "search index unusable: rebuilding it");
                            std::fs::remove_dir_all(dir)?;
                        }
                        std::fs::create_dir_all(dir)?;
                        (Index::create_in_dir(dir, schema)?, true)
                    }
                }
            }
        };
        index
            .tokenizers()
            .register(JIEBA, tantivy_jieba::JiebaTokenizer::new());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, 50_000_000)?;
        Ok((
            KbIndex {
                index,
                reader,
                writer: Mutex::new(writer),
                f,
                signals: Signals::default(),
            },
            fresh,
        ))
    }

    /// Uses only these signals in queries.
    pub fn set_signals(&mut self, signals: Signals) {
        self.signals = signals;
    }

    fn document(&self, a: &Article) -> TantivyDocument {
        let f = self.f;
        let mut d = TantivyDocument::default();
        d.add_i64(f.id, a.id);
        if let Some(x) = &a.external_id {
            d.add_text(f.external_id, x);
        }
        d.add_text(f.title, &a.title);
        let questions = a.question_variants.join("\n");
        d.add_text(f.questions, &questions);
        d.add_text(f.body, &a.body);
        let tags = a.tags.join(" ");
        let all = format!("{}\n{}\n{}\n{}", a.title, questions, tags, a.body);
        d.add_text(f.grams, text::bigrams(&all).join(" "));
        let heading = format!("{}\n{}\n{}", a.title, questions, tags);
        let mut pinyin = text::pinyin_pairs(&heading);
        pinyin.extend(text::pinyin_pairs(&a.body));
        d.add_text(f.pinyin, pinyin.join(" "));
        d.add_text(f.category, &a.category);
        d.add_i64(f.unit, a.unit_id.unwrap_or(0));
        d.add_text(f.status, &a.status);
        d.add_i64(f.valid_from, a.valid_from.map_or(i64::MIN, day_number));
        d.add_i64(f.valid_until, a.valid_until.map_or(i64::MAX, day_number));
        d
    }

    fn commit(&self, w: &mut IndexWriter) -> Result<(), IndexError> {
        w.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Replaces the whole index with `articles`.
    pub fn rebuild(&self, articles: &[Article]) -> Result<(), IndexError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.delete_all_documents()?;
        for a in articles {
            w.add_document(self.document(a))?;
        }
        self.commit(&mut w)
    }

    /// Puts the current version of articles in the index (replacing earlier ones).
    pub fn upsert(&self, articles: &[Article]) -> Result<(), IndexError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for a in articles {
            w.delete_term(Term::from_field_i64(self.f.id, a.id));
            w.add_document(self.document(a))?;
        }
        self.commit(&mut w)
    }

    /// Takes an article out.
    pub fn remove(&self, id: i64) -> Result<(), IndexError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.delete_term(Term::from_field_i64(self.f.id, id));
        self.commit(&mut w)
    }

    /// Articles in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// jieba's words of `q` as the title field's analyzer cuts them, without stopwords.
    fn words(&self, q: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        if let Ok(mut analyzer) = self.index.tokenizer_for_field(self.f.title) {
            let mut stream = analyzer.token_stream(q);
            while let Some(t) = stream.next() {
                let w = t.text.to_lowercase();
                if !crate::china::text::is_stopword(&w) && seen.insert(w.clone()) {
                    out.push(w);
                }
            }
        }
        out
    }

    /// The query for `q`: its words, their official synonyms, pairs and pinyin pairs; and the
    /// words, which the passage under a result highlights.
    fn text_query(&self, q: &str) -> Option<(Box<dyn Query>, Vec<String>)> {
        let f = self.f;
        let mut words = self.words(q);
        let mut extra: Vec<String> = Vec::new();
        let everyday: Vec<String> = if self.signals.synonyms {
            words
                .iter()
                .cloned()
                .chain(text::everyday_words_in(q).map(str::to_string))
                .collect()
        } else {
            Vec::new()
        };
        for w in &everyday {
            for s in text::synonyms(w) {
                extra.extend(self.words(s));
                extra.push((*s).to_string());
            }
        }
        let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
        for e in extra {
            if seen.insert(e.clone()) {
                words.push(e);
            }
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let term = |field: Field, t: &str, boost: f32| -> (Occur, Box<dyn Query>) {
            let q = TermQuery::new(
                Term::from_field_text(field, t),
                IndexRecordOption::WithFreqs,
            );
            (Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost)))
        };
        for w in &words {
            clauses.push(term(f.title, w, 3.0));
            clauses.push(term(f.questions, w, 2.5));
            clauses.push(term(f.body, w, 1.0));
        }
        // Pairs of the query text itself (not of the synonyms): they carry typos and cuts.
        let cleaned: String = words_only(q);
        let mut seen = HashSet::new();
        let pairs = if self.signals.pairs {
            text::bigrams(&cleaned)
        } else {
            Vec::new()
        };
        let pinyin = if self.signals.pinyin {
            text::pinyin_pairs(&cleaned)
        } else {
            Vec::new()
        };
        for g in pairs {
            if seen.insert(g.clone()) {
                clauses.push(term(f.grams, &g, 0.6));
            }
        }
        for p in pinyin {
            if seen.insert(p.clone()) {
                clauses.push(term(f.pinyin, &p, 0.8));
            }
        }
        (!clauses.is_empty()).then(|| {
            (
                Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>,
                words,
            )
        })
    }

    /// The best `limit` articles for `q` under `filter`, on `today` (China date).
    pub fn search(
        &self,
        q: &str,
        filter: &Filter,
        today: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let f = self.f;
        let Some((text_query, words)) = self.text_query(q) else {
            return Ok(Vec::new());
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query)];
        let exact = |term: Term| -> (Occur, Box<dyn Query>) {
            (
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            )
        };
        let status = filter.status.as_deref().unwrap_or("published");
        must.push(exact(Term::from_field_text(f.status, status)));
        if status == "published" {
            let day = day_number(today);
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Included(Term::from_field_i64(f.valid_from, day)),
                )),
            ));
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_i64(f.valid_until, day)),
                    Bound::Unbounded,
                )),
            ));
        }
        if let Some(c) = &filter.category {
            must.push(exact(Term::from_field_text(f.category, c)));
        }
        if let Some(u) = filter.unit {
            must.push(exact(Term::from_field_i64(f.unit, u)));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        let words: HashSet<String> = words.into_iter().collect();
        let mut body_words = self.index.tokenizer_for_field(f.body)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text_of = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let body = doc
                .get_first(f.body)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            hits.push(Hit {
                id: doc.get_first(f.id).and_then(|v| v.as_i64()).unwrap_or(0),
                external_id: doc
                    .get_first(f.external_id)
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                score,
                title: text_of(f.title),
                category: text_of(f.category),
                snippet: snippet::passage(&mut body_words, body, &words, PASSAGE_CHARS)
                    .unwrap_or_else(|| snippet::opening(body, OPENING_CHARS)),
            });
        }
        Ok(hits)
    }
}

/// The query without its stopwords' characters where they stand alone (keeps pairs useful).
fn words_only(q: &str) -> String {
    q.chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, a panic is a failure report
    use super::*;
    use proptest::prelude::*;

    fn article(id: i64, title: &str, body: &str) -> Article {
        Article {
            id,
            external_id: None,
            title: title.into(),
            body: body.into(),
            spoken_answer: String::new(),
            category: "税务".into(),
            tags: Vec::new(),
            question_variants: vec![title.into()],
            unit_id: None,
            status: "published".into(),
            valid_from: None,
            valid_until: None,
            version: 1,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
    }

    const VAT: &str = "小规模纳税人可以自行开具增值税专用发票和普通发票，征收率一般为1%。月销售额不超过10万元（季度不超过30万元）的，免征增值税。";

    /// The question from the issue that crashed tantivy's snippet: its words and their parts
    /// overlap in the body, here past the first fragment's 150 characters.
    #[test]
    fn a_question_whose_words_overlap_in_the_body_gets_a_well_formed_snippet() {
        let (index, _) = KbIndex::open(None).unwrap();
        let body = format!(
            "{}{VAT}",
            "个体工商户办理税务登记后按规定申报纳税。".repeat(9)
        );
        index
            .rebuild(&[article(1, "小规模纳税人开具增值税专用发票", &body)])
            .unwrap();
        let hits = index
            .search(
                "小规模的个体户可以自己开增值税专票吗",
                &Filter::default(),
                today(),
                3,
            )
            .unwrap();
        assert_eq!(hits.len(), 1);
        let s = &hits[0].snippet;
        assert!(s.contains("<b>小规模</b>纳税人"), "{s}");
        assert!(s.contains("<b>增值税</b>"), "{s}");
        assert_eq!(s.matches("<b>").count(), s.matches("</b>").count(), "{s}");
        let plain = s.replace("<b>", "").replace("</b>", "");
        assert!(body.contains(&plain), "{plain}");
    }

    /// Han characters common in questions, ASCII, full-width forms, punctuation, an emoji,
    /// a combining mark and markup.
    fn text() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = "增值税专用发票小规模纳税人个体户可以自己开吗居住证身份证办理社保医保暖气井盖残疾证的了吗呢是不\
             abcXYZ019 <>&\"'%（）：，。！？ＡＢ１２　、…—🙂\u{301}\n\t"
            .chars()
            .collect();
        proptest::collection::vec(proptest::sample::select(alphabet), 0..400)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// No body and no question makes search (and so suggest, which is the same search on
        /// a ticket's text) fail, and every snippet is escaped text with balanced tags.
        #[test]
        fn no_text_and_no_question_makes_search_fail(
            bodies in proptest::collection::vec(text(), 1..4),
            questions in proptest::collection::vec(text(), 1..6),
        ) {
            let (index, _) = KbIndex::open(None).unwrap();
            let articles: Vec<Article> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| article(i as i64 + 1, &b.chars().take(20).collect::<String>(), b))
                .collect();
            index.rebuild(&articles).unwrap();
            for q in questions.iter().chain(bodies.iter()) {
                let hits = index.search(q, &Filter::default(), today(), 5).unwrap();
                for h in hits {
                    let s = h.snippet;
                    prop_assert_eq!(s.matches("<b>").count(), s.matches("</b>").count());
                    let inner = s.replace("<b>", "").replace("</b>", "");
                    prop_assert!(!inner.contains('<') && !inner.contains('>'), "{}", s);
                }
            }
        }
    }
}
