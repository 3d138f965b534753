//! The agent: given the conversation so far and a question, it lets the model answer, running the tools the
//! model asks for and feeding their results back, until the model answers in words.

pub mod tools;

use std::sync::Arc;

use futures::StreamExt;
use parlance_shared::{HistoryTurn, KnowledgeSource, Role, ServerEvent, ToolCallRecord};

use self::tools::ToolRegistry;
use crate::events::EventSink;
use crate::llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LlmError};

/// Answers are spoken, so they must sound right read aloud.
pub const SYSTEM_PROMPT: &str = "You are Parlance, a friendly voice assistant. Your answers are read aloud, \
so answer in two to four short, plain sentences: no markdown, lists, code, links or emoji. \
Use a tool when it helps you answer; never read tool calls or their raw output aloud. \
If you do not know something, say so briefly instead of guessing.";

pub struct Agent {
    model: Arc<dyn ChatModel>,
    tools: ToolRegistry,
    max_tool_rounds: usize,
}

/// What the agent produced for one question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub sources: Vec<KnowledgeSource>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Llm(#[from] LlmError),
}

impl Agent {
    pub fn new(model: Arc<dyn ChatModel>, tools: ToolRegistry, max_tool_rounds: usize) -> Self {
        Self { model, tools, max_tool_rounds }
    }

    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    pub async fn answer(&self, history: &[HistoryTurn], question: &str, events: &EventSink) -> Result<Answer, AgentError> {
        let mut messages = Vec::with_capacity(history.len() + 2);
        messages.push(ChatMessage::System(SYSTEM_PROMPT.to_owned()));
        messages.extend(history.iter().map(|turn| match turn.role {
            Role::User => ChatMessage::User(turn.text.clone()),
            Role::Assistant => ChatMessage::Assistant { content: turn.text.clone(), tool_calls: vec![] },
        }));
        messages.push(ChatMessage::User(question.to_owned()));

        let mut answer = Answer::default();
        for round in 0..=self.max_tool_rounds {
            // The last round offers no tools, so the model has to answer in words.
            let tools = if round < self.max_tool_rounds { self.tools.specs() } else { Vec::new() };
            let mut stream = self.model.stream(ChatRequest { messages: messages.clone(), tools }).await?;
            let mut text = String::new();
            let mut calls = Vec::new();
            while let Some(event) = stream.next().await {
                match event? {
                    ChatEvent::TextDelta(delta) => {
                        events.emit(ServerEvent::AnswerDelta { text: delta.clone() });
                        text.push_str(&delta);
                    }
                    ChatEvent::ToolCall(call) => calls.push(call),
                }
            }
            if calls.is_empty() || round == self.max_tool_rounds {
                answer.text = text.trim().to_owned();
                return Ok(answer);
            }

            messages.push(ChatMessage::Assistant { content: text, tool_calls: calls.clone() });
            for call in &calls {
                let outcome = self.tools.run(call).await;
                events.emit(ServerEvent::ToolCall { call: outcome.record.clone() });
                for source in outcome.sources {
                    if !answer.sources.iter().any(|known| known.id == source.id) {
                        answer.sources.push(source);
                    }
                }
                answer.tool_calls.push(outcome.record);
                messages.push(ChatMessage::Tool { call_id: call.id.clone(), content: outcome.content });
            }
        }
        Ok(answer)
    }
}
