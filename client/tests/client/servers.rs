//! Parlance servers for the tests, each on its own random port, and the CLI as a child process.

use std::process::Command;
use std::sync::Arc;

use parlance_server::AppState;
use parlance_server::sessions::MemorySessions;

use crate::support;
use crate::support::fake_stages::FakeStages;

/// A sign-in token for the servers that need one.
pub const TOKEN: &str = "client-tests-token-0123456789";

/// Parlance on fake stages (speech-to-text hears `transcript`) with the flags a test adds; its base URL.
pub async fn fake(transcript: &str, extra: &[&str]) -> (FakeStages, String) {
    let fakes = FakeStages::new(transcript);
    let address = fakes.serve(extra).await;
    (fakes, format!("http://{address}"))
}

/// Parlance on fake stages (speech-to-text hears `transcript`) that hears where speech stops in raw streams with
/// the real Silero voice activity model, so it can end hands-free turns itself; its base URL.
pub async fn with_silero(transcript: &str) -> (FakeStages, String) {
    use parlance_server::models::catalog;

    let runtime = support::installed_model(&catalog::ONNX_RUNTIME).join("libonnxruntime.so");
    let environment = parlance_server::onnx::runtime(&runtime).expect("ONNX Runtime loads");
    let model = support::installed_model(&catalog::SILERO_VAD).join("silero_vad.onnx");
    let vad = Arc::new(parlance_server::vad::SileroVad::load(&model, environment).expect("the voice activity model loads"));
    let fakes = FakeStages::new(transcript);
    let settings = fakes.settings(&[]);
    let stages = parlance_server::Stages { vad: Some(vad), ..fakes.stages() };
    let url = serve(parlance_server::router(AppState::new(&settings, stages, Arc::new(MemorySessions::default())), &settings)).await;
    (fakes, url)
}

/// Parlance on fake stages and the real local embeddings model, so the knowledge base works; its base URL.
pub async fn with_knowledge() -> String {
    let fakes = FakeStages::new("");
    let settings = fakes.settings(&[]);
    let mut stages = fakes.stages();
    stages.embedder = Some(Arc::new(support::local_embeddings()));
    let app = parlance_server::router(AppState::new(&settings, stages, Arc::new(MemorySessions::default())), &settings);
    serve(app).await
}

pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    format!("http://{address}")
}

/// An address where nothing listens: a port the system just handed out, closed again.
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// What a run of `parlance-cli` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Each stdout line as JSON (for `--json`).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line:?}\n{self:?}")))
            .collect()
    }
}

/// Runs the built `parlance-cli` with these arguments (and no PARLANCE_* from the environment running the tests).
pub async fn cli(args: &[&str]) -> Run {
    cli_with_env(args, &[]).await
}

/// Runs `parlance-cli` with these arguments and environment variables.
pub async fn cli_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_parlance-cli"))
            .args(&args)
            .env_remove("PARLANCE_SERVER")
            .env_remove("PARLANCE_TOKEN")
            .envs(env)
            .output()
            .expect("parlance-cli starts");
        Run {
            code: output.status.code().expect("parlance-cli exits, not killed by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}
