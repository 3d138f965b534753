//! The notes' store failing mid-run: the real LanceDB database under the data directory is removed while the
//! server runs; the next question is answered without the notes, and the answer says so (in its text, and so
//! aloud). Conversations are kept in memory here, so that only the notes are lost. The model and embeddings are
//! the fake provider that speaks the OpenAI wire protocol (`support/fake_openai.rs`); the embeddings are the
//! local model.

use crate::support;

use std::sync::Arc;

use axum::http::StatusCode;
use parlance_server::agent::NOTES_UNAVAILABLE;
use parlance_server::cpu::SpeechFirst;
use parlance_server::sessions::MemorySessions;
use parlance_server::{AppState, Stages};
use serde_json::json;
use support::fake_openai::FakeOpenAi;
use support::{json_request, send};

#[tokio::test]
async fn with_the_notes_gone_the_answer_comes_without_them_and_says_so() {
    let provider = FakeOpenAi::start("").await;
    provider.configure(|fake| fake.answer = Some("Paris is the capital of France.".into()));
    let data = tempfile::tempdir().unwrap();
    let settings =
        support::settings_for_provider(&provider.base_url, &["--data-dir", data.path().to_str().unwrap(), "--embeddings-backend", "none"]);
    let mut stages = Stages::from_settings(&settings, &Arc::new(SpeechFirst::new())).expect("the stages are set up");
    // The notes' own embeddings model, as the server runs it by default.
    stages.embedder = Some(Arc::new(support::local_embeddings()));
    let app = parlance_server::router(AppState::new(&settings, stages, Arc::new(MemorySessions::default())), &settings);

    let note = json!({"notes": [{"title": "Bike", "text": "My bike is a blue Trek with a bell."}]});
    let (status, added) = send(&app, json_request("POST", "/api/knowledge", &note)).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let ask = |text: &str| json_request("POST", "/api/chat", &json!({"text": text, "speak": false}));
    let (status, before) = send(&app, ask("What is the capital of France?")).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert!(!before["answer"].as_str().unwrap().contains(NOTES_UNAVAILABLE), "the notes were there: {before}");

    let store = data.path().join("lancedb");
    assert!(store.is_dir(), "the notes live in {}", store.display());
    std::fs::remove_dir_all(&store).unwrap();

    // Another question: the grounding of the first is kept for a while.
    let (status, after) = send(&app, ask("Which city is the capital of France?")).await;
    assert_eq!(status, StatusCode::OK, "the turn still gets an answer: {after}");
    let answer = after["answer"].as_str().unwrap();
    assert!(answer.starts_with("Paris is the capital of France."), "the model still answers: {answer}");
    assert!(answer.ends_with(NOTES_UNAVAILABLE), "and says the notes were out of reach: {answer}");
}
