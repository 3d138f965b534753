//! The real `parlance` binary as a child process. On 0.0.0.0 with no token set, as someone exposing it on a
//! home network would start it: it must make a token, keep it private, print the sign-in link once, refuse
//! everything without it, and use the same token after a restart; its whole output must never show the token
//! anywhere else. And a spoken turn, uploaded or streamed, must leave no audio on disk, in the data directory or
//! in temporary files, unless the audio archive is on; then the archive is swept of old turns at start-up.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Server {
    child: Child,
    port: u16,
    /// Every line it wrote so far, standard output and error.
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &["--bind", "0.0.0.0:0"], &[])
    }

    fn start_with(data_dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parlance"));
        command
            .args(["--models-dir", "/nonexistent-parlance-models", "--frontend-dir", "/nonexistent-frontend"])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("PARLANCE_TOKEN")
            .env_remove("PARLANCE_TOKEN_FILE")
            .env_remove("PARLANCE_USERS_FILE")
            .env_remove("PARLANCE_OPENAI_BASE_URL")
            .env("RUST_LOG", "debug,lance=warn,lancedb=warn,lance_core=warn,lance_index=warn,lance_file=warn,lance_io=warn,lance_encoding=warn,datafusion=warn");
        // An empty value unsets the variable.
        for (name, value) in env {
            if value.as_os_str().is_empty() {
                command.env_remove(name)
            } else {
                command.env(name, value)
            };
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the parlance binary starts");
        let (send, lines) = mpsc::channel();
        for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the readers hold senders: when the process ends, waiting for a line ends too.
        drop(send);
        let mut server = Self { child, port: 0, lines, seen: Vec::new() };
        let running = server.wait_for("Parlance is running at http://");
        let port = running.rsplit(':').next().unwrap().trim_end_matches('/').parse().expect("a port");
        server.port = port;
        server
    }

    /// The first line holding `needle`, among those written so far or, if none, the next ones.
    fn wait_for(&mut self, needle: &str) -> String {
        // Start-up work runs beside the listener: its lines may come before "Parlance is running".
        if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        loop {
            let line =
                self.lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no {needle:?} in:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Stops it and returns everything it wrote.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// A test that fails before `stop` must not leave its server running (two were found still serving hours later).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

#[test]
fn an_exposed_server_makes_a_private_token_prints_its_link_once_and_keeps_it() {
    let data = std::env::temp_dir().join("parlance-test-data").join(uuid::Uuid::new_v4().to_string());
    let mut first = Server::start(&data);
    let link = first.wait_for("#token=");
    let token = link.trim().rsplit("#token=").next().unwrap().to_owned();
    assert_eq!(token.len(), 64, "{link}");
    assert!(link.trim().starts_with("http://127.0.0.1:"), "{link}");

    let file = data.join("token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "only its owner may read the token");
    }

    for path in ["/api/account", "/api/knowledge", "/api/sessions/x", "/api/sessions", "/v1/models", "/metrics"] {
        let (status, body) = get(first.port, path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("\"unauthorized\""), "{body}");
        assert_eq!(get(first.port, path, Some("not-the-token-at-all")).0, 401);
    }
    // The API's description is public: the same for every server of this protocol, naming no build.
    let (status, document) = get(first.port, "/api/openapi.json", None);
    assert_eq!(status, 200, "{document}");
    assert!(!document.contains(env!("CARGO_PKG_VERSION")), "the document names no build");
    let (status, health) = get(first.port, "/health", None);
    assert_eq!(status, 200);
    assert!(!health.contains("stages") && !health.contains("version"), "health says nothing to strangers: {health}");
    let (status, account) = get(first.port, "/api/account", Some(&token));
    assert_eq!((status, account.as_str()), (200, r#"{"name":"owner","admin":true}"#));
    let first_output = first.stop();
    assert_eq!(first_output.matches(&token).count(), 1, "the token appears only in the sign-in link:\n{first_output}");

    // A restart reuses the token and does not print it again.
    let mut second = Server::start(&data);
    second.wait_for("Sign in with the token in");
    assert_eq!(get(second.port, "/api/account", Some(&token)).0, 200);
    assert_eq!(get(second.port, "/api/account", None).0, 401);
    let second_output = second.stop();
    assert!(!second_output.contains(&token), "a later start never shows the token:\n{second_output}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

/// A turn over the socket, streamed as raw PCM16 frames; returns what `done` says.
async fn streamed_turn(port: u16, pcm: &[u8]) -> parlance_shared::ServerEvent {
    use futures::{SinkExt as _, StreamExt as _};
    use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/ws")).await.expect("the socket opens");
    let start =
        ClientMessage::Start { session_id: None, encoding: AudioEncoding::Pcm16, turn_detection: None, speech_rate: None, voice: None };
    socket.send(Message::text(serde_json::to_string(&start).unwrap())).await.unwrap();
    for frame in pcm.chunks(3200) {
        socket.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    socket.send(Message::text(serde_json::to_string(&ClientMessage::EndTurn).unwrap())).await.unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next()).await.expect("the turn ends").unwrap().unwrap();
        let Message::Text(text) = message else { continue };
        match serde_json::from_str::<ServerEvent>(text.as_str()).unwrap() {
            done @ ServerEvent::Done { .. } => return done,
            ServerEvent::Error { error } => panic!("the streamed turn failed: {error}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoken_turn_leaves_no_audio_on_disk() {
    let provider = support::fake_openai::FakeOpenAi::start("What time is it?").await;
    let root = std::env::temp_dir().join("parlance-test-data").join(uuid::Uuid::new_v4().to_string());
    let (data, tmp) = (root.join("data"), root.join("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    // No embeddings: seeding the shipped notes is not what this test is about.
    let args = [
        "--bind",
        "127.0.0.1:0",
        "--openai-base-url",
        &provider.base_url,
        "--openai-api-key",
        support::fake_openai::API_KEY,
        "--embeddings-backend",
        "none",
    ];
    let server = Server::start_with(&data, &args, &[("TMPDIR", &tmp)]);
    let port = server.port;

    let question = support::fake_openai::tone_wav(16_000, 1.0);
    let form = reqwest::multipart::Form::new()
        .part("audio", reqwest::multipart::Part::bytes(question.clone()).file_name("question.wav").mime_str("audio/wav").unwrap());
    let response = reqwest::Client::new().post(format!("http://127.0.0.1:{port}/api/voice")).multipart(form).send().await.unwrap();
    let status = response.status();
    let turn: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{turn}");
    assert!(turn["audio"]["data_base64"].as_str().is_some_and(|audio| !audio.is_empty()), "the answer was spoken: {turn}");
    // And one streamed as the web app streams it (raw PCM16 frames, spoken sentence by sentence).
    let streamed = &question[44..];
    assert!(matches!(streamed_turn(port, streamed).await, parlance_shared::ServerEvent::Done { .. }));
    let output = server.stop();

    // Transcripts are kept (that is the conversation); the recording and the spoken answer are not.
    let stored = files(&root);
    assert!(stored.iter().any(|(path, _)| path.starts_with(&data)), "the conversation was stored");
    let pcm = &question[44..44 + 3200];
    for (path, bytes) in &stored {
        let audio = bytes.windows(4).any(|w| w == b"RIFF" || w == b"OggS" || w == [0x1a, 0x45, 0xdf, 0xa3])
            || bytes.windows(pcm.len()).any(|w| w == pcm);
        assert!(!audio, "audio was written to {}", path.display());
    }
    assert!(!output.contains("audio archive"), "the archive is off by default:\n{output}");
    assert!(files(&tmp).is_empty(), "temporary files were left: {:?}", files(&tmp).iter().map(|(p, _)| p).collect::<Vec<_>>());
    assert!(!output.contains(support::fake_openai::API_KEY), "the provider key is in the log");
    let _ = std::fs::remove_dir_all(&root);
}

/// What a server logs at its default level, through sign-ins right and wrong, a provider with a key and a typed
/// turn: never the token, the key, a wrong token someone tried, nor what the user asked or was answered.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_holds_no_token_key_or_conversation() {
    let provider = support::fake_openai::FakeOpenAi::start("").await;
    let root = std::env::temp_dir().join("parlance-test-data").join(uuid::Uuid::new_v4().to_string());
    let token = "canary-token-5d1f0e9a7b3c2e8f";
    let guessed = "canary-guess-a4c8e2f6b0d9";
    let question = "Where did I leave the canary-coloured umbrella?";
    let args = [
        "--bind",
        "127.0.0.1:0",
        "--token",
        token,
        "--openai-base-url",
        &provider.base_url,
        "--openai-api-key",
        support::fake_openai::API_KEY,
        "--embeddings-backend",
        "none",
    ];
    // RUST_LOG unset: the level a server runs at unless someone asks for more.
    let server = Server::start_with(&root, &args, &[("RUST_LOG", Path::new(""))]);
    let port = server.port;
    let client = reqwest::Client::new();
    let account = format!("http://127.0.0.1:{port}/api/account");
    assert_eq!(client.get(&account).bearer_auth(guessed).send().await.unwrap().status(), 401);
    assert_eq!(client.get(&account).send().await.unwrap().status(), 401);
    let asked = client
        .post(format!("http://127.0.0.1:{port}/api/chat"))
        .bearer_auth(token)
        .json(&serde_json::json!({"text": question}))
        .send()
        .await
        .unwrap();
    let status = asked.status();
    let turn: serde_json::Value = asked.json().await.unwrap();
    assert_eq!(status, 200, "{turn}");
    let answer = turn["answer"].as_str().unwrap().to_owned();
    assert!(answer.contains("umbrella"), "the fake model echoes the question: {answer}");
    let output = server.stop();

    assert!(output.contains("answered"), "the turn was logged:\n{output}");
    for secret in [token, guessed, support::fake_openai::API_KEY, "canary-coloured umbrella", answer.as_str()] {
        assert!(!output.contains(secret), "{secret:?} is in the log:\n{output}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_is_swept_of_old_turns_at_start_up_and_keeps_new_ones_privately() {
    let provider = support::fake_openai::FakeOpenAi::start("What time is it?").await;
    let root = std::env::temp_dir().join("parlance-test-data").join(uuid::Uuid::new_v4().to_string());
    let (data, archive, tmp) = (root.join("data"), root.join("archive"), root.join("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    // A turn archived 40 days ago by an earlier run.
    let old_turn = archive.join("3c1f6f0e-0d1b-4a53-9a55-1d1e2f3a4b5c").join("20261001T120000000Z-0123abcd");
    std::fs::create_dir_all(&old_turn).unwrap();
    let asked_at = chrono::Utc::now() - chrono::TimeDelta::days(40);
    let transcript = serde_json::json!({"version": 1, "session_id": "3c1f6f0e-0d1b-4a53-9a55-1d1e2f3a4b5c",
        "turn_id": "20261001T120000000Z-0123abcd", "asked_at": asked_at, "answered_at": asked_at,
        "question": "old", "answer": "old", "interrupted": false});
    std::fs::write(old_turn.join("transcript.json"), transcript.to_string()).unwrap();
    std::fs::write(old_turn.join("question.wav"), support::fake_openai::tone_wav(16_000, 0.1)).unwrap();

    let args = [
        "--bind",
        "127.0.0.1:0",
        "--openai-base-url",
        &provider.base_url,
        "--openai-api-key",
        support::fake_openai::API_KEY,
        "--embeddings-backend",
        "none",
        "--archive-dir",
        archive.to_str().unwrap(),
        "--archive-days",
        "30",
        "--log-format",
        "json",
    ];
    let mut server = Server::start_with(&data, &args, &[("TMPDIR", &tmp)]);
    let swept: serde_json::Value = serde_json::from_str(&server.wait_for("audio archive swept")).expect("a JSON log line");
    assert_eq!((swept["fields"]["removed"].as_u64(), swept["fields"]["kept"].as_u64()), (Some(1), Some(0)), "{swept}");
    assert!(!old_turn.exists() && !old_turn.parent().unwrap().exists(), "the old turn and its empty conversation folder are gone");

    let question = support::fake_openai::tone_wav(16_000, 1.0);
    let form = reqwest::multipart::Form::new()
        .part("audio", reqwest::multipart::Part::bytes(question.clone()).file_name("question.wav").mime_str("audio/wav").unwrap());
    let response = reqwest::Client::new().post(format!("http://127.0.0.1:{}/api/voice", server.port)).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let turn: serde_json::Value = response.json().await.unwrap();
    let session = turn["session_id"].as_str().unwrap();
    let output = server.stop();

    let kept = files(&archive.join(session));
    let names: Vec<String> = kept.iter().map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(kept.len(), 3, "{names:?}");
    let (_, recording) = kept.iter().find(|(path, _)| path.ends_with("question.wav")).expect("the recording is kept");
    assert_eq!(recording, &question);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for (path, _) in &kept {
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
            assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(std::fs::metadata(archive.join(session)).unwrap().permissions().mode() & 0o777, 0o700);
    }
    // The folder itself was made by this test, open to others: Parlance says so (and leaves the choice to its owner).
    assert!(output.contains("the archive folder is readable by other users"), "{output}");
    assert!(files(&tmp).is_empty(), "temporary files were left");
    // The log names turns, never what was said.
    let archive_lines: Vec<&str> = output.lines().filter(|line| line.contains("archive")).collect();
    assert!(archive_lines.iter().all(|line| !line.contains("What time is it")), "{archive_lines:?}");
    let _ = std::fs::remove_dir_all(&root);
}
