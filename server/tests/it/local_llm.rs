//! The embedded language model (llama.cpp) on the real models: Qwen2.5-Coder-0.5B for tool decisions,
//! SmolLM2-135M where any model will do (streaming, queueing, cancellation, KV cache reuse).
//!
//! Every model here runs on one thread: the tests of this file run in parallel, and llama.cpp's threads
//! slow down badly when they outnumber the cores.

use crate::support;

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use futures::StreamExt;
use parlance_server::access::Caller;
use parlance_server::agent::tools::{CurrentTime, ToolRegistry};
use parlance_server::agent::{Agent, SYSTEM_PROMPT};
use parlance_server::events::EventSink;
use parlance_server::llm::local::{Outcome, Report};
use parlance_server::llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LocalChat, LocalChatOptions, ToolCall, ToolSpec};
use parlance_server::models::catalog::{ModelSpec, QWEN_CODER_0_5B, SMOLLM2_135M};
use parlance_shared::{HistoryTurn, Role};
use serde_json::{Value, json};

fn load(model: &ModelSpec) -> LocalChat {
    let file = support::installed_model(model).join("model.gguf");
    LocalChat::load(&file, LocalChatOptions { threads: 1, ..LocalChatOptions::default() }).expect("the model loads")
}

/// One Qwen for the whole file: requests queue on its worker.
fn qwen() -> &'static LocalChat {
    static QWEN: OnceLock<LocalChat> = OnceLock::new();
    QWEN.get_or_init(|| load(&QWEN_CODER_0_5B))
}

fn smollm() -> &'static LocalChat {
    static SMOLLM: OnceLock<LocalChat> = OnceLock::new();
    SMOLLM.get_or_init(|| load(&SMOLLM2_135M))
}

/// The tools the agent offers: a knowledge search (as the knowledge base will have it) and the real clock.
fn tools() -> Vec<ToolSpec> {
    let search = ToolSpec {
        name: "search_knowledge".to_owned(),
        description: "Search the user's notes and documents (the knowledge base) for passages about a topic. \
                      Use it whenever the user asks what their notes, documents or knowledge base say."
            .to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for, in a few words."}},
            "required": ["query"],
        }),
    };
    let mut specs = vec![search];
    specs.extend(ToolRegistry::new().with(CurrentTime).specs());
    specs
}

fn conversation(question: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::System(SYSTEM_PROMPT.to_owned()), ChatMessage::User(question.to_owned())]
}

/// Everything one request produced: its text deltas in order and its tool calls.
#[derive(Debug, Default)]
struct Collected {
    deltas: Vec<String>,
    calls: Vec<ToolCall>,
}

impl Collected {
    fn text(&self) -> String {
        self.deltas.concat()
    }
}

async fn collect(model: &LocalChat, request: ChatRequest) -> Collected {
    drain(model.stream(request).await.expect("the request is accepted")).await
}

/// Everything a stream already started produces.
async fn drain(mut stream: parlance_server::llm::ChatStream) -> Collected {
    let mut collected = Collected::default();
    while let Some(event) = stream.next().await {
        match event.expect("generation succeeds") {
            ChatEvent::TextDelta(text) => collected.deltas.push(text),
            ChatEvent::ToolCall(call) => collected.calls.push(call),
        }
    }
    collected
}

#[tokio::test]
async fn a_question_about_the_time_calls_the_clock_without_a_word() {
    let request = ChatRequest { messages: conversation("What time is it right now?"), tools: tools(), default_call: None };
    let result = collect(qwen(), request).await;
    assert!(result.deltas.is_empty(), "a tool call, not words: {:?}", result.text());
    let [call] = result.calls.as_slice() else { panic!("exactly one tool call expected, got {:?}", result.calls) };
    assert_eq!(call.name, "current_time");
    assert!(call.id.starts_with("call_") && call.id.len() > 10, "{}", call.id);
    let arguments: Value = serde_json::from_str(&call.arguments).expect("the arguments are JSON");
    assert!(arguments.is_object(), "{arguments}");
}

