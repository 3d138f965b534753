//! A whole spoken turn over a real TCP listener, the way a client sees it: Parlance receives an upload,
//! transcribes it, lets the model call a tool, speaks the answer, and remembers the conversation. The model
//! provider is the fake OpenAI server, reached through reqwest like any real one.

use crate::support;

use base64::Engine as _;
use parlance_shared::{ErrorBody, Role, SessionHistory, TurnResponse};
use reqwest::multipart::{Form, Part};
use support::fake_openai::{self, FakeOpenAi, TOOL_CALL_ID, tone_wav, wav_seconds};

async fn start_parlance(settings: &parlance_server::Settings) -> String {
    let app = support::app(settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn a_spoken_question_gets_a_spoken_answer_that_used_a_tool() {
    let provider = FakeOpenAi::start("What time is it?").await;
    let parlance =
        start_parlance(&support::settings_for_provider(&provider.base_url, &["--stt-model", "whisper-test", "--llm-model", "chat-test"]))
            .await;
    let client = reqwest::Client::new();

    let recording = tone_wav(16_000, 1.0);
    let form = Form::new().part("audio", Part::bytes(recording.clone()).file_name("recording.webm").mime_str("audio/webm").unwrap());
    let response = client.post(format!("{parlance}/api/voice")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let turn: TurnResponse = response.json().await.unwrap();

    assert_eq!(turn.transcript, "What time is it?");
    assert!(
        turn.answer.starts_with("It is ") && turn.answer.ends_with(" right now."),
        "answer should quote the clock tool: {}",
        turn.answer
    );
    assert_eq!(turn.tool_calls.len(), 1);
    assert_eq!(turn.tool_calls[0].name, "current_time");
    let audio = turn.audio.expect("the answer is spoken");
    assert_eq!(audio.mime_type, "audio/wav");
    let wav = base64::engine::general_purpose::STANDARD.decode(&audio.data_base64).unwrap();
    let words = turn.answer.split_whitespace().count() as f32;
    assert!((wav_seconds(&wav) - words / 3.0).abs() < 0.01, "audio length should match the answer's words");
    let t = turn.timings;
    assert!(t.total_ms >= t.stt_ms + t.llm_ms + t.tts_ms, "total covers the stages: {t:?}");

    // What reached the provider: the recording as a WAV (sniffed, despite the client's webm label),
    // the key, the models, and a second chat call carrying the tool's result under the model's call id.
    let uploads = provider.requests("/v1/audio/transcriptions");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].form["file"], format!("speech.wav|audio/wav|{}", recording.len()));
    assert_eq!(uploads[0].form["model"], "whisper-test");
    assert_eq!(uploads[0].authorization.as_deref(), Some(format!("Bearer {}", fake_openai::API_KEY).as_str()));
    let chats = provider.requests("/v1/chat/completions");
    assert_eq!(chats.len(), 2, "one call that asks for the tool, one that answers");
    let follow_up = chats[1].json.as_ref().unwrap();
    assert_eq!(follow_up["model"], "chat-test");
    let messages = follow_up["messages"].as_array().unwrap();
    let assistant = &messages[messages.len() - 2];
    assert_eq!(assistant["tool_calls"][0]["id"], TOOL_CALL_ID);
    assert_eq!(assistant["tool_calls"][0]["function"]["arguments"], "{}", "fragments joined");
    assert_eq!(messages.last().unwrap()["tool_call_id"], TOOL_CALL_ID);
    assert_eq!(provider.requests("/v1/audio/speech")[0].json.as_ref().unwrap()["input"], turn.answer);

    // The conversation is remembered, in order, and can be forgotten.
    let history: SessionHistory =
        client.get(format!("{parlance}/api/sessions/{}", turn.session_id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(history.turns.len(), 2);
    assert_eq!((history.turns[0].role, history.turns[0].text.as_str()), (Role::User, "What time is it?"));
    assert_eq!(history.turns[1].role, Role::Assistant);
    assert_eq!(history.turns[1].tool_calls[0].name, "current_time");

    let deleted = client.delete(format!("{parlance}/api/sessions/{}", turn.session_id)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = client.get(format!("{parlance}/api/sessions/{}", turn.session_id)).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let error: ErrorBody = gone.json().await.unwrap();
    assert_eq!(error.code, parlance_shared::ErrorCode::SessionNotFound);
}

#[tokio::test]
async fn a_follow_up_question_carries_the_conversation_so_far() {
    let provider = FakeOpenAi::start("Hello there").await;
    let parlance = start_parlance(&support::settings_for_provider(&provider.base_url, &[])).await;
    let client = reqwest::Client::new();

    let first: TurnResponse = client
        .post(format!("{parlance}/api/chat"))
        .json(&serde_json::json!({"text": "My name is Ada", "speak": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(first.audio.is_none(), "speak: false means no audio");
    assert!(provider.requests("/v1/audio/speech").is_empty());
    assert!(first.answer.contains("shown 0 earlier"), "{}", first.answer);

    let second: TurnResponse = client
        .post(format!("{parlance}/api/chat"))
        .json(&serde_json::json!({"session_id": first.session_id, "text": "What is my name?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert!(second.answer.contains("shown 2 earlier"), "the model saw the first exchange: {}", second.answer);
    let sent = provider.requests("/v1/chat/completions");
    let messages = sent.last().unwrap().json.as_ref().unwrap()["messages"].as_array().unwrap().clone();
    assert_eq!(messages[1]["content"], "My name is Ada");
    assert_eq!(messages[2]["role"], "assistant");
}

async fn ask(parlance: &str, text: &str) -> TurnResponse {
    let response = reqwest::Client::new()
        .post(format!("{parlance}/api/chat"))
        .json(&serde_json::json!({"text": text, "speak": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Parlance on the fake provider, whose model behaves as `change` says.
async fn parlance_with_model(change: impl FnOnce(&mut fake_openai::Behaviour)) -> (FakeOpenAi, String) {
    let provider = FakeOpenAi::start("unused").await;
    provider.configure(change);
    let parlance = start_parlance(&support::settings_for_provider(&provider.base_url, &[])).await;
    (provider, parlance)
}

#[tokio::test]
async fn a_model_that_falls_silent_after_a_tool_is_asked_again_without_tools() {
    let (provider, parlance) = parlance_with_model(|behaviour| behaviour.silent_after_tool = 1).await;

    let turn = ask(&parlance, "What time is it?").await;
    assert!(turn.answer.starts_with("It is ") && turn.answer.ends_with("right now."), "{}", turn.answer);
    assert_eq!(turn.tool_calls.len(), 1, "the tool ran once: {:?}", turn.tool_calls);
    let sent = provider.requests("/v1/chat/completions");
    assert_eq!(sent.len(), 3, "decision, the silent answer, the answer asked again");
    assert!(
        sent[2].json.as_ref().unwrap().get("tools").is_none_or(|tools| tools.as_array().is_none_or(Vec::is_empty)),
        "no tools the second time"
    );
}

#[tokio::test]
async fn a_model_that_stays_silent_gets_an_answer_that_says_so_not_an_empty_one() {
    let (provider, parlance) = parlance_with_model(|behaviour| behaviour.silent_after_tool = 2).await;

    let turn = ask(&parlance, "What time is it?").await;
    assert!(turn.answer.contains("could not"), "{}", turn.answer);
    assert_eq!(provider.requests("/v1/chat/completions").len(), 3, "asked again once, not forever");
}

#[tokio::test]
async fn a_model_that_says_nothing_to_a_plain_question_is_asked_once_more() {
    let (provider, parlance) = parlance_with_model(|behaviour| behaviour.answer = Some(String::new())).await;

    let turn = ask(&parlance, "Tell me something").await;
    assert!(turn.answer.contains("could not"), "{}", turn.answer);
    assert!(turn.tool_calls.is_empty());
    assert_eq!(provider.requests("/v1/chat/completions").len(), 2, "asked again once");
}
