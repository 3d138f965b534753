//! The knowledge evaluation (`eval/knowledge/`): spoken questions about a made-up user's own notes, asked
//! through the real socket at speaking pace and through `POST /api/voice`, on the backends the settings choose
//! (the local models by default). It writes every answer with its timings to a JSON-lines file and hands that
//! to `eval/knowledge/check.py --report`, which scores it (hit rate, confidently wrong answers, "not in the
//! notes" handled, word error rate, time to first audio by kind of question). Figures, not a pass/fail test.
//!
//!     scripts/eval-knowledge.sh                       # makes the recordings, runs this, prints the report
//!     cargo bench --workspace --bench knowledge_eval --profile dev -- [--typed] [--paths streaming,sequential]
//!         [--silence-ms 1500 --complete-silence-ms 300]   (what the hands-free paths ask the server for)
//!         [--only k01,k02] [--audio DIR] [--out FILE]
//!
//! `--typed` asks the questions as text over the socket (no speech-to-text): a quick check of the answers.
//! `--paths hands_free,hands_free_paused` lets the server end each turn (`turn_detection`, its defaults) while
//! the recording, then silence, streams in as from a microphone, with no `end_turn`: `hands_free_paused`
//! plays the version with 500 ms of silence mid-question. They add the turn-taking figures: turns cut off
//! before the speech ended, and the delay from the end of speech to the server's end of the turn.
//! Settings come from PARLANCE_* variables as `parlance` reads them (e.g. PARLANCE_ANSWER_STYLE=generative,
//! PARLANCE_LLM_MODEL_PATH=...). Run it on a quiet machine.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser as _;
use common::ms;
use futures::{SinkExt, StreamExt};
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, SessionId, TextTurnRequest, TurnDetection, TurnResponse};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Options {
    typed: bool,
    paths: Vec<String>,
    only: Option<Vec<String>>,
    audio: PathBuf,
    out: PathBuf,
    /// What the hands-free paths ask the server for (`--silence-ms`, `--complete-silence-ms`).
    detection: TurnDetection,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|arg| arg == name).and_then(|at| args.get(at + 1)).cloned();
    let list = |text: String| text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>();
    Options {
        typed: args.iter().any(|arg| arg == "--typed"),
        paths: value("--paths").map(list).unwrap_or_else(|| vec!["streaming".into(), "sequential".into()]),
        only: value("--only").map(list),
        audio: value("--audio").map_or_else(|| PathBuf::from("/tmp/parlance-eval-audio"), PathBuf::from),
        out: value("--out").map_or_else(|| std::env::temp_dir().join("parlance-knowledge-eval.jsonl"), PathBuf::from),
        detection: TurnDetection {
            silence_ms: value("--silence-ms").map_or_else(TurnDetection::default_silence_ms, |ms| milliseconds("--silence-ms", &ms)),
            complete_silence_ms: value("--complete-silence-ms")
                .map_or_else(TurnDetection::default_complete_silence_ms, |ms| milliseconds("--complete-silence-ms", &ms)),
            barge_in: false,
        },
    }
}

/// A typo must not run the whole evaluation on the default setting.
fn milliseconds(option: &str, value: &str) -> u32 {
    value.parse().unwrap_or_else(|_| panic!("{option} takes a whole number of milliseconds, not {value:?}"))
}

fn eval_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/knowledge")
}

fn main() {
    let options = options();
    common::run_bench(|| run(options));
}

