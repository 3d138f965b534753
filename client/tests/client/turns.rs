//! The client library's streamed turns over the real socket: typed and spoken, interrupted, reconnected,
//! and its typed errors.

use std::time::Duration;

use futures::StreamExt;
use parlance_client::types::{AudioEncoding, ErrorCode, Role, ServerEvent, SessionId, Stage, TextTurnRequest};
use parlance_client::{Client, ClientError, ErrorKind};
use parlance_server::audio::AudioFormat;
use reqwest::StatusCode;

use crate::servers::{self, TOKEN};
use crate::support::fake_openai::tone_wav;

pub const STORY: &str = "Once upon a time there was a small robot who lived in a lighthouse. Every night it counted the ships that passed. \
                     One stormy evening a ship lost its way in the fog. The robot turned the great lamp toward the rocks. \
                     The sailors saw the light and steered home safely. From then on they called the robot their friend.";

/// Long enough for any stage on a busy machine; a turn that takes this long has failed.
const PATIENCE: Duration = Duration::from_secs(60);

/// Events for a failure message, without the audio's base64.
pub fn brief(events: &[ServerEvent]) -> String {
    let brief: Vec<String> = events
        .iter()
        .map(|event| match event {
            ServerEvent::AudioChunk { sequence, text, .. } => format!("AudioChunk {sequence}: {text:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    brief.join("\n")
}

async fn collect(turn: parlance_client::Turn<'_>) -> Vec<ServerEvent> {
    tokio::time::timeout(PATIENCE, turn.map(|event| event.expect("the turn streams")).collect()).await.expect("the turn ends")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typed_turn_streams_its_answer_and_speaks_it_sentence_by_sentence() {
    let (fakes, url) = servers::fake("", &[]).await;
    fakes.configure(|behaviour| {
        behaviour.answer = Some(STORY.to_owned());
        behaviour.delta_delay = Duration::from_millis(5);
    });
    let client = Client::new(&url).unwrap();
    let mut conversation = client.conversation().await.unwrap();
    let events = collect(conversation.ask("Tell me a story", true).await.unwrap()).await;

    let deltas: String =
        events.iter().filter_map(|e| if let ServerEvent::AnswerDelta { text } = e { Some(text.as_str()) } else { None }).collect();
    assert_eq!(deltas.trim(), STORY, "the answer arrives in pieces that make up the whole");
    assert!(events.iter().filter(|e| matches!(e, ServerEvent::AnswerDelta { .. })).count() > 10, "streamed, not whole");
    let chunks: Vec<(u32, &str)> = events
        .iter()
        .filter_map(|e| if let ServerEvent::AudioChunk { sequence, text, .. } = e { Some((*sequence, text.as_str())) } else { None })
        .collect();
    let sequences: Vec<u32> = chunks.iter().map(|(sequence, _)| *sequence).collect();
    assert!(chunks.len() >= 6 && sequences == (0..chunks.len() as u32).collect::<Vec<_>>(), "a clip per sentence, in order: {chunks:?}");
    let spoken: Vec<&str> = chunks.iter().map(|(_, text)| *text).collect();
    assert_eq!(spoken.join(" "), STORY, "the clips speak the whole answer once");
    let Some(ServerEvent::Done { session_id, answer, .. }) = events.last() else { panic!("the turn ends with done: {}", brief(&events)) };
    assert_eq!(answer.trim(), STORY);
    assert_eq!(conversation.session_id(), Some(session_id), "the conversation keeps its id for the next turn");

    let history = client.history(session_id).await.unwrap();
    let lines: Vec<(Role, &str)> = history.turns.iter().map(|turn| (turn.role, turn.text.as_str())).collect();
    assert_eq!(lines, [(Role::User, "Tell me a story"), (Role::Assistant, STORY)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_turn_stops_and_keeps_only_what_was_played() {
    let (fakes, url) = servers::fake("", &[]).await;
    fakes.configure(|behaviour| {
        behaviour.answer = Some(STORY.to_owned());
        // Slow enough that the answer is still being written when the first sentence has been spoken.
        behaviour.delta_delay = Duration::from_millis(60);
    });
    let client = Client::new(&url).unwrap();
    let mut conversation = client.conversation().await.unwrap();
    let mut turn = conversation.ask("Tell me a story", true).await.unwrap();
    let mut first_sentence = None;
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(PATIENCE, turn.next()).await.expect("an event comes") {
        let event = event.unwrap();
        if let ServerEvent::AudioChunk { sequence: 0, text, .. } = &event {
            first_sentence = Some(text.clone());
            turn.interrupt(Some(0)).await.unwrap();
        }
        events.push(event);
    }
    let first_sentence = first_sentence.expect("the first sentence was spoken");
    let Some(ServerEvent::Interrupted { session_id, kept_answer }) = events.last() else {
        panic!("ends with interrupted: {}", brief(&events))
    };
    assert_eq!(kept_answer, &first_sentence, "only the played sentence is kept");
    assert!(!events.iter().any(|e| matches!(e, ServerEvent::Done { .. })), "an interrupted turn has no done: {}", brief(&events));
    let streams = fakes.chat_streams();
    assert_eq!((streams.finished, streams.dropped_at.len()), (0, 1), "the model stopped writing: {streams:?}");

    let history = client.history(session_id).await.unwrap();
    let last = history.turns.last().unwrap();
    assert!(last.interrupted && last.text == first_sentence, "{history:?}");

    // The same conversation goes on after the interrupt.
    fakes.configure(|behaviour| behaviour.answer = None);
    let events = collect(conversation.ask("Go on", false).await.unwrap()).await;
    let Some(ServerEvent::Done { answer, .. }) = events.last() else { panic!("{}", brief(&events)) };
    assert_eq!(answer, "You said: Go on. I was shown 2 earlier messages.");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoken_turn_is_sent_in_pieces_and_answered() {
    let (fakes, url) = servers::fake("What time is it?", &[]).await;
    let client = Client::new(&url).unwrap();
    let mut conversation = client.conversation().await.unwrap();
    let recording = tone_wav(16_000, 1.0);
    let mut upload = conversation.start_audio(AudioEncoding::Wav).await.unwrap();
    for piece in recording.chunks(3_200) {
        upload.send(piece.to_vec()).await.unwrap();
    }
    let events = collect(upload.end().await.unwrap()).await;

    assert_eq!(fakes.transcribed(), [(AudioFormat::Wav, recording.len())], "every piece arrived, as one recording");
    assert!(events.contains(&ServerEvent::Transcript { text: "What time is it?".into(), is_final: true }), "{}", brief(&events));
    assert!(events.iter().any(|e| matches!(e, ServerEvent::ToolCall { call } if call.name == "current_time")), "{}", brief(&events));
    assert!(events.iter().any(|e| matches!(e, ServerEvent::AudioChunk { .. })), "a spoken turn is answered aloud: {}", brief(&events));
    let summary = {
        let mut summary = parlance_client::TurnSummary::default();
        for event in &events {
            summary.apply(event).unwrap();
        }
        summary
    };
    assert!(summary.answer.starts_with("It is "), "{summary:?}");
    assert_eq!(summary.transcript.as_deref(), Some("What time is it?"));

    // Cancelling an upload drops it: nothing more is transcribed.
    let mut upload = conversation.start_audio(AudioEncoding::Wav).await.unwrap();
    upload.send(recording[..3_200].to_vec()).await.unwrap();
    let events = collect(upload.cancel().await.unwrap()).await;
    assert!(matches!(events.last(), Some(ServerEvent::Status { .. })), "{}", brief(&events));
    assert_eq!(fakes.transcribed().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_socket_is_reopened_and_the_conversation_goes_on() {
    // The server closes a socket that says nothing for a second.
    let (_fakes, url) = servers::fake("", &["--socket-idle-secs", "1"]).await;
    let client = Client::new(&url).unwrap();
    let mut conversation = client.conversation().await.unwrap();
    let first = collect(conversation.ask("Hello", false).await.unwrap()).await;
    assert!(matches!(first.last(), Some(ServerEvent::Done { .. })), "{first:?}");

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let second = collect(conversation.ask("Are you there", false).await.unwrap()).await;
    let Some(ServerEvent::Done { answer, .. }) = second.last() else { panic!("{second:?}") };
    assert_eq!(conversation.reconnects(), 1, "the idle socket was closed by the server and opened again");
    assert_eq!(answer, "You said: Are you there. I was shown 2 earlier messages.", "the same conversation, not a new one");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_come_as_typed_errors() {
    let (fakes, url) = servers::fake("", &["--token", TOKEN]).await;

    let wrong = Client::builder(&url).token("not-the-right-token-000").build().unwrap();
    let error = wrong.conversation().await.unwrap_err();
    assert_eq!((error.status(), error.code(), error.kind()), (Some(401), Some(ErrorCode::Unauthorized), ErrorKind::Refused), "{error}");
    let error = wrong
        .chat(&TextTurnRequest { session_id: None, text: "Hi".into(), speak: false, speech_rate: None, voice: None })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Unauthorized), "{error}");

    let client = Client::builder(&url).token(TOKEN).build().unwrap();
    let error = client.history(&SessionId::new("no-such-conversation")).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(404), Some(ErrorCode::SessionNotFound)), "{error}");
    let turn =
        client.chat(&TextTurnRequest { session_id: None, text: "Hi".into(), speak: false, speech_rate: None, voice: None }).await.unwrap();
    assert_eq!(turn.answer, "You said: Hi. I was shown 0 earlier messages.");

    fakes.fail(Stage::Llm, StatusCode::INTERNAL_SERVER_ERROR);
    let mut conversation = client.conversation().await.unwrap();
    let error = conversation.ask("Hi again", false).await.unwrap().finish().await.unwrap_err();
    assert!(matches!(&error, ClientError::Turn(body) if body.code == ErrorCode::ProviderError), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::ServerFailure);

    let nowhere = Client::new(&servers::closed_port()).unwrap();
    let error = nowhere.health_status().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unreachable, "{error}");
    assert!(error.to_string().to_lowercase().contains("refused"), "says why: {error}");
    let error = nowhere.conversation().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unreachable, "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_left_unread_does_not_leak_into_the_next() {
    let (fakes, url) = servers::fake("", &[]).await;
    fakes.configure(|behaviour| {
        behaviour.answer = Some(STORY.to_owned());
        behaviour.delta_delay = Duration::from_millis(50);
    });
    let client = Client::new(&url).unwrap();
    let mut conversation = client.conversation().await.unwrap();
    let mut turn = conversation.ask("Tell me a story", false).await.unwrap();
    // The story has begun (so the model was asked with the slow settings), then the turn is dropped unread.
    loop {
        match tokio::time::timeout(PATIENCE, turn.next()).await.unwrap().unwrap().unwrap() {
            ServerEvent::AnswerDelta { text } => break assert_eq!(text, "Once "),
            ServerEvent::Status { .. } => {}
            other => panic!("{other:?}"),
        }
    }

    fakes.configure(|behaviour| {
        behaviour.answer = None;
        behaviour.delta_delay = Duration::ZERO;
    });
    let events = collect(conversation.ask("Hi", false).await.unwrap()).await;
    let Some(ServerEvent::Done { answer, .. }) = events.last() else { panic!("{}", brief(&events)) };
    assert!(answer.starts_with("You said: Hi."), "{answer}");
    let deltas: String =
        events.iter().filter_map(|e| if let ServerEvent::AnswerDelta { text } = e { Some(text.as_str()) } else { None }).collect();
    assert_eq!(&deltas, answer, "only this turn's words: {}", brief(&events));
    assert_eq!(conversation.reconnects(), 1, "the abandoned turn's socket was replaced");
    // The server sees the old socket close in its own time.
    let waiting = tokio::time::Instant::now();
    while fakes.chat_streams().open > 0 && waiting.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let streams = fakes.chat_streams();
    assert_eq!((streams.finished, streams.dropped_at.len()), (1, 1), "the server stopped the abandoned answer: {streams:?}");
}

/// A server of a later protocol version cannot run here, so its socket is stood in for by one that speaks the
/// real handshake (subprotocol `parlance`) and greets with the next version's `hello`.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_of_another_protocol_version_is_refused_before_a_turn_is_sent() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    let next = parlance_client::types::PROTOCOL_VERSION + 1;
    let app = axum::Router::new().route(
        "/api/ws",
        axum::routing::get(move |upgrade: WebSocketUpgrade| async move {
            upgrade.protocols(["parlance"]).on_upgrade(move |mut socket| async move {
                let hello = serde_json::to_string(&ServerEvent::Hello { protocol: next }).unwrap();
                let _ = socket.send(Message::text(hello)).await;
                // Whatever the client sends next would be a turn: it must send nothing.
                let sent = tokio::time::timeout(Duration::from_secs(2), socket.recv()).await;
                assert!(!matches!(sent, Ok(Some(Ok(Message::Text(_))))), "the client sent a turn anyway: {sent:?}");
            })
        }),
    );
    let url = servers::serve(app).await;
    let client = Client::new(&url).unwrap();
    let error = client.conversation().await.unwrap_err();
    assert!(matches!(error, ClientError::Protocol { server, client } if server == next && client == next - 1), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Local);
    assert!(error.to_string().contains("update the client"), "says what to do: {error}");

    // And the real server of this version is greeted without a word of it reaching the turn.
    let (_fakes, url) = servers::fake("", &[]).await;
    let mut conversation = Client::new(&url).unwrap().conversation().await.unwrap();
    let events = collect(conversation.ask("Hi", false).await.unwrap()).await;
    assert!(!events.iter().any(|event| matches!(event, ServerEvent::Hello { .. })), "{}", brief(&events));
}

/// Hands-free: the client streams what the microphone hears, silence included, and the server (its voice
/// activity model, the real Silero one) ends the turn; the client's own `end` when the recording runs out
/// crosses the server's `turn_ended` and is no mistake.
#[tokio::test(flavor = "multi_thread")]
async fn a_hands_free_turn_is_ended_by_the_server() {
    use parlance_client::types::TurnDetection;

    let dir = tempfile::tempdir().unwrap();
    let wav = crate::support::speech::speak(dir.path(), "question", "What time is it?");
    let raw = dir.path().join("question.raw");
    crate::support::speech::run(
        "sox",
        &[wav.to_str().unwrap(), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", raw.to_str().unwrap()],
    );
    let speech = std::fs::read(raw).unwrap();
    let silence = |ms: usize| vec![0_u8; ms * 32];

    let (_fakes, url) = servers::with_silero("What time is it?").await;

    let mut conversation = Client::new(&url).unwrap().conversation().await.unwrap();
    let mut upload =
        conversation.start_hands_free(TurnDetection { silence_ms: 800, complete_silence_ms: 0, barge_in: false }).await.unwrap();
    for piece in [silence(300), speech, silence(2_000)].concat().chunks(3_200) {
        upload.send(piece.to_vec()).await.unwrap();
    }
    let events = collect(upload.end().await.unwrap()).await;

    let ended: Vec<u64> =
        events.iter().filter_map(|e| if let ServerEvent::TurnEnded { silence_ms, .. } = e { Some(*silence_ms) } else { None }).collect();
    assert_eq!(ended.len(), 1, "{}", brief(&events));
    assert!((800..900).contains(&ended[0]), "ended after the silence asked for: {} ms", ended[0]);
    assert!(!events.iter().any(|e| matches!(e, ServerEvent::Error { .. })), "the crossing end_turn is no mistake: {}", brief(&events));
    assert!(events.contains(&ServerEvent::Transcript { text: "What time is it?".into(), is_final: true }), "{}", brief(&events));
    assert!(matches!(events.last(), Some(ServerEvent::Done { .. })), "{}", brief(&events));

    // The socket takes the next turn as usual.
    let events = collect(conversation.ask("Thanks", false).await.unwrap()).await;
    assert!(matches!(events.last(), Some(ServerEvent::Done { .. })), "{}", brief(&events));
}
