//! Stopping the real `parlance` binary (a child process) with SIGTERM mid-turn: it takes no new connection,
//! lets the turn being answered finish within `--shutdown-grace-secs`, or cuts it at the deadline and stores
//! what the client was sent, marked interrupted; the socket is closed with 1001 and the process exits 0. A
//! restart on the same data directory shows the conversation as stored. The model is the fake provider (the
//! OpenAI wire protocol, `support/fake_openai.rs`), writing its answer a word at a time at a set pace.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use parlance_shared::{ClientMessage, ServerEvent, SessionHistory, SessionId};
use support::fake_openai::{API_KEY, FakeOpenAi};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PATIENCE: Duration = Duration::from_secs(60);

struct Server {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    async fn start(data: &Path, provider: &str, grace_secs: u64) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parlance"));
        command
            .args(["--bind", "127.0.0.1:0", "--models-dir", "/nonexistent-parlance-models", "--frontend-dir", "/nonexistent-frontend"])
            .args(["--openai-base-url", provider, "--openai-api-key", API_KEY, "--embeddings-backend", "none"])
            .args(["--turns-per-minute", "0", "--shutdown-grace-secs", &grace_secs.to_string()])
            .arg("--data-dir")
            .arg(data)
            .env_remove("PARLANCE_TOKEN")
            .env_remove("PARLANCE_TOKEN_FILE")
            .env_remove("PARLANCE_USERS_FILE")
            .env_remove("PARLANCE_OPENAI_BASE_URL")
            .env("RUST_LOG", "info,lance=warn,lancedb=warn,lance_core=warn,lance_index=warn,lance_file=warn,lance_io=warn,datafusion=warn");
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
        let mut server = Self { child, port: 0, lines, seen: Vec::new() };
        let deadline = Instant::now() + PATIENCE;
        let running = loop {
            server.collect();
            if let Some(line) = server.seen.iter().find(|line| line.contains("Parlance is running at http://")) {
                break line.clone();
            }
            let exited = server.child.try_wait().unwrap();
            assert!(exited.is_none() && Instant::now() < deadline, "parlance did not start ({exited:?}):\n{}", server.seen.join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.port = running.rsplit(':').next().unwrap().trim_end_matches('/').parse().expect("a port");
        server
    }

    /// The lines written so far, without the terminal colours the log is written in.
    fn collect(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(without_colours(&line));
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit on its own; its status and how long that took.
    async fn exit(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let asked = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.collect();
                return (status, asked.elapsed());
            }
            assert!(asked.elapsed() < within, "parlance did not exit within {within:?}:\n{}", self.seen.join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn history(&self, session: &SessionId) -> SessionHistory {
        let response = reqwest::get(format!("http://127.0.0.1:{}/api/sessions/{session}", self.port)).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence runs to its final letter (`m` for colours).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ask(port: u16, question: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/ws")).await.expect("socket opens");
    let message = ClientMessage::Text { session_id: None, text: question.into(), speak: false, speech_rate: None, voice: None };
    socket.send(Message::text(serde_json::to_string(&message).unwrap())).await.unwrap();
    socket
}

/// The next event, or the close frame's code and reason.
async fn next(socket: &mut Socket) -> Result<ServerEvent, (CloseCode, String)> {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next()).await.expect("a frame in time").expect("open").expect("reads");
        match frame {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(Some(frame)) => return Err((frame.code, frame.reason.to_string())),
            Message::Close(None) => panic!("closed without a code"),
            _ => continue,
        }
    }
}

/// Reads until `words` pieces of the answer have come.
async fn wait_for_words(socket: &mut Socket, words: usize) -> String {
    let mut written = String::new();
    let mut seen = 0;
    while seen < words {
        if let ServerEvent::AnswerDelta { text } = next(socket).await.expect("the turn goes on") {
            written.push_str(&text);
            seen += 1;
        }
    }
    written
}

async fn refuses_connections(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn answer(words: usize) -> String {
    format!("{}.", (1..=words).map(|n| format!("word{n}")).collect::<Vec<_>>().join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_in_flight_finishes_within_the_grace_period() {
    let provider = FakeOpenAi::start("").await;
    let full = answer(12);
    provider.configure(|fake| {
        fake.answer = Some(full.clone());
        fake.delta_delay = Duration::from_millis(150);
    });
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &provider.base_url, 30).await;
    let port = server.port;
    let mut socket = ask(port, "count for me").await;
    wait_for_words(&mut socket, 1).await;

    server.terminate();
    assert!(refuses_connections(port).await, "a stopping server takes no new connection");
    let session = loop {
        match next(&mut socket).await.expect("the turn finishes before the socket closes") {
            ServerEvent::Done { session_id, answer, .. } => {
                assert_eq!(answer, full);
                break session_id;
            }
            ServerEvent::Error { error } => panic!("the turn failed: {error:?}"),
            _ => {}
        }
    };
    let (code, reason) = next(&mut socket).await.expect_err("then the socket closes");
    assert_eq!(code, CloseCode::Away, "{reason}");
    assert!(reason.contains("shutting down"), "{reason}");
    let (status, _) = server.exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status}:\n{}", server.seen.join("\n"));
    let log = server.seen.join("\n");
    assert!(
        log.lines().any(|line| line.contains("turn_id=") && line.contains("session_id=") && line.contains("answered")),
        "the turn's log lines name it:\n{log}"
    );
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains("cutting the turns"), "nothing was cut:\n{log}");
    drop(server);

    let mut again = Server::start(data.path(), &provider.base_url, 30).await;
    let history = again.history(&session).await;
    let lines: Vec<_> = history.turns.iter().map(|turn| (turn.text.as_str(), turn.interrupted)).collect();
    assert_eq!(lines, [("count for me", false), (full.as_str(), false)]);
    // The request's line is written as its response starts: it may reach the pipe just after the response.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        again.collect();
        if again.seen.iter().any(|line| line.contains("finished processing request") && line.contains("path=/api/sessions/")) {
            break;
        }
        assert!(Instant::now() < deadline, "requests are logged at INFO with their path:\n{}", again.seen.join("\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_still_running_at_the_deadline_is_cut_and_what_was_sent_is_kept() {
    let provider = FakeOpenAi::start("").await;
    let full = answer(60);
    provider.configure(|fake| {
        fake.answer = Some(full.clone());
        fake.delta_delay = Duration::from_millis(200);
    });
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &provider.base_url, 1).await;
    let mut socket = ask(server.port, "count to sixty").await;
    let mut written = wait_for_words(&mut socket, 3).await;

    let asked = Instant::now();
    server.terminate();
    let (session, kept) = loop {
        match next(&mut socket).await.expect("the cut is announced before the socket closes") {
            ServerEvent::AnswerDelta { text } => written.push_str(&text),
            ServerEvent::Interrupted { session_id, kept_answer } => break (session_id, kept_answer),
            other => panic!("unexpected before the cut: {other:?}"),
        }
    };
    assert_eq!(kept, written.trim(), "what the client was sent is kept, no more, no less");
    assert!(full.starts_with(&kept) && kept.len() < full.len(), "{kept:?}");
    let (code, _) = next(&mut socket).await.expect_err("then the socket closes");
    assert_eq!(code, CloseCode::Away);
    let (status, _) = server.exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status}:\n{}", server.seen.join("\n"));
    assert!(asked.elapsed() >= Duration::from_secs(1), "the grace period was given");
    let log = server.seen.join("\n");
    assert!(log.contains("cutting the turns still running"), "{log}");
    assert!(!log.contains("did not stop in time"), "{log}");
    drop(server);

    let again = Server::start(data.path(), &provider.base_url, 30).await;
    let history = again.history(&session).await;
    let lines: Vec<_> = history.turns.iter().map(|turn| (turn.text.as_str(), turn.interrupted)).collect();
    assert_eq!(lines, [("count to sixty", false), (kept.as_str(), true)]);
}
