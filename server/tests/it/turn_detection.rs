//! The server hears when the user is done (`turn_detection` in the socket's `start`): the Silero voice
//! activity model finds speech in a raw stream and the server ends the turn itself, after a short silence
//! when the language model judges what was heard a complete turn and after a long one otherwise.
//!
//! Speech is espeak-ng's, resampled to 16 kHz PCM16 by sox, streamed in 20 ms frames as a browser's
//! AudioWorklet sends them; silence is counted in samples, so only the tests that wait for the model's
//! judgement send at the pace of real time.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_server::models::catalog;
use parlance_server::vad::SileroVad;
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, TurnDetection};
use support::fake_stages::FakeStages;
use tokio_tungstenite::tungstenite::Message;

/// 20 ms at 16 kHz, in bytes.
const FRAME: usize = 640;
const PATIENCE: Duration = Duration::from_secs(60);

/// `text` spoken by espeak-ng as raw 16 kHz PCM16.
fn spoken_pcm16(dir: &Path, name: &str, text: &str) -> Vec<u8> {
    let wav = support::speech::speak(dir, name, text);
    let raw = dir.join(format!("{name}.raw"));
    support::speech::run(
        "sox",
        &[wav.to_str().unwrap(), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", raw.to_str().unwrap()],
    );
    std::fs::read(raw).unwrap()
}

fn silence(ms: usize) -> Vec<u8> {
    vec![0; ms * 32]
}

fn ms_of(bytes: &[u8]) -> u64 {
    (bytes.len() / 32) as u64
}

/// The Silero model `parlance models` installs, on the process's ONNX Runtime.
fn silero() -> Arc<SileroVad> {
    let runtime = support::installed_model(&catalog::ONNX_RUNTIME).join("libonnxruntime.so");
    let environment = parlance_server::onnx::runtime(&runtime).expect("ONNX Runtime loads");
    let model = support::installed_model(&catalog::SILERO_VAD).join("silero_vad.onnx");
    Arc::new(SileroVad::load(&model, environment).expect("the voice activity model loads"))
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap() });
    address.to_string()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(address: &str) -> Socket {
    let mut socket = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("socket opens").0;
    let Some(Ok(Message::Text(hello))) = socket.next().await else { panic!("the socket starts with a text frame") };
    assert!(matches!(serde_json::from_str(hello.as_str()).unwrap(), ServerEvent::Hello { .. }), "the socket starts with hello: {hello}");
    socket
}

async fn send(socket: &mut Socket, message: &ClientMessage) {
    socket.send(Message::text(serde_json::to_string(message).unwrap())).await.unwrap();
}

