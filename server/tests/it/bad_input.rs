//! Bad input, as an attacker or a broken client sends it, over a real port: HTTP requests and socket messages.
//! Each case gets the right status (or `error` event) with the shared error body, the server keeps serving
//! (a normal turn works after each case), and nothing stored before is changed (the conversations and notes are
//! compared before and after every case).
//!
//! Real storage (LanceDB under a fresh data directory), real speech-to-text (Whisper tiny.en, since decoding and
//! hearing nothing are the point of the audio cases) and real embeddings for the notes; the language model and
//! the voice are fakes in the process (`support/fake_stages.rs`): what they answer is not the point here.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_server::models::catalog::WHISPER_TINY_EN;
use parlance_server::stt::LocalStt;
use parlance_server::{AppState, Stages};
use parlance_shared::{ClientMessage, ServerEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fake_stages::FakeStages;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest message a refusal needs: its own words and at most a short quote of the input.
const LONGEST_MESSAGE: usize = 400;
/// What libraries say when they panic on bad input, which must not reach the user as our message.
const LIBRARY_PANICS: [&str; 3] = ["panicked", "assertion", "must be read before calling this function"];
/// Long enough for anything here on a busy machine; a case that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(30);
/// What the spoken recording says (espeak-ng), and what the fake model is asked in the normal turns.
const SPOKEN: &str = "What is the capital of France?";

/// Test audio made once per run with the tools `scripts/setup.sh` installs.
struct Recordings {
    /// About two seconds of espeak-ng speech, 16 kHz mono PCM WAV.
    speech_wav: Vec<u8>,
    /// The same speech as a browser records it: Opus in WebM.
    speech_webm: Vec<u8>,
    /// Ten minutes of tone, 16 kHz mono PCM WAV (about 19 MB: under the upload limit, over the length limit).
    ten_minutes: Vec<u8>,
}

static RECORDINGS: LazyLock<Recordings> = LazyLock::new(|| {
    let dir = support::fresh_data_dir();
    let spoken = support::speech::speak(&dir, "question", SPOKEN);
    let speech_wav = resampled(&dir, &spoken, "speech-16k.wav");
    let webm = dir.join("speech.webm");
    support::speech::run("ffmpeg", &["-loglevel", "error", "-y", "-i", path(&spoken), "-c:a", "libopus", "-b:a", "24k", path(&webm)]);
    let ten = dir.join("ten-minutes.wav");
    let tone = ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=600:sample_rate=16000"];
    support::speech::run("ffmpeg", &[&tone[..], &["-ac", "1", "-c:a", "pcm_s16le", path(&ten)]].concat());
    Recordings { speech_wav, speech_webm: std::fs::read(&webm).unwrap(), ten_minutes: std::fs::read(&ten).unwrap() }
});

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn resampled(dir: &Path, wav: &Path, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    support::speech::run(
        "ffmpeg",
        &["-loglevel", "error", "-y", "-i", path(wav), "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", path(&out)],
    );
    std::fs::read(out).unwrap()
}

/// A mono 16-bit WAV header whose sizes claim `seconds` of audio at 16 kHz, whatever follows it.
fn wav_header_claiming(seconds: u32) -> Vec<u8> {
    let data_bytes = seconds * 16_000 * 2;
    let mut header = b"RIFF".to_vec();
    header.extend_from_slice(&(data_bytes + 36).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&[16, 0, 0, 0, 1, 0, 1, 0]);
    header.extend_from_slice(&16_000u32.to_le_bytes());
    header.extend_from_slice(&32_000u32.to_le_bytes());
    header.extend_from_slice(&[2, 0, 16, 0]);
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_bytes.to_le_bytes());
    header
}

/// `seconds` of digital silence as a 16 kHz WAV file.
fn silence_wav(seconds: u32) -> Vec<u8> {
    let mut wav = wav_header_claiming(seconds);
    wav.resize(wav.len() + (seconds * 16_000 * 2) as usize, 0);
    wav
}

/// Bytes no format recognises (a fixed seed: the same run every time).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A typed turn with an extra field nested `depth` arrays deep: the parser descends into it to skip it.
fn nested_json(depth: usize) -> String {
    format!("{{\"type\": \"text\", \"text\": \"hi\", \"extra\": {}{}}}", "[".repeat(depth), "]".repeat(depth))
}

