//! Time to first audio, the figure a voice assistant is judged by: spoken questions (made with espeak-ng)
//! through (a) the streaming socket, answer spoken sentence by sentence while the model writes, and (b) the
//! sequential path of the reference design (`POST /api/voice`: transcribe, whole answer, whole speech), on
//! the same backends in one run. Printed as figures, not a pass/fail test.
//!
//!     source scripts/env.sh && cargo bench -p parlance-server --bench first_audio --profile dev [-- --questions 8]
//!
//! The backends come from the normal settings (PARLANCE_* variables, installed local models), as `parlance`
//! itself would use them. `-- --fake` runs against the tests' fake OpenAI-compatible server with made-up
//! delays instead: that only checks the bench works; its figures say nothing about Parlance.
//! Run it on a quiet machine: two cores shared with a build give meaningless numbers.

mod common;
#[allow(dead_code)]
#[path = "../tests/support/fake_openai.rs"]
mod fake_openai;

use std::time::{Duration, Instant};

use clap::Parser as _;
use common::{ms, percentiles, spoken};
use futures::{SinkExt, StreamExt};
use parlance_server::config::StageBackend;
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, TurnResponse};
use tokio_tungstenite::tungstenite::Message;

const QUESTIONS: [&str; 8] = [
    "Why is the sky blue?",
    "How do I make a good cup of tea?",
    "Tell me a fun fact about the ocean.",
    "What should I cook for dinner tonight?",
    "How far away is the moon?",
    "Give me a tip for sleeping better.",
    "What is a good name for a cat?",
    "How do plants make their food?",
];

struct Options {
    fake: bool,
    questions: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let questions = args
        .iter()
        .position(|arg| arg == "--questions")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(QUESTIONS.len());
    Options { fake: args.iter().any(|arg| arg == "--fake"), questions: questions.max(1) }
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(options));
}

async fn run(options: Options) {
    // Settings as `parlance` reads them; the bench itself asks more turns a minute than the default budget.
    let mut args = vec!["parlance".to_owned(), "--turns-per-minute".into(), "0".into(), "--frontend-dir".into(), "/nonexistent".into()];
    let _fake = if options.fake {
        let fake = fake_openai::FakeOpenAi::start("Why is the sky blue?").await;
        fake.configure(|behaviour| {
            behaviour.answer = Some(
                "Sunlight is made of every colour. Air scatters blue light much more than red light. \
                 So blue reaches your eyes from all over the sky."
                    .into(),
            );
            behaviour.stt_delay = Duration::from_millis(400);
            behaviour.delta_delay = Duration::from_millis(45);
            behaviour.speech_delay = Duration::from_millis(150);
        });
        args.extend(["--openai-base-url".into(), fake.base_url.clone(), "--openai-api-key".into(), fake_openai::API_KEY.into()]);
        println!("first_audio  against the FAKE provider with made-up delays: checks the bench, not Parlance");
        Some(fake)
    } else {
        None
    };
    let settings = match parlance_server::Config::try_parse_from(&args).map(|config| config.validate()) {
        Ok(Ok(settings)) => settings,
        Ok(Err(error)) => return eprintln!("first_audio: invalid settings: {error}"),
        Err(error) => return eprintln!("first_audio: invalid settings: {error}"),
    };
    for (stage, backend) in [("speech-to-text", &settings.stt), ("language model", &settings.llm), ("text-to-speech", &settings.tts)] {
        if matches!(backend, StageBackend::None) {
            return eprintln!("first_audio: no {stage} backend; install the local models or set PARLANCE_* (see README), or pass --fake");
        }
    }
    let app = parlance_server::app(&settings).expect("the server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let dir = tempfile::tempdir().expect("temp dir");
    let recordings: Vec<Vec<u8>> =
        (0..options.questions).map(|i| spoken(&dir.path().join(format!("q{i}.wav")), QUESTIONS[i % QUESTIONS.len()])).collect();

    // One turn of each kind first: lazy model loading and cold caches are not what is measured.
    sequential(&address, &recordings[0]).await;
    streaming(&address, &recordings[0]).await;

    let (mut streamed, mut whole) = (Vec::new(), Vec::new());
    for (i, recording) in recordings.iter().enumerate() {
        // Alternating the order keeps a slow moment of the machine from landing on one path only.
        if i % 2 == 0 {
            streamed.push(streaming(&address, recording).await);
            whole.push(sequential(&address, recording).await);
        } else {
            whole.push(sequential(&address, recording).await);
            streamed.push(streaming(&address, recording).await);
        }
        println!("first_audio  question {:>2}   streaming {:>7.0} ms   sequential {:>7.0} ms", i + 1, ms(streamed[i]), ms(whole[i]));
    }
    let (s50, s95) = percentiles(&mut streamed);
    let (w50, w95) = percentiles(&mut whole);
    let n = recordings.len();
    println!("first_audio  streaming (socket)    p50 {:>7.0} ms   p95 {:>7.0} ms   (n={n})", ms(s50), ms(s95));
    println!("first_audio  sequential (HTTP)     p50 {:>7.0} ms   p95 {:>7.0} ms   (n={n})", ms(w50), ms(w95));
    println!("first_audio  ratio streaming/sequential   p50 {:.2}   p95 {:.2}", ms(s50) / ms(w50), ms(s95) / ms(w95));
}

/// From the end of the upload to the answer with its audio: the sequential design plays nothing before.
async fn sequential(address: &str, recording: &[u8]) -> Duration {
    let form = reqwest::multipart::Form::new().part("audio", reqwest::multipart::Part::bytes(recording.to_vec()).file_name("question.wav"));
    let started = Instant::now();
    let response = reqwest::Client::new().post(format!("http://{address}/api/voice")).multipart(form).send().await.expect("request");
    let turn: TurnResponse = response.json().await.expect("a turn response");
    let elapsed = started.elapsed();
    assert!(turn.audio.is_some(), "the sequential answer has no audio: {:?}", turn.speech_error);
    elapsed
}

/// From `end_turn` to the first audio chunk; the rest of the turn is read so turns do not overlap.
async fn streaming(address: &str, recording: &[u8]) -> Duration {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.expect("socket");
    let send = |message: &ClientMessage| Message::text(serde_json::to_string(message).expect("json"));
    socket.send(send(&ClientMessage::Start { session_id: None, encoding: AudioEncoding::Wav })).await.expect("start");
    for frame in recording.chunks(16 * 1024) {
        socket.send(Message::binary(frame.to_vec())).await.expect("audio");
    }
    socket.send(send(&ClientMessage::EndTurn)).await.expect("end turn");
    let ended = Instant::now();
    let mut first_audio = None;
    while let Some(message) = socket.next().await {
        let Ok(Message::Text(text)) = message else { continue };
        match serde_json::from_str::<ServerEvent>(text.as_str()).expect("an event") {
            ServerEvent::AudioChunk { .. } if first_audio.is_none() => first_audio = Some(ended.elapsed()),
            ServerEvent::Done { .. } => break,
            ServerEvent::Error { error } => panic!("the streamed turn failed: {error}"),
            _ => {}
        }
    }
    first_audio.expect("the streamed answer has audio")
}