/// The agent's automatic knowledge search: offered as the call to make if the model would answer in words.
fn search_call(query: &str) -> ToolCall {
    ToolCall { id: "call_agent_search".into(), name: "search_knowledge".into(), arguments: json!({"query": query}).to_string() }
}

#[tokio::test]
async fn the_default_call_replaces_an_answer_from_thin_air_but_not_the_models_own_call() {
    let question = "How does this app keep my recordings private?";
    let request = ChatRequest { messages: conversation(question), tools: tools(), default_call: Some(search_call(question)) };
    let result = collect(qwen(), request).await;
    assert!(result.deltas.is_empty(), "the search, not words: {:?}", result.text());
    assert_eq!(result.calls, [search_call(question)]);

    let request =
        ChatRequest { messages: conversation("What time is it right now?"), tools: tools(), default_call: Some(search_call("time")) };
    let result = collect(qwen(), request).await;
    let names: Vec<&str> = result.calls.iter().map(|call| call.name.as_str()).collect();
    assert_eq!(names, ["current_time"], "the model's own choice wins");
}

#[tokio::test]
async fn small_talk_is_answered_in_streamed_words_without_a_tool() {
    let request = ChatRequest { messages: conversation("Hi! How are you today?"), tools: tools(), default_call: None };
    let result = collect(qwen(), request).await;
    assert!(result.calls.is_empty(), "no tool for small talk: {:?}", result.calls);
    let text = result.text();
    assert!(text.split_whitespace().count() >= 3, "a real answer: {text:?}");
    assert!(result.deltas.len() > 1, "the answer should stream in pieces, came as {:?}", result.deltas);
}

#[tokio::test]
async fn after_a_tool_result_the_model_answers_in_plain_words() {
    let call = ToolCall {
        id: "call_1".to_owned(),
        name: "search_knowledge".to_owned(),
        arguments: r#"{"query": "where recordings are stored"}"#.to_owned(),
    };
    let mut messages = conversation("What does my knowledge base say about where recordings are stored?");
    messages.push(ChatMessage::Assistant { content: String::new(), tool_calls: vec![call] });
    messages.push(ChatMessage::Tool {
        call_id: "call_1".to_owned(),
        content: "[notes/storage.md] Voice recordings are kept for seven days in the folder /var/lib/parlance/recordings, \
                  then deleted automatically."
            .to_owned(),
    });
    let result = collect(qwen(), ChatRequest { messages, tools: tools(), default_call: None }).await;
    assert!(result.calls.is_empty(), "the result is there: answer, don't search again: {:?}", result.calls);
    let text = result.text();
    assert!(text.split_whitespace().count() >= 3, "{text:?}");
    for raw in ["{", "}", "tool_call", "\"arguments\"", "<"] {
        assert!(!text.contains(raw), "tool-call text {raw:?} reached the answer: {text:?}");
    }
    assert!(text.contains("seven days") || text.contains("7 days") || text.contains("recordings"), "grounded in the result: {text:?}");
}

#[tokio::test]
async fn concurrent_requests_queue_and_both_complete() {
    let model = smollm();
    let ask = |question: &str| collect(model, ChatRequest { messages: conversation(question), tools: vec![], default_call: None });
    let (first, second) = tokio::join!(ask("What is the capital of France?"), ask("Name a colour of the rainbow."));
    for result in [&first, &second] {
        assert!(!result.text().trim().is_empty(), "{result:?}");
    }
}

