//! OpenAI's API served by Parlance (`/v1`). On fake stages in the process: the shapes OpenAI's clients read
//! (models, whole and streamed chat completions, the three transcription formats, the three speech formats,
//! errors in OpenAI's shape, the token). Then OpenAI's own Python SDK against a real server on the local
//! models: speech it can read, that speech transcribed back, a streamed answer.

use crate::support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use parlance_server::models::catalog;
use serde_json::{Value, json};
use support::fake_openai::tone_wav;
use support::fake_stages::FakeStages;
use support::{BOUNDARY, multipart_body};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    content_type: String,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.bytes)))
    }
}

async fn call(app: &axum::Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = response.into_body().collect().await.expect("the body reads").to_bytes().to_vec();
    Reply { status, content_type, bytes }
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    support::json_request("POST", uri, body)
}

fn transcription(format: Option<&str>) -> Request<Body> {
    let wav = tone_wav(16_000, 0.5);
    let mut parts: Vec<support::Part> = vec![("file", Some("question.wav"), &wav), ("model", None, b"whisper-1")];
    if let Some(format) = format {
        parts.push(("response_format", None, format.as_bytes()));
    }
    Request::builder()
        .method("POST")
        .uri("/v1/audio/transcriptions")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(multipart_body(&parts)))
        .unwrap()
}

fn assert_openai_error(reply: &Reply, status: StatusCode, kind: &str, code: &str) {
    let body = reply.json();
    assert_eq!(reply.status, status, "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.len() > 10), "{body}");
}

#[tokio::test]
async fn models_and_chat_completions_whole_and_streamed() {
    let provider = FakeStages::new("");
    let app = provider.app(&[]);
    let models = call(&app, support::empty_request("GET", "/v1/models")).await.json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"parlance") && ids.contains(&"fake-stt") && ids.contains(&"fake-tts"), "{ids:?}");

    // The client's conversation: system messages are Parlance's own business, the rest is the history.
    let messages = json!([
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ]);
    let whole = call(&app, post_json("/v1/chat/completions", &json!({"model": "parlance", "messages": messages}))).await;
    assert_eq!(whole.status, StatusCode::OK);
    let whole = whole.json();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    let answer = whole["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    // The fake model repeats the question and counts the messages it was shown before it.
    assert_eq!(answer, "You said: What is my name?. I was shown 2 earlier messages.");

    let streamed = call(&app, post_json("/v1/chat/completions", &json!({"model": "parlance", "messages": messages, "stream": true}))).await;
    assert_eq!(streamed.status, StatusCode::OK);
    assert!(streamed.content_type.starts_with("text/event-stream"), "{}", streamed.content_type);
    let text = String::from_utf8(streamed.bytes).unwrap();
    let events: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]), "{chunks:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(joined, answer, "the stream says what the whole answer says");
    assert!(chunks.len() > 4, "in pieces as it was written: {}", chunks.len());
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn chat_mistakes_are_refused_in_openais_shape() {
    let provider = FakeStages::new("");
    let app = provider.app(&[]);
    let question = json!([{"role": "user", "content": "Hi"}]);
    let other_model = call(&app, post_json("/v1/chat/completions", &json!({"model": "gpt-4o", "messages": question}))).await;
    assert_openai_error(&other_model, StatusCode::NOT_FOUND, "not_found_error", "not_found");
    let no_question =
        json!({"model": "parlance", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]});
    let refused = call(&app, post_json("/v1/chat/completions", &no_question)).await;
    assert_openai_error(&refused, StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request");
    let broken = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"model\": \"parlance\", \"messages\": ["))
        .unwrap();
    let broken = call(&app, broken).await;
    assert!(broken.status.is_client_error() && broken.json()["error"]["type"] == "invalid_request_error", "{}", broken.json());
    let nowhere = call(&app, support::empty_request("GET", "/v1/embeddings/none")).await;
    assert_openai_error(&nowhere, StatusCode::NOT_FOUND, "not_found_error", "not_found");
    assert_eq!(provider.asked(), 0, "none of these reached the model");
}