async fn run(options: Options) {
    let questions: Vec<Value> = std::fs::read_to_string(eval_dir().join("questions.jsonl"))
        .expect("eval/knowledge/questions.jsonl")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a question"))
        .collect();
    let selected = |q: &Value| options.only.as_ref().is_none_or(|only| only.iter().any(|id| id == q["id"].as_str().unwrap_or_default()));
    let manifest = if options.typed { Vec::new() } else { recordings(&options.audio) };

    // A new install: a fresh data directory (the shipped notes), then the evaluation's notes added over the API.
    let data_dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "parlance",
        "--turns-per-minute",
        "0",
        "--frontend-dir",
        "/nonexistent",
        "--data-dir",
        data_dir.path().to_str().expect("UTF-8 path"),
    ];
    let settings = match parlance_server::Config::try_parse_from(args).map(|config| config.validate()) {
        Ok(Ok(settings)) => settings,
        Ok(Err(error)) => return eprintln!("knowledge_eval: invalid settings: {error}"),
        Err(error) => return eprintln!("knowledge_eval: invalid settings: {error}"),
    };
    let app = parlance_server::start(&settings).await.expect("the server starts and seeds its notes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(parlance_server::without_nagle(listener), app).await.expect("serve") });
    println!("knowledge_eval  {} notes added", common::add_eval_notes(&address).await);

    let paths: Vec<&str> = if options.typed { vec!["typed"] } else { options.paths.iter().map(String::as_str).collect() };
    // Lazy model loading and cold caches are not what is measured.
    typed(&address, None, "Say hello.").await;
    let mut out = std::fs::File::create(&options.out).expect("the results file");
    let started = Instant::now();
    for path in &paths {
        let mut session: Option<SessionId> = None;
        for question in questions.iter().filter(|q| selected(q)) {
            let id = question["id"].as_str().unwrap_or_default();
            let text = question["question"].as_str().unwrap_or_default();
            let follow_up = question["kind"] == "follow_up";
            if !follow_up {
                // Only the system prompt left in the model's cache, as a new question finds it.
                typed(&address, None, "Say hello.").await;
                session = None;
            }
            let result = match *path {
                "typed" => typed_streamed(&address, session.clone(), text).await,
                "streaming" => streaming(&address, session.clone(), &options.audio, question, manifest_of(&manifest, id)).await,
                "sequential" => sequential(&address, session.clone(), &options.audio, question, manifest_of(&manifest, id)).await,
                "hands_free" => {
                    hands_free(&address, session.clone(), &options.audio, manifest_of(&manifest, id), false, options.detection).await
                }
                "hands_free_paused" => {
                    hands_free(&address, session.clone(), &options.audio, manifest_of(&manifest, id), true, options.detection).await
                }
                other => panic!("unknown path {other:?}: typed, streaming or sequential"),
            };
            session = Some(result.session_id.clone());
            let line = json!({
                "id": id,
                "path": path,
                "transcript": result.transcript,
                "answer": result.answer,
                "sources": result.sources,
                "first_audio_ms": result.first_audio.map(ms),
                "first_audio_from_speech_end_ms": result.from_speech_end.map(ms),
                "done_ms": ms(result.done),
                "turn_ended": result.turn_ended,
            });
            println!(
                "knowledge_eval  {path:<10} {id}  first audio {:>6} ms (from speech end {:>6} ms)  {:?} -> {:?}",
                result.first_audio.map_or("-".into(), |d| format!("{:.0}", ms(d))),
                result.from_speech_end.map_or("-".into(), |d| format!("{:.0}", ms(d))),
                result.transcript,
                result.answer
            );
            use std::io::Write as _;
            writeln!(out, "{line}").expect("write a result");
        }
    }
    println!("knowledge_eval  {} turns in {:.0} s; results in {}", paths.len(), started.elapsed().as_secs_f64(), options.out.display());
    let status = std::process::Command::new("python3")
        .arg(eval_dir().join("check.py"))
        .arg("--report")
        .arg(&options.out)
        .status()
        .expect("python3 runs check.py");
    assert!(status.success(), "check.py --report failed");
}

/// The recordings' manifest, made first if missing.
fn recordings(dir: &Path) -> Vec<Value> {
    let manifest = dir.join("manifest.jsonl");
    if !manifest.exists() {
        let status = std::process::Command::new(eval_dir().join("make-audio.sh")).arg(dir).status().expect("make-audio.sh runs");
        assert!(status.success(), "make-audio.sh failed");
    }
    std::fs::read_to_string(manifest)
        .expect("manifest.jsonl")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a manifest line"))
        .collect()
}

fn manifest_of<'a>(manifest: &'a [Value], id: &str) -> &'a Value {
    manifest.iter().find(|entry| entry["id"] == id).unwrap_or_else(|| panic!("no recording of {id} in the manifest"))
}

struct Outcome {
    session_id: SessionId,
    transcript: String,
    answer: String,
    sources: Vec<String>,
    /// From `end_turn` (or the question sent, or the upload's end).
    first_audio: Option<Duration>,
    from_speech_end: Option<Duration>,
    done: Duration,
    /// How the server ended a hands-free turn (see [`hands_free`]).
    turn_ended: Option<Value>,
}

