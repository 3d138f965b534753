//! The streaming conversation over a real listener and a real WebSocket client, the way the web app uses it:
//! audio frames in, events out while the model is still writing, sentence by sentence speech, barge-in.
//!
//! The model stages come from `backends()`, the one place that chooses them: fake stages inside the test
//! process (`support/fake_stages.rs`), whose model writes its answers word by word at a set pace and records
//! whether an answer was finished or dropped; conversations are kept in memory.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use parlance_server::audio::AudioFormat;
use parlance_shared::Stage;
use parlance_shared::{AudioEncoding, ClientMessage, ErrorCode, Role, ServerEvent, SessionHistory, SessionId, TurnState};
use reqwest::StatusCode;
use support::fake_openai::wav_seconds;
use support::fake_stages::FakeStages;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Long enough for any model stage on a busy machine; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(30);
const STORY: &str = "Once upon a time there was a small robot who lived in a lighthouse. Every night it counted the ships that passed. \
                     One stormy evening a ship lost its way in the fog. The robot turned the great lamp toward the rocks. \
                     The sailors saw the light and steered home safely. From then on they called the robot their friend.";

/// The model stages the turns run on, with the flags a test adds.
async fn backends(extra: &[&str]) -> (FakeStages, parlance_server::Settings) {
    let provider = FakeStages::new("What time is it?");
    let settings = provider.settings(extra);
    (provider, settings)
}

/// Parlance on a real port; returns its `host:port`.
async fn start_parlance(provider: &FakeStages, settings: &parlance_server::Settings) -> String {
    let app = parlance_server::router(provider.state(settings), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address.to_string()
}

struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    async fn connect(address: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("socket opens");
        let mut client = Self { socket };
        // Every socket starts with the protocol version, before anything is asked.
        assert_eq!(client.event().await, ServerEvent::Hello { protocol: parlance_shared::PROTOCOL_VERSION });
        client
    }

    async fn send(&mut self, message: &ClientMessage) {
        self.send_raw(&serde_json::to_string(message).unwrap()).await;
    }

    async fn send_raw(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("socket sends");
    }

    async fn send_audio(&mut self, audio: &[u8], frame_bytes: usize) {
        for frame in audio.chunks(frame_bytes) {
            self.socket.send(Message::binary(frame.to_vec())).await.expect("socket sends audio");
        }
    }

    async fn event(&mut self) -> ServerEvent {
        self.event_within(PATIENCE).await.expect("an event within the patience")
    }

    /// The next event, or `None` if none comes within `wait`.
    async fn event_within(&mut self, wait: Duration) -> Option<ServerEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            match message.expect("socket stays open").expect("socket reads") {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).expect("events are ServerEvents")),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame from the server: {other:?}"),
            }
        }
    }

    /// Events up to and including the turn's last one (`done`, `interrupted` or `error`).
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

    async fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.event().await {
            ServerEvent::Error { error } => {
                assert_eq!(error.code, code, "{}", error.message);
                assert!(error.message.len() > 20, "a person must understand it: {}", error.message);
                error.message
            }
            other => panic!("expected a {code:?} error, got {other:?}"),
        }
    }
}

fn kind(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Status { state, .. } => format!("status:{}", serde_json::to_value(state).unwrap().as_str().unwrap()),
        other => serde_json::to_value(other).unwrap()["type"].as_str().unwrap().to_owned(),
    }
}

fn first(kinds: &[String], wanted: &str) -> usize {
    kinds.iter().position(|k| k == wanted).unwrap_or_else(|| panic!("no {wanted} in {kinds:?}"))
}

