//! Time to first audio, the figure a voice assistant is judged by: spoken questions (made with espeak-ng),
//! general ones and ones about the user's notes (the knowledge evaluation's notes, added to a fresh store),
//! through (a) the streaming socket, answer spoken sentence by sentence while the model writes, and (b) the
//! sequential path of the reference design (`POST /api/voice`: transcribe, whole answer, whole speech), on
//! the same backends in one run, timed from the end of the question (`end_turn`, the end of the upload) and
//! from the end of speech (what the user feels: the silence before the turn ends is part of the wait). Printed
//! as figures, not a pass/fail test.
//!
//!     source scripts/env.sh && cargo bench --workspace --bench first_audio --profile dev [-- --questions 8] [--silence-ms 800]
//!
//! Each question is 16 kHz speech followed by `--silence-ms` of silence, what a microphone hears before the
//! turn ends: hands-free mode ends it after 0.8 s of silence (the web app's default), push to talk when the
//! user lets go (a few tenths of a second). The socket gets it as the web app sends it, raw PCM16 in 100 ms
//! frames at the pace it is spoken; the sequential path uploads the same recording as a WAV file. Both are
//! timed from the end of the question: `end_turn`, or the end of the upload.
//!
//! The backends come from the normal settings (PARLANCE_* variables, installed local models), as `parlance`
//! itself would use them. `-- --fake` runs against the tests' fake OpenAI-compatible server with made-up
//! delays instead: that only checks the bench works; its figures say nothing about Parlance.
//! Run it on a quiet machine: two cores shared with a build give meaningless numbers.

mod common;
#[allow(dead_code)]
#[path = "../tests/it/support/fake_openai.rs"]
mod fake_openai;

use std::time::{Duration, Instant};

use clap::Parser as _;
use common::{ms, percentiles, spoken, tool};
use futures::{SinkExt, StreamExt};
use parlance_server::config::StageBackend;
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, TextTurnRequest, TurnResponse};
use tokio_tungstenite::tungstenite::Message;

/// About the notes in `eval/knowledge/notes` (the same facts the knowledge evaluation asks about).
const KNOWLEDGE_QUESTIONS: [&str; 8] = [
    "What time do you open on Saturdays?",
    "How much is a basic tune-up?",
    "Are you open on Mondays?",
    "Who is the head mechanic?",
    "When is the black bin collected?",
    "Where is the water stopcock?",
    "What's the guest wifi password?",
    "Can Biscuit have chicken?",
];

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
    silence_ms: u32,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let questions = args
        .iter()
        .position(|arg| arg == "--questions")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(QUESTIONS.len());
    let silence_ms =
        args.iter().position(|arg| arg == "--silence-ms").and_then(|at| args.get(at + 1)).and_then(|n| n.parse().ok()).unwrap_or(800);
    Options { fake: args.iter().any(|arg| arg == "--fake"), questions: questions.max(1), silence_ms }
}

fn main() {
    let options = options();
    common::run_bench(|| run(options));
}

