//! Partial failure: a model provider that answers 500, hangs past the time limit, or drops the connection in the
//! middle of a streamed answer; a data directory that stops taking writes; and the real `parlance` binary killed
//! with SIGKILL in the middle of a turn and started again on the same data. Each time the user gets a clear
//! error (status and error body, or the socket's `error` event), the server goes on serving, and the
//! conversations stored before are intact; after the kill, every turn finished before it is in the history
//! exactly once and the database opens.
//!
//! Providers are the tests' fake OpenAI-compatible server over real HTTP (`support/fake_openai.rs`) or, for the
//! dropped connection, a raw TCP server written here that speaks just enough HTTP to stream half an answer.
//! Conversations are in LanceDB under a fresh data directory, as `parlance` keeps them.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_shared::{ClientMessage, ServerEvent, SessionHistory, SessionId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fake_openai::FakeOpenAi;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const PATIENCE: Duration = Duration::from_secs(30);
const CHAT: &str = "/v1/chat/completions";

/// Parlance on `settings`, conversations in LanceDB, on a real port; its `host:port`.
async fn serve(settings: &parlance_server::Settings) -> String {
    let app = support::app(settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    address
}

struct Client {
    http: reqwest::Client,
    address: String,
}

impl Client {
    fn new(address: &str) -> Self {
        Self { http: reqwest::Client::new(), address: address.to_owned() }
    }

    /// A typed turn over HTTP: the status and the body.
    async fn chat(&self, session: Option<&str>, text: &str) -> (StatusCode, Value) {
        let request = self.http.post(format!("http://{}/api/chat", self.address)).json(&json!({"text": text, "session_id": session}));
        let response = tokio::time::timeout(PATIENCE, request.send()).await.expect("an answer in time").expect("the server answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    /// A typed turn over a new socket, in conversation `session`: the turn's last event.
    async fn socket_turn(&self, session: Option<&str>, text: &str) -> ServerEvent {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", self.address)).await.expect("socket opens");
        let ask = json!({"type": "text", "text": text, "speak": false, "session_id": session});
        socket.send(Message::text(ask.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(PATIENCE, socket.next()).await.expect("an event in time");
            let Some(Ok(Message::Text(text))) = frame else { continue };
            let event: ServerEvent = serde_json::from_str(text.as_str()).unwrap();
            if matches!(event, ServerEvent::Done { .. } | ServerEvent::Error { .. }) {
                return event;
            }
        }
    }

    async fn history(&self, session: &str) -> Vec<(String, String)> {
        let response = self.http.get(format!("http://{}/api/sessions/{session}", self.address)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "conversation {session} is readable");
        let history: SessionHistory = response.json().await.unwrap();
        history.turns.into_iter().map(|turn| (format!("{:?}", turn.role), turn.text)).collect()
    }

    /// A conversation of two finished turns, made before the fault: its id and stored lines.
    async fn earlier_conversation(&self) -> (String, Vec<(String, String)>) {
        let (status, first) = self.chat(None, "First question before the fault.").await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let session = first["session_id"].as_str().unwrap().to_owned();
        let (status, second) = self.chat(Some(&session), "Second question before the fault.").await;
        assert_eq!(status, StatusCode::OK, "{second}");
        let lines = self.history(&session).await;
        assert_eq!(lines.len(), 4);
        (session, lines)
    }
}

/// The error body of a socket turn that should have failed.
fn socket_error(event: ServerEvent) -> Value {
    match event {
        ServerEvent::Error { error } => serde_json::to_value(error).unwrap(),
        other => panic!("expected an error event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_fails_costs_the_turn_only() {
    let provider = FakeOpenAi::start("unused").await;
    let settings = support::settings_for_provider(&provider.base_url, &["--turns-per-minute", "0", "--provider-timeout-secs", "2"]);
    let client = Client::new(&serve(&settings).await);
    let (session, before) = client.earlier_conversation().await;

    // 500: the provider's own error, as ours.
    provider.fail(CHAT, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, body) = client.chat(Some(&session), "Asked while the provider fails.").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    support::assert_error(&body, "provider_error");
    support::assert_error(&socket_error(client.socket_turn(Some(&session), "Asked over the socket.").await), "provider_error");
    assert_eq!(client.history(&session).await, before, "a failed turn leaves the conversation as it was");

    // Hanging: the deadline ends it with 504, retries included, well within the patience.
    provider.configure(|behaviour| {
        behaviour.failures.clear();
        behaviour.hanging.push(CHAT);
    });
    let (status, body) = client.chat(Some(&session), "Asked while the provider hangs.").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    support::assert_error(&body, "provider_unavailable");
    support::assert_error(&socket_error(client.socket_turn(Some(&session), "Asked over the socket.").await), "provider_unavailable");
    assert_eq!(client.history(&session).await, before);

    // Back: the same conversation goes on where it was.
    provider.configure(|behaviour| behaviour.hanging.clear());
    let (status, body) = client.chat(Some(&session), "Asked when the provider is back.").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lines = client.history(&session).await;
    assert_eq!(&lines[..4], &before[..]);
    assert_eq!(lines.len(), 6);
}

/// A provider that streams the start of an answer, then drops the connection; how many requests it got.
async fn provider_that_drops_mid_stream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let (mut connection, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                read_request(&mut connection).await;
                let chunk = |word: &str| {
                    let event = json!({"id": "chatcmpl-cut", "object": "chat.completion.chunk", "created": 0, "model": "m",
                        "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
                    let data = format!("data: {event}\n\n");
                    format!("{:x}\r\n{data}\r\n", data.len())
                };
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let _ = connection.write_all(format!("{head}{}{}", chunk("The answer "), chunk("starts ")).as_bytes()).await;
                let _ = connection.flush().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Gone without the last chunk or [DONE]: a provider that crashed mid-answer.
                drop(connection);
            });
        }
    });
    (base_url, requests)
}

/// Reads one HTTP request's head and its body (by Content-Length).
async fn read_request(connection: &mut tokio::net::TcpStream) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = connection.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        received.extend_from_slice(&buffer[..read]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let length = head.lines().find_map(|line| line.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
            if received.len() >= end + 4 + length.unwrap_or(0) {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_drops_the_connection_mid_answer_costs_the_turn_only() {
    // The earlier conversation is made with a working provider on the same data directory.
    let provider = FakeOpenAi::start("unused").await;
    let data_dir = support::fresh_data_dir();
    let data = data_dir.to_str().unwrap();
    let working = support::settings_for_provider(&provider.base_url, &["--data-dir", data, "--turns-per-minute", "0"]);
    let (session, before) = Client::new(&serve(&working).await).earlier_conversation().await;

    let (cutting_url, requests) = provider_that_drops_mid_stream().await;
    let cutting = support::settings(&[
        "--data-dir",
        data,
        "--frontend-dir",
        "/nonexistent-parlance-frontend",
        "--turns-per-minute",
        "0",
        "--llm-base-url",
        &cutting_url,
        "--llm-api-key",
        support::fake_openai::API_KEY,
    ]);
    let client = Client::new(&serve(&cutting).await);
    assert_eq!(client.history(&session).await, before);
    let (status, body) = client.chat(Some(&session), "Asked while the provider crashes mid-answer.").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    support::assert_error(&body, "provider_error");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "a stream that had started is not asked again");
    support::assert_error(&socket_error(client.socket_turn(Some(&session), "Asked over the socket.").await), "provider_error");
    assert_eq!(client.history(&session).await, before, "half an answer is not stored as if it were whole");
}

/// Makes a folder refuse writes until dropped. Permissions do not stop root (these tests may run as root, in
/// CI containers), so as root the folder and everything in it are made immutable (`chattr +i`, which binds root
/// too); otherwise its write permissions are removed.
struct ReadOnly {
    dir: PathBuf,
    immutable: bool,
}

impl ReadOnly {
    fn make(dir: &Path) -> Self {
        let probe = dir.join(".write-probe");
        set_writable(dir, false);
        let root = std::fs::write(&probe, b"x").is_ok();
        let _ = std::fs::remove_file(&probe);
        if root {
            set_writable(dir, true);
            support::speech::run("chattr", &["-R", "+i", dir.to_str().unwrap()]);
            assert!(std::fs::write(&probe, b"x").is_err(), "the data directory still takes writes");
        }
        Self { dir: dir.to_owned(), immutable: root }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.immutable {
            let _ = Command::new("chattr").args(["-R", "-i"]).arg(&self.dir).status();
        } else {
            set_writable(&self.dir, true);
        }
    }
}

fn set_writable(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut paths = vec![dir.to_owned()];
    let mut all = Vec::new();
    while let Some(path) = paths.pop() {
        if path.is_dir() {
            paths.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        all.push(path);
    }
    for path in all {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        let mode = if writable { mode | 0o200 } else { mode & !0o222 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_that_stops_taking_writes_refuses_turns_clearly_and_keeps_what_it_had() {
    let provider = FakeOpenAi::start("unused").await;
    let data_dir = support::fresh_data_dir();
    let settings =
        support::settings_for_provider(&provider.base_url, &["--data-dir", data_dir.to_str().unwrap(), "--turns-per-minute", "0"]);
    let client = Client::new(&serve(&settings).await);
    let (session, before) = client.earlier_conversation().await;

    let read_only = ReadOnly::make(&data_dir);
    let (status, body) = client.chat(Some(&session), "Asked while the disk refuses writes.").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    support::assert_error(&body, "internal");
    assert!(!body["message"].as_str().unwrap().contains(data_dir.to_str().unwrap()), "the error shows a path: {body}");
    support::assert_error(&socket_error(client.socket_turn(Some(&session), "Asked over the socket.").await), "internal");
    assert_eq!(client.history(&session).await, before, "what was stored stays readable");
    drop(read_only);

    let (status, body) = client.chat(Some(&session), "Asked when the disk takes writes again.").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lines = client.history(&session).await;
    assert_eq!((&lines[..4], lines.len()), (&before[..], 6));
}

/// The real binary on a provider and a data directory; killed when dropped.
struct Process {
    child: Child,
    address: String,
}

impl Process {
    fn start(data_dir: &Path, provider: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parlance"))
            .args(["--models-dir", "/nonexistent-parlance-models", "--frontend-dir", "/nonexistent-frontend", "--bind", "127.0.0.1:0"])
            .args(["--turns-per-minute", "0", "--llm-base-url", provider, "--llm-api-key", support::fake_openai::API_KEY])
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("PARLANCE_TOKEN")
            .env_remove("PARLANCE_TOKEN_FILE")
            .env_remove("PARLANCE_USERS_FILE")
            .env_remove("PARLANCE_OPENAI_BASE_URL")
            .env("RUST_LOG", "info,lance=warn,lancedb=warn,datafusion=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the parlance binary starts");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Killed and waited for when dropped, a failed start included.
        let mut process = Self { child, address: String::new() };
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        const RUNNING: &str = "Parlance is running at http://";
        while process.address.is_empty() {
            let line = lines.recv_timeout(Duration::from_secs(60)).expect("parlance says where it runs");
            if let Some(at) = line.find(RUNNING) {
                process.address = line[at + RUNNING.len()..].trim().trim_end_matches('/').to_owned();
            }
        }
        process
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_turn_then_a_restart_keeps_every_finished_turn_once() {
    let provider = FakeOpenAi::start("unused").await;
    let data_dir = support::fresh_data_dir();
    let mut first = Process::start(&data_dir, &provider.base_url);
    let client = Client::new(&first.address);
    let (session, _) = client.earlier_conversation().await;
    for n in 0..3 {
        let event = client.socket_turn(Some(&session), &format!("Finished socket turn {n}.")).await;
        assert!(matches!(event, ServerEvent::Done { .. }), "{event:?}");
    }
    let finished = client.history(&session).await;
    assert_eq!(finished.len(), 10);

    // A turn in the middle of its answer (a word every 300 ms) when the process is killed.
    provider.configure(|behaviour| behaviour.delta_delay = Duration::from_millis(300));
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", first.address)).await.unwrap();
    let ask = ClientMessage::Text {
        session_id: Some(SessionId::new(session.as_str())),
        text: "Cut off by the kill.".into(),
        speak: false,
        speech_rate: None,
        voice: None,
    };
    socket.send(Message::text(serde_json::to_string(&ask).unwrap())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next()).await.expect("the answer starts").unwrap().unwrap();
        let Message::Text(text) = frame else { continue };
        if matches!(serde_json::from_str(text.as_str()).unwrap(), ServerEvent::AnswerDelta { .. }) {
            break;
        }
    }
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();
    provider.configure(|behaviour| behaviour.delta_delay = Duration::ZERO);

    let second = Process::start(&data_dir, &provider.base_url);
    let client = Client::new(&second.address);
    let after = client.history(&session).await;
    assert_eq!(after, finished, "every finished turn once, in order, and nothing of the cut one");
    let (status, body) = client.chat(Some(&session), "After the restart.").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lines = client.history(&session).await;
    assert_eq!((&lines[..10], lines.len()), (&finished[..], 12));
}