/// A typed turn over HTTP, without speech.
async fn typed(address: &str, session_id: Option<SessionId>, text: &str) -> TurnResponse {
    let request = TextTurnRequest { session_id, text: text.into(), speak: false, speech_rate: None, voice: None };
    let response = reqwest::Client::new().post(format!("http://{address}/api/chat")).json(&request).send().await.expect("request");
    assert!(response.status().is_success(), "the typed turn failed: {}", response.status());
    response.json().await.expect("a turn response")
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn message(message: &ClientMessage) -> Message {
    Message::text(serde_json::to_string(message).expect("json"))
}

/// A typed question over the socket, spoken back: timed from sending it.
async fn typed_streamed(address: &str, session_id: Option<SessionId>, text: &str) -> Outcome {
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{address}/api/ws"), None, true).await.expect("socket");
    socket
        .send(message(&ClientMessage::Text { session_id, text: text.into(), speak: true, speech_rate: None, voice: None }))
        .await
        .expect("question");
    let mut outcome = listen(&mut socket, Instant::now(), None).await;
    outcome.transcript = text.to_owned();
    outcome
}

/// The recording at speaking pace: PCM16 in 100 ms frames as the web app sends it, an encoded file in ten
/// pieces over its length as a recorder's timeslices arrive.
async fn streaming(address: &str, session_id: Option<SessionId>, dir: &Path, question: &Value, manifest: &Value) -> Outcome {
    let id = question["id"].as_str().unwrap_or_default();
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{address}/api/ws"), None, true).await.expect("socket");
    let speech_end = Duration::from_millis(manifest["speech_end_ms"].as_u64().expect("speech_end_ms"));
    let encoding = question["encode"].as_str();
    let (format, pieces): (AudioEncoding, Vec<Vec<u8>>) = match encoding {
        Some(kind) => {
            let file = std::fs::read(dir.join(format!("{id}.{}", if kind == "mp4" { "m4a" } else { "webm" }))).expect("recording");
            let size = file.len().div_ceil(10);
            (if kind == "mp4" { AudioEncoding::Mp4 } else { AudioEncoding::Webm }, file.chunks(size).map(<[u8]>::to_vec).collect())
        }
        None => {
            let wav = std::fs::read(dir.join(format!("{id}.wav"))).expect("recording");
            let samples = hound::WavReader::new(wav.as_slice()).expect("a WAV question").into_samples::<i16>();
            let pcm: Vec<u8> = samples.flat_map(|sample| sample.expect("a sample").to_le_bytes()).collect();
            (AudioEncoding::Pcm16, pcm.chunks(3_200).map(<[u8]>::to_vec).collect())
        }
    };
    let duration = Duration::from_millis(manifest["duration_ms"].as_u64().expect("duration_ms"));
    let pace = duration / u32::try_from(pieces.len()).expect("pieces");
    socket
        .send(message(&ClientMessage::Start { session_id, encoding: format, turn_detection: None, speech_rate: None, voice: None }))
        .await
        .expect("start");
    let mut ticks = tokio::time::interval(pace);
    ticks.tick().await;
    let first_sent = Instant::now();
    for piece in pieces {
        socket.send(Message::binary(piece)).await.expect("audio");
        ticks.tick().await;
    }
    socket.send(message(&ClientMessage::EndTurn)).await.expect("end turn");
    // A frame leaves the microphone once full: the last voiced sample left with the frame sent one frame later.
    let spoken_until = first_sent + speech_end.saturating_sub(pace.min(Duration::from_millis(100)));
    listen(&mut socket, Instant::now(), Some(spoken_until)).await
}

async fn listen(socket: &mut Socket, ended: Instant, spoken_until: Option<Instant>) -> Outcome {
    let mut first_audio = None;
    let mut from_speech_end = None;
    let mut transcript = String::new();
    while let Some(frame) = socket.next().await {
        let Ok(Message::Text(text)) = frame else { continue };
        match serde_json::from_str::<ServerEvent>(text.as_str()).expect("an event") {
            ServerEvent::Transcript { is_final: true, text } => transcript = text,
            ServerEvent::AudioChunk { .. } if first_audio.is_none() => {
                first_audio = Some(ended.elapsed());
                from_speech_end = spoken_until.map(|at| at.elapsed());
            }
            ServerEvent::Done { session_id, answer, sources, .. } => {
                let _ = socket.close(None).await;
                return Outcome {
                    session_id,
                    transcript,
                    answer,
                    sources: sources.into_iter().map(|source| source.title).collect(),
                    first_audio,
                    from_speech_end,
                    done: ended.elapsed(),
                    turn_ended: None,
                };
            }
            ServerEvent::Error { error } => panic!("the streamed turn failed: {error}"),
            _ => {}
        }
    }
    panic!("the socket closed before the turn was done")
}

/// The recording as raw PCM16 in 20 ms frames at the pace of speech, then silence until the server ends the
/// turn (`turn_detection` with its defaults); no `end_turn`. Containers are not heard this way, so every
/// question is played from its WAV. `paused`: the version with 500 ms of silence mid-question.
async fn hands_free(
    address: &str,
    session_id: Option<SessionId>,
    dir: &Path,
    manifest: &Value,
    paused: bool,
    detection: TurnDetection,
) -> Outcome {
    const FRAME: usize = 640;
    let field = |name: &str| if paused { format!("paused_{name}") } else { name.to_owned() };
    let wav = std::fs::read(dir.join(manifest[field("wav")].as_str().expect("a WAV file"))).expect("recording");
    let speech_end = Duration::from_millis(manifest[field("speech_end_ms")].as_u64().expect("speech_end_ms"));
    let samples = hound::WavReader::new(wav.as_slice()).expect("a WAV question").into_samples::<i16>();
    let pcm: Vec<u8> = samples.flat_map(|sample| sample.expect("a sample").to_le_bytes()).collect();
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{address}/api/ws"), None, true).await.expect("socket");
    let detection = Some(detection);
    socket
        .send(message(&ClientMessage::Start {
            session_id,
            encoding: AudioEncoding::Pcm16,
            turn_detection: detection,
            speech_rate: None,
            voice: None,
        }))
        .await
        .expect("start");
    let (mut outgoing, mut incoming) = socket.split();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    let first_sent = Instant::now();
    let microphone = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        let quiet = vec![0_u8; FRAME];
        let mut frames = pcm.chunks(FRAME).map(<[u8]>::to_vec);
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            ticks.tick().await;
            let frame = frames.next().unwrap_or_else(|| quiet.clone());
            if outgoing.send(Message::binary(frame)).await.is_err() {
                break;
            }
        }
        outgoing
    });
    // A frame leaves the microphone once full: the last voiced sample left with the frame after it.
    let spoken_until = first_sent + speech_end + Duration::from_millis(20);
    let (turn_ended, ended_at) = loop {
        let Some(Ok(Message::Text(text))) = incoming.next().await else { panic!("the socket closed before the turn ended") };
        match serde_json::from_str::<ServerEvent>(text.as_str()).expect("an event") {
            ServerEvent::TurnEnded { speech_end_ms, silence_ms, end_of_turn_probability } => {
                let ended_at = Instant::now();
                let cut_off = speech_end_ms + 150 < ms(speech_end) as u64;
                let delay = ended_at.saturating_duration_since(spoken_until);
                println!(
                    "knowledge_eval  turn ended {:.0} ms after the speech (heard until {speech_end_ms} ms, spoken until {:.0} ms; silence {silence_ms} ms; p {end_of_turn_probability:?}){}",
                    ms(delay),
                    ms(speech_end),
                    if cut_off { "  CUT OFF" } else { "" }
                );
                let record = json!({
                    "heard_until_ms": speech_end_ms,
                    "spoken_until_ms": ms(speech_end),
                    "silence_ms": silence_ms,
                    "probability": end_of_turn_probability,
                    "delay_ms": ms(delay),
                    "cut_off": cut_off,
                });
                break (record, ended_at);
            }
            ServerEvent::Error { error } => panic!("the hands-free turn failed: {error}"),
            _ => {}
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outgoing = microphone.await.expect("the microphone task");
    let mut socket = outgoing.reunite(incoming).expect("the socket's two halves");
    let mut outcome = listen(&mut socket, ended_at, Some(spoken_until)).await;
    outcome.turn_ended = Some(turn_ended);
    outcome
}

/// The same recording as one upload; the user has already waited the trailing silence when it starts.
async fn sequential(address: &str, session_id: Option<SessionId>, dir: &Path, question: &Value, manifest: &Value) -> Outcome {
    let id = question["id"].as_str().unwrap_or_default();
    let name = match question["encode"].as_str() {
        Some("mp4") => format!("{id}.m4a"),
        Some(_) => format!("{id}.webm"),
        None => format!("{id}.wav"),
    };
    let silence = Duration::from_millis(
        manifest["duration_ms"].as_u64().expect("duration_ms").saturating_sub(manifest["speech_end_ms"].as_u64().expect("speech_end_ms")),
    );
    let part = reqwest::multipart::Part::bytes(std::fs::read(dir.join(&name)).expect("recording")).file_name(name);
    let mut form = reqwest::multipart::Form::new().part("audio", part);
    if let Some(session) = &session_id {
        form = form.text("session_id", session.to_string());
    }
    let started = Instant::now();
    let response = reqwest::Client::new().post(format!("http://{address}/api/voice")).multipart(form).send().await.expect("request");
    assert!(response.status().is_success(), "the voice turn failed: {}", response.status());
    let turn: TurnResponse = response.json().await.expect("a turn response");
    let elapsed = started.elapsed();
    Outcome {
        session_id: turn.session_id,
        transcript: turn.transcript,
        answer: turn.answer,
        sources: turn.sources.into_iter().map(|source| source.title).collect(),
        first_audio: turn.audio.is_some().then_some(elapsed),
        from_speech_end: turn.audio.is_some().then_some(elapsed + silence),
        done: elapsed,
        turn_ended: None,
    }
}