fn chunks(events: &[ServerEvent]) -> Vec<(u32, String, Vec<u8>)> {
    events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::AudioChunk { sequence, text, audio } => {
                assert_eq!(audio.mime_type, "audio/wav");
                Some((*sequence, text.clone(), base64::engine::general_purpose::STANDARD.decode(&audio.data_base64).unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn deltas(events: &[ServerEvent]) -> String {
    events.iter().filter_map(|e| if let ServerEvent::AnswerDelta { text } = e { Some(text.as_str()) } else { None }).collect()
}

/// A spoken question as a WAV file, made by espeak-ng (installed by scripts/setup.sh).
fn spoken_wav(dir: &Path, text: &str) -> Vec<u8> {
    std::fs::read(support::speech::speak(dir, "question", text)).unwrap()
}

async fn stored_history(address: &str, session_id: &SessionId) -> SessionHistory {
    let response = reqwest::get(format!("http://{address}/api/sessions/{session_id}")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_spoken_question_streams_its_transcript_answer_and_audio_in_order() {
    let (provider, settings) = backends(&[]).await;
    // Announcing the call without finishing the sentence: that text must not be spoken.
    provider.configure(|fake| fake.tool_lead_in = Some("Let me look at the clock".into()));
    let address = start_parlance(&provider, &settings).await;
    let dir = tempfile::tempdir().unwrap();
    let recording = spoken_wav(dir.path(), "What time is it?");

    let mut client = Client::connect(&address).await;
    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Wav,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    assert_eq!(client.event().await, ServerEvent::status(TurnState::Listening));
    // MediaRecorder-sized pieces: the server must join them into the one file.
    client.send_audio(&recording, 4096).await;
    client.send(&ClientMessage::EndTurn).await;
    let events = client.rest_of_turn().await;
    let kinds: Vec<String> = events.iter().map(kind).collect();

    let transcribing = first(&kinds, "status:transcribing");
    let transcript = first(&kinds, "transcript");
    let thinking = first(&kinds, "status:thinking");
    let tool_call = first(&kinds, "tool_call");
    let delta = first(&kinds, "answer_delta");
    let speaking = first(&kinds, "status:speaking");
    let audio = first(&kinds, "audio_chunk");
    assert!(transcribing < transcript && transcript < thinking && thinking < tool_call, "{kinds:?}");
    assert!(thinking < delta && delta < tool_call && tool_call < speaking && speaking < audio, "{kinds:?}");
    assert_eq!(kinds.last().unwrap(), "done", "{kinds:?}");
    assert_eq!(events[transcript], ServerEvent::Transcript { text: "What time is it?".into(), is_final: true });

    // The tool round is never spoken: the only audio is the answer, which quotes the clock.
    let ServerEvent::Done { answer, timings, session_id, speech_error, .. } = events.last().unwrap() else { unreachable!() };
    assert!(answer.starts_with("It is ") && answer.ends_with(" right now."), "{answer}");
    assert_eq!(deltas(&events), format!("Let me look at the clock{answer}"), "the text shows as it comes; `done` has the answer");
    let spoken = chunks(&events);
    // The answer's first clause ("It is Sunday 22 November 2026,") is spoken ahead of the rest of its sentence.
    let (clause, rest) = answer.split_once(", ").expect("the clock's answer has a clause");
    let expected = [(0, format!("{clause},")), (1, rest.to_owned())];
    assert_eq!(spoken.iter().map(|(seq, text, _)| (*seq, text.clone())).collect::<Vec<_>>(), expected);
    for (_, text, wav) in &spoken {
        let words = text.split_whitespace().count() as f32;
        assert!((wav_seconds(wav) - words / 3.0).abs() < 0.01, "each chunk speaks its own text");
    }
    assert!(speech_error.is_none());
    let first_audio = timings.first_audio_ms.expect("streamed turns report the time to first audio");
    assert!(first_audio <= timings.total_ms && timings.stt_ms <= first_audio, "{timings:?}");

    // The frames arrived as the one recording, recognised as WAV.
    assert_eq!(provider.transcribed(), [(AudioFormat::Wav, recording.len())]);
    let history = stored_history(&address, session_id).await;
    assert_eq!(history.turns.len(), 2);
    assert_eq!((history.turns[1].text.as_str(), history.turns[1].interrupted), (answer.as_str(), false));
}

#[tokio::test]
async fn the_first_sentence_is_spoken_while_the_model_is_still_writing() {
    let (provider, settings) = backends(&[]).await;
    provider.configure(|fake| {
        fake.answer = Some(STORY.into());
        fake.delta_delay = Duration::from_millis(25);
    });
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;
    client
        .send(&ClientMessage::Text { session_id: None, text: "Tell me a story".into(), speak: true, speech_rate: None, voice: None })
        .await;

    let mut events = Vec::new();
    let mut streams_open_at_first_audio = None;
    loop {
        let event = client.event().await;
        if matches!(event, ServerEvent::AudioChunk { .. }) && streams_open_at_first_audio.is_none() {
            streams_open_at_first_audio = Some(provider.chat_streams().open);
        }
        let done = matches!(event, ServerEvent::Done { .. } | ServerEvent::Error { .. });
        events.push(event);
        if done {
            break;
        }
    }
    let kinds: Vec<String> = events.iter().map(kind).collect();
    assert_eq!(streams_open_at_first_audio, Some(1), "the model was still generating when the first audio arrived");
    let first_audio = first(&kinds, "audio_chunk");
    assert!(kinds[first_audio..].contains(&"answer_delta".to_owned()), "answer text kept coming after the first audio: {kinds:?}");

    // Every sentence spoken once, in order, numbered from 0; the first goes ahead in two pieces, the second
    // from the phrase that begins with "who".
    let spoken = chunks(&events);
    let mut pieces = vec!["Once upon a time there was a small robot", "who lived in a lighthouse."];
    pieces.extend(STORY.split_inclusive(". ").map(str::trim).skip(1));
    assert_eq!(spoken.iter().map(|(_, text, _)| text.as_str()).collect::<Vec<_>>(), pieces);
    assert!(spoken.iter().enumerate().all(|(i, (seq, _, _))| *seq as usize == i));
    assert_eq!(deltas(&events).trim(), STORY);
    let streams = provider.chat_streams();
    assert_eq!((streams.open, streams.finished, streams.dropped_at.len()), (0, 1, 0));
}

#[tokio::test]
async fn interrupt_stops_generation_and_speech_at_once_and_keeps_only_what_was_played() {
    let (provider, settings) = backends(&[]).await;
    provider.configure(|fake| {
        fake.answer = Some(STORY.into());
        fake.delta_delay = Duration::from_millis(40);
    });
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;
    client
        .send(&ClientMessage::Text { session_id: None, text: "Tell me a story".into(), speak: true, speech_rate: None, voice: None })
        .await;
    let first_sentence = loop {
        if let ServerEvent::AudioChunk { sequence: 0, text, .. } = client.event().await {
            break text;
        }
    };

    let interrupted_at = Instant::now();
    client.send(&ClientMessage::Interrupt { played_through: Some(0) }).await;
    let (session_id, kept_answer) = loop {
        match client.event().await {
            ServerEvent::Interrupted { session_id, kept_answer } => break (session_id, kept_answer),
            ServerEvent::AnswerDelta { .. } | ServerEvent::AudioChunk { .. } | ServerEvent::Status { .. } => continue,
            other => panic!("unexpected event after interrupt: {other:?}"),
        }
    };
    let last_event_after = interrupted_at.elapsed();
    let speech_requests = provider.spoken().len();

    // Nothing more comes, and nothing keeps working in the background.
    assert_eq!(client.event_within(Duration::from_millis(600)).await, None, "events after the turn was interrupted");
    assert_eq!(provider.spoken().len(), speech_requests, "synthesis went on after the interrupt");
    let streams = provider.chat_streams();
    assert_eq!((streams.open, streams.finished, streams.dropped_at.len()), (0, 0, 1), "{streams:?}");
    let generation_stopped_after = streams.dropped_at[0].duration_since(interrupted_at);
    println!("interrupt -> last event {last_event_after:?}, interrupt -> model stream dropped {generation_stopped_after:?}");
    assert!(last_event_after < Duration::from_millis(200), "interrupted after {last_event_after:?}");
    assert!(generation_stopped_after < Duration::from_millis(200), "the model stopped after {generation_stopped_after:?}");

    assert_eq!(kept_answer, first_sentence);
    let history = stored_history(&address, &session_id).await;
    assert_eq!(history.turns.len(), 2);
    assert_eq!((history.turns[0].role, history.turns[0].text.as_str()), (Role::User, "Tell me a story"));
    assert_eq!((history.turns[1].text.as_str(), history.turns[1].interrupted), (first_sentence.as_str(), true));

    // The socket goes on: the next turn continues the same conversation.
    provider.configure(|fake| fake.answer = None);
    client.send(&ClientMessage::Text { session_id: None, text: "Go on".into(), speak: false, speech_rate: None, voice: None }).await;
    let events = client.rest_of_turn().await;
    let ServerEvent::Done { answer, session_id: same, .. } = events.last().unwrap() else { panic!("{events:?}") };
    assert_eq!(same, &session_id);
    assert!(answer.contains("shown 2 earlier"), "{answer}");
}

#[tokio::test]
async fn interrupting_playback_after_the_answer_was_complete_cuts_the_remembered_answer() {
    let (provider, settings) = backends(&[]).await;
    provider.configure(|fake| fake.answer = Some("First point. Second point. Third point.".into()));
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;

    client
        .send(&ClientMessage::Text { session_id: None, text: "Three points please".into(), speak: true, speech_rate: None, voice: None })
        .await;
    let events = client.rest_of_turn().await;
    assert_eq!(chunks(&events).len(), 3);
    // The client is still playing the second chunk when the user speaks up.
    client.send(&ClientMessage::Interrupt { played_through: Some(1) }).await;
    let ServerEvent::Interrupted { session_id, kept_answer } = client.event().await else { panic!("expected interrupted") };
    assert_eq!(kept_answer, "First point. Second point.");
    let history = stored_history(&address, &session_id).await;
    assert_eq!((history.turns[1].text.as_str(), history.turns[1].interrupted), ("First point. Second point.", true));

    // Played to the end: nothing to cut.
    client.send(&ClientMessage::Text { session_id: None, text: "Again".into(), speak: true, speech_rate: None, voice: None }).await;
    client.rest_of_turn().await;
    client.send(&ClientMessage::Interrupt { played_through: Some(2) }).await;
    assert_eq!(client.event().await, ServerEvent::status(TurnState::Idle));
    let history = stored_history(&address, &session_id).await;
    assert_eq!((history.turns[3].text.as_str(), history.turns[3].interrupted), ("First point. Second point. Third point.", false));
}

#[tokio::test]
async fn two_sessions_at_once_never_cross_events() {
    let (provider, settings) = backends(&[]).await;
    provider.configure(|fake| fake.delta_delay = Duration::from_millis(10));
    let address = start_parlance(&provider, &settings).await;
    let mut ada = Client::connect(&address).await;
    let mut bob = Client::connect(&address).await;

    ada.send(&ClientMessage::Text { session_id: None, text: "Ada asks about apples".into(), speak: true, speech_rate: None, voice: None })
        .await;
    bob.send(&ClientMessage::Text { session_id: None, text: "Bob asks about boats".into(), speak: true, speech_rate: None, voice: None })
        .await;
    let (ada_events, bob_events) = tokio::join!(ada.rest_of_turn(), bob.rest_of_turn());

    let mut sessions = Vec::new();
    for (events, own, other) in [(&ada_events, "apples", "boats"), (&bob_events, "boats", "apples")] {
        let ServerEvent::Done { answer, session_id, .. } = events.last().unwrap() else { panic!("{events:?}") };
        assert!(answer.contains(own) && !answer.contains(other), "{answer}");
        assert_eq!(&deltas(events), answer);
        let spoken: Vec<String> = chunks(events).into_iter().map(|(_, text, _)| text).collect();
        assert_eq!(spoken.join(" "), *answer, "each socket hears only its own answer");
        sessions.push(session_id.clone());
    }
    assert_ne!(sessions[0], sessions[1]);
}

#[tokio::test]
async fn raw_pcm16_frames_are_transcribed_as_one_wav() {
    let (provider, settings) = backends(&[]).await;
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;
    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    // Half a second of 16 kHz samples in 20 ms frames, as an AudioWorklet sends them.
    let samples: Vec<u8> = (0..8000i32).flat_map(|n| (((n * 440 * 2) % 16000 - 8000) as i16).to_le_bytes()).collect();
    client.send_audio(&samples, 640).await;
    client.send(&ClientMessage::EndTurn).await;
    let events = client.rest_of_turn().await;
    assert!(matches!(events.last(), Some(ServerEvent::Done { .. })), "{events:?}");
    assert_eq!(provider.transcribed(), [(AudioFormat::Wav, 44 + samples.len())]);
}

/// 16 kHz PCM16: a loud buzz standing in for a voice, or silence.
fn pcm16(ms: usize, loud: bool) -> Vec<u8> {
    (0..ms * 16).flat_map(|n| (if loud { ((n as i32 * 880) % 16000 - 8000) as i16 } else { 0 }).to_le_bytes()).collect()
}

#[tokio::test]
async fn a_pause_is_transcribed_before_the_turn_ends_and_the_answer_does_not_wait_for_it() {
    let (provider, settings) = backends(&[]).await;
    let transcription = Duration::from_millis(800);
    provider.configure(|behaviour| behaviour.stt_delay = transcription);
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;
    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    let question = [pcm16(600, true), pcm16(400, false)].concat();
    client.send_audio(&question, 640).await;
    // The client has not ended the turn: the server heard the pause and transcribed meanwhile.
    match client.event().await {
        ServerEvent::Transcript { text, is_final: false } => assert_eq!(text, "What time is it?"),
        other => panic!("expected a provisional transcript, got {other:?}"),
    }
    client.send(&ClientMessage::EndTurn).await;
    let events = client.rest_of_turn().await;
    assert!(events.iter().any(|e| matches!(e, ServerEvent::Transcript { is_final: true, .. })), "{events:?}");
    let Some(ServerEvent::Done { timings, .. }) = events.last() else { panic!("{events:?}") };
    assert!(u128::from(timings.stt_ms) < transcription.as_millis(), "the turn waited for speech-to-text: {timings:?}");
    let uploads = provider.transcribed();
    assert_eq!(uploads.len(), 1, "the early transcript is the final one");
    // What had arrived when the pause was seen: all the speech and a quarter second or more of quiet.
    let heard = wav_seconds_of_upload(uploads[0].1);
    assert!((0.85..=1.0).contains(&heard), "transcribed {heard} s");
}

#[tokio::test]
async fn speech_after_a_pause_makes_the_early_transcript_stale() {
    let (provider, settings) = backends(&[]).await;
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;
    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    client.send_audio(&[pcm16(600, true), pcm16(400, false)].concat(), 640).await;
    assert!(matches!(client.event().await, ServerEvent::Transcript { is_final: false, .. }));
    // The user goes on after the pause and ends the turn before pausing again.
    let rest = [pcm16(500, true), pcm16(100, false)].concat();
    client.send_audio(&rest, 640).await;
    client.send(&ClientMessage::EndTurn).await;
    let events = client.rest_of_turn().await;
    assert!(matches!(events.last(), Some(ServerEvent::Done { .. })), "{events:?}");
    let uploads = provider.transcribed();
    assert_eq!(uploads.len(), 2, "the whole question is transcribed again");
    assert_eq!(uploads[1], (AudioFormat::Wav, 44 + 16 * 2 * 1600));
}

/// The length of a transcribed 16 kHz mono PCM16 WAV file of `bytes`, in seconds.
fn wav_seconds_of_upload(bytes: usize) -> f32 {
    (bytes - 44) as f32 / 32_000.0
}

#[tokio::test]
async fn mistakes_get_error_events_and_the_socket_stays_usable() {
    let (provider, settings) = backends(&["--max-upload-mib", "1"]).await;
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;

    client.send_raw("{not json").await;
    client.expect_error(ErrorCode::InvalidRequest).await;
    client.send_raw(r#"{"type": "shout"}"#).await;
    let message = client.expect_error(ErrorCode::InvalidRequest).await;
    assert!(message.contains("shout"), "{message}");

    client.send_audio(&[0; 100], 50).await;
    client.expect_error(ErrorCode::InvalidRequest).await;
    assert_eq!(client.event_within(Duration::from_millis(200)).await, None, "stray audio is reported once, not per frame");
    client.send(&ClientMessage::EndTurn).await;
    client.expect_error(ErrorCode::InvalidRequest).await;

    client
        .send(&ClientMessage::Start {
            session_id: Some(SessionId::new("no-such-session")),
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.expect_error(ErrorCode::SessionNotFound).await;

    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    client.send(&ClientMessage::Text { session_id: None, text: "busy?".into(), speak: false, speech_rate: None, voice: None }).await;
    client.expect_error(ErrorCode::InvalidRequest).await;
    client.send_audio(&vec![0; 1_200_000], 256 * 1024).await;
    let message = client.expect_error(ErrorCode::PayloadTooLarge).await;
    assert!(message.contains("1 MiB"), "{message}");
    client.send(&ClientMessage::EndTurn).await;
    assert_eq!(client.event().await, ServerEvent::status(TurnState::Idle));

    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    client.send_audio(b"this is text, not audio", 1024).await;
    client.send(&ClientMessage::EndTurn).await;
    client.expect_error(ErrorCode::UnsupportedMediaType).await;

    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    client.send(&ClientMessage::EndTurn).await;
    client.expect_error(ErrorCode::MissingAudio).await;

    client.send(&ClientMessage::Text { session_id: None, text: "   ".into(), speak: false, speech_rate: None, voice: None }).await;
    assert!(matches!(client.rest_of_turn().await.last(), Some(ServerEvent::Error { error }) if error.code == ErrorCode::InvalidRequest));

    client.send(&ClientMessage::Text { session_id: None, text: "Still there?".into(), speak: false, speech_rate: None, voice: None }).await;
    assert!(matches!(client.rest_of_turn().await.last(), Some(ServerEvent::Done { .. })));

    // One frame larger than the whole limit cannot even be read: the socket says why before it closes.
    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    client.send_audio(&vec![0; 1_200_000], 1_200_000).await;
    let message = client.expect_error(ErrorCode::PayloadTooLarge).await;
    assert!(message.contains("too large") && message.contains("1.1 MiB"), "{message}");

    // A plain HTTP request gets the API's error body, not a bare status.
    let response = reqwest::get(format!("http://{address}/api/ws")).await.unwrap();
    assert!(response.status().is_client_error());
    let body: serde_json::Value = response.json().await.unwrap();
    support::assert_error(&body, "invalid_request");
}

#[tokio::test]
async fn provider_failures_end_the_turn_with_an_error_or_leave_the_answer_unspoken() {
    let (provider, settings) = backends(&[]).await;
    provider.configure(|fake| fake.answer = Some("One. Two.".into()));
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;

    provider.fail(Stage::Tts, StatusCode::SERVICE_UNAVAILABLE);
    client.send(&ClientMessage::Text { session_id: None, text: "Count".into(), speak: true, speech_rate: None, voice: None }).await;
    let events = client.rest_of_turn().await;
    assert!(chunks(&events).is_empty());
    let Some(ServerEvent::Done { answer, speech_error: Some(error), .. }) = events.last() else { panic!("{events:?}") };
    assert_eq!((answer.as_str(), error.code), ("One. Two.", ErrorCode::ProviderUnavailable));
    assert_eq!(provider.spoken().len(), 1, "after a failed sentence the rest is not attempted");

    provider.fail(Stage::Llm, StatusCode::INTERNAL_SERVER_ERROR);
    client.send(&ClientMessage::Text { session_id: None, text: "Count again".into(), speak: true, speech_rate: None, voice: None }).await;
    let events = client.rest_of_turn().await;
    let Some(ServerEvent::Error { error }) = events.last() else { panic!("{events:?}") };
    assert_eq!(error.code, ErrorCode::ProviderError);
    assert!(!error.message.contains(support::fake_openai::API_KEY));

    // Interrupting with nothing to stop, or while listening, just confirms the socket is idle.
    client.send(&ClientMessage::Interrupt { played_through: None }).await;
    assert_eq!(client.event().await, ServerEvent::status(TurnState::Idle));
    client
        .send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        })
        .await;
    client.event().await;
    client.send_audio(&[0; 640], 640).await;
    client.send(&ClientMessage::Interrupt { played_through: None }).await;
    assert_eq!(client.event().await, ServerEvent::status(TurnState::Idle));
    assert!(provider.transcribed().is_empty(), "dropped audio is not transcribed");
}

#[tokio::test]
async fn turns_over_the_socket_share_the_per_client_budget() {
    let (provider, settings) = backends(&["--turns-per-minute", "1"]).await;
    let address = start_parlance(&provider, &settings).await;
    let mut client = Client::connect(&address).await;
    client.send(&ClientMessage::Text { session_id: None, text: "One".into(), speak: false, speech_rate: None, voice: None }).await;
    assert!(matches!(client.rest_of_turn().await.last(), Some(ServerEvent::Done { .. })));
    client.send(&ClientMessage::Text { session_id: None, text: "Two".into(), speak: false, speech_rate: None, voice: None }).await;
    let message = client.expect_error(ErrorCode::RateLimited).await;
    assert!(message.contains("wait"), "{message}");
}

#[tokio::test]
async fn a_page_from_another_site_cannot_open_the_socket() {
    let (provider, settings) = backends(&[]).await;
    let address = start_parlance(&provider, &settings).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{address}/api/ws")).unwrap();
    request.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.expect_err("refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else { panic!("{refused:?}") };
    assert_eq!(response.status(), 403);
}
