//! Every way a request can go wrong gets the right status and the shared error body, and nothing panics.
//! Requests go through the router with `oneshot`. The model stages are fakes inside the test process
//! (conversations in memory), except where the test is about an OpenAI-compatible provider failing: there
//! the provider is the fake OpenAI server or a closed port.

use crate::support;

use axum::http::{HeaderValue, StatusCode, header};
use parlance_shared::Stage;
use serde_json::json;
use support::fake_openai::{FakeOpenAi, closed_port_url, tone_wav};
use support::fake_stages::FakeStages;
use support::{app, assert_error, empty_request, json_request, send, settings, settings_for_provider, voice_request};

#[tokio::test]
async fn malformed_or_incomplete_json_is_a_400_with_the_error_body() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&[]);

    let broken = axum::http::Request::builder()
        .method("POST")
        .uri("/api/chat")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"text\": ".into())
        .unwrap();
    let (status, body) = send(&app, broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");

    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"question": "hi"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "well-formed JSON of the wrong shape");
    assert_error(&body, "invalid_request");
    assert!(body["message"].as_str().unwrap().contains("text"), "names the missing field: {body}");

    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "   "}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");

    let not_json = axum::http::Request::builder().method("POST").uri("/api/chat").body("text=hi".into()).unwrap();
    let (status, body) = send(&app, not_json).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, "invalid_request");

    assert_eq!(stages.asked(), 0, "bad requests never reach the model");
}

#[tokio::test]
async fn a_too_long_question_is_refused_before_the_model_sees_it() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&["--max-question-chars", "20"]);
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "a question that is far too long"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");
    assert!(body["message"].as_str().unwrap().contains("20"), "{body}");
    assert_eq!(stages.asked(), 0);
}

#[tokio::test]
async fn a_voice_turn_without_usable_audio_is_refused_clearly() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&[]);

    let (status, body) = send(&app, voice_request(&[("session_id", None, b"")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "missing_audio");

    let (status, body) = send(&app, voice_request(&[("audio", Some("q.webm"), b"")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "missing_audio");

    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01";
    let (status, body) = send(&app, voice_request(&[("audio", Some("q.webm"), png)])).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, "unsupported_media_type");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("image/png") && message.contains("WebM"), "says what came and what is accepted: {message}");

    let not_multipart = json_request("POST", "/api/voice", &json!({"audio": "..."}));
    let (status, body) = send(&app, not_multipart).await;
    assert!(status.is_client_error(), "{status}");
    assert_error(&body, "invalid_request");

    assert!(stages.transcribed().is_empty(), "nothing unusable is sent on");
}

#[tokio::test]
async fn silence_is_no_speech_not_a_made_up_question() {
    let stages = FakeStages::new(" [BLANK_AUDIO] ");
    let app = stages.app(&[]);
    let (status, body) = send(&app, voice_request(&[("audio", Some("q.wav"), &tone_wav(16_000, 0.5))])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "no_speech");
    assert!(body["message"].as_str().unwrap().contains("didn't catch"), "{body}");
    assert_eq!(stages.asked(), 0);
}

#[tokio::test]
async fn an_upload_over_the_limit_is_a_413() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&["--max-upload-mib", "1"]);
    let big = tone_wav(16_000, 40.0); // 1.28 MB of PCM
    assert!(big.len() > 1024 * 1024 + 64 * 1024);
    let (status, body) = send(&app, voice_request(&[("audio", Some("q.wav"), &big)])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("at most 1 MiB"), "names the configured limit: {body}");

    let huge_question = json!({"text": "x".repeat(300 * 1024)});
    let (status, body) = send(&app, json_request("POST", "/api/chat", &huge_question)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("at most 256 KiB"), "{body}");
    assert!(stages.transcribed().is_empty());
}

#[tokio::test]
async fn unknown_sessions_are_404_everywhere() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&[]);

    let (status, body) = send(&app, empty_request("GET", "/api/sessions/no-such-session")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "session_not_found");

    let (status, body) = send(&app, empty_request("DELETE", "/api/sessions/no-such-session")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "session_not_found");

    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"session_id": "no-such-session", "text": "hi"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "session_not_found");

    let (status, body) =
        send(&app, voice_request(&[("session_id", None, b"no-such-session"), ("audio", Some("q.wav"), &tone_wav(16_000, 0.2))])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "session_not_found");
    assert!(stages.transcribed().is_empty(), "a stale session costs no transcription");
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_503_that_names_it_without_the_key() {
    let down = closed_port_url().await;
    let app = app(&settings_for_provider(&down, &[]));
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "hello"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "provider_unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("language model") && message.contains(&down), "{message}");
}