struct Server {
    address: String,
    http: reqwest::Client,
    data_dir: PathBuf,
    /// The conversations and notes stored before any bad input.
    sessions: Vec<String>,
    notes: Vec<String>,
}

impl Server {
    async fn start() -> Self {
        let fakes = FakeStages::new("unused: speech-to-text is Whisper here");
        fakes.configure(|behaviour| behaviour.answer = Some("Paris is the capital of France.".into()));
        let data_dir = support::fresh_data_dir();
        let settings = fakes.settings(&["--data-dir", path(&data_dir), "--turns-per-minute", "0", "--sockets-per-client", "0"]);
        let stt = LocalStt::load(&support::installed_model(&WHISPER_TINY_EN)).expect("Whisper loads");
        let stages = Stages { stt: Some(Arc::new(stt)), embedder: Some(Arc::new(support::local_embeddings())), ..fakes.stages() };
        let app = parlance_server::router(AppState::on_disk(&settings, stages), &settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
        let mut server = Self { address, http: reqwest::Client::new(), data_dir, sessions: Vec::new(), notes: Vec::new() };
        server.store_earlier_data().await;
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Two conversations (one over HTTP, one over the socket) and two notes, before any bad input.
    async fn store_earlier_data(&mut self) {
        let (first, _) = self.chat_turn(None, "Remember the first conversation.").await;
        self.chat_turn(Some(&first), "And its second line.").await;
        let second = self.socket_turn("A conversation over the socket.").await;
        self.sessions = vec![first, second];
        let notes = json!({"notes": [
            {"title": "Bike", "text": "The bike is a blue Trek with a new chain."},
            {"title": "Boiler", "text": "The boiler is serviced every October."},
        ]});
        let response = self.http.post(self.url("/api/knowledge")).json(&notes).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        let added: Value = response.json().await.unwrap();
        self.notes = added["notes"].as_array().unwrap().iter().map(|note| note["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(self.notes.len(), 2);
    }

    /// A typed turn over HTTP; the session and the answer.
    async fn chat_turn(&self, session: Option<&str>, text: &str) -> (String, String) {
        let response = self.http.post(self.url("/api/chat")).json(&json!({"text": text, "session_id": session})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a normal turn fails: {}", response.text().await.unwrap());
        let body: Value = response.json().await.unwrap();
        (body["session_id"].as_str().unwrap().to_owned(), body["answer"].as_str().unwrap().to_owned())
    }

    /// A typed turn on a new socket; its session.
    async fn socket_turn(&self, text: &str) -> String {
        let mut socket = Socket::connect(&self.address).await;
        socket.ask(text).await
    }

    /// The stored conversations and notes as the API returns them.
    async fn stored(&self) -> Vec<Value> {
        let mut stored = Vec::new();
        for session in &self.sessions {
            let response = self.http.get(self.url(&format!("/api/sessions/{session}"))).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "an earlier conversation is gone");
            stored.push(response.json().await.unwrap());
        }
        let page: Value = self.http.get(self.url("/api/knowledge?limit=100")).send().await.unwrap().json().await.unwrap();
        let mut notes: Vec<Value> = page["notes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|note| self.notes.iter().any(|id| note["id"] == id.as_str()))
            .cloned()
            .collect();
        notes.sort_by_key(|note| note["id"].as_str().unwrap().to_owned());
        assert_eq!(notes.len(), self.notes.len(), "an earlier note is gone: {page}");
        stored.push(Value::Array(notes));
        stored
    }

    /// The server still answers a typed question over HTTP and over a new socket.
    async fn still_serves(&self, case: &str) {
        let (_, answer) = self.chat_turn(None, SPOKEN).await;
        assert!(answer.contains("Paris"), "after {case}: {answer}");
        self.socket_turn(SPOKEN).await;
    }
}

/// What a case must get back: the status and the error code, or (for a few inputs that are odd but readable) a
/// normal answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Error(StatusCode, &'static str),
    Answer,
    /// Either is right: what is there is decoded and answered, or it is refused with our own message.
    AnswerOr(StatusCode, &'static str),
}

/// One bad HTTP request.
struct HttpCase {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
    expect: Expect,
    /// Sent as written over a plain TCP connection: HTTP clients resolve `..` in a path before sending it.
    raw: bool,
}

fn post(name: &'static str, path: &str, content_type: &str, body: impl Into<Vec<u8>>, expect: Expect) -> HttpCase {
    HttpCase {
        name,
        method: reqwest::Method::POST,
        path: path.to_owned(),
        content_type: Some(content_type.to_owned()).filter(|t| !t.is_empty()),
        body: body.into(),
        expect,
        raw: false,
    }
}

fn get(name: &'static str, path: &str, expect: Expect) -> HttpCase {
    HttpCase { name, method: reqwest::Method::GET, path: path.to_owned(), content_type: None, body: Vec::new(), expect, raw: false }
}

/// A GET of `path` exactly as written: the status and the body.
async fn raw_get(address: &str, path: &str) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut connection = TcpStream::connect(address).await.unwrap();
    connection.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = Vec::new();
    connection.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (StatusCode::from_u16(status).unwrap(), serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

/// A multipart form with one file field; `(content type, body)`.
fn form(field: &str, file_name: &str, file_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = support::BOUNDARY;
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: {file_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn voice(name: &'static str, file_type: &str, bytes: &[u8], expect: Expect) -> HttpCase {
    let (content_type, body) = form("audio", "question.webm", file_type, bytes);
    post(name, "/api/voice", &content_type, body, expect)
}

fn http_cases() -> Vec<HttpCase> {
    use Expect::{Answer, AnswerOr, Error};
    let recordings = &*RECORDINGS;
    let json = "application/json";
    let unknown_session = uuid::Uuid::new_v4();
    let mut lying_wav = wav_header_claiming(10 * 60 * 60);
    lying_wav.extend_from_slice(&recordings.speech_wav[44..]);
    let cut_webm = &recordings.speech_webm[..recordings.speech_webm.len() / 2];
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01";
    let fifty_mib = vec![0u8; 50 * 1024 * 1024];
    let (traversal_type, traversal_body) =
        form("file", "../../../../../../tmp/parlance-escaped.md", "text/markdown", b"# Escaped\n\nNot a path.");
    let long_name = format!("{}.md", "n".repeat(5000));
    let (long_name_type, long_name_body) = form("file", &long_name, "text/markdown", b"\x00\x01 binary");
    vec![
        post("empty JSON body", "/api/chat", json, "", Error(StatusCode::BAD_REQUEST, "invalid_request")),
        post("malformed JSON", "/api/chat", json, "{\"text\": \"hi", Error(StatusCode::BAD_REQUEST, "invalid_request")),
        // Skipped without recursion, inside the body limit: nothing to refuse.
        post("deeply nested JSON in an extra field", "/api/chat", json, nested_json(100_000), Answer),
        post(
            "deeply nested JSON where text goes",
            "/api/chat",
            json,
            format!("{{\"text\": {}\"hi\"{}}}", "[".repeat(100_000), "]".repeat(100_000)),
            Error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        post("JSON of the wrong shape", "/api/chat", json, "{\"text\": 42}", Error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")),
        post("not JSON at all", "/api/chat", "text/xml", "<text>hi</text>", Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request")),
        post(
            "huge text (1 MiB)",
            "/api/chat",
            json,
            json!({"text": "a".repeat(1024 * 1024)}).to_string(),
            Error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ),
        post(
            "text over the question limit",
            "/api/chat",
            json,
            json!({"text": "word ".repeat(2000)}).to_string(),
            Error(StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        post(
            "unknown session id",
            "/api/chat",
            json,
            json!({"text": "hi", "session_id": unknown_session.to_string()}).to_string(),
            Error(StatusCode::NOT_FOUND, "session_not_found"),
        ),
        post(
            "malformed session id",
            "/api/chat",
            json,
            json!({"text": "hi", "session_id": "../../x' OR '1'='1\u{0}"}).to_string(),
            Error(StatusCode::NOT_FOUND, "session_not_found"),
        ),
        post(
            "a session id of 100 KiB",
            "/api/chat",
            json,
            json!({"text": "hi", "session_id": "s".repeat(100 * 1024)}).to_string(),
            Error(StatusCode::NOT_FOUND, "session_not_found"),
        ),
        post(
            "a voice the server does not have",
            "/api/chat",
            json,
            json!({"text": "hi", "voice": "en_GB-alan-medium"}).to_string(),
            Error(StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        post(
            "a voice of 100 KiB",
            "/api/chat",
            json,
            json!({"text": "hi", "voice": "v".repeat(100 * 1024)}).to_string(),
            Error(StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        get(
            "history of an unknown session",
            &format!("/api/sessions/{unknown_session}"),
            Error(StatusCode::NOT_FOUND, "session_not_found"),
        ),
        get("history of a traversal id", "/api/sessions/..%2F..%2F..%2Fetc%2Fpasswd", Error(StatusCode::NOT_FOUND, "session_not_found")),
        HttpCase { raw: true, ..get("a path that climbs out", "/api/../../../../etc/passwd", Error(StatusCode::NOT_FOUND, "not_found")) },
        post(
            "voice: empty body",
            "/api/voice",
            &format!("multipart/form-data; boundary={}", support::BOUNDARY),
            "",
            Error(StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        voice("voice: 0-byte audio", "audio/webm", b"", Error(StatusCode::BAD_REQUEST, "missing_audio")),
        voice("voice: 50 MiB upload", "audio/wav", &fifty_mib, Error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")),
        voice(
            "voice: random bytes",
            "audio/webm",
            &random_bytes(64 * 1024),
            Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ),
        voice("voice: a PNG labelled audio/webm", "audio/webm", png, Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")),
        voice("voice: WAV labelled image/png", "image/png", &recordings.speech_wav, Answer),
        post(
            "voice: audio sent as the whole body",
            "/api/voice",
            "audio/wav",
            recordings.speech_wav.clone(),
            Error(StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        voice("voice: a WAV header claiming 10 hours", "audio/wav", &lying_wav, Answer),
        voice(
            "voice: a WAV header claiming 10 hours, nothing after",
            "audio/wav",
            &wav_header_claiming(10 * 60 * 60),
            Error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        voice("voice: 5 s of silence", "audio/wav", &silence_wav(5), Error(StatusCode::UNPROCESSABLE_ENTITY, "no_speech")),
        voice(
            "voice: a 10-minute recording",
            "audio/wav",
            &recordings.ten_minutes,
            Error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ),
        voice("voice: a WebM cut in half", "audio/webm", cut_webm, AnswerOr(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")),
        voice(
            "voice: a WebM cut inside its header",
            "audio/webm",
            &recordings.speech_webm[..300],
            Error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        post("note: a file name that climbs out", "/api/knowledge", &traversal_type, traversal_body, Answer),
        post(
            "note: a 5000-character file name",
            "/api/knowledge",
            &long_name_type,
            long_name_body,
            Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ),
        post(
            "note: deeply nested JSON",
            "/api/knowledge",
            json,
            format!("{{\"notes\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000)),
            Error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        get(
            "search: a 40 KiB query",
            &format!("/api/knowledge/search?q={}", "q".repeat(40 * 1024)),
            Error(StatusCode::URI_TOO_LONG, "payload_too_large"),
        ),
    ]
}

#[tokio::test]
async fn every_bad_request_gets_its_status_and_the_error_body_and_changes_nothing() {
    let server = Server::start().await;
    let before = server.stored().await;
    let cases = http_cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let (status, body) = if case.raw { raw_get(&server.address, &case.path).await } else { send(&server, case).await };
        if let Some(problem) = judge(case.expect, status, &body) {
            failures.push(format!("{}: {problem}", case.name));
        }
        server.still_serves(case.name).await;
        assert_eq!(server.stored().await, before, "{} changed the earlier conversations or notes", case.name);
    }
    assert!(!Path::new("/tmp/parlance-escaped.md").exists(), "an uploaded file name wrote outside the data directory");
    assert!(!files_under(&server.data_dir).iter().any(|file| file.contains("escaped")), "an uploaded file name became a file");
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Every path under `dir`.
fn files_under(dir: &Path) -> Vec<String> {
    let mut paths = vec![dir.to_owned()];
    let mut files = Vec::new();
    while let Some(path) = paths.pop() {
        match std::fs::read_dir(&path) {
            Ok(entries) => paths.extend(entries.map(|entry| entry.unwrap().path())),
            Err(_) => files.push(path.display().to_string()),
        }
    }
    files
}

/// The case's request through an HTTP client: the status and the body.
async fn send(server: &Server, case: &HttpCase) -> (StatusCode, Value) {
    let mut request = server.http.request(case.method.clone(), server.url(&case.path)).body(case.body.clone());
    if let Some(content_type) = &case.content_type {
        request = request.header("content-type", content_type);
    }
    let response = tokio::time::timeout(PATIENCE, request.send()).await.expect("an answer within the patience");
    match response {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
        }
        // The server may answer a refused upload before reading it all and close the connection.
        Err(error) => panic!("{}: no response ({})", case.name, error.without_url()),
    }
}

/// Why the answer is wrong for what was expected, if it is.
fn judge(expect: Expect, status: StatusCode, body: &Value) -> Option<String> {
    match expect {
        Expect::Answer | Expect::AnswerOr(..) if status == StatusCode::OK => None,
        Expect::Answer => Some(format!("expected an answer, got {status}: {}", short(body))),
        Expect::Error(want, code) | Expect::AnswerOr(want, code) if status == want && body["code"] == code => {
            let message = body["message"].as_str().unwrap_or_default();
            if message.len() < 10 {
                Some(format!("a message too thin to help: {body}"))
            } else if message.chars().count() > LONGEST_MESSAGE {
                Some(format!("a message of {} characters (echoes the input?): {}", message.chars().count(), short(body)))
            } else if LIBRARY_PANICS.iter().any(|panic| message.contains(panic)) {
                Some(format!("a library's panic in the message: {message}"))
            } else {
                None
            }
        }
        Expect::AnswerOr(want, code) => Some(format!("expected an answer or {want} {code}, got {status}: {}", short(body))),
        Expect::Error(want, code) => Some(format!("expected {want} {code}, got {status}: {}", short(body))),
    }
}

fn short(body: &Value) -> String {
    body.to_string().chars().take(400).collect()
}

/// A socket client.
struct Socket {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    async fn connect(address: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("socket opens");
        Self { socket }
    }

    async fn send(&mut self, message: Message) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.socket.send(message).await
    }

    async fn send_json(&mut self, message: &ClientMessage) {
        self.send(Message::text(serde_json::to_string(message).unwrap())).await.expect("socket sends");
    }

    /// The next event, or the close frame's code when the server closes instead.
    async fn next(&mut self) -> Result<ServerEvent, Option<CloseCode>> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next()).await.expect("a frame within the patience");
            match frame {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str()).expect("events are ServerEvents")),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
                Some(Ok(other)) => panic!("unexpected frame: {other:?}"),
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Events until the turn ends (`done` or `error`), skipping statuses and the answer's pieces.
    async fn outcome(&mut self) -> Result<ServerEvent, Option<CloseCode>> {
        loop {
            let event = self.next().await?;
            if matches!(event, ServerEvent::Done { .. } | ServerEvent::Error { .. }) {
                return Ok(event);
            }
        }
    }

    /// A typed question answered on this socket; its session.
    async fn ask(&mut self, text: &str) -> String {
        self.send_json(&ClientMessage::Text { session_id: None, text: text.into(), speak: false, speech_rate: None, voice: None }).await;
        match self.outcome().await {
            Ok(ServerEvent::Done { session_id, answer, .. }) => {
                assert!(answer.contains("Paris"), "{answer}");
                session_id.to_string()
            }
            other => panic!("a normal socket turn did not finish: {other:?}"),
        }
    }
}

/// One bad exchange on a socket: what the client sends, then what it must get.
struct SocketCase {
    name: &'static str,
    send: Vec<Message>,
    expect: Expect,
    /// The server closes the socket after the error, with this code.
    closes: Option<CloseCode>,
}

fn start(encoding: &str) -> Message {
    Message::text(json!({"type": "start", "encoding": encoding}).to_string())
}

fn end_turn() -> Message {
    Message::text(json!({"type": "end_turn"}).to_string())
}

fn socket_cases() -> Vec<SocketCase> {
    use Expect::{Answer, Error};
    let recordings = &*RECORDINGS;
    let invalid = Error(StatusCode::BAD_REQUEST, "invalid_request");
    let case = |name, send, expect| SocketCase { name, send, expect, closes: None };
    let text = |value: Value| Message::text(value.to_string());
    let pcm_silence = vec![0u8; 16_000 * 2 * 3];
    let cut_webm = recordings.speech_webm[..300].to_vec();
    let half_webm = recordings.speech_webm[..recordings.speech_webm.len() / 2].to_vec();
    vec![
        case("binary frames before start", vec![Message::binary(vec![1u8; 4096])], invalid),
        case("malformed JSON", vec![Message::text("{\"type\": \"text\", \"text\": ")], invalid),
        case("deeply nested JSON", vec![Message::text(nested_json(100_000))], invalid),
        case("an unknown message type", vec![text(json!({"type": "format_disk"}))], invalid),
        case("end_turn without start", vec![end_turn()], invalid),
        case("a second start", vec![start("wav"), start("wav")], invalid),
        case(
            "an unknown session id",
            vec![text(json!({"type": "text", "text": "hi", "session_id": uuid::Uuid::new_v4().to_string()}))],
            Error(StatusCode::NOT_FOUND, "session_not_found"),
        ),
        case(
            "a session id of 100 KiB",
            vec![text(json!({"type": "text", "text": "hi", "session_id": "s".repeat(100 * 1024)}))],
            Error(StatusCode::NOT_FOUND, "session_not_found"),
        ),
        case("text over the question limit", vec![text(json!({"type": "text", "text": "word ".repeat(2000), "speak": false}))], invalid),
        case("a voice the server does not have", vec![text(json!({"type": "text", "text": "hi", "voice": "en_GB-alan-medium"}))], invalid),
        case(
            "a start with a voice of 100 KiB",
            vec![text(json!({"type": "start", "encoding": "wav", "voice": "v".repeat(100 * 1024)}))],
            invalid,
        ),
        case("an empty recording", vec![start("webm"), end_turn()], Error(StatusCode::BAD_REQUEST, "missing_audio")),
        case(
            "random bytes as WAV",
            vec![start("wav"), Message::binary(random_bytes(8192)), end_turn()],
            Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ),
        case(
            "3 s of silence as PCM",
            vec![start("pcm16"), Message::binary(pcm_silence), end_turn()],
            Error(StatusCode::UNPROCESSABLE_ENTITY, "no_speech"),
        ),
        case(
            "a WebM cut inside its header",
            vec![start("webm"), Message::binary(cut_webm), end_turn()],
            Error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        case(
            "a WebM cut in half",
            vec![start("webm"), Message::binary(half_webm), end_turn()],
            Expect::AnswerOr(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        case(
            "a spoken WAV split in frames",
            vec![
                start("wav"),
                Message::binary(recordings.speech_wav[..5000].to_vec()),
                Message::binary(recordings.speech_wav[5000..].to_vec()),
                end_turn(),
            ],
            Answer,
        ),
        SocketCase {
            name: "a 100 MB message",
            send: vec![Message::binary(vec![0u8; 100 * 1000 * 1000])],
            expect: Error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            closes: Some(CloseCode::Size),
        },
    ]
}

#[tokio::test]
async fn every_bad_socket_message_gets_an_error_event_and_changes_nothing() {
    let server = Server::start().await;
    let before = server.stored().await;
    let mut failures = Vec::new();
    for case in socket_cases() {
        let mut socket = Socket::connect(&server.address).await;
        for message in case.send {
            // The server may refuse a huge message before it is all sent.
            if socket.send(message).await.is_err() {
                break;
            }
        }
        let outcome = socket.outcome().await;
        let problem = match (case.expect, &outcome) {
            (Expect::Answer | Expect::AnswerOr(..), Ok(ServerEvent::Done { .. })) => None,
            (Expect::Error(_, code), Ok(ServerEvent::Error { error })) => {
                let body = serde_json::to_value(error).unwrap();
                // A socket's error event has no status: the code and message are what the client sees.
                judge(Expect::Error(StatusCode::OK, code), StatusCode::OK, &body)
            }
            (Expect::AnswerOr(_, code), Ok(ServerEvent::Error { error })) => {
                let body = serde_json::to_value(error).unwrap();
                judge(Expect::Error(StatusCode::OK, code), StatusCode::OK, &body)
            }
            (_, other) => Some(format!("expected {:?}, got {other:?}", case.expect)),
        };
        if let Some(problem) = problem {
            failures.push(format!("{}: {problem}", case.name));
        }
        match case.closes {
            Some(code) => {
                let closed = socket.next().await;
                if closed != Err(Some(code)) {
                    failures.push(format!("{}: expected a close with {code}, got {closed:?}", case.name));
                }
            }
            // The same socket goes on: the bad message cost the client nothing else.
            None => {
                // A case that left a recording open ends it first, as a client would.
                socket.send(Message::text(json!({"type": "interrupt"}).to_string())).await.expect("socket sends");
                socket.ask(SPOKEN).await;
            }
        }
        server.still_serves(case.name).await;
        assert_eq!(server.stored().await, before, "{} changed the earlier conversations or notes", case.name);
    }
    assert!(failures.is_empty(), "socket cases failed:\n{}", failures.join("\n"));
}
