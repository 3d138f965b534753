//! The agent: given the conversation so far and a question, it lets the model answer, running the tools the
//! model asks for and feeding their results back, until the model answers in words.

mod auto_search;
pub mod tools;

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use parlance_shared::{HistoryTurn, KnowledgeSource, Role, ServerEvent, ToolCallRecord};

pub use self::auto_search::AutoSearch;
use self::tools::ToolRegistry;
use crate::events::EventSink;
use crate::llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LlmError, ToolCall, ToolSpec};

/// Answers are spoken, so they must sound right read aloud. The tool rules are spelled out because small
/// local models otherwise reach for a tool on every question (a clock for "What is the capital of France?").
/// Said when the model twice ended its turn without a word (any sources it read are still listed).
const SILENT_MODEL: &str = "Sorry, I could not put an answer into words. Please ask me again.";

pub const SYSTEM_PROMPT: &str = "You are Parlance, a friendly voice assistant. Your answers are read aloud, \
so answer in one to three short, plain sentences: no markdown, lists, code, links or emoji. \
When to use a tool: search_knowledge for questions about Parlance itself (this app: privacy, setup, audio, \
browsers, shortcuts, troubleshooting) or about the user and their notes; current_time only when asked the \
time, date or day; remember only when the user asks you to remember something. Answer general knowledge \
questions, greetings and small talk yourself, without a tool. Never read tool calls or raw tool output aloud. \
If the notes do not say, tell the user so briefly instead of guessing.";

pub struct Agent {
    model: Arc<dyn ChatModel>,
    tools: ToolRegistry,
    max_tool_rounds: usize,
    auto_search: Option<AutoSearch>,
}

/// What the agent produced for one question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub sources: Vec<KnowledgeSource>,
}

/// The tool calls an answer has made and the notes they found, noted as they happen. Whoever starts the answer
/// may keep a handle on them: an answer cut off midway is still remembered with what it had found.
#[derive(Debug, Default)]
pub struct Findings(Mutex<Found>);

#[derive(Debug, Default)]
struct Found {
    tool_calls: Vec<ToolCallRecord>,
    sources: Vec<KnowledgeSource>,
}

impl Findings {
    fn note(&self, record: ToolCallRecord, sources: Vec<KnowledgeSource>) {
        let mut found = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for source in sources {
            if !found.sources.iter().any(|known| known.id == source.id) {
                found.sources.push(source);
            }
        }
        found.tool_calls.push(record);
    }

    pub fn tool_calls(&self) -> Vec<ToolCallRecord> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).tool_calls.clone()
    }

    pub fn sources(&self) -> Vec<KnowledgeSource> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).sources.clone()
    }

    fn answer(&self, text: &str) -> Answer {
        Answer { text: text.to_owned(), tool_calls: self.tool_calls(), sources: self.sources() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Llm(#[from] LlmError),
}

impl Agent {
    pub fn new(model: Arc<dyn ChatModel>, tools: ToolRegistry, max_tool_rounds: usize) -> Self {
        Self { model, tools, max_tool_rounds, auto_search: None }
    }

    /// Search the notes when the model would answer without a tool but they are close to the question (see
    /// [`AutoSearch`]).
    pub fn with_auto_search(mut self, auto_search: AutoSearch) -> Self {
        self.auto_search = Some(auto_search);
        self
    }

    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// Lets the model read the prompt [`Agent::answer`] would start with while the user is still pausing, and
    /// embeds the question for the automatic search meanwhile (see [`ChatModel::prepare`]).
    pub fn prepare(&self, history: &[HistoryTurn], question: &str) {
        self.model.prepare(self.first_request(history, question));
        if let Some(auto_search) = &self.auto_search {
            auto_search.prepare(question);
        }
    }

    pub async fn answer(&self, history: &[HistoryTurn], question: &str, events: &EventSink) -> Result<Answer, AgentError> {
        self.answer_noting(history, question, events, &Findings::default()).await
    }

    /// [`Agent::answer`], noting each tool call and the notes it found in `findings` as soon as it is made.
    pub async fn answer_noting(
        &self,
        history: &[HistoryTurn],
        question: &str,
        events: &EventSink,
        findings: &Findings,
    ) -> Result<Answer, AgentError> {
        let mut messages = self.first_request(history, question).messages;
        // Offered to the model's first decision only: after a tool round it answers.
        let mut default_call = match &self.auto_search {
            Some(auto_search) => auto_search.call_for(question).await,
            None => None,
        };
        for round in 0..=self.max_tool_rounds {
            let tools = self.tools_for_round(round);
            let default_call = if tools.is_empty() { None } else { default_call.take() };
            let mut stream = self.model.stream(ChatRequest { messages: messages.clone(), tools, default_call }).await?;
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
                if text.trim().is_empty() {
                    text = self.answer_again(&messages, events).await?;
                }
                return Ok(findings.answer(text.trim()));
            }

            messages.push(ChatMessage::Assistant { content: text, tool_calls: calls.clone() });
            self.run_calls(&calls, &mut messages, findings, events).await;
        }
        Ok(findings.answer(""))
    }

    /// The request of an answer's first round, without the automatic search's call (which leaves the prompt
    /// as it is).
    pub fn first_request(&self, history: &[HistoryTurn], question: &str) -> ChatRequest {
        ChatRequest { messages: first_messages(history, question), tools: self.tools_for_round(0), default_call: None }
    }

    /// The last round offers no tools, so the model has to answer in words.
    fn tools_for_round(&self, round: usize) -> Vec<ToolSpec> {
        if round < self.max_tool_rounds { self.tools.specs() } else { Vec::new() }
    }

    /// A second try at the answer, without tools, for a model that ended its turn without a word (the 0.5B local
    /// model sometimes does, most often after reading tool results or on half a question); if it is silent again
    /// the user is told so rather than left with an empty answer and no audio.
    async fn answer_again(&self, messages: &[ChatMessage], events: &EventSink) -> Result<String, AgentError> {
        tracing::info!("the model said nothing after its tool calls; asking again without tools");
        let request = ChatRequest { messages: messages.to_vec(), tools: Vec::new(), default_call: None };
        let mut stream = self.model.stream(request).await?;
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            if let ChatEvent::TextDelta(delta) = event? {
                events.emit(ServerEvent::AnswerDelta { text: delta.clone() });
                text.push_str(&delta);
            }
        }
        if text.trim().is_empty() {
            text = SILENT_MODEL.to_owned();
            events.emit(ServerEvent::AnswerDelta { text: text.clone() });
        }
        Ok(text)
    }

    /// Runs the calls, hands their results to the model and notes them (and the notes they found).
    async fn run_calls(&self, calls: &[ToolCall], messages: &mut Vec<ChatMessage>, findings: &Findings, events: &EventSink) {
        for call in calls {
            let outcome = self.tools.run(call).await;
            events.emit(ServerEvent::ToolCall { call: outcome.record.clone() });
            findings.note(outcome.record, outcome.sources);
            messages.push(ChatMessage::Tool { call_id: call.id.clone(), content: outcome.content });
        }
    }
}

/// The system prompt, the recent turns and the question: what every answer starts from.
fn first_messages(history: &[HistoryTurn], question: &str) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(history.len() + 2);
    messages.push(ChatMessage::System(SYSTEM_PROMPT.to_owned()));
    messages.extend(history.iter().map(|turn| match turn.role {
        Role::User => ChatMessage::User(turn.text.clone()),
        Role::Assistant => ChatMessage::Assistant { content: turn.text.clone(), tool_calls: vec![] },
    }));
    messages.push(ChatMessage::User(question.to_owned()));
    messages
}