#[tokio::test]
async fn a_follow_up_turn_reuses_the_cached_conversation_and_reads_only_its_new_tokens() {
    // Its own model: the reports of a shared one would interleave with other tests' requests.
    let model = load(&SMOLLM2_135M);
    let mut messages = conversation("Tell me one fact about the moon.");
    let first = collect(&model, ChatRequest { messages: messages.clone(), tools: vec![], default_call: None }).await;
    messages.push(ChatMessage::Assistant { content: first.text(), tool_calls: vec![] });
    messages.push(ChatMessage::User("And one about the sun?".to_owned()));
    collect(&model, ChatRequest { messages, tools: vec![], default_call: None }).await;

    let [cold, warm]: [Report; 2] = model.reports().try_into().expect("two reports");
    assert_eq!(cold.reused_tokens, 0, "nothing was cached before the first request");
    assert!(warm.reused_tokens >= cold.prompt_tokens - 1, "the whole first prompt should come from the cache: {warm:?} after {cold:?}");
    assert!(warm.prompt_tokens - warm.reused_tokens < warm.prompt_tokens / 2, "{warm:?}");
}

#[tokio::test]
async fn a_prepared_prompt_is_read_ahead_unless_a_request_is_already_waiting() {
    let model = load(&SMOLLM2_135M);
    let request = |question: &str| ChatRequest { messages: conversation(question), tools: vec![], default_call: None };

    model.prepare_now(request("What colour is the sky?")).await;
    let answer = collect(&model, request("What colour is the sky?")).await;
    assert!(!answer.text().trim().is_empty());
    let [prepared]: [Report; 1] = model.reports().try_into().expect("a preparation is not a request");
    assert_eq!(prepared.reused_tokens, prepared.prompt_tokens - 1, "only the last token is read again: {prepared:?}");

    // Queued behind a long answer, with its request already waiting, the preparation would only delay it.
    let long = model.stream(request("Count from 1 to 40, separated by commas.")).await.expect("accepted");
    model.prepare(request("Name a big animal."));
    let waiting = model.stream(request("Name a big animal.")).await.expect("accepted");
    let (long, waiting) = tokio::join!(drain(long), drain(waiting));
    assert!(!long.text().trim().is_empty() && !waiting.text().trim().is_empty());
    let reports = model.reports();
    let [.., after_long, skipped] = reports.as_slice() else { panic!("{reports:?}") };
    assert_eq!(after_long.outcome, Outcome::Answered);
    assert!(
        skipped.reused_tokens < skipped.prompt_tokens - 1,
        "the waiting request found its own prompt cached, so the preparation ran first: {skipped:?}"
    );
}

#[tokio::test]
async fn the_agent_prepares_exactly_the_prompt_it_then_answers_from() {
    let model = Arc::new(load(&SMOLLM2_135M));
    let agent = Agent::new(Arc::clone(&model) as Arc<dyn ChatModel>, ToolRegistry::new().with(CurrentTime), 2);
    let line = |role: Role, text: &str| HistoryTurn {
        role,
        text: text.to_owned(),
        created_at: chrono::Utc::now(),
        sources: vec![],
        tool_calls: vec![],
        interrupted: false,
    };
    let history = [line(Role::User, "Tell me about the sun."), line(Role::Assistant, "The sun is a star.")];

    // As `Agent::prepare` does, but waiting until it is done: asked at once, the answer's own request would
    // be waiting and the preparation skipped.
    model.prepare_now(agent.first_request(&history, "And the moon?")).await;
    agent.answer(&history, "And the moon?", &Caller::Anyone, &EventSink::none()).await.expect("an answer");
    let reports = model.reports();
    let first_round = reports.first().expect("the answer asked the model");
    assert_eq!(first_round.reused_tokens, first_round.prompt_tokens - 1, "history, question and tools were all prepared: {reports:?}");
}

#[tokio::test]
async fn dropping_the_stream_stops_generation_at_the_next_token() {
    let model = load(&SMOLLM2_135M);
    let long = ChatRequest { messages: conversation("Count from 1 to 500, separated by commas."), tools: vec![], default_call: None };
    let mut stream = model.stream(long).await.unwrap();
    let first = stream.next().await.expect("a first event").expect("no error");
    assert!(matches!(first, ChatEvent::TextDelta(_)), "{first:?}");
    drop(stream);

    // The worker serves one request at a time: when this one is answered, the dropped one has ended.
    let next = collect(&model, ChatRequest { messages: conversation("Say hello."), tools: vec![], default_call: None }).await;
    assert!(!next.text().trim().is_empty());

    let reports = model.reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let dropped = reports[0];
    assert_eq!(dropped.outcome, Outcome::Cancelled);
    let budget = LocalChatOptions::default().max_answer_tokens;
    assert!(dropped.generated_tokens < budget / 4, "generation went on after the drop: {dropped:?} (budget {budget})");
    assert_eq!(reports[1].outcome, Outcome::Answered);
}

