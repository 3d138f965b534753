use std::sync::Arc;

use async_trait::async_trait;
use parlance_shared::KnowledgeSource;
use serde_json::{Value, json};

use super::{Tool, ToolError, ToolOutput};
use crate::access::Caller;
use crate::knowledge::{KnowledgeBase, SearchMode};

/// The tool's name, as the model calls it.
pub const NAME: &str = "search_knowledge";

/// Passages handed to the model: enough to answer, few enough for a small model's context.
const HITS: usize = 3;

/// Looks up the knowledge base (seeded notes, ingested documents, remembered facts).
pub struct SearchKnowledge {
    knowledge: Arc<KnowledgeBase>,
}

impl SearchKnowledge {
    pub fn new(knowledge: Arc<KnowledgeBase>) -> Self {
        Self { knowledge }
    }
}

#[async_trait]
impl Tool for SearchKnowledge {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Search the user's notes and Parlance's own documentation. Use it for questions about the user (facts they \
         asked you to remember), their documents, or how Parlance works, before saying you do not know."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for, in a few words"}},
            "required": ["query"],
            "additionalProperties": false
        })
    }

    async fn call(&self, arguments: Value, caller: &Caller) -> Result<ToolOutput, ToolError> {
        let query = arguments.get("query").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        if query.is_empty() {
            return Err(ToolError::InvalidArguments("`query` must be a non-empty string".into()));
        }
        let hits = self.knowledge.search(caller, query, HITS, SearchMode::Hybrid).await.map_err(ToolError::from_knowledge)?;
        if hits.is_empty() {
            return Ok(ToolOutput { content: "No notes match.".into(), sources: vec![] });
        }
        // The best passage whole, the others as snippets: every token here is read by the model before it can
        // say a word, which on a small CPU costs more than the extra passages are worth. Titles stay out: small
        // models read whatever the passages start with aloud ("From the note ..."); the sources carry them.
        let content = hits
            .iter()
            .enumerate()
            .map(|(i, hit)| if i == 0 { hit.text.as_str() } else { hit.snippet.as_str() })
            .collect::<Vec<_>>()
            .join("\n\n");
        let sources = hits
            .into_iter()
            .map(|hit| KnowledgeSource { id: hit.note_id, title: hit.title, snippet: hit.snippet, score: hit.score })
            .collect();
        Ok(ToolOutput { content, sources })
    }
}
