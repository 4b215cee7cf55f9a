//! The IVR's look-ups that need the database: a ticket's progress (the `ticket_status` node,
//! REGULATION.md Art. 13) and knowledge-base answers (the `kb` node, Art. 31: an article's
//! spoken answer, or the newest answers of a category). The media threads never wait on PostgreSQL or on speech synthesis:
//! they hand a [`LookupRequest`] to this service, which checks the number and the phone's last
//! four digits exactly as the public API does (same throttling, audited as `ivr`), composes
//! what to say, synthesises it once (never cached: [`Tts::speak_once`]) and hands the prompt
//! back to the call's thread. When the database or the speech engine fails, the caller hears
//! the "not available" notice and the script goes on.

use std::sync::Arc;

use hotline_sip::media::player::Prompt;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::ivr::tts::Tts;
use crate::tickets::citizen::{self, Lookup, NOT_FOUND_TEXT, THROTTLED_TEXT};
use crate::tickets::store::StoreError;

/// What a call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// A ticket's status.
    Ticket {
        /// The ticket number the caller keyed.
        number: Option<String>,
        /// The last four digits of the phone number on the ticket.
        last4: Option<String>,
    },
    /// Knowledge-base answers.
    Knowledge {
        /// One article.
        article: Option<i64>,
        /// Or the newest answers of a category.
        category: Option<String>,
    },
}

/// A call asking a question.
pub struct LookupRequest {
    /// The question.
    pub question: Question,
    /// Hands the prompts to say back to the call's media thread.
    pub answer: Box<dyn FnOnce(Vec<Arc<Prompt>>) + Send>,
}

impl std::fmt::Debug for LookupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupRequest")
            .field("question", &self.question)
            .finish_non_exhaustive()
    }
}

/// Starts the service on the current runtime; it stops when every sender is gone.
pub fn spawn(
    db: PgPool,
    tts: Tts,
    unavailable: Vec<Arc<Prompt>>,
) -> mpsc::UnboundedSender<LookupRequest> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LookupRequest>();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let (db, tts, unavailable) = (db.clone(), tts.clone(), unavailable.clone());
            tokio::spawn(async move {
                let asked = req.question.clone();
                let prompts = match text(&db, req.question).await {
                    Ok(text) => {
                        // Answers from the knowledge base are the same for every caller and
                        // go through the TTS cache; a ticket's status is said once.
                        let cached = matches!(asked, Question::Knowledge { .. });
                        let speak = move || -> Result<Vec<i16>, crate::ivr::tts::TtsError> {
                            if cached {
                                let wav = tts.speak(&text)?;
                                crate::ivr::tts::read_8k(&wav)
                            } else {
                                tts.speak_once(&text)
                            }
                        };
                        match tokio::task::spawn_blocking(speak).await {
                            Ok(Ok(samples)) => {
                                let seconds = samples.len() as f64 / 8000.0;
                                match &asked {
                                    Question::Ticket { number, .. } => tracing::info!(
                                        ticket = number.as_deref().unwrap_or(""),
                                        seconds,
                                        "IVR told a caller a ticket's status"
                                    ),
                                    Question::Knowledge { article, category } => tracing::info!(
                                        ?article,
                                        ?category,
                                        seconds,
                                        "IVR read knowledge-base answers"
                                    ),
                                }
                                vec![Arc::new(Prompt::from_linear("ticket status", &samples))]
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "cannot speak a ticket's status");
                                unavailable
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "ticket status synthesis stopped");
                                unavailable
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot look a ticket up for the IVR");
                        unavailable
                    }
                };
                (req.answer)(prompts);
            });
        }
    });
    tx
}

/// Said when a knowledge-base node finds nothing to read.
pub const NO_ANSWER_TEXT: &str = "抱歉，这一类暂时没有自助答案，请继续等待人工服务。";

/// How many of a category's answers are read in a row.
const CATEGORY_ANSWERS: i64 = 3;

async fn text(db: &PgPool, question: Question) -> Result<String, StoreError> {
    let (number, last4) = match question {
        Question::Ticket { number, last4 } => (number, last4),
        Question::Knowledge { article, category } => {
            return knowledge(db, article, category).await;
        }
    };
    let (Some(number), Some(last4)) = (number, last4) else {
        return Ok(NOT_FOUND_TEXT.into());
    };
    match citizen::lookup(db, &number, &last4, "ivr").await? {
        Lookup::Found(t) => citizen::spoken_status(db, &t).await,
        Lookup::NotFound => Ok(NOT_FOUND_TEXT.into()),
        Lookup::Throttled => Ok(THROTTLED_TEXT.into()),
    }
}

/// The spoken answers of one article, or of a category's newest articles, published and in
/// force today (an answer without a spoken form reads the start of its body).
async fn knowledge(
    db: &PgPool,
    article: Option<i64>,
    category: Option<String>,
) -> Result<String, StoreError> {
    let shown = category.clone();
    let today = crate::kb::service::today();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT title, spoken_answer, body FROM kb_articles
         WHERE status = 'published'
           AND (valid_from IS NULL OR valid_from <= $3)
           AND (valid_until IS NULL OR valid_until >= $3)
           AND (($1::bigint IS NOT NULL AND id = $1)
                OR ($1::bigint IS NULL AND category = $2))
         ORDER BY updated_at DESC LIMIT $4",
    )
    .bind(article)
    .bind(&category)
    .bind(today)
    .bind(CATEGORY_ANSWERS)
    .fetch_all(db)
    .await?;
    tracing::info!(
        answers = rows.len(),
        ?article,
        category = shown.as_deref().unwrap_or(""),
        "IVR knowledge-base look-up"
    );
    if rows.is_empty() {
        return Ok(NO_ANSWER_TEXT.into());
    }
    let mut text = String::new();
    for (title, spoken, body) in rows {
        let answer = if spoken.trim().is_empty() {
            body.chars().take(120).collect()
        } else {
            spoken
        };
        text.push_str(&format!("{title}。{answer}"));
        if !text.ends_with('。') {
            text.push('。');
        }
    }
    Ok(text)
}
