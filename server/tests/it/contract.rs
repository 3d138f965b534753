//! The API contract as clients see it. The OpenAPI document and the socket's JSON Schema the server serves are
//! the ones checked into docs/ (so every contract change shows in review), they describe every route, the
//! description of the API needs no token, the protocol version is announced, and the live server keeps what
//! the document promises: Schemathesis finds no server error and no response outside the document, and the
//! events of a real turn on the local models are valid against the socket's schema.
//!
//! After a deliberate contract change: `PARLANCE_BLESS=1 cargo test --workspace --test it contract::` rewrites
//! docs/openapi.json and docs/socket.schema.json from what the server serves; review and commit the diff.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use parlance_server::models::catalog;
use parlance_shared::{ClientMessage, PROTOCOL_VERSION, ServerEvent};
use serde_json::{Value, json};
use support::fake_openai::{self, FakeOpenAi};
use support::fake_stages::FakeStages;
use support::{app, empty_request, send, settings, signed_request};
use tokio_tungstenite::tungstenite::Message;

const BLESS: &str = "PARLANCE_BLESS";
const TOKEN: &str = "contract-token-0123456789abcdef";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the server crate is in the workspace").to_path_buf()
}

/// The served `document` is the checked-in `docs/{file}`; with PARLANCE_BLESS set, it becomes it.
fn matches_checked_in(file: &str, served: &Value) {
    let path = repo().join("docs").join(file);
    if std::env::var(BLESS).is_ok_and(|value| !value.is_empty() && value != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(served).unwrap() + "\n").unwrap();
        return;
    }
    let checked_in: Value = std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(Value::Null);
    let mut differences = Vec::new();
    differ(&checked_in, served, "", &mut differences);
    assert!(
        differences.is_empty(),
        "docs/{file} is not what the server serves; it differs at {}. If the change is meant, rewrite it with \
         `{BLESS}=1 cargo test --workspace --test it contract::` and commit it with the change",
        differences.join(", ")
    );
}

/// JSON pointers where `a` and `b` differ, the first few.
fn differ(a: &Value, b: &Value, at: &str, found: &mut Vec<String>) {
    if found.len() >= 8 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                differ(a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null), &pointer, found);
            }
        }
        _ => found.push(if at.is_empty() { "/".to_owned() } else { at.to_owned() }),
    }
}