#[tokio::test]
async fn the_openai_routes_wait_in_the_same_line_and_refuse_in_openais_shape() {
    // One turn at a time and none waiting: while an /api turn holds the model, the /v1 routes are refused as
    // another /api turn would be.
    let provider = FakeStages::new("hello");
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    provider.configure(|fake| fake.gate = Some(std::sync::Arc::clone(&gate)));
    let app = provider.app(&["--max-concurrent-turns", "1", "--turn-queue", "0"]);
    let held = tokio::spawn({
        let app = app.clone();
        async move { call(&app, post_json("/api/chat", &json!({"text": "Take your time", "speak": false}))).await }
    });
    // The held turn is at the gate once the model was asked.
    while provider.asked() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let question = json!({"model": "parlance", "messages": [{"role": "user", "content": "Hi"}]});
    let busy = call(&app, post_json("/v1/chat/completions", &question)).await;
    assert_openai_error(&busy, StatusCode::SERVICE_UNAVAILABLE, "server_error", "server_busy");
    let busy = call(&app, post_json("/v1/audio/speech", &json!({"model": "tts-1", "input": "Hello"}))).await;
    assert_openai_error(&busy, StatusCode::SERVICE_UNAVAILABLE, "server_error", "server_busy");
    let busy = call(&app, transcription(None)).await;
    assert_openai_error(&busy, StatusCode::SERVICE_UNAVAILABLE, "server_error", "server_busy");
    gate.add_permits(10);
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
    assert_eq!(call(&app, post_json("/v1/chat/completions", &question)).await.status, StatusCode::OK, "the line is free again");

    // The router's own refusals under /v1 come in OpenAI's shape too.
    let wrong_method = call(&app, support::empty_request("GET", "/v1/chat/completions")).await;
    assert_openai_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed");
}

