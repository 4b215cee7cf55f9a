//! The IVR's look-ups that need the database: a ticket's progress (the `ticket_status` node,
//! REGULATION.md Art. 13). The media threads never wait on PostgreSQL or on speech synthesis:
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

/// A call asking for a ticket's status.
pub struct LookupRequest {
    /// The ticket number the caller keyed.
    pub number: Option<String>,
    /// The last four digits of the phone number on the ticket.
    pub last4: Option<String>,
    /// Hands the prompts to say back to the call's media thread.
    pub answer: Box<dyn FnOnce(Vec<Arc<Prompt>>) + Send>,
}

impl std::fmt::Debug for LookupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupRequest")
            .field("number", &self.number)
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
                let number = req.number.clone();
                let prompts = match text(&db, req.number, req.last4).await {
                    Ok(text) => {
                        match tokio::task::spawn_blocking(move || tts.speak_once(&text)).await {
                            Ok(Ok(samples)) => {
                                tracing::info!(
                                    ticket = number.as_deref().unwrap_or(""),
                                    seconds = samples.len() as f64 / 8000.0,
                                    "IVR told a caller a ticket's status"
                                );
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

async fn text(
    db: &PgPool,
    number: Option<String>,
    last4: Option<String>,
) -> Result<String, StoreError> {
    let (Some(number), Some(last4)) = (number, last4) else {
        return Ok(NOT_FOUND_TEXT.into());
    };
    match citizen::lookup(db, &number, &last4, "ivr").await? {
        Lookup::Found(t) => citizen::spoken_status(db, &t).await,
        Lookup::NotFound => Ok(NOT_FOUND_TEXT.into()),
        Lookup::Throttled => Ok(THROTTLED_TEXT.into()),
    }
}
