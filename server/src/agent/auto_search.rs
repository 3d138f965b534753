//! Searching the notes when the model would not. Small local models often answer questions about Parlance
//! or the user from thin air instead of calling `search_knowledge` ("How does this app handle security?"
//! got an invented password manager), while the embeddings tell such questions apart from general ones
//! reliably: with all-MiniLM-L6-v2 the seeded notes' questions scored 0.33-0.69 against their notes, general
//! knowledge and small talk 0.06-0.21.

use std::sync::Arc;

use serde_json::json;

use super::tools::search_knowledge;
use crate::knowledge::KnowledgeBase;
use crate::llm::ToolCall;

pub struct AutoSearch {
    knowledge: Arc<KnowledgeBase>,
    min_similarity: f32,
}

impl AutoSearch {
    /// Searches when the nearest passage has at least `min_similarity` (cosine) with the question.
    pub fn new(knowledge: Arc<KnowledgeBase>, min_similarity: f32) -> Self {
        Self { knowledge, min_similarity }
    }

    /// Embeds `question` in the background, so [`AutoSearch::call_for`] finds its vector ready (the knowledge
    /// base keeps the last query's).
    pub fn prepare(&self, question: &str) {
        let knowledge = Arc::clone(&self.knowledge);
        let question = question.to_owned();
        tokio::spawn(async move {
            if let Err(error) = knowledge.embed_query(&question).await {
                tracing::debug!(%error, "could not embed the question ahead of the turn");
            }
        });
    }

    /// The `search_knowledge` call to make for `question` if the model would otherwise answer from its own
    /// knowledge, when the notes are close to it. A failure only means no such call: the model still decides.
    pub async fn call_for(&self, question: &str) -> Option<ToolCall> {
        let similarity = match self.knowledge.closeness(question).await {
            Ok(Some(similarity)) => similarity,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "could not compare the question with the notes; leaving the search to the model");
                return None;
            }
        };
        let search = similarity >= self.min_similarity;
        tracing::debug!(similarity, min_similarity = self.min_similarity, search, "nearest note to the question");
        search.then(|| ToolCall {
            id: format!("call_{}", uuid::Uuid::new_v4().simple()),
            name: search_knowledge::NAME.to_owned(),
            arguments: json!({ "query": question }).to_string(),
        })
    }
}