#[tokio::test]
async fn the_served_document_and_socket_schema_are_the_checked_in_ones() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent-parlance-frontend"]));
    let (status, document) = send(&app, empty_request("GET", "/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    matches_checked_in("openapi.json", &document);
    let (status, socket) = send(&app, empty_request("GET", "/api/schema/socket.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(socket["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(socket["x-parlance-protocol"], PROTOCOL_VERSION);
    matches_checked_in("socket.schema.json", &socket);
}

#[tokio::test]
async fn the_document_has_every_route_and_says_which_need_the_token() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent-parlance-frontend"]));
    let (_, document) = send(&app, empty_request("GET", "/api/openapi.json")).await;
    let paths = document["paths"].as_object().unwrap();
    let documented: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| format!("{} {path}", method.to_uppercase())))
        .collect();
    // Every route router() has, and nothing else.
    let mut routes = vec![
        "GET /health",
        "POST /api/chat",
        "POST /api/voice",
        "GET /api/ws",
        "GET /api/sessions",
        "GET /api/sessions/{id}",
        "PATCH /api/sessions/{id}",
        "DELETE /api/sessions/{id}",
        "GET /api/sessions/{id}/archive",
        "GET /api/sessions/{id}/archive/{turn}/{side}",
        "GET /api/account",
        "GET /api/voices",
        "POST /api/knowledge",
        "GET /api/knowledge",
        "GET /api/knowledge/search",
        "GET /api/knowledge/{id}",
        "DELETE /api/knowledge/{id}",
        "GET /api/openapi.json",
        "GET /api/schema/socket.json",
        "GET /api/docs",
        "GET /v1/models",
        "POST /v1/chat/completions",
        "POST /v1/audio/transcriptions",
        "POST /v1/audio/speech",
        "POST /v1/embeddings",
    ];
    let mut documented_sorted = documented.clone();
    documented_sorted.sort();
    routes.sort();
    assert_eq!(documented_sorted, routes);

    assert_eq!(document["components"]["securitySchemes"]["token"]["scheme"], "bearer");
    for (path, method) in [("/api/chat", "post"), ("/api/ws", "get"), ("/v1/models", "get")] {
        let operation = &paths[path][method];
        assert_eq!(operation["security"], json!([{ "token": [] }]), "{method} {path}");
        assert!(operation["responses"]["401"].is_object(), "{method} {path} documents no 401");
    }
    assert_eq!(
        paths["/v1/models"]["get"]["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OpenAiErrorBody"
    );
    for (path, method) in [("/health", "get"), ("/api/openapi.json", "get"), ("/api/docs", "get"), ("/api/schema/socket.json", "get")] {
        assert!(paths[path][method]["security"].is_null(), "{method} {path} needs no token");
    }
    let health = paths["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"].to_string();
    assert!(health.contains("HealthSummary") && health.contains("anyOf"), "{health}");
    assert!(document["info"]["description"].as_str().unwrap().contains("hello"), "the socket's first event is described");
}

#[tokio::test]
async fn the_api_description_needs_no_token_and_health_tells_the_protocol_to_anyone() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent-parlance-frontend", "--token", TOKEN]));
    for path in ["/api/openapi.json", "/api/schema/socket.json"] {
        let (status, body) = send(&app, signed_request("GET", path, None, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // Not built here: the page says how to build it, to anyone.
    let (status, page) = send(&app, signed_request("GET", "/api/docs", None, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.as_str().unwrap().contains("scripts/build-web.sh"), "{page}");

    let (status, summary) = send(&app, signed_request("GET", "/health", None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary, json!({ "status": summary["status"], "protocol": PROTOCOL_VERSION }), "only the status and the protocol");
    let (_, health) = send(&app, signed_request("GET", "/health", Some(TOKEN), None)).await;
    assert_eq!(health["protocol"], PROTOCOL_VERSION);
    assert!(health["stages"].is_array(), "{health}");

    // The rest still needs the token; OpenAI's clients are told in their own shape.
    let (status, refused) = send(&app, signed_request("GET", "/api/account", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    support::assert_error(&refused, "unauthorized");
    let (status, refused) = send(&app, signed_request("GET", "/v1/models", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("token"), "{refused}");
}

#[tokio::test]
async fn the_socket_says_hello_with_the_protocol_before_anything_else() {
    let provider = FakeStages::new("What time is it?");
    let address = provider.serve(&[]).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("the socket opens");
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a first event unasked").unwrap().unwrap();
    let Message::Text(text) = first else { panic!("the first frame is text: {first:?}") };
    assert_eq!(serde_json::from_str::<Value>(text.as_str()).unwrap(), json!({ "type": "hello", "protocol": PROTOCOL_VERSION }));
}

/// The Python packages scripts/setup.sh installs (Schemathesis, jsonschema-rs, OpenAI's SDK).
fn python(script_args: &[&str]) -> tokio::process::Command {
    let home = std::env::var("HOME").unwrap_or_default();
    let packages = std::env::var("PARLANCE_PYTHON_PACKAGES").unwrap_or_else(|_| format!("{home}/.cache/parlance/python"));
    let mut command = tokio::process::Command::new("python3");
    command.args(script_args).env("PYTHONPATH", packages);
    command
}

/// The web app's folder when it is built (then `/api/docs` is the real page), else none.
fn frontend_dir() -> String {
    let built = repo().join("frontend/dist");
    if built.join("index.html").is_file() { built.display().to_string() } else { "/nonexistent-parlance-frontend".into() }
}

/// Parlance with `args` on a real port; started as `parlance` starts (the knowledge base seeded) if `seeded`.
async fn serve(args: &[&str], seeded: bool) -> std::net::SocketAddr {
    let frontend = frontend_dir();
    let mut all = vec!["--frontend-dir", &frontend, "--turns-per-minute", "0"];
    all.extend_from_slice(args);
    let settings = support::settings(&all);
    let app = if seeded { parlance_server::start(&settings).await.expect("the server starts") } else { support::app(&settings) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
    address
}

/// Schemathesis (from PyPI, installed by scripts/setup.sh) against the live server with the document it
/// serves: every operation, a bounded number of examples each; no 5xx, and no status, content type, header or
/// body the document does not allow. The model stages are a stand-in speaking OpenAI's wire protocol, so the
/// examples are many and fast; the turns on the real models are checked below and in `parlance_peer`.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    let provider = FakeOpenAi::start("What time is it?").await;
    // Embeddings on the local model: the knowledge base holds its 384-dimensional vectors, not the stand-in's.
    let embeddings = support::installed_model(&catalog::MINILM_L6_V2);
    support::installed_model(&catalog::ONNX_RUNTIME);
    let models_dir = embeddings.parent().unwrap().to_str().unwrap();
    let args = [
        "--openai-base-url",
        &provider.base_url,
        "--openai-api-key",
        fake_openai::API_KEY,
        "--embeddings-backend",
        "local",
        "--models-dir",
        models_dir,
    ];
    let address = serve(&args, true).await;
    let started = Instant::now();
    let run = python(&["-c", "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; sys.exit(schemathesis())"])
        .args(["run", &format!("http://{address}/api/openapi.json")])
        // Schemathesis keeps a cache where it runs: not in the checkout.
        .current_dir(std::env::temp_dir())
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args([
            "--max-examples",
            "25",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
            "--output-truncate",
            "true",
        ])
        .output()
        .await
        .expect("python3 runs");
    let report = String::from_utf8_lossy(&run.stdout);
    let summary: Vec<&str> = report.lines().filter(|line| line.contains("generated") || line.contains("Seed:")).collect();
    println!("schemathesis in {:.0?}: {}", started.elapsed(), summary.join(" | "));
    assert!(
        run.status.success(),
        "Schemathesis found the server breaking its document (or could not run; scripts/setup.sh installs it):\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let operations = reqwest::get(format!("http://{address}/api/openapi.json")).await.unwrap().json::<Value>().await.unwrap()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum::<usize>();
    // All but the document itself, which Schemathesis leaves out of what it tests.
    let tested = operations - 1;
    assert!(report.contains(&format!("Tested: {tested}")), "all {tested} other operations were tested:\n{report}");
}

/// A real turn on the local models over the socket: every message that crossed it, either way, is valid
/// against the socket's schema (and a wrong one of each side is not, so the schema is really used).
#[tokio::test(flavor = "multi_thread")]
async fn a_real_turn_over_the_socket_keeps_to_the_socket_schema() {
    let models = support::installed_model(&catalog::QWEN_CODER_0_5B);
    for model in [&catalog::WHISPER_TINY_EN, &catalog::MINILM_L6_V2, &catalog::PIPER_JOE, &catalog::ONNX_RUNTIME] {
        support::installed_model(model);
    }
    let address = serve(&["--models-dir", models.parent().unwrap().to_str().unwrap()], true).await;

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("the socket opens");
    let question = ClientMessage::Text { session_id: None, text: "What time is it?".into(), speak: true, speech_rate: None, voice: None };
    let mut lines = vec![json!({ "from": "client", "message": question })];
    let mut kinds = Vec::new();
    let mut sent = false;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(120), socket.next()).await.expect("the turn goes on").unwrap().unwrap();
        let Message::Text(text) = frame else { continue };
        let raw: Value = serde_json::from_str(text.as_str()).unwrap();
        let event: ServerEvent = serde_json::from_value(raw.clone()).expect("events are ServerEvents");
        kinds.push(raw["type"].as_str().unwrap().to_owned());
        lines.push(json!({ "from": "server", "message": raw }));
        if !sent {
            socket.send(Message::text(serde_json::to_string(&question).unwrap())).await.unwrap();
            sent = true;
        }
        match event {
            ServerEvent::Done { .. } => break,
            ServerEvent::Error { error } => panic!("the turn failed: {error}"),
            _ => {}
        }
    }
    assert_eq!(kinds[0], "hello");
    for kind in ["status", "answer_delta", "audio_chunk", "done"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    lines.push(json!({ "from": "server", "message": { "type": "hello" } }));
    lines.push(json!({ "from": "client", "message": { "type": "start", "encoding": "mp3" } }));
    let checked = validate_socket_messages(&address.to_string(), &lines).await;
    assert_eq!(checked["checked"], json!({ "server": kinds.len() + 1, "client": 2 }), "{checked}");
    let failed = checked["failed"].as_array().unwrap();
    assert_eq!(
        failed.iter().map(|f| (f["from"].as_str().unwrap(), f["type"].as_str().unwrap())).collect::<Vec<_>>(),
        [("server", "hello"), ("client", "start")],
        "only the two wrong ones fail: {checked}"
    );
}

/// Checks socket messages against the served `/api/schema/socket.json` with jsonschema-rs (Python).
pub async fn validate_socket_messages(address: &str, lines: &[Value]) -> Value {
    let schema: Value = reqwest::get(format!("http://{address}/api/schema/socket.json")).await.unwrap().json().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (schema_file, messages_file) = (dir.path().join("socket.json"), dir.path().join("messages.jsonl"));
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    std::fs::write(&messages_file, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
    let script = repo().join("server/tests/contract/validate_socket.py");
    let output = python(&[script.to_str().unwrap(), schema_file.to_str().unwrap(), messages_file.to_str().unwrap()])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the validator failed (scripts/setup.sh installs jsonschema-rs): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the validator prints JSON")
}