async fn run(options: Options) {
    // Settings as `parlance` reads them; the bench itself asks more turns a minute than the default budget.
    // A fresh data directory with the shipped notes, as a new install has: the automatic knowledge search
    // compares every question with them, and the bench's turns stay out of the user's conversations.
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec![
        "parlance".to_owned(),
        "--turns-per-minute".into(),
        "0".into(),
        "--frontend-dir".into(),
        "/nonexistent".into(),
        "--data-dir".into(),
        data_dir.path().to_str().expect("UTF-8 path").to_owned(),
    ];
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
    let app = parlance_server::start(&settings).await.expect("the server starts and seeds its notes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(parlance_server::without_nagle(listener), app).await.expect("serve") });

    println!("first_audio  {} notes added (eval/knowledge/notes)", common::add_eval_notes(&address).await);

    let dir = tempfile::tempdir().expect("temp dir");
    println!("first_audio  each question ends in {} ms of silence; the socket gets it at speaking pace", options.silence_ms);
    let silence = Duration::from_millis(u64::from(options.silence_ms));
    let mut warm = true;
    for (kind, questions) in [("general", QUESTIONS), ("knowledge", KNOWLEDGE_QUESTIONS)] {
        let recordings: Vec<Vec<u8>> = (0..options.questions)
            .map(|i| question(dir.path(), &format!("{kind}{i}"), questions[i % questions.len()], options.silence_ms))
            .collect();
        if warm {
            // One turn of each path first: lazy model loading and cold caches are not what is measured.
            sequential(&address, &recordings[0]).await;
            streaming(&address, &recordings[0]).await;
            warm = false;
        }
        measure(&address, kind, &recordings, silence).await;
    }
}

/// Both paths over `recordings`, printed as `kind`. From the end of speech adds the trailing silence: the
/// user has stopped talking while the microphone still sends it (the socket) or before the upload starts.
async fn measure(address: &str, kind: &str, recordings: &[Vec<u8>], silence: Duration) {
    let (mut streamed, mut whole, mut finished) = (Vec::new(), Vec::new(), Vec::new());
    for (i, recording) in recordings.iter().enumerate() {
        // Alternating the order keeps a slow moment of the machine from landing on one path only. Before each
        // turn an unrelated typed question leaves only the system prompt in the local model's cache, as a new
        // question finds it: the second path would otherwise find the first one's whole prompt evaluated.
        if i % 2 == 0 {
            forget_the_question(address).await;
            let (first, done) = streaming(address, recording).await;
            streamed.push(first);
            finished.push(done);
            forget_the_question(address).await;
            whole.push(sequential(address, recording).await);
        } else {
            forget_the_question(address).await;
            whole.push(sequential(address, recording).await);
            forget_the_question(address).await;
            let (first, done) = streaming(address, recording).await;
            streamed.push(first);
            finished.push(done);
        }
        println!("first_audio  {kind} {:>2}   streaming {:>7.0} ms   sequential {:>7.0} ms", i + 1, ms(streamed[i]), ms(whole[i]));
    }
    let (s50, s95) = percentiles(&mut streamed);
    let (w50, w95) = percentiles(&mut whole);
    let (d50, d95) = percentiles(&mut finished);
    let n = recordings.len();
    let from_speech = |d: Duration| ms(d + silence);
    println!(
        "first_audio  {kind:<9} streaming (socket)    p50 {:>7.0} ms   p95 {:>7.0} ms from end_turn; p50 {:>7.0} ms   p95 {:>7.0} ms from the end of speech   (n={n})",
        ms(s50),
        ms(s95),
        from_speech(s50),
        from_speech(s95)
    );
    println!(
        "first_audio  {kind:<9} sequential (HTTP)     p50 {:>7.0} ms   p95 {:>7.0} ms from the upload;  p50 {:>7.0} ms   p95 {:>7.0} ms from the end of speech   (n={n})",
        ms(w50),
        ms(w95),
        from_speech(w50),
        from_speech(w95)
    );
    println!("first_audio  {kind:<9} ratio streaming/sequential   p50 {:.2}   p95 {:.2}", ms(s50) / ms(w50), ms(s95) / ms(w95));
    println!("first_audio  {kind:<9} streaming, whole answer synthesised   p50 {:>7.0} ms   p95 {:>7.0} ms   (n={n})", ms(d50), ms(d95));
}

/// A short typed turn without speech, so the next turn's question is new to the language model.
async fn forget_the_question(address: &str) {
    let request = TextTurnRequest { session_id: None, text: "Say hello.".into(), speak: false, speech_rate: None, voice: None };
    let response = reqwest::Client::new().post(format!("http://{address}/api/chat")).json(&request).send().await.expect("request");
    assert!(response.status().is_success(), "the typed turn failed: {}", response.status());
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

/// Question `name` spoken by espeak-ng, as a 16 kHz mono PCM16 WAV file ending in `silence_ms` of silence.
fn question(dir: &std::path::Path, index: &str, text: &str, silence_ms: u32) -> Vec<u8> {
    let spoken_path = dir.join(format!("q{index}-espeak.wav"));
    let path = dir.join(format!("q{index}.wav"));
    spoken(&spoken_path, text);
    let (from, to) = (spoken_path.to_str().expect("utf-8 path"), path.to_str().expect("utf-8 path"));
    let pad = format!("{}", f64::from(silence_ms) / 1000.0);
    tool("sox", &["-V1", from, "-r", "16000", "-c", "1", "-b", "16", to, "pad", "0", &pad]);
    std::fs::read(&path).expect("recording")
}

/// From `end_turn` to the first audio chunk, and to the end of the turn (the whole answer synthesised: the
/// language model and the voice share the cores while it is spoken).
async fn streaming(address: &str, recording: &[u8]) -> (Duration, Duration) {
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{address}/api/ws"), None, true).await.expect("socket");
    let send = |message: &ClientMessage| Message::text(serde_json::to_string(message).expect("json"));
    socket
        .send(send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Pcm16,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        }))
        .await
        .expect("start");
    let samples = hound::WavReader::new(recording).expect("a WAV question").into_samples::<i16>();
    let pcm: Vec<u8> = samples.flat_map(|sample| sample.expect("a sample").to_le_bytes()).collect();
    // 100 ms frames at the pace of speech, as the web app's microphone sends them.
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    for frame in pcm.chunks(3_200) {
        pace.tick().await;
        socket.send(Message::binary(frame.to_vec())).await.expect("audio");
    }
    pace.tick().await;
    socket.send(send(&ClientMessage::EndTurn)).await.expect("end turn");
    let ended = Instant::now();
    let (mut transcript, mut first_words, mut first_audio, mut spoken, mut heard) = (None, None, None, String::new(), String::new());
    let mut done = None;
    while let Some(message) = socket.next().await {
        let Ok(Message::Text(text)) = message else { continue };
        match serde_json::from_str::<ServerEvent>(text.as_str()).expect("an event") {
            ServerEvent::Transcript { is_final: true, text } => {
                transcript = Some(ended.elapsed());
                heard = text;
            }
            ServerEvent::AnswerDelta { .. } if first_words.is_none() => first_words = Some(ended.elapsed()),
            ServerEvent::AudioChunk { text, .. } => {
                first_audio.get_or_insert(ended.elapsed());
                if spoken.is_empty() {
                    spoken = text;
                }
            }
            ServerEvent::Done { .. } => {
                done = Some(ended.elapsed());
                break;
            }
            ServerEvent::Error { error } => panic!("the streamed turn failed: {error}"),
            _ => {}
        }
    }
    // A clean close: the server otherwise logs a reset connection after every question.
    let _ = socket.close(None).await;
    let first_audio = first_audio.expect("the streamed answer has audio");
    // Where the wait went: the transcript, the model's first words, then its first sentence spoken.
    let at = |moment: Option<Duration>| moment.map_or(f64::NAN, ms);
    println!(
        "first_audio      streaming split: transcript {:>5.0} ms, first words {:>5.0} ms, first audio {:>5.0} ms, done {:>5.0} ms  \
         {heard:?} -> {spoken:?}",
        at(transcript),
        at(first_words),
        ms(first_audio),
        at(done)
    );
    (first_audio, done.expect("the streamed turn ends"))
}