#[tokio::test]
async fn a_provider_error_is_a_502_and_its_words_stay_in_the_log() {
    let provider = FakeOpenAi::start("hello").await;
    provider.fail("/v1/chat/completions", StatusCode::INTERNAL_SERVER_ERROR);
    let app = app(&settings_for_provider(&provider.base_url, &[]));
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "hello"}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_error(&body, "provider_error"); // the fake's error text quotes the key; assert_error checks it is absent

    provider.fail("/v1/audio/transcriptions", StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = send(&app, voice_request(&[("audio", Some("q.wav"), &tone_wav(16_000, 0.2))])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "an overloaded provider is worth retrying");
    assert_error(&body, "provider_unavailable");
    assert!(body["message"].as_str().unwrap().contains("speech-to-text"), "{body}");
}

#[tokio::test]
async fn when_speech_fails_the_written_answer_still_arrives() {
    let stages = FakeStages::new("hello");
    stages.fail(Stage::Tts, reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    let app = stages.app(&[]);
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "hello"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["answer"].as_str().unwrap().starts_with("You said: hello"), "{body}");
    assert!(body.get("audio").is_none());
    assert_error(&body["speech_error"], "provider_error");

    let (status, history) = send(&app, empty_request("GET", &format!("/api/sessions/{}", body["session_id"].as_str().unwrap()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["turns"].as_array().unwrap().len(), 2, "the turn is remembered");
}

#[tokio::test]
async fn with_no_provider_configured_turns_say_how_to_set_one_up() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent"]));
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "hello"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "not_configured");
    assert!(body["message"].as_str().unwrap().contains("PARLANCE_LLM_BASE_URL"), "{body}");

    let (status, health) = send(&app, empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "degraded");
    let stages = health["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    assert!(stages.iter().all(|s| s["backend"] == "none" && s["ready"] == false && s["detail"].is_string()));
}

#[tokio::test]
async fn health_reports_each_stage_without_secrets() {
    let with_credentials = "http://user:hunter2@127.0.0.1:9/v1";
    let app = app(&settings_for_provider(with_credentials, &["--llm-model", "qwen2.5:0.5b", "--embeddings-backend", "none"]));
    let (status, health) = send(&app, empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK);
    // Nothing listens on port 9: every stage is asked, and none answers.
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let text = health.to_string();
    assert!(!text.contains("hunter2") && !text.contains(support::fake_openai::API_KEY), "{text}");
    let llm = health["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "llm").unwrap();
    assert_eq!(llm["backend"], "openai");
    assert_eq!(llm["model"], "qwen2.5:0.5b");
    assert_eq!(llm["location"], "http://127.0.0.1:9/v1/");
    let embeddings = health["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "embeddings").unwrap();
    assert_eq!(embeddings["ready"], false);
}

#[tokio::test]
async fn unknown_api_paths_are_json_404s() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent"]));
    let (status, body) = send(&app, empty_request("GET", "/api/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
}

#[tokio::test]
async fn the_web_app_is_served_with_a_fallback_for_its_own_routes() {
    let dist = std::env::temp_dir().join(format!("parlance-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>Parlance app</title>").unwrap();
    std::fs::write(dist.join("app.js"), "console.log('parlance')").unwrap();
    let app = app(&settings(&["--frontend-dir", dist.to_str().unwrap()]));

    let (status, body) = send(&app, empty_request("GET", "/app.js")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, Some("console.log('parlance')")));
    let (status, body) = send(&app, empty_request("GET", "/conversation/42")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("Parlance app"), "SPA fallback serves index.html: {body}");

    let unbuilt = support::app(&settings(&["--frontend-dir", "/nonexistent"]));
    let (status, body) = send(&unbuilt, empty_request("GET", "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.as_str().unwrap().contains("not built"), "explains how to build: {body}");
    std::fs::remove_dir_all(dist).ok();
}

#[tokio::test]
async fn cross_origin_calls_are_allowed_only_from_listed_origins() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent", "--cors-origins", "https://app.example"]));
    let preflight = |origin: &str| {
        axum::http::Request::builder()
            .method("OPTIONS")
            .uri("/api/chat")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let allowed = tower::ServiceExt::oneshot(app.clone(), preflight("https://app.example")).await.unwrap();
    assert_eq!(allowed.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(&HeaderValue::from_static("https://app.example")));
    let refused = tower::ServiceExt::oneshot(app.clone(), preflight("https://evil.example")).await.unwrap();
    assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let default_app = support::app(&settings(&["--frontend-dir", "/nonexistent"]));
    let refused = tower::ServiceExt::oneshot(default_app, preflight("https://app.example")).await.unwrap();
    assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "no origin is allowed by default");
}

#[tokio::test]
async fn a_client_asking_too_fast_is_told_when_to_retry() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&["--turns-per-minute", "2"]);
    let question = || json_request("POST", "/api/chat", &json!({"text": "hello", "speak": false}));
    for _ in 0..2 {
        let (status, _) = send(&app, question()).await;
        assert_eq!(status, StatusCode::OK, "the burst is allowed");
    }
    let response = tower::ServiceExt::oneshot(app.clone(), question()).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "one turn refills every 30 s: {retry_after}");
    let (_, body) = send(&app, question()).await;
    assert_error(&body, "rate_limited");
    assert_eq!(stages.asked(), 2, "refused turns cost no model time");

    let (status, _) = send(&app, empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK, "health checks are not rate limited");
}

#[tokio::test]
async fn the_routers_own_refusals_carry_the_error_body() {
    let dist = support::fresh_data_dir();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>Parlance</title>").unwrap();
    let app = app(&settings(&["--frontend-dir", dist.to_str().unwrap()]));
    for (method, path) in [("POST", "/health"), ("DELETE", "/api/chat"), ("GET", "/api/voice"), ("PUT", "/api/knowledge"), ("POST", "/")] {
        let response = tower::ServiceExt::oneshot(app.clone(), empty_request(method, path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(response.headers().contains_key(header::ALLOW), "{method} {path}: says which methods it takes");
        assert!(response.headers().contains_key(header::CONTENT_SECURITY_POLICY), "{method} {path}: the security headers stay");
        let (_, body) = send(&app, empty_request(method, path)).await;
        assert_error(&body, "method_not_allowed");
    }

    let long_path = format!("/api/{}", "a".repeat(5000));
    let (status, body) = send(&app, empty_request("GET", &long_path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    let message = body["message"].as_str().unwrap();
    assert!(message.len() < 200 && message.contains("/api/aaaa") && message.contains('…'), "the path is quoted cut short: {message}");

    let unknown_session = format!("/api/sessions/{}", "s".repeat(5000));
    let (status, body) = send(&app, empty_request("GET", &unknown_session)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "session_not_found");
    assert!(body["message"].as_str().unwrap().len() < 300, "{body}");
}

#[tokio::test]
async fn an_address_or_headers_too_long_are_refused_with_the_error_body() {
    let app = FakeStages::new("hi").app(&[]);
    let (status, body) = send(&app, empty_request("GET", &format!("/api/sessions/{}", "x".repeat(9 * 1024)))).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert_error(&body, "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("8 KiB"), "{body}");

    let mut request = empty_request("GET", "/api/account");
    for n in 0..5 {
        request.headers_mut().insert(format!("x-filler-{n}").parse::<header::HeaderName>().unwrap(), "f".repeat(8 * 1024).parse().unwrap());
    }
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_error(&body, "payload_too_large");

    // The same over a real connection, where hyper parses the request first: its own limits are higher.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let response = reqwest::get(format!("http://{address}/api/{}", "x".repeat(10 * 1024))).await.unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_error(&response.json().await.unwrap(), "payload_too_large");
}

#[tokio::test]
async fn every_body_limit_is_a_413_with_the_error_body_and_json_mistakes_are_quoted_cut_short() {
    let stages = FakeStages::new("hi");
    let app = stages.app(&[]);
    let notes = json!({"notes": [{"title": "Big", "text": "n".repeat(3 * 1024 * 1024)}]});
    let (status, body) = send(&app, json_request("POST", "/api/knowledge", &notes)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("2 MiB"), "{body}");

    let document = support::multipart_body(&[("file", Some("big.md"), &vec![b'n'; 3 * 1024 * 1024])]);
    let upload = axum::http::Request::builder()
        .method("POST")
        .uri("/api/knowledge")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={}", support::BOUNDARY))
        .body(axum::body::Body::from(document))
        .unwrap();
    let (status, body) = send(&app, upload).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");

    // serde's complaint quotes the wrong value: 200 KB of it would come back whole.
    let wrong_type = json!({"text": "hi", "speak": "y".repeat(200 * 1024)});
    let (status, body) = send(&app, json_request("POST", "/api/chat", &wrong_type)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_request");
    let message = body["message"].as_str().unwrap();
    assert!(message.len() < 700 && message.contains("yyyy") && message.contains('…'), "{} bytes: {}", message.len(), &message[..100]);
    assert_eq!(stages.asked(), 0);
}

#[tokio::test]
async fn a_provider_that_hangs_is_a_504_after_the_timeout_and_a_started_chat_is_never_sent_twice() {
    let provider = FakeOpenAi::start("What is new?").await;
    provider.configure(|fake| fake.hanging = vec!["/v1/chat/completions"]);
    let app = app(&settings_for_provider(&provider.base_url, &["--provider-timeout-secs", "1"]));
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "hello", "speak": false}))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_error(&body, "provider_unavailable");
    assert!(body["message"].as_str().unwrap().contains("did not answer in time"), "{body}");
    assert_eq!(provider.requests("/v1/chat/completions").len(), 1, "a chat completion is not repeated");

    // A hanging transcription is not tried again either: the timeout is for the whole call.
    provider.configure(|fake| fake.hanging = vec!["/v1/audio/transcriptions"]);
    let (status, body) = send(&app, voice_request(&[("audio", Some("q.wav"), &tone_wav(16_000, 0.2))])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_error(&body, "provider_unavailable");
    assert!(body["message"].as_str().unwrap().contains("speech-to-text"), "{body}");
    assert_eq!(provider.requests("/v1/audio/transcriptions").len(), 1);
}

#[tokio::test]
async fn an_overloaded_provider_is_asked_again_for_what_can_be_repeated_only() {
    let provider = FakeOpenAi::start("What is new?").await;
    provider.configure(|fake| {
        fake.overloaded.insert("/v1/audio/transcriptions", 2);
        fake.overloaded.insert("/v1/audio/speech", 1);
    });
    let app = app(&settings_for_provider(&provider.base_url, &[]));
    let (status, body) = send(&app, voice_request(&[("audio", Some("q.wav"), &tone_wav(16_000, 0.2))])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transcript"], "What is new?");
    assert!(body["audio"].is_object(), "speech was asked again too: {body}");
    assert_eq!(provider.requests("/v1/audio/transcriptions").len(), 3, "two refusals, then the answer");
    assert_eq!(provider.requests("/v1/audio/speech").len(), 2);

    // A chat completion that reached the provider is not repeated, even when it was refused.
    provider.configure(|fake| {
        fake.overloaded.insert("/v1/chat/completions", 1);
    });
    let chats = provider.requests("/v1/chat/completions").len();
    let (status, body) = send(&app, json_request("POST", "/api/chat", &json!({"text": "hello", "speak": false}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "provider_unavailable");
    assert_eq!(provider.requests("/v1/chat/completions").len(), chats + 1);

    // Retries are bounded: a provider that stays overloaded is given up on.
    let stubborn = app_with_retries(&provider, 1);
    provider.configure(|fake| {
        fake.overloaded.insert("/v1/audio/transcriptions", 100);
    });
    let before = provider.requests("/v1/audio/transcriptions").len();
    let (status, body) = send(&stubborn, voice_request(&[("audio", Some("q.wav"), &tone_wav(16_000, 0.2))])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "provider_unavailable");
    assert_eq!(provider.requests("/v1/audio/transcriptions").len(), before + 2, "once, and once more");
}

fn app_with_retries(provider: &FakeOpenAi, retries: u32) -> axum::Router {
    let retries = retries.to_string();
    app(&settings_for_provider(&provider.base_url, &["--provider-retries", &retries]))
}
