//! The hotline knowledge base (REGULATION.md Art. 31, 38; issue 6): laws, policies, case
//! interpretations and practical information, used by agents during calls, by callers through
//! self-service, and kept current by the handling units that own the articles (Art. 9).
//!
//! PostgreSQL holds the articles and their history; the search index ([`index`]) is derived
//! from it, with Chinese analysis beside jieba's words in [`text`].

pub mod index;
pub mod service;
pub mod snippet;
pub mod store;
pub mod text;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// An article as the index and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Article {
    /// Row id.
    #[serde(default)]
    pub id: i64,
    /// Another system's id for it (imports keep it; search results carry it back).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Title.
    pub title: String,
    /// The full text.
    pub body: String,
    /// The short answer the IVR speaks.
    #[serde(default)]
    pub spoken_answer: String,
    /// Category.
    pub category: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The ways citizens ask it.
    #[serde(default)]
    pub question_variants: Vec<String>,
    /// The owning handling unit.
    #[serde(default)]
    pub unit_id: Option<i64>,
    /// draft, pending, published or expired.
    #[serde(default = "draft")]
    pub status: String,
    /// First day it applies.
    #[serde(default)]
    pub valid_from: Option<NaiveDate>,
    /// Last day it applies.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
    /// Optimistic version.
    #[serde(default)]
    pub version: i32,
}

fn draft() -> String {
    "draft".into()
}
