//! `/health` asks each stage's provider whether it answers: a provider that is down makes its stage not ready
//! and the server `degraded`, with a reason a person can act on; callers without the token learn only the
//! status. The provider is the fake that speaks the OpenAI wire protocol (`support/fake_openai.rs`), running or
//! pointed at a closed port.

use crate::support;

use axum::http::StatusCode;
use serde_json::Value;
use support::fake_openai::{self, FakeOpenAi};

const TOKEN: &str = "health-test-token-8e2f61c4a0";

async fn health(app: &axum::Router, token: Option<&str>) -> Value {
    let (status, health) = support::send(app, support::signed_request("GET", "/health", token, None)).await;
    assert_eq!(status, StatusCode::OK, "/health answers 200 while the server runs: {health}");
    health
}

fn stage<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["stages"].as_array().unwrap().iter().find(|stage| stage["stage"] == name).unwrap()
}

#[tokio::test]
async fn a_provider_that_answers_makes_its_stages_ready() {
    let provider = FakeOpenAi::start("").await;
    let app = support::app(&support::settings_for_provider(&provider.base_url, &["--token", TOKEN]));
    let health = health(&app, Some(TOKEN)).await;
    assert_eq!(health["status"], "ok", "{health}");
    for name in ["stt", "llm", "tts", "embeddings"] {
        assert_eq!(stage(&health, name)["ready"], true, "{health}");
        assert!(stage(&health, name)["detail"].is_null(), "{health}");
    }
}

#[tokio::test]
async fn a_provider_that_does_not_answer_makes_its_stages_unavailable() {
    let down = fake_openai::closed_port_url().await;
    let provider = FakeOpenAi::start("").await;
    // Only the language model's provider is down.
    let app = support::app(&support::settings_for_provider(&provider.base_url, &["--token", TOKEN, "--llm-base-url", &down]));
    let health = health(&app, Some(TOKEN)).await;
    assert_eq!(health["status"], "degraded", "{health}");
    let llm = stage(&health, "llm");
    assert_eq!(llm["ready"], false, "{health}");
    let detail = llm["detail"].as_str().unwrap();
    assert!(detail.contains("does not answer") && detail.contains("could not connect"), "{detail}");
    assert!(!health.to_string().contains(fake_openai::API_KEY), "{health}");
    for name in ["stt", "tts", "embeddings"] {
        assert_eq!(stage(&health, name)["ready"], true, "{name} answers: {health}");
    }

    // A caller without the token learns only that the server is degraded (and the protocol it speaks).
    let anonymous = self::health(&app, None).await;
    assert_eq!(anonymous, serde_json::json!({"status": "degraded", "protocol": parlance_shared::PROTOCOL_VERSION}));
}
