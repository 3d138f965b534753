//! What the agent does with its tools on the default local model (Qwen2.5-Coder-0.5B through llama.cpp), with
//! the seeded notes in a real LanceDB: general questions are answered without tools, questions about Parlance
//! are answered from the notes, the clock is read when asked, and a remembered fact comes back later.

mod support;

use chrono::Timelike;
use parlance_server::models::catalog;
use serde_json::{Value, json};

async fn local_app() -> axum::Router {
    let models = support::installed_model(&catalog::QWEN_CODER_0_5B);
    support::installed_model(&catalog::MINILM_L6_V2);
    let models_dir = models.parent().expect("models sit in the models directory").to_str().expect("UTF-8 path").to_owned();
    let settings = support::settings(&[
        "--models-dir",
        &models_dir,
        "--stt-backend",
        "none",
        "--tts-backend",
        "none",
        "--frontend-dir",
        "/nonexistent-parlance-frontend",
    ]);
    parlance_server::start(&settings).await.expect("the server starts and seeds its notes")
}

async fn ask(app: &axum::Router, session: Option<&str>, question: &str) -> Value {
    let mut body = json!({"text": question, "speak": false});
    if let Some(session) = session {
        body["session_id"] = json!(session);
    }
    let (status, answer) = support::send(app, support::json_request("POST", "/api/chat", &body)).await;
    assert!(status.is_success(), "{question:?} failed with {status}: {answer}");
    answer
}

fn tools_called(answer: &Value) -> Vec<&str> {
    answer["tool_calls"].as_array().expect("tool_calls").iter().filter_map(|call| call["name"].as_str()).collect()
}

fn text(answer: &Value) -> String {
    answer["answer"].as_str().expect("an answer").to_owned()
}

#[tokio::test]
async fn the_agent_uses_its_tools_when_they_help_and_only_then() {
    let app = local_app().await;

    let france = ask(&app, None, "What is the capital of France?").await;
    assert!(text(&france).contains("Paris"), "{france}");
    assert!(tools_called(&france).is_empty(), "no tool helps with general knowledge: {france}");

    let security = ask(&app, None, "How does this app handle security?").await;
    assert!(tools_called(&security).contains(&"search_knowledge"), "{security}");
    let titles: Vec<&str> = security["sources"].as_array().expect("sources").iter().filter_map(|s| s["title"].as_str()).collect();
    assert!(titles.contains(&"Privacy note"), "the answer should draw on the privacy note: {security}");
    assert!(!text(&security).is_empty() && !text(&security).contains('{'), "{security}");

    let before = chrono::Local::now();
    let time = ask(&app, None, "What time is it right now?").await;
    let after = chrono::Local::now();
    assert_eq!(tools_called(&time), ["current_time"], "{time}");
    // The hour as people say it, in either clock, at the start or the end of the turn.
    let hours: Vec<String> = [before, after].iter().flat_map(|t| [t.hour(), t.hour12().1]).map(|h| h.to_string()).collect();
    let answer = text(&time);
    assert!(hours.iter().any(|h| answer.contains(h.as_str())), "the answer should tell the hour ({hours:?}): {answer:?}");
}

#[tokio::test]
async fn a_fact_the_user_asked_to_remember_comes_back_in_a_later_question() {
    let app = local_app().await;
    let remembered = ask(&app, None, "Remember that my bike is a Trek.").await;
    assert_eq!(tools_called(&remembered), ["remember"], "{remembered}");
    let session = remembered["session_id"].as_str().expect("a session").to_owned();

    // A new conversation: only the stored note can carry the fact over.
    let recalled = ask(&app, None, "What brand is my bike?").await;
    assert_ne!(recalled["session_id"].as_str(), Some(session.as_str()));
    assert!(text(&recalled).contains("Trek"), "{recalled}");
}
