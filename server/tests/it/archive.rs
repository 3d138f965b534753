//! The opt-in audio archive (`--archive-dir`), through the whole router on fake stages in the process: what a
//! spoken, typed or streamed turn keeps (question audio as received, the answer's audio, the transcript), the
//! answer cut to what was played after a barge-in, listing and downloading over the API with the
//! conversation's own access rules, retention, deletion with the conversation, and nothing at all when it is off.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use parlance_server::archive::{Archive, SweepReport};
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, SessionArchive, SessionId};
use serde_json::{Value, json};
use support::fake_openai::tone_wav;
use support::fake_stages::FakeStages;
use support::{BOUNDARY, assert_error, multipart_body};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

const ALICE: &str = "alice-token-7f3a9c2e41d8";
const BOB: &str = "bob-token-0c5e8b1d92a7f6";
const CAROL: &str = "carol-token-2b9d7e4f1a6c";
/// Long enough for any fake stage on a busy machine; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(30);

/// A folder for the archive that does not exist yet: the server makes it.
fn archive_dir() -> PathBuf {
    support::fresh_data_dir().join("archive")
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.bytes).into_owned()))
    }
}

async fn call(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, bytes }
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().uri(uri).header(header::HOST, "127.0.0.1:8080");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

fn voice(audio: &[u8], token: Option<&str>, session: Option<&str>) -> Request<Body> {
    let mut parts: Vec<support::Part> = vec![("audio", Some("question.wav"), audio)];
    if let Some(session) = session {
        parts.push(("session_id", None, session.as_bytes()));
    }
    let mut builder = Request::builder()
        .method("POST")
        .uri("/api/voice")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"));
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from(multipart_body(&parts))).unwrap()
}

async fn archive_of(app: &Router, session: &str, token: Option<&str>) -> SessionArchive {
    let reply = call(app, get(&format!("/api/sessions/{session}/archive"), token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    serde_json::from_slice(&reply.bytes).expect("a SessionArchive")
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path).into_iter().map(|p| Path::new(&entry.file_name()).join(p)));
        } else {
            found.push(PathBuf::from(entry.file_name()));
        }
    }
    found.sort();
    found
}