/// Sends `audio` in 20 ms frames; at the pace of real time when `paced`.
async fn stream(socket: &mut Socket, audio: &[u8], paced: bool) {
    for frame in audio.chunks(FRAME) {
        socket.send(Message::binary(frame.to_vec())).await.unwrap();
        if paced {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every event until the turn is over (`done` or `error`), or `None` if nothing more comes within `wait`.
async fn events_until_done(socket: &mut Socket, wait: Duration) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(wait, socket.next()).await {
        let Message::Text(text) = message.expect("socket reads") else { continue };
        let event: ServerEvent = serde_json::from_str(text.as_str()).unwrap();
        let last = matches!(event, ServerEvent::Done { .. } | ServerEvent::Error { .. });
        events.push(event);
        if last {
            break;
        }
    }
    events
}

fn turn_ended(events: &[ServerEvent]) -> Vec<(u64, u64, Option<f32>)> {
    events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::TurnEnded { speech_end_ms, silence_ms, end_of_turn_probability } => {
                Some((*speech_end_ms, *silence_ms, *end_of_turn_probability))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_server_ends_the_turn_after_the_silence_and_not_at_a_pause_mid_question() {
    let dir = tempfile::tempdir().unwrap();
    let first = spoken_pcm16(dir.path(), "first", "What time");
    let second = spoken_pcm16(dir.path(), "second", "is it in Tokyo");
    let fake = FakeStages::new("What time is it in Tokyo?");
    let settings = fake.settings(&[]);
    let state = parlance_server::AppState::new(
        &settings,
        parlance_server::Stages { vad: Some(silero()), ..fake.stages() },
        Arc::new(parlance_server::sessions::MemorySessions::default()),
    );
    let address = serve(parlance_server::router(state, &settings)).await;
    let mut socket = connect(&address).await;

    // espeak-ng's clips begin and end with a little silence of their own, so the pause mid-question is
    // longer than the 450 ms put between them.
    let detection = TurnDetection { silence_ms: 1_000, complete_silence_ms: 0, barge_in: false };
    send(
        &mut socket,
        &ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: Some(detection),
            speech_rate: None,
            voice: None,
        },
    )
    .await;
    // A second of a steady tone first: loud, but no voice.
    let tone: Vec<u8> = (0..16_000).flat_map(|n: i32| (((n * 880) % 16_000 - 8_000) as i16).to_le_bytes()).collect();
    let recording = [silence(300), tone, silence(300), first.clone(), silence(450), second.clone(), silence(1_200)].concat();
    stream(&mut socket, &recording, false).await;
    let events = events_until_done(&mut socket, PATIENCE).await;

    let starts: Vec<u64> =
        events.iter().filter_map(|e| if let ServerEvent::SpeechStarted { at_ms } = e { Some(*at_ms) } else { None }).collect();
    let spoken_from = 300 + 1_000 + 300;
    assert!(!starts.is_empty(), "the voice was heard: {events:?}");
    assert!(
        starts[0] + 100 >= spoken_from,
        "the tone is not a voice: speech heard from {} ms, the voice starts at {spoken_from} ms",
        starts[0]
    );
    let ended = turn_ended(&events);
    let heard: Vec<&ServerEvent> = events.iter().filter(|e| !matches!(e, ServerEvent::AudioChunk { .. })).collect();
    assert_eq!(ended.len(), 1, "one turn, not cut at the pause mid-question: {heard:?}");
    let (speech_end_ms, silence_ms, probability) = ended[0];
    let spoken_until = spoken_from + ms_of(&first) + 450 + ms_of(&second);
    assert!(
        speech_end_ms <= spoken_until + 100 && speech_end_ms + 400 >= spoken_until,
        "speech ended at {speech_end_ms} ms, the voice at {spoken_until} ms"
    );
    assert!((1_000..1_100).contains(&silence_ms), "ended after the silence asked for: {silence_ms} ms");
    assert_eq!(probability, None, "no judgement was asked for");
    let Some(ServerEvent::Done { timings, .. }) = events.last() else { panic!("answered without `end_turn`: {events:?}") };
    assert!(timings.first_audio_ms.is_some(), "{timings:?}");
    assert_eq!(
        timings.first_audio_from_speech_end_ms,
        timings.first_audio_ms.map(|ms| ms + silence_ms),
        "the time to first audio is also given from the end of speech"
    );
    // The pause mid-question may have been transcribed too (a stale attempt); the whole question was
    // transcribed once, during the silence after it, and that transcript was the turn's.
    let second_from = spoken_from + ms_of(&first) + 450;
    let whole = fake.transcribed().iter().filter(|(_, bytes)| *bytes as u64 > second_from * 32).count();
    assert_eq!(whole, 1, "the whole recording was transcribed once: {:?}", fake.transcribed());

    // The rest of the silence arrived after the turn ended, and an `end_turn` that crossed `turn_ended` (a
    // client's own detector): neither is a mistake, and the socket takes the next turn.
    send(&mut socket, &ClientMessage::EndTurn).await;
    send(
        &mut socket,
        &ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Webm,
            turn_detection: Some(detection),
            speech_rate: None,
            voice: None,
        },
    )
    .await;
    match events_until_done(&mut socket, PATIENCE).await.first() {
        Some(ServerEvent::Error { error }) => assert!(error.message.contains("pcm16"), "{}", error.message),
        other => panic!("turn detection in a container format is refused, got {other:?}"),
    }
}

/// The whole server on the local models: a finished question ends on the model's judgement, long before
/// the long silence; one that breaks off waits for the long silence. The long silences are far longer than
/// transcribing and judging take even on a loaded machine, so the outcome does not depend on its speed.
#[tokio::test]
async fn a_finished_question_ends_on_the_models_judgement_and_a_broken_off_one_waits() {
    let address = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();

    let cases = [("finished", "What is the capital of France?", 30_000), ("unfinished", "So my question is about the", 3_000)];
    let mut heard = Vec::new();
    for (name, text, silence_ms) in cases {
        let detection = TurnDetection { silence_ms, complete_silence_ms: 300, barge_in: false };
        let speech = vec![silence(200), spoken_pcm16(dir.path(), name, text)];
        // Then silence as from a microphone, until the server ends the turn: the model judges while it runs.
        let events = hands_free_turn(&address, detection, speech, |event| matches!(event, ServerEvent::TurnEnded { .. })).await;
        let ended = turn_ended(&events);
        assert_eq!(ended.len(), 1, "{name}: {events:?}");
        println!("{name}: {events:?}");
        heard.push((ended[0], silence_ms));
    }
    let ((_, silence, probability), long) = heard[0];
    assert!(probability.is_some_and(|p| p > 0.01), "the model judged the finished question complete: {probability:?}");
    assert!(silence < u64::from(long), "it ended on that judgement, not on the long silence: {silence} ms");
    let ((_, silence, probability), long) = heard[1];
    assert!(probability.is_none_or(|p| p < 0.01), "a question that breaks off is not judged complete: {probability:?}");
    assert!(silence >= u64::from(long), "it waits for the long silence: {silence} ms");
}

/// The local models (speech, language, voice, embeddings, voice activity), served with `more` settings.
async fn local_server(more: &[&str]) -> String {
    let models = support::installed_model(&catalog::WHISPER_TINY_EN).parent().unwrap().to_path_buf();
    for model in [&catalog::QWEN_CODER_0_5B, &catalog::PIPER_JOE, &catalog::ONNX_RUNTIME, &catalog::MINILM_L6_V2, &catalog::SILERO_VAD] {
        support::installed_model(model);
    }
    let args = [&["--models-dir", models.to_str().unwrap(), "--frontend-dir", "/nonexistent-parlance-frontend"], more].concat();
    let address = serve(support::app(&support::settings(&args))).await;
    // A typed turn first: the model has then read what every prompt starts with, as a server that has been up
    // a few seconds has, so judging a transcript takes a tenth of a second rather than seconds.
    let mut socket = connect(&address).await;
    let text = ClientMessage::Text { session_id: None, text: "Say hello.".into(), speak: false, speech_rate: None, voice: None };
    send(&mut socket, &text).await;
    assert!(matches!(events_until_done(&mut socket, PATIENCE).await.last(), Some(ServerEvent::Done { .. })));
    address
}

/// Streams `parts` at the pace of real time (speech and silence alike), then silence until the `last` event
/// (or an error); returns every event from the start to it.
async fn hands_free_turn(address: &str, detection: TurnDetection, parts: Vec<Vec<u8>>, last: fn(&ServerEvent) -> bool) -> Vec<ServerEvent> {
    let mut socket = connect(address).await;
    let start = ClientMessage::Start {
        session_id: None,
        encoding: AudioEncoding::Pcm16,
        turn_detection: Some(detection),
        speech_rate: None,
        voice: None,
    };
    send(&mut socket, &start).await;
    let (mut outgoing, mut incoming) = socket.split();
    let microphone = tokio::spawn(async move {
        for frame in parts.concat().chunks(FRAME) {
            outgoing.send(Message::binary(frame.to_vec())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let quiet = silence(20);
        while outgoing.send(Message::binary(quiet.clone())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut events = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(PATIENCE, incoming.next()).await {
        let Message::Text(text) = message else { continue };
        let event: ServerEvent = serde_json::from_str(text.as_str()).unwrap();
        let stop = last(&event) || matches!(event, ServerEvent::Error { .. });
        events.push(event);
        if stop {
            break;
        }
    }
    microphone.abort();
    events
}

fn is_done(event: &ServerEvent) -> bool {
    matches!(event, ServerEvent::Done { .. })
}

fn done(events: &[ServerEvent]) -> (&parlance_shared::SessionId, &str, &parlance_shared::StageTimings) {
    match events.last() {
        Some(ServerEvent::Done { session_id, answer, timings, .. }) => (session_id, answer, timings),
        _ => panic!("the turn ends with done: {events:?}"),
    }
}

/// What was said of the answer, chunk by chunk.
fn spoken(events: &[ServerEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::AudioChunk { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_finished_question_is_answered_during_the_silence_that_ends_it() {
    let address = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    // A long "complete" silence: the turn ends well after the model judged the question finished, so the answer
    // begun at that judgement has its first sentence spoken before the turn ends.
    let detection = TurnDetection { silence_ms: 30_000, complete_silence_ms: 4_000, barge_in: false };
    let question = spoken_pcm16(dir.path(), "capital", "What is the capital of France?");
    let events = hands_free_turn(&address, detection, vec![silence(200), question], is_done).await;

    let (_, answer, timings) = done(&events);
    let ended = turn_ended(&events);
    assert_eq!(ended.len(), 1, "{events:?}");
    assert!(ended[0].1 < 30_000, "the turn ended on the model's judgement: {ended:?}");
    assert!(answer.contains("Paris"), "the answer is the question's: {answer}");
    assert!(!spoken(&events).is_empty(), "the answer is spoken: {events:?}");
    // Audio made before the turn ended is sent when it ends: nothing is left to wait for then.
    assert_eq!(timings.first_audio_ms, Some(0), "the first sentence was ready when the turn ended: {timings:?}");
    let ended_at = events.iter().position(|event| matches!(event, ServerEvent::TurnEnded { .. })).unwrap();
    let first_chunk = events.iter().position(|event| matches!(event, ServerEvent::AudioChunk { .. })).unwrap();
    assert!(ended_at < first_chunk, "nothing of the answer is sent before the turn ends: {events:?}");
}

#[tokio::test]
async fn an_answer_begun_in_a_pause_is_dropped_unheard_and_unstored_when_the_user_goes_on() {
    let address = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let detection = TurnDetection { silence_ms: 30_000, complete_silence_ms: 4_000, barge_in: false };
    // A finished-sounding question, a pause long enough for its answer to begin, then more of the question.
    let first = spoken_pcm16(dir.path(), "france", "What is the capital of France?");
    let more = spoken_pcm16(dir.path(), "germany", "And what is the capital of Germany?");
    let events = hands_free_turn(&address, detection, vec![silence(200), first, silence(2_500), more], is_done).await;

    let provisional: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::Transcript { text, is_final: false } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(provisional.iter().any(|text| text.contains("France") && !text.contains("Germany")), "the pause was heard: {events:?}");
    let ended = turn_ended(&events);
    assert_eq!(ended.len(), 1, "one turn, ended after all the speech: {events:?}");
    let final_transcript = events.iter().find_map(|event| match event {
        ServerEvent::Transcript { text, is_final: true } => Some(text.as_str()),
        _ => None,
    });
    assert!(final_transcript.is_some_and(|text| text.contains("France") && text.contains("Germany")), "{events:?}");
    // Every piece of the answer the client got is of the one answer `done` gives: nothing of the answer
    // begun in the pause (to the first part alone) came through.
    let (session_id, answer, _) = done(&events);
    let written: String = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::AnswerDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(written.trim(), answer.trim(), "{events:?}");
    let said = spoken(&events).join(" ");
    assert!(!said.is_empty(), "{events:?}");
    for chunk in spoken(&events) {
        assert!(
            answer.contains(chunk.trim_end_matches(['.', '!', '?'])),
            "a sentence not of the answer was heard: {chunk:?} in {answer:?}"
        );
    }
    let at = |kind: fn(&ServerEvent) -> bool| events.iter().position(kind).unwrap();
    assert!(
        at(|event| matches!(event, ServerEvent::TurnEnded { .. })) < at(|event| matches!(event, ServerEvent::AnswerDelta { .. })),
        "nothing of any answer is sent before the turn ends: {events:?}"
    );

    let history: parlance_shared::SessionHistory =
        reqwest::get(format!("http://{address}/api/sessions/{session_id}")).await.unwrap().json().await.unwrap();
    let lines: Vec<(&parlance_shared::Role, &str)> = history.turns.iter().map(|turn| (&turn.role, turn.text.as_str())).collect();
    assert_eq!(lines.len(), 2, "one question and its answer are stored, nothing of the dropped one: {lines:?}");
    assert!(lines[0].1.contains("Germany") && lines[1].1 == answer, "{lines:?}");
}

#[tokio::test]
async fn with_answer_early_off_the_answer_waits_for_the_end_of_the_turn() {
    let address = local_server(&["--answer-early", "false"]).await;
    let dir = tempfile::tempdir().unwrap();
    let detection = TurnDetection { silence_ms: 30_000, complete_silence_ms: 4_000, barge_in: false };
    let question = spoken_pcm16(dir.path(), "capital", "What is the capital of France?");
    let events = hands_free_turn(&address, detection, vec![silence(200), question], is_done).await;

    let (_, answer, timings) = done(&events);
    assert!(answer.contains("Paris"), "{answer}");
    // Begun during the 4 s silence, the first sentence would have been ready when the turn ended (the test
    // above): here the model, the notes and the voice start only then.
    assert!(timings.first_audio_ms.is_some_and(|ms| ms > 0), "{timings:?}");
}

/// `barge_in`: the microphone stays open through the answer. Streams `question` at the pace of real time, then
/// whatever `react` answers to each event (audio played into the microphone, clip after clip), silence
/// otherwise; returns every event until `finished` says so, or nothing has come for a few seconds after a
/// `done`.
async fn talk_over_answers(
    address: &str,
    question: Vec<u8>,
    mut react: impl FnMut(&ServerEvent) -> Vec<Vec<u8>>,
    finished: impl Fn(&[ServerEvent]) -> bool,
) -> Vec<ServerEvent> {
    let mut socket = connect(address).await;
    let detection = TurnDetection { silence_ms: 2_000, complete_silence_ms: 600, barge_in: true };
    let start = ClientMessage::Start {
        session_id: None,
        encoding: AudioEncoding::Pcm16,
        turn_detection: Some(detection),
        speech_rate: None,
        voice: None,
    };
    send(&mut socket, &start).await;
    let (mut outgoing, mut incoming) = socket.split();
    let (play, mut clips) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let microphone = tokio::spawn(async move {
        let mut queued = std::collections::VecDeque::from([silence(200), question].concat());
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        loop {
            ticks.tick().await;
            while let Ok(clip) = clips.try_recv() {
                queued.extend(clip);
            }
            let frame: Vec<u8> = if queued.len() >= FRAME { queued.drain(..FRAME).collect() } else { silence(20) };
            if outgoing.send(Message::binary(frame)).await.is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    loop {
        let wait = if events.iter().any(is_done) { Duration::from_secs(6) } else { PATIENCE };
        let Ok(Some(Ok(message))) = tokio::time::timeout(wait, incoming.next()).await else { break };
        let Message::Text(text) = message else { continue };
        let event: ServerEvent = serde_json::from_str(text.as_str()).unwrap();
        for clip in react(&event) {
            play.send(clip).unwrap();
        }
        let failed = matches!(event, ServerEvent::Error { .. });
        events.push(event);
        if failed || finished(&events) {
            break;
        }
    }
    microphone.abort();
    events
}

/// An answer's audio chunk as the microphone hears it from a speaker: 16 kHz, at half its level.
fn echo_of(audio: &parlance_shared::AudioClip) -> Vec<u8> {
    use base64::Engine as _;
    let wav = base64::engine::general_purpose::STANDARD.decode(&audio.data_base64).unwrap();
    let (samples, rate) = parlance_server::audio::encode::read_wav(&wav).unwrap();
    let heard = parlance_server::audio::resample(&samples, rate, 16_000).unwrap();
    heard.iter().map(|sample| ((sample * 0.5).clamp(-1.0, 1.0) * 32_767.0) as i16).flat_map(i16::to_le_bytes).collect()
}

/// Speech over the answer was heard and ignored for `reason`, and it neither stopped the answer nor started
/// a turn.
fn heard_and_ignored(events: &[ServerEvent], reason: parlance_shared::IgnoredSpeech) {
    let ignored = events.iter().any(|event| matches!(event, ServerEvent::SpeechIgnored { reason: why, .. } if *why == reason));
    assert!(ignored, "speech was heard and ignored as {reason:?}: {:?}", summary(events));
    assert!(!was_interrupted(events), "the answer was not interrupted: {:?}", summary(events));
    assert_eq!(turn_ended(events).len(), 1, "no turn was taken: {:?}", summary(events));
}

/// The events without their audio, for failure messages.
fn summary(events: &[ServerEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            ServerEvent::AudioChunk { sequence, text, .. } => format!("AudioChunk {sequence} {text:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn was_interrupted(events: &[ServerEvent]) -> bool {
    events.iter().any(|event| matches!(event, ServerEvent::Interrupted { .. }))
}

#[tokio::test]
async fn the_answer_heard_back_through_the_microphone_does_not_interrupt_it() {
    let address = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let question = spoken_pcm16(dir.path(), "capital", "What is the capital of France?");
    let echo = |event: &ServerEvent| match event {
        ServerEvent::AudioChunk { audio, .. } => vec![echo_of(audio)],
        _ => vec![],
    };
    let events = talk_over_answers(&address, question, echo, |_| false).await;

    let answer = events.iter().find_map(|event| match event {
        ServerEvent::Done { answer, .. } => Some(answer.as_str()),
        _ => None,
    });
    assert!(answer.is_some_and(|answer| answer.contains("Paris")), "{:?}", summary(&events));
    heard_and_ignored(&events, parlance_shared::IgnoredSpeech::Echo);
}

#[tokio::test]
async fn acknowledgements_during_the_answer_do_not_stop_it() {
    let address = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    // An answer of a few sentences, so that all three are said while it plays: said after it, "Right." would
    // be the user's next turn.
    let question = spoken_pcm16(dir.path(), "paris", "Tell me about Paris in three sentences.");
    let acknowledgements = [
        spoken_pcm16(dir.path(), "okay", "Okay."),
        silence(400),
        spoken_pcm16(dir.path(), "uh-huh", "Uh-huh."),
        silence(400),
        spoken_pcm16(dir.path(), "right", "Right."),
    ];
    let mut said = false;
    let listen = move |event: &ServerEvent| match event {
        ServerEvent::AudioChunk { .. } if !said => {
            said = true;
            acknowledgements.to_vec()
        }
        _ => vec![],
    };
    let events = talk_over_answers(&address, question, listen, |_| false).await;

    assert!(events.iter().any(is_done), "the answer went on to its end: {:?}", summary(&events));
    heard_and_ignored(&events, parlance_shared::IgnoredSpeech::Backchannel);
}

#[tokio::test]
async fn speaking_over_the_answer_stops_it_and_becomes_the_next_question() {
    let address = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let question = spoken_pcm16(dir.path(), "france", "What is the capital of France?");
    let mut interruption = Some(spoken_pcm16(dir.path(), "germany", "No, stop. What is the capital of Germany?"));
    let cut_in = move |event: &ServerEvent| match event {
        ServerEvent::AudioChunk { .. } => interruption.take().into_iter().collect(),
        _ => vec![],
    };
    let second_done = |events: &[ServerEvent]| events.iter().filter(|event| is_done(event)).count() == 2;
    let events = talk_over_answers(&address, question, cut_in, second_done).await;

    let interrupted = events
        .iter()
        .position(|event| matches!(event, ServerEvent::Interrupted { .. }))
        .unwrap_or_else(|| panic!("the answer was interrupted: {:?}", summary(&events)));
    assert!(
        events[interrupted + 1..]
            .iter()
            .any(|event| matches!(event, ServerEvent::Status { state: parlance_shared::TurnState::Listening, .. })),
        "the next turn is listened to: {:?}",
        summary(&events)
    );
    assert_eq!(turn_ended(&events).len(), 2, "two turns: {:?}", summary(&events));
    let (session_id, answer, _) = done(&events);
    assert!(answer.contains("Berlin"), "the interruption was the next question: {answer}");
    let ServerEvent::Interrupted { kept_answer, .. } = &events[interrupted] else { unreachable!() };

    let history: parlance_shared::SessionHistory =
        reqwest::get(format!("http://{address}/api/sessions/{session_id}")).await.unwrap().json().await.unwrap();
    let lines: Vec<(&str, bool)> = history.turns.iter().map(|turn| (turn.text.as_str(), turn.interrupted)).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].0.contains("France") && lines[2].0.contains("Germany"), "{lines:?}");
    assert_eq!(lines[1], (kept_answer.as_str(), true), "the first answer is kept as far as it was played, marked interrupted");
    assert_eq!(lines[3], (answer, false));
}