#[tokio::test]
async fn transcriptions_in_each_format_and_speech_in_each_format() {
    let provider = FakeStages::new("What time is it?");
    let app = provider.app(&[]);
    let json_reply = call(&app, transcription(None)).await;
    assert_eq!((json_reply.status, json_reply.json()), (StatusCode::OK, json!({"text": "What time is it?"})));
    let text = call(&app, transcription(Some("text"))).await;
    assert!(text.content_type.starts_with("text/plain"));
    assert_eq!(String::from_utf8(text.bytes).unwrap(), "What time is it?");
    let verbose = call(&app, transcription(Some("verbose_json"))).await.json();
    assert_eq!(verbose["text"], "What time is it?");
    assert!((verbose["duration"].as_f64().unwrap() - 0.5).abs() < 0.05, "{verbose}");
    assert_eq!(verbose["segments"].as_array().unwrap().len(), 1);
    assert_eq!(verbose["segments"][0]["end"], verbose["duration"]);
    let srt = call(&app, transcription(Some("srt"))).await;
    assert_openai_error(&srt, StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request");

    let speak = |format: Option<&str>| {
        let mut body = json!({"model": "tts-1", "voice": "alloy", "input": "Four words to say."});
        if let Some(format) = format {
            body["response_format"] = json!(format);
        }
        post_json("/v1/audio/speech", &body)
    };
    let wav = call(&app, speak(None)).await;
    assert_eq!((wav.status, wav.content_type.as_str()), (StatusCode::OK, "audio/wav"));
    assert_eq!(&wav.bytes[..4], b"RIFF");
    let seconds = (wav.bytes.len() - 44) as f64 / 32_000.0;
    let opus = call(&app, speak(Some("opus"))).await;
    assert_eq!((opus.status, opus.content_type.as_str()), (StatusCode::OK, "audio/ogg"));
    assert_eq!(&opus.bytes[..4], b"OggS");
    assert!(opus.bytes.len() * 4 < wav.bytes.len(), "compressed: {} vs {} bytes", opus.bytes.len(), wav.bytes.len());
    let pcm = call(&app, speak(Some("pcm"))).await;
    assert_eq!(pcm.content_type, "audio/pcm");
    let pcm_seconds = pcm.bytes.len() as f64 / 48_000.0;
    assert!((pcm_seconds - seconds).abs() < 0.05, "24 kHz 16-bit: {pcm_seconds} s for {seconds} s");
    let mp3 = call(&app, speak(Some("flac"))).await;
    assert_openai_error(&mp3, StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request");
    let empty = call(&app, post_json("/v1/audio/speech", &json!({"model": "tts-1", "input": "  "}))).await;
    assert_openai_error(&empty, StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request");
}

#[tokio::test]
async fn the_openai_routes_need_the_token_too() {
    let provider = FakeStages::new("");
    let app = provider.app(&["--token", "openai-face-token-9f2c4e"]);
    let host = |request: Request<Body>| {
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        Request::from_parts(parts, body)
    };
    let refused = call(&app, host(support::empty_request("GET", "/v1/models"))).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let mut signed = host(support::empty_request("GET", "/v1/models"));
    signed.headers_mut().insert(header::AUTHORIZATION, "Bearer openai-face-token-9f2c4e".parse().unwrap());
    assert_eq!(call(&app, signed).await.status, StatusCode::OK);
}

/// OpenAI's Python SDK (installed by scripts/setup.sh into ~/.cache/parlance/python) against a real server on
/// the local models: it reads Parlance's speech as WAV and Ogg, gets that speech transcribed back, and gets a
/// streamed and a whole answer from the agent.
#[tokio::test(flavor = "multi_thread")]
async fn openais_python_sdk_speaks_hears_and_chats_with_the_local_models() {
    let models = support::installed_model(&catalog::QWEN_CODER_0_5B);
    for model in [&catalog::WHISPER_TINY_EN, &catalog::MINILM_L6_V2, &catalog::PIPER_JOE, &catalog::ONNX_RUNTIME] {
        support::installed_model(model);
    }
    let models_dir = models.parent().unwrap().to_str().unwrap().to_owned();
    let settings = support::settings(&["--models-dir", &models_dir, "--frontend-dir", "/nonexistent-parlance-frontend"]);
    let app = parlance_server::start(&settings).await.expect("the server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let home = std::env::var("HOME").unwrap_or_default();
    let python_packages = std::env::var("PARLANCE_PYTHON_PACKAGES").unwrap_or_else(|_| format!("{home}/.cache/parlance/python"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_sdk/check.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(format!("http://{address}"))
        .env("PYTHONPATH", &python_packages)
        .output()
        .await
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK check failed (is the openai package in {python_packages}? scripts/setup.sh installs it):\n{stderr}"
    );
    let found: Value = serde_json::from_slice(&output.stdout).expect("the check prints JSON");
    println!("{found:#}");
    let text = |key: &str| found[key].as_str().unwrap_or_default().to_lowercase();
    assert!(found["models"].as_array().unwrap().contains(&json!("parlance")), "{found}");
    let seconds = found["speech_seconds"].as_f64().unwrap();
    assert!((1.0..6.0).contains(&seconds), "the question spoken: {seconds} s");
    assert_eq!(found["opus_magic"], "OggS");
    assert!(text("transcript").contains("capital") && text("transcript").contains("france"), "heard back: {found}");
    assert_eq!(found["plain"].as_str().map(str::trim), found["transcript"].as_str().map(str::trim));
    assert!((found["verbose"]["duration"].as_f64().unwrap() - seconds).abs() < 0.1, "{found}");
    assert_eq!(found["verbose"]["segments"], 1);
    assert!(text("streamed").contains("paris") && found["pieces"].as_u64().unwrap() > 1, "{found}");
    assert!(text("answer_with_history").contains("ada"), "the conversation reached the model: {found}");
    assert_eq!(found["unknown_model"]["status"], 404, "{found}");
}