/// The samples of a 16-bit WAV file.
fn samples(wav: &[u8]) -> Vec<i16> {
    hound::WavReader::new(std::io::Cursor::new(wav)).expect("a WAV file").into_samples::<i16>().map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_spoken_turn_keeps_its_recording_answer_and_transcript_listed_and_downloadable() {
    let provider = FakeStages::new("What time is it?");
    let dir = archive_dir();
    let app = provider.app(&["--archive-dir", dir.to_str().unwrap()]);
    let question = tone_wav(16_000, 0.5);
    let turn = call(&app, voice(&question, None, None)).await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.json());
    let turn = turn.json();
    let session = turn["session_id"].as_str().unwrap().to_owned();
    let spoken = base64::engine::general_purpose::STANDARD.decode(turn["audio"]["data_base64"].as_str().unwrap()).unwrap();

    let archive = archive_of(&app, &session, None).await;
    assert_eq!(archive.session_id, SessionId::new(session.clone()));
    let [entry] = archive.entries.as_slice() else { panic!("one archived turn: {archive:?}") };
    assert_eq!(entry.question, "What time is it?");
    assert_eq!(entry.answer, turn["answer"].as_str().unwrap());
    assert!(!entry.interrupted);
    assert!(entry.asked_at <= entry.answered_at && entry.answered_at <= chrono::Utc::now());
    let question_audio = entry.question_audio.as_ref().expect("the recording is kept");
    let answer_audio = entry.answer_audio.as_ref().expect("the spoken answer is kept");
    assert_eq!((question_audio.mime_type.as_str(), question_audio.bytes), ("audio/wav", question.len() as u64));
    assert_eq!((answer_audio.mime_type.as_str(), answer_audio.bytes), ("audio/wav", spoken.len() as u64));
    assert_eq!(question_audio.url, format!("/api/sessions/{session}/archive/{}/question", entry.turn_id));

    // Downloaded as they were received and sent, with their type; never cached.
    for (url, expected) in [(&question_audio.url, &question), (&answer_audio.url, &spoken)] {
        let download = call(&app, get(url, None)).await;
        assert_eq!(download.status, StatusCode::OK, "{url}");
        assert_eq!(download.headers[header::CONTENT_TYPE], "audio/wav");
        assert_eq!(download.headers[header::CACHE_CONTROL], "private, no-store");
        assert_eq!(download.bytes.as_ref(), expected.as_slice(), "{url}");
    }
    // Players ask for ranges.
    let mut range = get(&question_audio.url, None);
    range.headers_mut().insert(header::RANGE, "bytes=0-3".parse().unwrap());
    let partial = call(&app, range).await;
    assert_eq!((partial.status, partial.bytes.as_ref()), (StatusCode::PARTIAL_CONTENT, b"RIFF".as_slice()));

    // On disk: one folder per conversation and turn, only its owner may enter or read.
    let turn_dir = dir.join(&session).join(&entry.turn_id);
    assert_eq!(
        files_under(&dir.join(&session)),
        ["answer.wav", "question.wav", "transcript.json"].map(|f| Path::new(&entry.turn_id).join(f))
    );
    let transcript: Value = serde_json::from_slice(&std::fs::read(turn_dir.join("transcript.json")).unwrap()).unwrap();
    assert_eq!((transcript["question"].as_str(), transcript["interrupted"].as_bool()), (Some("What time is it?"), Some(false)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join(&session)), mode(&turn_dir)), (0o700, 0o700, 0o700));
        for file in ["question.wav", "answer.wav", "transcript.json"] {
            assert_eq!(mode(&turn_dir.join(file)), 0o600, "{file}");
        }
    }

    // A typed question answered aloud keeps the answer's audio; one answered in text only has no audio to keep.
    let typed =
        call(&app, support::signed_request("POST", "/api/chat", None, Some(&json!({"text": "Hello there", "session_id": session})))).await;
    assert_eq!(typed.status, StatusCode::OK, "{}", typed.json());
    let silent = json!({"text": "And quietly?", "session_id": session, "speak": false});
    assert_eq!(call(&app, support::signed_request("POST", "/api/chat", None, Some(&silent))).await.status, StatusCode::OK);
    let archive = archive_of(&app, &session, None).await;
    assert_eq!(archive.entries.len(), 2, "{archive:?}");
    let typed_entry = &archive.entries[1];
    assert!(archive.entries[0].turn_id < typed_entry.turn_id, "oldest first");
    assert_eq!(typed_entry.question, "Hello there");
    assert!(typed_entry.question_audio.is_none() && typed_entry.answer_audio.is_some(), "{typed_entry:?}");
    let missing = call(&app, get(&format!("/api/sessions/{session}/archive/{}/question", typed_entry.turn_id), None)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_error(&missing.json(), "not_found");

    // Unknown turns and sides, and ids shaped to climb out of the folder, are all simply not found.
    for path in [
        format!("/api/sessions/{session}/archive/20200101T000000000Z-00000000/question"),
        format!("/api/sessions/{session}/archive/{}/transcript", entry.turn_id),
        format!("/api/sessions/{session}/archive/..%2F..%2Fx/question"),
        "/api/sessions/..%2F..%2Fetc/archive".to_owned(),
    ] {
        let reply = call(&app, get(&path, None)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {}", reply.json());
        let code = reply.json()["code"].as_str().unwrap().to_owned();
        assert!(code == "not_found" || code == "session_not_found", "{path}: {code}");
    }
}

#[tokio::test]
async fn a_failed_archive_write_still_answers_the_turn() {
    let provider = FakeStages::new("What time is it?");
    let dir = archive_dir();
    let app = provider.app(&["--archive-dir", dir.to_str().unwrap()]);
    // The folder turns into a file after start-up: nothing can be written under it.
    std::fs::remove_dir(&dir).unwrap();
    std::fs::write(&dir, b"not a folder").unwrap();
    let turn = call(&app, voice(&tone_wav(16_000, 0.5), None, None)).await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.json());
    assert!(turn.json()["audio"]["data_base64"].as_str().is_some_and(|audio| !audio.is_empty()));
    let session = turn.json()["session_id"].as_str().unwrap().to_owned();
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    assert!(archive_of(&app, &session, None).await.entries.is_empty());
}

