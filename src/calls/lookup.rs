//! The IVR's look-ups that need the database: a ticket's progress (the `ticket_status` node,
//! REGULATION.md Art. 13) and knowledge-base answers (the `kb` node, Art. 31: an article's
//! spoken answer, or the newest answers of a category). The media threads never wait on PostgreSQL or on speech synthesis:
//! they hand a [`LookupRequest`] to this service, which checks the number and the access code
//! (and the phone's last four digits when the script asks them too) exactly as the public API
//! does (same throttling, audited as `ivr`), composes
//! what to say, synthesises it once (never cached: [`Tts::speak_once`]) and hands the prompt
//! back to the call's thread. When the database or the speech engine fails, the caller hears
//! the "not available" notice and the script goes on.

use std::collections::HashMap;
use std::sync::Arc;

use hotline_sip::media::player::Prompt;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::ivr::tts::Tts;
use crate::tickets::citizen::{self, Lookup, NOT_FOUND_TEXT, THROTTLED_TEXT};
use crate::tickets::store::StoreError;

/// What a call asks for.
/// A calling number, masked when logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::mask::mask_number(&self.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// A ticket's status.
    Ticket {
        /// The ticket number the caller keyed.
        number: Option<String>,
        /// The access code the caller keyed.
        code: Option<String>,
        /// The last four digits of the phone number on the ticket, if the script asked them.
        last4: Option<String>,
        /// The calling number (wrong tries are counted per caller too).
        caller: Caller,
    },
    /// Knowledge-base answers.
    Knowledge {
        /// One article.
        article: Option<i64>,
        /// Or a category: its menu, or the answer chosen from it.
        category: Option<String>,
        /// The key chosen from the category's menu.
        choice: Option<u8>,
    },
    /// A waiting caller's place in the queue and the estimated wait (no database needed,
    /// but the same speech path).
    Position {
        /// 1 = next.
        place: usize,
        /// Whole minutes.
        minutes: u64,
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
    // Prompts said to every caller alike (knowledge answers, places in the queue), decoded at
    // 8 kHz once: the TTS cache on disk spares the synthesis, this spares reading and
    // resampling the file for every caller (hundreds of announcements a minute).
    let said: Arc<std::sync::Mutex<HashMap<String, Arc<Prompt>>>> = Arc::default();
    // Such prompts are made one at a time: when hundreds of waiting callers are told their
    // place at once, the first caller's synthesis serves all who need the same words.
    let making: Arc<tokio::sync::Mutex<()>> = Arc::default();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let (db, tts, unavailable) = (db.clone(), tts.clone(), unavailable.clone());
            let (said, making) = (Arc::clone(&said), Arc::clone(&making));
            tokio::spawn(async move {
                let asked = req.question.clone();
                let prompts = match text(&db, req.question).await {
                    Ok(text) => 'said: {
                        // Answers from the knowledge base and places in the queue are the same
                        // for every caller and go through the caches; a ticket's status is said
                        // once.
                        let cached = !matches!(asked, Question::Ticket { .. });
                        let known = || said.lock().ok().and_then(|m| m.get(&text).cloned());
                        let _turn = if cached {
                            if let Some(p) = known() {
                                break 'said vec![p];
                            }
                            let turn = making.lock().await;
                            // Made meanwhile by the caller before in line?
                            if let Some(p) = known() {
                                break 'said vec![p];
                            }
                            Some(turn)
                        } else {
                            None
                        };
                        let key = text.clone();
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
                                    Question::Knowledge {
                                        article,
                                        category,
                                        choice,
                                    } => tracing::info!(
                                        ?article,
                                        ?category,
                                        ?choice,
                                        seconds,
                                        "IVR read knowledge-base answers"
                                    ),
                                    Question::Position { place, minutes } => tracing::debug!(
                                        place,
                                        minutes,
                                        seconds,
                                        "told a caller its place in the queue"
                                    ),
                                }
                                let prompt =
                                    Arc::new(Prompt::from_linear("ticket status", &samples));
                                if cached && let Ok(mut m) = said.lock() {
                                    if m.len() >= MEMORY_PROMPTS {
                                        m.clear();
                                    }
                                    m.insert(key, Arc::clone(&prompt));
                                }
                                vec![prompt]
                            }
                            // A place in the queue not spoken is no loss: the music goes on.
                            Ok(Err(e)) if matches!(asked, Question::Position { .. }) => {
                                tracing::warn!(error = %e, "cannot speak a caller's place");
                                Vec::new()
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

/// Prompts kept decoded in memory (a few MB at most; the set starts over when full).
const MEMORY_PROMPTS: usize = 512;

/// Said when a knowledge-base node finds nothing to read.
pub const NO_ANSWER_TEXT: &str = "抱歉，这一类暂时没有自助答案，请继续等待人工服务。";

/// How many of a category's articles its menu offers (keys 1 to 9).
const MENU_ITEMS: i64 = 9;

/// Said when a key chooses nothing in a category's menu.
pub const NO_SUCH_CHOICE_TEXT: &str = "没有这个选项。";

/// What a waiting caller hears about its place (1 = next) and the estimated wait. Beyond 20
/// callers ahead or 30 minutes it says "more than": a caller needs no exact count there, and
/// the texts stay few (each is synthesised once and cached, so a queue of hundreds does not
/// mean hundreds of syntheses every announcement round).
pub fn position_text(place: usize, minutes: u64) -> String {
    let wait = if minutes > 30 {
        "预计等待超过30分钟".to_string()
    } else {
        format!("预计等待约{minutes}分钟")
    };
    match place.saturating_sub(1) {
        0 => format!("您是下一位，{wait}，请稍候。"),
        ahead @ 1..=20 => format!("您前面还有{ahead}位来电，{wait}，请耐心等候。"),
        _ => format!("您前面还有超过20位来电，{wait}，请耐心等候。"),
    }
}

async fn text(db: &PgPool, question: Question) -> Result<String, StoreError> {
    let (number, code, last4, caller) = match question {
        Question::Ticket {
            number,
            code,
            last4,
            caller,
        } => (number, code, last4, caller),
        Question::Position { place, minutes } => return Ok(position_text(place, minutes)),
        Question::Knowledge {
            article,
            category,
            choice,
        } => {
            return knowledge(db, article, category, choice).await;
        }
    };
    let (Some(number), Some(access_code)) = (number, code) else {
        return Ok(NOT_FOUND_TEXT.into());
    };
    let proof = citizen::Proof {
        access_code,
        phone_last4: last4,
    };
    match citizen::lookup(db, &number, &proof, "ivr", &format!("tel:{}", caller.0)).await? {
        Lookup::Found(t) => citizen::spoken_status(db, &t).await,
        Lookup::NotFound => Ok(NOT_FOUND_TEXT.into()),
        Lookup::Throttled(_) => Ok(THROTTLED_TEXT.into()),
    }
}

/// What a knowledge-base node says: one article's spoken answer; a category's menu (its
/// newest published articles in force today, "press 1 for ..."); or the answer chosen from
/// that menu. An answer without a spoken form reads the start of its body.
async fn knowledge(
    db: &PgPool,
    article: Option<i64>,
    category: Option<String>,
    choice: Option<u8>,
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
         ORDER BY updated_at DESC, id DESC LIMIT $4",
    )
    .bind(article)
    .bind(&category)
    .bind(today)
    .bind(MENU_ITEMS)
    .fetch_all(db)
    .await?;
    tracing::info!(
        answers = rows.len(),
        ?article,
        category = shown.as_deref().unwrap_or(""),
        ?choice,
        "IVR knowledge-base look-up"
    );
    if rows.is_empty() {
        return Ok(NO_ANSWER_TEXT.into());
    }
    let answer = |(title, spoken, body): &(String, String, String)| {
        let said: String = if spoken.trim().is_empty() {
            body.chars().take(120).collect()
        } else {
            spoken.clone()
        };
        let mut text = format!("{title}。{said}");
        if !text.ends_with('。') {
            text.push('。');
        }
        text
    };
    Ok(match (article, choice) {
        (Some(_), _) => answer(&rows[0]),
        (None, Some(k)) => rows
            .get(usize::from(k).saturating_sub(1))
            .map_or_else(|| NO_SUCH_CHOICE_TEXT.to_string(), answer),
        (None, None) => {
            let mut text = "请按键选择：".to_string();
            for (i, (title, _, _)) in rows.iter().enumerate() {
                text.push_str(&format!("{}，请按{}；", title, i + 1));
            }
            text.push_str("其他键返回。");
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::position_text;
    use std::collections::BTreeSet;

    #[test]
    fn places_and_waits_are_said_exactly_when_near_and_as_more_than_when_far() {
        assert_eq!(position_text(1, 1), "您是下一位，预计等待约1分钟，请稍候。");
        assert_eq!(
            position_text(4, 3),
            "您前面还有3位来电，预计等待约3分钟，请耐心等候。"
        );
        assert_eq!(
            position_text(300, 95),
            "您前面还有超过20位来电，预计等待超过30分钟，请耐心等候。"
        );
        // A queue of 2,000 with waits up to 3 hours needs few distinct texts.
        let texts: BTreeSet<String> = (1..=2000)
            .flat_map(|p| (1..=180).step_by(7).map(move |m| position_text(p, m)))
            .collect();
        assert!(texts.len() < 22 * 32, "{}", texts.len());
    }
}