#[tokio::test]
async fn a_chat_turn_over_http_is_answered_by_the_installed_model_with_its_tool() {
    let models_dir = support::installed_model(&QWEN_CODER_0_5B).parent().unwrap().to_str().unwrap().to_owned();
    let app = support::app(&support::settings(&["--frontend-dir", "/nonexistent", "--models-dir", &models_dir]));

    let (status, health) = support::send(&app, support::empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK);
    let llm = health["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "llm").unwrap().clone();
    assert_eq!(llm["backend"], "local", "{llm}");
    assert!(llm["load_ms"].is_u64(), "{llm}");

    let question = json!({"text": "What time is it right now?", "speak": false});
    let (status, turn) = support::send(&app, support::json_request("POST", "/api/chat", &question)).await;
    assert_eq!(status, StatusCode::OK, "{turn}");
    let calls: Vec<&str> = turn["tool_calls"].as_array().unwrap().iter().filter_map(|call| call["name"].as_str()).collect();
    assert_eq!(calls, ["current_time"], "{turn}");
    let answer = turn["answer"].as_str().unwrap();
    assert!(answer.split_whitespace().count() >= 2 && !answer.contains('{'), "{answer:?}");
}

/// The turn detector's judgement (`ChatModel::end_of_turn`): with the agent's own prompt, a finished question
/// or request gets a high probability that the user's words end there, one that breaks off mid-phrase a low
/// one, with or without the punctuation speech-to-text adds. The server ends a turn after a short silence
/// only above 0.01 (`streaming::connection`). The agent asks without the final punctuation; the model is
/// asked both ways here.
#[tokio::test]
async fn a_finished_question_sounds_finished_and_a_broken_off_one_does_not() {
    let judge = |text: &str| {
        let request = ChatRequest { messages: conversation(text), tools: tools(), default_call: None };
        async move { qwen().end_of_turn(request).await.expect("the local model judges the end of a turn") }
    };
    let finished = [
        "What is the capital of France?",
        "What time is it?",
        "Tell me a joke.",
        "When does the workshop open on Saturdays?",
        "What is the capital of France",
        "Tell me a joke",
        "Can you tell me about that",
        "Remember that my bike is a Trek",
    ];
    let unfinished = [
        "What is the",
        "Can you tell me about the",
        "When does the workshop open on",
        "I would like to know whether and",
        "Can you tell me about",
        "What is the capital of",
        "So my question is",
    ];
    let mut lowest_finished = f32::INFINITY;
    for text in finished {
        let p = judge(text).await;
        println!("finished   {p:.3}  {text}");
        lowest_finished = lowest_finished.min(p);
    }
    let mut highest_unfinished = 0.0_f32;
    for text in unfinished {
        let p = judge(text).await;
        println!("unfinished {p:.3}  {text}");
        highest_unfinished = highest_unfinished.max(p);
    }
    assert!(lowest_finished > 0.01, "every finished question ends the turn after a short pause: lowest {lowest_finished}");
    assert!(highest_unfinished < 0.01, "no broken-off one does: highest {highest_unfinished}");
    // A turn with nothing for the model to judge gets no judgement rather than a made-up one.
    let answered = ChatRequest {
        messages: vec![ChatMessage::User("hi".into()), ChatMessage::Assistant { content: "Hello!".into(), tool_calls: vec![] }],
        tools: vec![],
        default_call: None,
    };
    assert_eq!(qwen().end_of_turn(answered).await, None);
}
