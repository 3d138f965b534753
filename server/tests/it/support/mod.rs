//! Helpers shared by the integration tests.

#![allow(dead_code)] // Helpers kept for the test files that come and go; not every one is used at any time.

pub mod fake_openai;
pub mod fake_stages;
pub mod speech;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use http_body_util::BodyExt;
use parlance_server::{Config, Settings};
use serde_json::Value;
use tower::ServiceExt;

pub const BOUNDARY: &str = "parlance-test-boundary-7MA4YWxkTrZu0gW";

/// The directory of an installed catalog model, installing it first (real pip, checksummed) if needed.
/// Uses PARLANCE_MODELS_DIR (the scripts set it) so a test run reuses what `parlance models` installed.
pub fn installed_model(model: &parlance_server::models::catalog::ModelSpec) -> std::path::PathBuf {
    let models_dir = std::env::var_os("PARLANCE_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("parlance-test-models"));
    let installer = parlance_server::models::Installer::new(&models_dir).quiet();
    installer.install(model).unwrap_or_else(|error| panic!("installing {} for the tests failed: {error}", model.id));
    installer.model_dir(model)
}

/// The local embeddings model on ONNX Runtime, both installed first if needed.
pub fn local_embeddings() -> parlance_server::embeddings::LocalEmbeddings {
    use parlance_server::models::catalog::{MINILM_L6_V2, ONNX_RUNTIME};
    let runtime_dir = installed_model(&ONNX_RUNTIME);
    let models_dir = runtime_dir.parent().expect("models live in a folder");
    parlance_server::embeddings::LocalEmbeddings::load(&installed_model(&MINILM_L6_V2), &parlance_server::onnx::library_in(models_dir))
        .expect("the embeddings model loads")
}

/// Settings as a user would give them on the command line.
/// Local models are off unless the test names a `--models-dir`, whatever PARLANCE_MODELS_DIR says.
/// Each call gets a fresh, empty data directory unless the test names a `--data-dir`.
pub fn settings(args: &[&str]) -> Settings {
    let no_models = ["--models-dir", "/nonexistent-parlance-models"];
    let mut defaults: Vec<String> = if args.contains(&"--models-dir") { vec![] } else { no_models.map(String::from).to_vec() };
    if !args.contains(&"--data-dir") {
        defaults.extend(["--data-dir".to_owned(), fresh_data_dir().display().to_string()]);
    }
    let config = Config::try_parse_from(std::iter::once("parlance").chain(defaults.iter().map(String::as_str)).chain(args.iter().copied()))
        .expect("test flags parse");
    config.validate().expect("test settings are valid")
}

/// An empty folder under the system's temporary directory, left for the OS to clean (settings cannot own it).
pub fn fresh_data_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("parlance-test-data").join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&dir).expect("temporary data directory");
    dir
}

/// Every stage pointed at one OpenAI-compatible base URL, with a key, and no built web app.
pub fn settings_for_provider(base_url: &str, extra: &[&str]) -> Settings {
    let mut args =
        vec!["--openai-base-url", base_url, "--openai-api-key", fake_openai::API_KEY, "--frontend-dir", "/nonexistent-parlance-frontend"];
    args.extend_from_slice(extra);
    settings(&args)
}

pub fn app(settings: &Settings) -> Router {
    parlance_server::app(settings).expect("app builds")
}

/// Sends one request through the router (no network) and returns the status and the body as JSON
/// (`Value::Null` for an empty body).
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("router never fails");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body reads").to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, json)
}

pub fn json_request(method: &str, uri: &str, body: &Value) -> Request<Body> {
    Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

/// A request as a signed-in client on this machine sends it: `Host` set, the token (if any) as a bearer, and a
/// JSON body (if any).
pub fn signed_request(method: &str, uri: &str, token: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri).header(header::HOST, "127.0.0.1:8080");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

pub fn empty_request(method: &str, uri: &str) -> Request<Body> {
    Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()
}

/// One part of a multipart form: (field name, file name if a file, bytes).
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

pub fn multipart_body(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file_name {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn voice_request(parts: &[Part]) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/api/voice")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(multipart_body(parts)))
        .unwrap()
}

/// Asserts the API's error body: the stable code, and a message meant for a person.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "unexpected error body: {body}");
    let message = body["message"].as_str().expect("error message is a string");
    assert!(message.len() > 10, "message too thin to help anyone: {message:?}");
    assert!(!message.contains(fake_openai::API_KEY), "error leaks the API key: {message}");
}
