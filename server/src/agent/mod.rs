//! The agent: given the conversation so far and a question, it lets the model answer, running the tools the
//! model asks for and feeding their results back, until the model answers in words.

pub mod grounding;
pub mod tools;

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use parlance_shared::{HistoryTurn, KnowledgeSource, Role, ServerEvent, ToolCallRecord};

pub use self::grounding::{AnswerStyle, Grounder, Grounding};
use self::tools::ToolRegistry;
use crate::access::Caller;
use crate::events::EventSink;
use crate::llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LlmError, ToolCall, ToolSpec};

/// Answers are spoken, so they must sound right read aloud. The tool rules are spelled out because small
/// local models otherwise reach for a tool on every question (a clock for "What is the capital of France?").
/// Said when the model twice ended its turn without a word (any sources it read are still listed).
const SILENT_MODEL: &str = "Sorry, I could not put an answer into words. Please ask me again.";
/// Ends an answer given without the notes because they could not be reached.
pub const NOTES_UNAVAILABLE: &str = "(I could not reach your notes just now, so this answer does not use them.)";

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
    grounder: Option<Grounder>,
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
    /// The notes were asked for and could not be reached.
    notes_unavailable: bool,
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

    fn lost_notes(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).notes_unavailable = true;
    }

    fn notes_unavailable(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).notes_unavailable
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
        Self { model, tools, max_tool_rounds, grounder: None }
    }

    /// Answer questions about the notes from their evidence (see [`Grounder`]).
    pub fn with_grounding(mut self, grounder: Grounder) -> Self {
        self.grounder = Some(grounder);
        self
    }

    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// Works out, while the user is still pausing, what [`Agent::answer`] will need: what the notes say about
    /// the question, then the model's reading of the prompt it will start from, if it is needed at all (see
    /// [`ChatModel::prepare`]).
    pub fn prepare(&self, history: &[HistoryTurn], question: &str, caller: &Caller) {
        let Some(grounder) = &self.grounder else {
            self.model.prepare(self.first_request(history, question));
            return;
        };
        let grounding = grounder.prepare(history, question, caller);
        let model = Arc::clone(&self.model);
        let general = self.first_request(history, question);
        let history = history.to_vec();
        let style = grounder.style();
        tokio::spawn(async move {
            match &*grounding.await {
                Grounding::General | Grounding::Unavailable => model.prepare(general),
                Grounding::Answered(found) if style == AnswerStyle::Generative || !found.clear() => {
                    model.prepare(ChatRequest { messages: grounding::grounded_messages(&history, found), ..ChatRequest::default() });
                }
                Grounding::Answered(_) | Grounding::NotCovered { .. } => {}
            }
        });
    }

    /// Has the model read the start of every first prompt (the instructions and the tools) now, so the first
    /// question after start-up is judged and answered as fast as later ones: a local model keeps what it read
    /// and reuses the common start. A provider's model ignores it.
    pub fn warm_up(&self) {
        self.model.prepare(self.first_request(&[], ""));
    }

    /// Has the model read `history` as the next question's prompt will start (instructions, tools, the
    /// conversation), while the user listens to the last answer: the next question, a follow-up most often, is
    /// then judged and answered reading only its own words. A provider's model ignores it.
    pub fn read_ahead(&self, history: &[HistoryTurn]) {
        self.model.prepare(self.first_request(history, ""));
    }

    /// How likely `question` (heard so far) is the whole of the user's turn, as the model judges it after
    /// the conversation so far; `None` when the model cannot tell. Its prompt is the answer's without the
    /// end of the question, so a local model keeps what it read for the answer.
    pub async fn end_of_turn(&self, history: &[HistoryTurn], question: &str) -> Option<f32> {
        // Judged without its final punctuation: speech-to-text closes nearly everything with "." or "?",
        // whether the user finished or broke off.
        let words = question.trim_end().trim_end_matches(['.', '?', '!', ',', ';', ':', '\u{2026}']).trim_end();
        if words.is_empty() {
            return None;
        }
        self.model.end_of_turn(self.first_request(history, words)).await
    }

    /// `caller`: who asks; the notes searched and the memories kept are theirs (and the shared notes).
    pub async fn answer(&self, history: &[HistoryTurn], question: &str, caller: &Caller, events: &EventSink) -> Result<Answer, AgentError> {
        self.answer_noting(history, question, caller, events, &Findings::default()).await
    }

    /// [`Agent::answer`], noting each tool call and the notes it found in `findings` as soon as it is made.
    /// When the notes could not be reached, the answer comes without them and ends by saying so.
    pub async fn answer_noting(
        &self,
        history: &[HistoryTurn],
        question: &str,
        caller: &Caller,
        events: &EventSink,
        findings: &Findings,
    ) -> Result<Answer, AgentError> {
        let mut answer = self.answer_with_notes(history, question, caller, events, findings).await?;
        if findings.notes_unavailable() {
            let notice = if answer.text.is_empty() { NOTES_UNAVAILABLE.to_owned() } else { format!(" {NOTES_UNAVAILABLE}") };
            events.emit(ServerEvent::AnswerDelta { text: notice.clone() });
            answer.text.push_str(&notice);
        }
        Ok(answer)
    }

    async fn answer_with_notes(
        &self,
        history: &[HistoryTurn],
        question: &str,
        caller: &Caller,
        events: &EventSink,
        findings: &Findings,
    ) -> Result<Answer, AgentError> {
        if let Some(grounder) = &self.grounder {
            let grounding = grounder.ground(history, question, caller).await;
            match &*grounding {
                Grounding::General => {}
                Grounding::Unavailable => findings.lost_notes(),
                Grounding::Answered(found) => return self.answer_from_notes(history, found, grounder.style(), events, findings).await,
                Grounding::NotCovered { found, subject } => return Ok(self.decline(found, subject, events, findings)),
            }
        }
        let mut messages = self.first_request(history, question).messages;
        for round in 0..=self.max_tool_rounds {
            let tools = self.tools_for_round(round);
            let mut stream = self.model.stream(ChatRequest { messages: messages.clone(), tools, default_call: None }).await?;
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
            // The model wants the notes searched: their evidence answers, as for a question close to them.
            if let Some(grounder) = &self.grounder
                && calls.iter().any(|call| call.name == tools::search_knowledge::NAME)
            {
                match grounder.ground_asked(history, question, caller).await {
                    Grounding::Answered(found) => return self.answer_from_notes(history, &found, grounder.style(), events, findings).await,
                    Grounding::NotCovered { found, subject } => return Ok(self.decline(&found, &subject, events, findings)),
                    Grounding::General => {}
                    Grounding::Unavailable => findings.lost_notes(),
                }
            }
            if calls.is_empty() || round == self.max_tool_rounds {
                if text.trim().is_empty() {
                    text = self.answer_again(&messages, events).await?;
                }
                return Ok(findings.answer(text.trim()));
            }

            messages.push(ChatMessage::Assistant { content: text, tool_calls: calls.clone() });
            self.run_calls(&calls, &mut messages, caller, findings, events).await;
        }
        Ok(findings.answer(""))
    }

    /// The notes were searched and do not mention what the question asks about.
    fn decline(&self, found: &grounding::Found, subject: &[String], events: &EventSink, findings: &Findings) -> Answer {
        tracing::debug!(?subject, "the notes do not cover the question");
        let record = found.record();
        events.emit(ServerEvent::ToolCall { call: record.clone() });
        findings.note(record, Vec::new());
        let text = grounding::not_covered(subject);
        events.emit(ServerEvent::AnswerDelta { text: text.clone() });
        findings.answer(&text)
    }

    /// An answer from the notes' evidence: its best sentence as it is, or the model's words from the few best.
    async fn answer_from_notes(
        &self,
        history: &[HistoryTurn],
        found: &grounding::Found,
        style: AnswerStyle,
        events: &EventSink,
        findings: &Findings,
    ) -> Result<Answer, AgentError> {
        let record = found.record();
        events.emit(ServerEvent::ToolCall { call: record.clone() });
        let text = match style {
            AnswerStyle::Extractive if found.clear() => {
                findings.note(record, found.sources(1));
                let text = found.spoken();
                events.emit(ServerEvent::AnswerDelta { text: text.clone() });
                text
            }
            AnswerStyle::Extractive | AnswerStyle::Generative => {
                findings.note(record, found.sources(grounding::EVIDENCE_FOR_MODEL));
                let request = ChatRequest { messages: grounding::grounded_messages(history, found), ..ChatRequest::default() };
                self.words(request, events, found.spoken()).await?
            }
        };
        Ok(findings.answer(text.trim()))
    }

    /// The request of an answer's first round.
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
        self.words(request, events, SILENT_MODEL.to_owned()).await
    }

    /// The model's answer to a request without tools, each piece sent on as it comes; `instead` when it says
    /// nothing at all.
    async fn words(&self, request: ChatRequest, events: &EventSink, instead: String) -> Result<String, AgentError> {
        let mut stream = self.model.stream(request).await?;
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            if let ChatEvent::TextDelta(delta) = event? {
                events.emit(ServerEvent::AnswerDelta { text: delta.clone() });
                text.push_str(&delta);
            }
        }
        if text.trim().is_empty() {
            text = instead;
            events.emit(ServerEvent::AnswerDelta { text: text.clone() });
        }
        Ok(text)
    }

    /// Runs the calls, hands their results to the model and notes them (and the notes they found).
    async fn run_calls(
        &self,
        calls: &[ToolCall],
        messages: &mut Vec<ChatMessage>,
        caller: &Caller,
        findings: &Findings,
        events: &EventSink,
    ) {
        for call in calls {
            let outcome = self.tools.run(call, caller).await;
            events.emit(ServerEvent::ToolCall { call: outcome.record.clone() });
            if outcome.notes_unavailable {
                findings.lost_notes();
            }
            findings.note(outcome.record, outcome.sources);
            messages.push(ChatMessage::Tool { call_id: call.id.clone(), content: outcome.content });
        }
    }
}

/// The system prompt, the recent turns and the question: what every answer starts from.
fn first_messages(history: &[HistoryTurn], question: &str) -> Vec<ChatMessage> {
    conversation(SYSTEM_PROMPT, history, question.to_owned())
}

/// `system`, the recent turns, then `last` as the user's message.
fn conversation(system: &str, history: &[HistoryTurn], last: String) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(history.len() + 2);
    messages.push(ChatMessage::System(system.to_owned()));
    messages.extend(history.iter().map(|turn| match turn.role {
        Role::User => ChatMessage::User(turn.text.clone()),
        Role::Assistant => ChatMessage::Assistant { content: turn.text.clone(), tool_calls: vec![] },
    }));
    messages.push(ChatMessage::User(last));
    messages
}
