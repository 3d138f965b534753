//! Parlance against Parlance: one server on the local models serves OpenAI's API (`/v1`); a second one, with
//! no model of its own, has every stage (speech-to-text, the language model, the voice, the embeddings of its
//! knowledge base) pointed at the first through its OpenAI-compatible backends. A spoken question streamed
//! over the second's socket is heard, answered with a tool call (the second's own agent and tools, on the
//! first's language model, which `/v1` serves as itself under its id from `/v1/models`) and spoken, end to end.
//! Until now those backends were tested only against a stand-in; this is a real peer speaking the protocol.

use crate::support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_server::models::catalog;
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A server with `args` on a real port, started as `parlance` starts (its knowledge base seeded); its address.
async fn serve(args: &[&str]) -> std::net::SocketAddr {
    let mut all = vec!["--frontend-dir", "/nonexistent-parlance-frontend", "--turns-per-minute", "0"];
    all.extend_from_slice(args);
    let app = parlance_server::start(&support::settings(&all)).await.expect("the server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoken_turn_through_a_parlance_whose_stages_are_another_parlance() {
    let models = support::installed_model(&catalog::QWEN_CODER_0_5B);
    for model in [&catalog::WHISPER_TINY_EN, &catalog::MINILM_L6_V2, &catalog::PIPER_JOE, &catalog::ONNX_RUNTIME] {
        support::installed_model(model);
    }
    let local = serve(&["--models-dir", models.parent().unwrap().to_str().unwrap()]).await;

    // The first one's language model, by the id it lists (the agent is `parlance`).
    let listed: Value = reqwest::get(format!("http://{local}/v1/models")).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().filter_map(|model| model["id"].as_str()).collect();
    let llm = ids.iter().copied().find(|id| id.contains("Qwen")).unwrap_or_else(|| panic!("the language model is listed: {ids:?}"));

    let base_url = format!("http://{local}/v1");
    let peer = serve(&[
        "--openai-base-url",
        &base_url,
        "--openai-api-key",
        "any-key-the-peer-needs-none",
        "--stt-backend",
        "openai",
        "--llm-backend",
        "openai",
        "--tts-backend",
        "openai",
        "--embeddings-backend",
        "openai",
        "--llm-model",
        llm,
    ])
    .await;
    let health: Value = reqwest::get(format!("http://{peer}/health")).await.unwrap().json().await.unwrap();
    for stage in health["stages"].as_array().unwrap() {
        assert_eq!(stage["backend"], "openai", "{health}");
        assert_eq!(stage["location"].as_str().map(|url| url.trim_end_matches('/')), Some(base_url.as_str()), "{health}");
        assert_eq!(stage["ready"], true, "{health}");
    }

    let dir = tempfile::tempdir().unwrap();
    let question = std::fs::read(support::speech::speak(dir.path(), "time", "What time is it?")).unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{peer}/api/ws")).await.expect("the socket opens");
    let start =
        ClientMessage::Start { session_id: None, encoding: AudioEncoding::Wav, turn_detection: None, speech_rate: None, voice: None };
    socket.send(Message::text(serde_json::to_string(&start).unwrap())).await.unwrap();
    for frame in question.chunks(8 * 1024) {
        socket.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    socket.send(Message::text(serde_json::to_string(&ClientMessage::EndTurn).unwrap())).await.unwrap();

    let mut events = Vec::new();
    let done = loop {
        let frame = tokio::time::timeout(Duration::from_secs(180), socket.next()).await.expect("the turn goes on").unwrap().unwrap();
        let Message::Text(text) = frame else { continue };
        let event: ServerEvent = serde_json::from_str(text.as_str()).expect("events are ServerEvents");
        match &event {
            ServerEvent::Done { .. } => break event,
            ServerEvent::Error { error } => panic!("the turn failed: {error}; so far: {events:?}"),
            _ => events.push(event),
        }
    };
    let kinds: Vec<String> = events.iter().map(|event| serde_json::to_value(event).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    println!("events: {kinds:?}");
    assert!(matches!(events.first(), Some(ServerEvent::Hello { .. })), "{kinds:?}");
    let transcript = events.iter().find_map(|event| match event {
        ServerEvent::Transcript { text, is_final: true } => Some(text.to_lowercase()),
        _ => None,
    });
    assert!(transcript.as_deref().is_some_and(|text| text.contains("time")), "heard through the peer: {transcript:?}");
    let tools: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::ToolCall { call } => Some(call.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tools, ["current_time"], "the second's agent called its clock on the first's model: {kinds:?}");
    let streamed: String = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::AnswerDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let chunks: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::AudioChunk { audio, .. } => Some(audio.mime_type.as_str()),
            _ => None,
        })
        .collect();
    assert!(!chunks.is_empty() && chunks.iter().all(|mime| mime.starts_with("audio/wav")), "spoken by the first's voice: {chunks:?}");
    let ServerEvent::Done { answer, timings, speech_error, .. } = done else { unreachable!() };
    assert_eq!(answer.trim(), streamed.trim(), "the streamed text is the answer");
    assert!(answer.chars().any(|c| c.is_ascii_digit()), "the answer tells the time: {answer:?}");
    assert!(speech_error.is_none(), "{speech_error:?}");
    println!("answer: {answer:?}; first audio after {:?} ms", timings.first_audio_ms);

    // The peer's knowledge base searched with the first's embeddings (its seeded notes).
    let found: Value = reqwest::get(format!("http://{peer}/api/knowledge/search?q=privacy&k=3")).await.unwrap().json().await.unwrap();
    assert!(!found["hits"].as_array().unwrap().is_empty(), "{found}");
}