#[tokio::test]
async fn old_turns_are_swept_and_deleting_the_conversation_deletes_its_archive() {
    let provider = FakeStages::new("What time is it?");
    let dir = archive_dir();
    let app = provider.app(&["--archive-dir", dir.to_str().unwrap(), "--archive-days", "30"]);
    let first = call(&app, voice(&tone_wav(16_000, 0.5), None, None)).await.json();
    let session = first["session_id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(call(&app, voice(&tone_wav(16_000, 0.5), None, Some(&session))).await.status, StatusCode::OK);
    }
    let entries = archive_of(&app, &session, None).await.entries;
    assert_eq!(entries.len(), 3);

    // The first turn was asked 31 days ago; the second's transcript was lost (a crash while writing) and its
    // folder is as old; the third is recent. A file of someone else's in the archive folder is not touched.
    let old = chrono::Utc::now() - chrono::TimeDelta::days(31);
    let first_transcript = dir.join(&session).join(&entries[0].turn_id).join("transcript.json");
    let mut transcript: Value = serde_json::from_slice(&std::fs::read(&first_transcript).unwrap()).unwrap();
    transcript["asked_at"] = json!(old);
    std::fs::write(&first_transcript, serde_json::to_vec(&transcript).unwrap()).unwrap();
    let second_dir = dir.join(&session).join(&entries[1].turn_id);
    std::fs::remove_file(second_dir.join("transcript.json")).unwrap();
    std::fs::File::open(&second_dir).unwrap().set_modified(old.into()).unwrap();
    std::fs::write(dir.join("README.txt"), b"my own file").unwrap();

    // Kept forever with 0 days.
    assert_eq!(Archive::new(&dir, 0).sweep().await.unwrap(), SweepReport::default());
    assert_eq!(Archive::new(&dir, 30).sweep().await.unwrap(), SweepReport { removed: 2, kept: 1 });
    let left = archive_of(&app, &session, None).await.entries;
    assert_eq!(left.iter().map(|e| e.turn_id.as_str()).collect::<Vec<_>>(), [entries[2].turn_id.as_str()]);
    assert!(!second_dir.exists() && dir.join("README.txt").exists());
    assert_eq!(Archive::new(&dir, 30).sweep().await.unwrap(), SweepReport { removed: 0, kept: 1 });

    // Deleting the conversation deletes its archive, folder and all.
    let deleted = call(&app, support::signed_request("DELETE", &format!("/api/sessions/{session}"), None, None)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(!dir.join(&session).exists(), "{:?}", files_under(&dir));
    let gone = call(&app, get(&format!("/api/sessions/{session}/archive"), None)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_error(&gone.json(), "session_not_found");
    let audio = call(&app, get(left[0].question_audio.as_ref().unwrap().url.as_str(), None)).await;
    assert_eq!(audio.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_archive_cannot_be_listed_or_fetched_and_no_token_gets_401() {
    let provider = FakeStages::new("What time is it?");
    let users = support::fresh_data_dir().join("users.txt");
    std::fs::write(&users, format!("alice {ALICE} admin\nbob {BOB}\ncarol {CAROL}\n")).unwrap();
    let app = provider.app(&["--users-file", users.to_str().unwrap(), "--archive-dir", archive_dir().to_str().unwrap()]);
    let turn = call(&app, voice(&tone_wav(16_000, 0.5), Some(BOB), None)).await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.json());
    let session = turn.json()["session_id"].as_str().unwrap().to_owned();
    let entry = archive_of(&app, &session, Some(BOB)).await.entries.remove(0);
    let list = format!("/api/sessions/{session}/archive");
    let urls = [list.clone(), entry.question_audio.unwrap().url, entry.answer_audio.unwrap().url];
    assert_eq!(call(&app, get(&urls[1], Some(BOB))).await.status, StatusCode::OK);

    for url in &urls {
        for token in [None, Some("wrong-token-but-long-enough")] {
            let reply = call(&app, get(url, token)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{url} with {token:?}");
            assert_error(&reply.json(), "unauthorized");
        }
        // Someone else's, even an admin's view of it, is answered as if it did not exist.
        for other in [CAROL, ALICE] {
            let reply = call(&app, get(url, Some(other))).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{url} as {other}");
            assert_error(&reply.json(), "session_not_found");
            assert!(!reply.bytes.starts_with(b"RIFF"));
        }
    }
    // Nor can they delete it.
    assert_eq!(
        call(&app, support::signed_request("DELETE", &format!("/api/sessions/{session}"), Some(CAROL), None)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(archive_of(&app, &session, Some(BOB)).await.entries.len(), 1);
}

#[tokio::test]
async fn with_the_archive_off_nothing_is_kept_and_its_routes_say_so() {
    let provider = FakeStages::new("What time is it?");
    let settings = provider.settings(&[]);
    assert!(settings.archive.is_none(), "off by default");
    let app = parlance_server::router(provider.state(&settings), &settings);
    let turn = call(&app, voice(&tone_wav(16_000, 0.5), None, None)).await;
    assert_eq!(turn.status, StatusCode::OK);
    let session = turn.json()["session_id"].as_str().unwrap().to_owned();
    for path in [format!("/api/sessions/{session}/archive"), format!("/api/sessions/{session}/archive/20200101T000000000Z-00000000/answer")]
    {
        let reply = call(&app, get(&path, None)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_error(&reply.json(), "not_found");
        assert!(reply.json()["message"].as_str().unwrap().contains("--archive-dir"), "{}", reply.json());
    }
    assert!(files_under(&settings.data_dir).is_empty(), "nothing was written: {:?}", files_under(&settings.data_dir));
}

/// Parlance on a real port for the socket; returns its `host:port`.
async fn serve(provider: &FakeStages, settings: &parlance_server::Settings) -> String {
    let app = parlance_server::router(provider.state(settings), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address.to_string()
}

struct Socket(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>);

impl Socket {
    async fn connect(address: &str) -> Self {
        let mut socket = Self(tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("socket opens").0);
        assert!(matches!(socket.event().await, ServerEvent::Hello { .. }), "the socket starts with hello");
        socket
    }

    async fn send(&mut self, message: &ClientMessage) {
        self.0.send(Message::text(serde_json::to_string(message).unwrap())).await.unwrap();
    }

    async fn event(&mut self) -> ServerEvent {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.0.next()).await.expect("an event in time").unwrap().unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    /// Events up to the turn's end (`done`, `interrupted` or `error`).
    async fn rest_of_turn(&mut self) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.event().await;
            let last = matches!(event, ServerEvent::Done { .. } | ServerEvent::Interrupted { .. } | ServerEvent::Error { .. });
            events.push(event);
            if last {
                return events;
            }
        }
    }
}

/// The audio of each `audio_chunk`, in order.
fn chunk_audio(events: &[ServerEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::AudioChunk { audio, .. } => Some(base64::engine::general_purpose::STANDARD.decode(&audio.data_base64).unwrap()),
            _ => None,
        })
        .collect()
}

async fn download(address: &str, url: &str) -> Vec<u8> {
    let response = reqwest::get(format!("http://{address}{url}")).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().await.unwrap().to_vec()
}

async fn socket_archive(address: &str, session: &SessionId) -> SessionArchive {
    let response = reqwest::get(format!("http://{address}/api/sessions/{session}/archive")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// 16 kHz PCM16: a loud buzz standing in for a voice, or silence.
fn pcm16(ms: usize, loud: bool) -> Vec<u8> {
    (0..ms * 16).flat_map(|n| (if loud { ((n as i32 * 880) % 16000 - 8000) as i16 } else { 0 }).to_le_bytes()).collect()
}

#[tokio::test]
async fn streamed_turns_keep_the_stream_as_wav_the_sentences_joined_and_only_what_was_played() {
    let provider = FakeStages::new("What time is it?");
    let settings = provider.settings(&["--archive-dir", archive_dir().to_str().unwrap()]);
    let address = serve(&provider, &settings).await;
    let mut socket = Socket::connect(&address).await;

    // A raw PCM16 stream, transcribed during the pause: the archive keeps all of it, as WAV.
    socket
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    socket.event().await;
    let stream = [pcm16(600, true), pcm16(400, false)].concat();
    for frame in stream.chunks(640) {
        socket.0.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    assert!(matches!(socket.event().await, ServerEvent::Transcript { is_final: false, .. }), "the early transcript");
    socket.send(&ClientMessage::EndTurn).await;
    let events = socket.rest_of_turn().await;
    let Some(ServerEvent::Done { session_id, answer, .. }) = events.last() else { panic!("{events:?}") };
    let (session_id, answer) = (session_id.clone(), answer.clone());
    let chunks = chunk_audio(&events);
    assert!(!chunks.is_empty());
    let archive = socket_archive(&address, &session_id).await;
    let [entry] = archive.entries.as_slice() else { panic!("{archive:?}") };
    assert_eq!((entry.question.as_str(), entry.answer.as_str(), entry.interrupted), ("What time is it?", answer.as_str(), false));
    let question = download(&address, &entry.question_audio.as_ref().unwrap().url).await;
    assert_eq!(samples(&question), stream.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect::<Vec<_>>());
    let spoken = download(&address, &entry.answer_audio.as_ref().unwrap().url).await;
    assert_eq!(samples(&spoken), chunks.iter().flat_map(|chunk| samples(chunk)).collect::<Vec<_>>(), "the sentences joined, in order");

    // Barge-in while the answer is written: only the sentence played is kept, text and audio.
    provider.configure(|fake| {
        fake.answer = Some("One sentence here. Another sentence follows. And a third one ends it.".into());
        fake.delta_delay = Duration::from_millis(40);
    });
    socket
        .send(&ClientMessage::Text { session_id: None, text: "Tell me three things".into(), speak: true, speech_rate: None, voice: None })
        .await;
    let first = loop {
        if let ServerEvent::AudioChunk { sequence: 0, text, audio } = socket.event().await {
            break (text, base64::engine::general_purpose::STANDARD.decode(audio.data_base64).unwrap());
        }
    };
    socket.send(&ClientMessage::Interrupt { played_through: Some(0) }).await;
    let kept = loop {
        if let ServerEvent::Interrupted { kept_answer, .. } = socket.event().await {
            break kept_answer;
        }
    };
    assert_eq!(kept, first.0);
    let entries = socket_archive(&address, &session_id).await.entries;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let cut = &entries[1];
    assert_eq!((cut.question.as_str(), cut.answer.as_str(), cut.interrupted), ("Tell me three things", first.0.as_str(), true));
    assert!(cut.question_audio.is_none());
    assert_eq!(download(&address, &cut.answer_audio.as_ref().unwrap().url).await, first.1, "the played sentence as it was sent");

    // Barge-in after the whole answer was sent, while it still plays: the entry is rewritten, not doubled.
    provider.configure(|fake| {
        fake.answer = Some("First point. Second point. Third point.".into());
        fake.delta_delay = Duration::ZERO;
    });
    socket
        .send(&ClientMessage::Text { session_id: None, text: "Three points please".into(), speak: true, speech_rate: None, voice: None })
        .await;
    let events = socket.rest_of_turn().await;
    let chunks = chunk_audio(&events);
    assert_eq!(chunks.len(), 3);
    let whole = socket_archive(&address, &session_id).await.entries;
    assert_eq!((whole.len(), whole[2].answer.as_str()), (3, "First point. Second point. Third point."));
    socket.send(&ClientMessage::Interrupt { played_through: Some(1) }).await;
    assert!(matches!(socket.event().await, ServerEvent::Interrupted { .. }));
    let entries = socket_archive(&address, &session_id).await.entries;
    assert_eq!(entries.len(), 3, "{entries:?}");
    let cut = &entries[2];
    assert_eq!(
        (cut.turn_id.as_str(), cut.answer.as_str(), cut.interrupted),
        (whole[2].turn_id.as_str(), "First point. Second point.", true)
    );
    let played = download(&address, &cut.answer_audio.as_ref().unwrap().url).await;
    assert_eq!(samples(&played), chunks[..2].iter().flat_map(|chunk| samples(chunk)).collect::<Vec<_>>());
}
