//! Tools the agent may call. Adding one means writing a type that implements [`Tool`] in its own file and
//! registering it in [`ToolRegistry`] where the server is assembled.

mod current_time;
mod remember;
pub mod search_knowledge;

use std::sync::Arc;

use async_trait::async_trait;
use parlance_shared::{KnowledgeSource, ToolCallRecord};
use serde_json::Value;

pub use self::current_time::CurrentTime;
pub use self::remember::{REMEMBER_SOURCE, Remember};
pub use self::search_knowledge::SearchKnowledge;
use crate::access::Caller;
use crate::llm::{ToolCall, ToolSpec};

#[async_trait]
pub trait Tool: Send + Sync {
    /// How the model names the tool: lowercase words joined by underscores.
    fn name(&self) -> &str;
    /// Tells the model when the tool helps; the model reads this to decide.
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    /// `caller`: who is asking; a tool reaches only what is theirs (their memories, the shared notes).
    async fn call(&self, arguments: Value, caller: &Caller) -> Result<ToolOutput, ToolError>;
}

/// What a tool hands back to the model, and the knowledge it drew on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    pub sources: Vec<KnowledgeSource>,
}

/// A tool failure is reported to the model (which can then apologise or retry), not to the user as an error.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    Failed(String),
    /// The notes' store cannot be read or written (its files gone, unreadable, the disk full): the model is
    /// told to answer without them, and the answer says so.
    #[error("the notes cannot be reached right now; answer without them")]
    NotesUnavailable,
}

impl ToolError {
    /// A failure of the notes: the store's own are [`ToolError::NotesUnavailable`].
    pub fn from_knowledge(error: crate::knowledge::KnowledgeError) -> Self {
        match error {
            crate::knowledge::KnowledgeError::Store(error) => {
                tracing::warn!(%error, "the notes' store failed");
                Self::NotesUnavailable
            }
            other => Self::Failed(other.to_string()),
        }
    }
}

/// The result of running one call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub record: ToolCallRecord,
    /// Goes back to the model as the tool's message.
    pub content: String,
    pub sources: Vec<KnowledgeSource>,
    /// The notes could not be reached.
    pub notes_unavailable: bool,
}

#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, tool: impl Tool + 'static) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| ToolSpec {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            })
            .collect()
    }

    /// Runs a call the model made. Never fails: whatever goes wrong becomes the tool's answer to the model.
    pub async fn run(&self, call: &ToolCall, caller: &Caller) -> ToolOutcome {
        let raw = call.arguments.trim();
        // Models often send "" for a tool without parameters.
        let parsed = if raw.is_empty() { Ok(Value::Object(Default::default())) } else { serde_json::from_str::<Value>(raw) };
        let arguments = parsed.as_ref().cloned().unwrap_or_else(|_| Value::String(call.arguments.clone()));
        let record = ToolCallRecord { name: call.name.clone(), arguments: arguments.clone() };

        let Some(tool) = self.tools.iter().find(|tool| tool.name() == call.name) else {
            let known = self.tools.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
            tracing::warn!(tool = %call.name, "model called an unknown tool");
            return ToolOutcome {
                record,
                content: format!("error: there is no tool named {:?}; the tools are: {known}", call.name),
                sources: vec![],
                notes_unavailable: false,
            };
        };
        let result = match parsed {
            Ok(arguments) => tool.call(arguments, caller).await,
            Err(error) => Err(ToolError::InvalidArguments(format!("not valid JSON ({error})"))),
        };
        match result {
            Ok(output) => ToolOutcome { record, content: output.content, sources: output.sources, notes_unavailable: false },
            Err(error) => {
                tracing::warn!(tool = %call.name, %error, "tool call failed");
                let notes_unavailable = matches!(error, ToolError::NotesUnavailable);
                ToolOutcome { record, content: format!("error: {error}"), sources: vec![], notes_unavailable }
            }
        }
    }
}
