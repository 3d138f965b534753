//! What the web app's notes, conversations and settings views need from the API: the caller's conversations
//! listed a page at a time and renamed, one note read whole (by whoever may list it), notes newest first, and
//! the speaking rate carried to the voice.

use crate::support;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use parlance_server::sessions::MemorySessions;
use serde_json::{Value, json};
use support::fake_openai::FakeOpenAi;
use support::fake_stages::FakeStages;
use support::{assert_error, empty_request, json_request, send, signed_request};

const ALICE: &str = "alice-token-7f3a9c2e41d8";
const BOB: &str = "bob-token-0c5e8b1d92a7f6";

fn users_file() -> std::path::PathBuf {
    let path = support::fresh_data_dir().join("users.txt");
    std::fs::write(&path, format!("alice {ALICE} admin\nbob {BOB}\n")).unwrap();
    path
}

async fn ask(app: &Router, session: Option<&str>, text: &str) -> String {
    let mut body = json!({"text": text, "speak": false});
    if let Some(session) = session {
        body["session_id"] = json!(session);
    }
    let (status, answer) = send(app, json_request("POST", "/api/chat", &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["session_id"].as_str().unwrap().to_owned()
}

async fn sessions(app: &Router, query: &str) -> Value {
    let (status, page) = send(app, empty_request("GET", &format!("/api/sessions{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap().to_owned()).collect()
}

/// On the database the server really keeps conversations in (LanceDB in a temporary folder).
#[tokio::test]
async fn conversations_are_listed_newest_first_renamed_and_deleted() {
    let provider = FakeOpenAi::start("").await;
    let app = support::app(&support::settings_for_provider(&provider.base_url, &["--embeddings-backend", "none"]));
    assert_eq!(sessions(&app, "").await["total"], 0);

    let first = ask(&app, None, "Where did I park the bike yesterday evening after the long ride home?").await;
    ask(&app, Some(&first), "And the helmet?").await;
    let second = ask(&app, None, "What time is it?").await;

    let page = sessions(&app, "").await;
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(ids(&page), [second.clone(), first.clone()], "the one used last comes first: {page}");
    let older = &page["sessions"][1];
    assert_eq!(older["turns"], 2, "{older}");
    let title = older["title"].as_str().unwrap();
    assert!(title.starts_with("Where did I park the bike") && title.ends_with('…'), "named after its first question: {title}");
    assert!(older["updated_at"].as_str().unwrap() > older["created_at"].as_str().unwrap(), "{older}");
    assert_eq!(page["sessions"][0]["title"], "What time is it?");

    let paged = sessions(&app, "?offset=1&limit=1").await;
    assert_eq!((ids(&paged), paged["total"].as_u64()), (vec![first.clone()], Some(2)), "{paged}");

    // Continuing the older conversation makes it the latest.
    ask(&app, Some(&first), "Thanks").await;
    let page = sessions(&app, "").await;
    assert_eq!(ids(&page), [first.clone(), second.clone()], "{page}");
    assert_eq!(page["sessions"][0]["turns"], 3);

    let rename = |id: &str, title: &str| json_request("PATCH", &format!("/api/sessions/{id}"), &json!({"title": title}));
    let (status, renamed) = send(&app, rename(&first, "  Bike and helmet ")).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!((renamed["title"].as_str(), renamed["turns"].as_u64()), (Some("Bike and helmet"), Some(3)), "{renamed}");
    let (status, renamed) = send(&app, rename(&first, "Bike, helmet, lock")).await;
    assert_eq!(status, StatusCode::OK, "a second name replaces the first: {renamed}");
    assert_eq!(sessions(&app, "").await["sessions"][0]["title"], "Bike, helmet, lock");

    for (title, why) in [("   ", "empty"), (&"x".repeat(201), "too long"), ("two\nlines", "a control character")] {
        let (status, body) = send(&app, rename(&first, title)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_error(&body, "invalid_request");
        assert!(body["message"].as_str().unwrap().len() < 200, "the title is not echoed: {body}");
    }
    let (status, body) = send(&app, rename("no-such-session", "Name")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "session_not_found");
    for query in ["?limit=0", "?limit=101", "?offset=-1", "?limit=many"] {
        let (status, body) = send(&app, empty_request("GET", &format!("/api/sessions{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_error(&body, "invalid_request");
    }

    let (status, _) = send(&app, empty_request("DELETE", &format!("/api/sessions/{second}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = sessions(&app, "").await;
    assert_eq!((ids(&page), page["total"].as_u64()), (vec![first.clone()], Some(1)), "{page}");
    let (status, _) = send(&app, empty_request("DELETE", &format!("/api/sessions/{first}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sessions(&app, "").await["total"], 0, "its name went with it");
}

#[tokio::test]
async fn each_user_lists_and_renames_only_their_own_conversations() {
    let provider = FakeStages::new("");
    let users = users_file();
    let app = provider.app(&["--users-file", users.to_str().unwrap()]);
    let chat = |token, text: &str| signed_request("POST", "/api/chat", Some(token), Some(&json!({"text": text, "speak": false})));
    let (status, alices) = send(&app, chat(ALICE, "Alice's question")).await;
    assert_eq!(status, StatusCode::OK, "{alices}");
    let (_, bobs) = send(&app, chat(BOB, "Bob's question")).await;
    let alices = alices["session_id"].as_str().unwrap();

    let (status, page) = send(&app, signed_request("GET", "/api/sessions", Some(BOB), None)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [bobs["session_id"].as_str().unwrap()], "{page}");
    assert_eq!(page["sessions"][0]["title"], "Bob's question");
    let (_, page) = send(&app, signed_request("GET", "/api/sessions", Some(ALICE), None)).await;
    assert_eq!(ids(&page), [alices], "{page}");

    let rename = signed_request("PATCH", &format!("/api/sessions/{alices}"), Some(BOB), Some(&json!({"title": "Mine now"})));
    let (status, body) = send(&app, rename).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "answered like an unknown id: {body}");
    let (_, page) = send(&app, signed_request("GET", "/api/sessions", Some(ALICE), None)).await;
    assert_eq!(page["sessions"][0]["title"], "Alice's question", "{page}");
    let (status, _) = send(&app, signed_request("GET", "/api/sessions", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_note_is_read_whole_by_whoever_may_list_it() {
    let provider = FakeStages::new("");
    let users = users_file();
    let settings = provider.settings(&["--users-file", users.to_str().unwrap()]);
    let stages = parlance_server::Stages { embedder: Some(Arc::new(support::local_embeddings())), ..provider.stages() };
    let app = parlance_server::router(parlance_server::AppState::new(&settings, stages, Arc::new(MemorySessions::default())), &settings);

    let paragraphs: Vec<String> =
        (1..=12).map(|n| format!("Paragraph {n}: the workshop keeps spare part number {n}0{n} on shelf {n}, next to the tools.")).collect();
    let long = format!("# Workshop shelves\n\n{}", paragraphs.join("\n\n"));
    let notes = json!({"notes": [
        {"title": "Workshop shelves", "text": long, "source": "shelves.md"},
        {"title": "Opening hours", "text": "The workshop is closed on Mondays."},
    ]});
    let (status, added) = send(&app, signed_request("POST", "/api/knowledge", Some(ALICE), Some(&notes))).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let shelves = added["notes"][0]["id"].as_str().unwrap().to_owned();
    let hours = added["notes"][1]["id"].as_str().unwrap().to_owned();
    assert!(added["notes"][0]["chunks"].as_u64().unwrap() > 1, "long enough to be split: {added}");

    let (status, note) = send(&app, signed_request("GET", &format!("/api/knowledge/{shelves}"), Some(BOB), None)).await;
    assert_eq!(status, StatusCode::OK, "a shared note is everyone's to read: {note}");
    assert_eq!((note["note"]["title"].as_str(), note["note"]["source"].as_str()), (Some("Workshop shelves"), Some("shelves.md")));
    let passages = note["passages"].as_array().unwrap();
    assert_eq!(passages.len() as u64, note["note"]["chunks"].as_u64().unwrap());
    let text: String = passages.iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    for paragraph in &paragraphs {
        assert!(text.contains(paragraph.as_str()), "every paragraph is in the passages: {paragraph}");
    }
    assert!(passages[0].as_str().unwrap().contains("Paragraph 1:"), "in order: {}", passages[0]);

    let (_, newest) = send(&app, signed_request("GET", "/api/knowledge?order=newest&limit=100", Some(BOB), None)).await;
    let (_, oldest) = send(&app, signed_request("GET", "/api/knowledge?limit=100", Some(BOB), None)).await;
    let listed = |page: &Value| page["notes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let mut reversed = listed(&oldest);
    reversed.reverse();
    assert_eq!(listed(&newest), reversed, "newest first is the oldest-first list turned round");
    assert!(listed(&newest)[..2].contains(&hours) && listed(&newest)[..2].contains(&shelves), "the notes just added lead: {newest}");
    let (status, body) = send(&app, signed_request("GET", "/api/knowledge?order=random", Some(BOB), None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Bob's memory is his alone: Alice reads it as if it did not exist.
    let told = json!({"text": "Remember that my locker code is 4417.", "speak": false});
    let (status, remembered) = send(&app, signed_request("POST", "/api/chat", Some(BOB), Some(&told))).await;
    assert_eq!(status, StatusCode::OK, "{remembered}");
    let (_, bobs) = send(&app, signed_request("GET", "/api/knowledge?order=newest&limit=1", Some(BOB), None)).await;
    let memory = bobs["notes"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(bobs["notes"][0]["owner"], "bob", "{bobs}");
    let (status, note) = send(&app, signed_request("GET", &format!("/api/knowledge/{memory}"), Some(BOB), None)).await;
    assert_eq!(status, StatusCode::OK, "{note}");
    assert!(note["passages"][0].as_str().unwrap().contains("4417"), "{note}");
    let (status, body) = send(&app, signed_request("GET", &format!("/api/knowledge/{memory}"), Some(ALICE), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found");
    assert!(!body.to_string().contains("4417"));

    for id in ["not-a-note-id", "00000000-0000-4000-8000-000000000000"] {
        let (status, body) = send(&app, signed_request("GET", &format!("/api/knowledge/{id}"), Some(ALICE), None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
        assert_error(&body, "not_found");
    }
}

#[tokio::test]
async fn the_speaking_rate_reaches_the_voice_and_bad_rates_are_refused() {
    let provider = FakeOpenAi::start("").await;
    let app = support::app(&support::settings_for_provider(&provider.base_url, &["--embeddings-backend", "none"]));
    let (status, answer) = send(&app, json_request("POST", "/api/chat", &json!({"text": "Say hello", "speech_rate": 1.5}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["audio"].is_object(), "{answer}");
    let (status, _) = send(&app, json_request("POST", "/api/chat", &json!({"text": "Say hello"}))).await;
    assert_eq!(status, StatusCode::OK);
    let spoken = provider.requests("/v1/audio/speech");
    assert_eq!(spoken.len(), 2);
    assert_eq!(spoken[0].json.as_ref().unwrap()["speed"], 1.5, "{:?}", spoken[0].json);
    assert!(spoken[1].json.as_ref().unwrap().get("speed").is_none(), "the voice's own pace sends no speed: {:?}", spoken[1].json);

    for rate in [json!(0.1), json!(3), json!(-1), json!("fast")] {
        let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "Say hello", "speech_rate": rate}))).await;
        let expected = if rate.is_number() { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        assert_eq!(status, expected, "{rate}: {body}");
        if rate.is_number() {
            assert!(body["message"].as_str().unwrap().contains("between 0.5 and 2"), "{body}");
        }
    }
    assert_eq!(provider.requests("/v1/audio/speech").len(), 2, "nothing was spoken for a refused rate");
}

/// Each voice's own pace against a faster one, on the installed voices: the faster clip is shorter by about the rate.
#[tokio::test]
async fn a_faster_rate_makes_a_shorter_clip_in_every_local_voice() {
    use parlance_server::models::catalog::{ONNX_RUNTIME, PIPER_JOE};
    use parlance_server::tts::{Delivery, LocalTts, SpeechRate, VoiceEngine};

    let models_dir = support::installed_model(&ONNX_RUNTIME).parent().unwrap().to_path_buf();
    let voice_dir = support::installed_model(&PIPER_JOE);
    let tts = LocalTts::load(&voice_dir, &parlance_server::onnx::library_in(&models_dir), VoiceEngine::Piper).expect("voice loads");
    assert_eq!(tts.engine(), VoiceEngine::Piper);
    let text = "The workshop is closed on Mondays. On Saturdays it opens at nine.";
    let normal = tts.synthesize_pcm_at(text, SpeechRate::NORMAL).await.unwrap().duration_secs();
    let fast = tts.synthesize_pcm_at(text, SpeechRate::from_client(Some(1.6)).unwrap()).await.unwrap().duration_secs();
    let slow = tts.synthesize_pcm_at(text, SpeechRate::from_client(Some(0.7)).unwrap()).await.unwrap().duration_secs();
    let ratio = fast / normal;
    // Pauses between sentences keep their length, so the clip shrinks a little less than the rate says.
    assert!((0.5..0.8).contains(&ratio), "1.6x should take about 1/1.6 of the time: {normal:.2}s -> {fast:.2}s");
    // About 1.4x as long; Piper varies each clip's durations at random (noise_w), and one run measured 1.24x.
    assert!(slow > normal * 1.15, "0.7x takes longer: {normal:.2}s -> {slow:.2}s");

    // espeak-ng's voices take the rate too (as words per minute).
    for voice in ["espeak-ng-en-us", "espeak-ng-en-gb"] {
        let at = |rate| Delivery { rate: SpeechRate::from_client(Some(rate)).unwrap(), voice: Some(voice.into()) };
        let normal = tts.synthesize_pcm_with(text, &at(1.0)).await.unwrap().duration_secs();
        let fast = tts.synthesize_pcm_with(text, &at(1.6)).await.unwrap().duration_secs();
        assert!((0.5..0.8).contains(&(fast / normal)), "{voice}: 1.6x should take about 1/1.6 of the time: {normal:.2}s -> {fast:.2}s");
    }
}
