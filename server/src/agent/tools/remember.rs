use std::sync::Arc;

use async_trait::async_trait;
use parlance_shared::NewNote;
use serde_json::{Value, json};

use super::{Tool, ToolError, ToolOutput};
use crate::access::Caller;
use crate::knowledge::KnowledgeBase;

/// Words of the fact used as the note's title.
const TITLE_WORDS: usize = 8;
pub const REMEMBER_SOURCE: &str = "remember";

/// Stores a fact the user asks the assistant to keep, as a note that their later searches find (theirs alone
/// when they signed in as one of several users).
pub struct Remember {
    knowledge: Arc<KnowledgeBase>,
}

impl Remember {
    pub fn new(knowledge: Arc<KnowledgeBase>) -> Self {
        Self { knowledge }
    }
}

#[async_trait]
impl Tool for Remember {
    fn name(&self) -> &str {
        "remember"
    }

    fn description(&self) -> &str {
        "Save a fact for later conversations when the user asks you to remember something, e.g. \"remember that my \
         bike is a Trek\". Write the fact as a full sentence about the user."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"fact": {"type": "string", "description": "The fact to keep, e.g. \"The user's bike is a Trek.\""}},
            "required": ["fact"],
            "additionalProperties": false
        })
    }

    async fn call(&self, arguments: Value, caller: &Caller) -> Result<ToolOutput, ToolError> {
        let fact = arguments.get("fact").and_then(Value::as_str).map(str::trim).unwrap_or_default();
        if fact.is_empty() {
            return Err(ToolError::InvalidArguments("`fact` must be a non-empty string".into()));
        }
        let mut title = fact.split_whitespace().take(TITLE_WORDS).collect::<Vec<_>>().join(" ");
        if fact.split_whitespace().count() > TITLE_WORDS {
            title.push('…');
        }
        let note = NewNote { title, text: fact.to_owned(), source: Some(REMEMBER_SOURCE.to_owned()) };
        let added = self.knowledge.remember(note, caller).await.map_err(ToolError::from_knowledge)?;
        let content = if added.added == 1 { format!("Saved: {fact}") } else { format!("Already known: {fact}") };
        Ok(ToolOutput { content, sources: vec![] })
    }
}
