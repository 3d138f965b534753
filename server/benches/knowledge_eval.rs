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
//! `--paths barge_in` keeps the microphone open through the answer (`turn_detection.barge_in`): the answer's
//! audio comes back into it at half level, as from a speaker, a spoken acknowledgement ("Okay.", "Uh-huh.") is
//! said over it half a second after it starts, and on every fourth question the user cuts in 1.5 s after it
//! starts ("Wait, what time is it?"). It adds self-interruptions, acknowledgements that stopped the answer,
//! and the time from the start of a real interruption to the server's `interrupted`.
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
    let mut barge_in_clips: Option<BargeInClips> = None;
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
            let mut barge_in_record = None;
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
                "barge_in" => {
                    let clips = barge_in_clips.get_or_insert_with(BargeInClips::make);
                    let asked = questions.iter().filter(|q| selected(q)).position(|q| q["id"] == id).unwrap_or_default();
                    let (outcome, record) =
                        barge_in(&address, session.clone(), &options.audio, manifest_of(&manifest, id), options.detection, clips, asked)
                            .await;
                    barge_in_record = Some(record);
                    outcome
                }
                other => panic!("unknown path {other:?}: typed, streaming, sequential, hands_free, hands_free_paused or barge_in"),
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
                "barge_in": barge_in_record,
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

/// The user's voice over the answer in the `barge_in` path, as 16 kHz samples.
struct BargeInClips {
    acknowledgements: Vec<Vec<i16>>,
    interruption: Vec<i16>,
    _dir: tempfile::TempDir,
}

impl BargeInClips {
    const ACKNOWLEDGEMENTS: [&str; 5] = ["Okay.", "Uh-huh.", "I see.", "Right.", "Yeah."];
    const INTERRUPTION: &str = "Wait, what time is it?";

    fn make() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clip = |name: &str, text: &str| {
            let raw = dir.path().join(format!("{name}.raw.wav"));
            let wav = dir.path().join(format!("{name}.wav"));
            common::tool("espeak-ng", &["-s", "150", "-w", raw.to_str().expect("utf-8"), text]);
            // As make-audio.sh makes the questions: the voice's own silence trimmed, peaks at -6 dBFS.
            common::tool(
                "sox",
                &[
                    raw.to_str().expect("utf-8"),
                    "-r",
                    "16000",
                    "-c",
                    "1",
                    "-b",
                    "16",
                    wav.to_str().expect("utf-8"),
                    "silence",
                    "1",
                    "0.02",
                    "-50d",
                    "reverse",
                    "silence",
                    "1",
                    "0.02",
                    "-50d",
                    "reverse",
                    "norm",
                    "-6",
                ],
            );
            hound::WavReader::open(&wav)
                .expect("a clip")
                .into_samples::<i16>()
                .map(|sample| sample.expect("a sample"))
                .collect::<Vec<i16>>()
        };
        let acknowledgements = Self::ACKNOWLEDGEMENTS.iter().enumerate().map(|(n, text)| clip(&format!("ack{n}"), text)).collect();
        let interruption = clip("interruption", Self::INTERRUPTION);
        Self { acknowledgements, interruption, _dir: dir }
    }
}

/// What the `barge_in` path plays into the microphone besides the question.
enum Sound {
    /// An answer chunk from the speaker: it follows the chunk before it.
    Echo(Vec<i16>),
    /// The user, over the answer: said only while the echo still has half a second more to play than it
    /// lasts, so that it is said during the answer; `said` hears when it began (or is dropped when it was not).
    User { samples: Vec<i16>, said: tokio::sync::oneshot::Sender<Instant> },
    /// The client stopped playing the answer.
    Silence,
}

/// The answer's audio as a microphone hears it from a speaker: 16 kHz, at half level.
fn echo_of(audio: &parlance_shared::AudioClip) -> Vec<i16> {
    use base64::Engine as _;
    let wav = base64::engine::general_purpose::STANDARD.decode(&audio.data_base64).expect("base64 audio");
    let (samples, rate) = parlance_server::audio::encode::read_wav(&wav).expect("a WAV chunk");
    let heard = parlance_server::audio::resample(&samples, rate, 16_000).expect("resampled");
    heard.iter().map(|sample| ((sample * 0.5).clamp(-1.0, 1.0) * 32_767.0) as i16).collect()
}

/// A hands-free turn with the microphone open through the answer (see the module's comment). Returns the
/// question's outcome and what happened over the answer.
async fn barge_in(
    address: &str,
    session_id: Option<SessionId>,
    dir: &Path,
    manifest: &Value,
    detection: TurnDetection,
    clips: &BargeInClips,
    asked: usize,
) -> (Outcome, Value) {
    const FRAME: usize = 320;
    let wav = std::fs::read(dir.join(manifest["wav"].as_str().expect("a WAV file"))).expect("recording");
    let speech_end = Duration::from_millis(manifest["speech_end_ms"].as_u64().expect("speech_end_ms"));
    let question: Vec<i16> =
        hound::WavReader::new(wav.as_slice()).expect("a WAV question").into_samples::<i16>().map(|s| s.expect("a sample")).collect();
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{address}/api/ws"), None, true).await.expect("socket");
    let detection = TurnDetection { barge_in: true, ..detection };
    let start = ClientMessage::Start {
        session_id,
        encoding: AudioEncoding::Pcm16,
        turn_detection: Some(detection),
        speech_rate: None,
        voice: None,
    };
    socket.send(message(&start)).await.expect("start");
    let (mut outgoing, mut incoming) = socket.split();
    let (play, mut sounds) = tokio::sync::mpsc::unbounded_channel::<Sound>();
    let first_sent = Instant::now();
    let microphone = tokio::spawn(async move {
        let mut user: std::collections::VecDeque<i16> = question.into();
        let mut echo = std::collections::VecDeque::<i16>::new();
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        loop {
            ticks.tick().await;
            while let Ok(sound) = sounds.try_recv() {
                match sound {
                    Sound::Echo(samples) => echo.extend(samples),
                    // Only over the answer, after what the user is still saying.
                    Sound::User { samples, said } if user.is_empty() && echo.len() >= samples.len() + 8_000 => {
                        let _ = said.send(Instant::now());
                        user.extend(samples);
                    }
                    Sound::User { .. } => {}
                    Sound::Silence => echo.clear(),
                }
            }
            let frame: Vec<u8> = (0..FRAME)
                .map(|_| user.pop_front().unwrap_or(0).saturating_add(echo.pop_front().unwrap_or(0)))
                .flat_map(i16::to_le_bytes)
                .collect();
            if outgoing.send(Message::binary(frame)).await.is_err() {
                break;
            }
        }
    });
    let spoken_until = first_sent + speech_end + Duration::from_millis(20);
    let interrupts = asked.is_multiple_of(4);
    let acknowledgement = &clips.acknowledgements[asked % clips.acknowledgements.len()];
    let (mut ack_said, mut cut_in_said) = (None, None);
    let (mut ack_at, mut cut_in_at): (Option<Instant>, Option<Instant>) = (None, None);
    let mut outcome: Option<Outcome> = None;
    let (mut transcript, mut first_audio, mut from_speech_end, mut turn_ended, mut ended_at) = (String::new(), None, None, None, None);
    let (mut turns, mut new_turn_at, mut echoes, mut acknowledged) = (0, None, 0, 0);
    let mut second_transcript = String::new();
    loop {
        // Quiet for a few seconds after the answer ends the turn, unless the user cut in (or is about to).
        let wait = match (outcome.is_some() && turns < 2, cut_in_said.is_some() || cut_in_at.is_some()) {
            (false, _) => Duration::from_secs(60),
            (true, true) => Duration::from_secs(8),
            (true, false) => Duration::from_secs(4),
        };
        let Ok(Some(Ok(frame))) = tokio::time::timeout(wait, incoming.next()).await else { break };
        let Message::Text(text) = frame else { continue };
        let event: ServerEvent = serde_json::from_str(text.as_str()).expect("an event");
        when_said(&mut ack_said, &mut ack_at);
        when_said(&mut cut_in_said, &mut cut_in_at);
        match event {
            ServerEvent::Status { state: parlance_shared::TurnState::Listening, .. } => {
                turns += 1;
                if turns == 2 {
                    new_turn_at = Some(Instant::now());
                }
            }
            ServerEvent::TurnEnded { .. } if turns == 1 => {
                ended_at = Some(Instant::now());
                turn_ended = Some(json!({"delay_ms": ms(Instant::now().saturating_duration_since(spoken_until)), "cut_off": false}));
            }
            ServerEvent::Transcript { is_final: true, text } if turns == 1 => transcript = text,
            ServerEvent::Transcript { is_final: true, text } => second_transcript = text,
            ServerEvent::AudioChunk { audio, .. } => {
                if turns == 1 && first_audio.is_none() {
                    first_audio = ended_at.map(|at| at.elapsed());
                    from_speech_end = Some(spoken_until.elapsed());
                    let (said, heard) = tokio::sync::oneshot::channel();
                    let samples = acknowledgement.clone();
                    let later = play.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let _ = later.send(Sound::User { samples, said });
                    });
                    ack_said = Some(heard);
                    if interrupts {
                        let (said, heard) = tokio::sync::oneshot::channel();
                        let samples = clips.interruption.clone();
                        let later = play.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(1_500)).await;
                            let _ = later.send(Sound::User { samples, said });
                        });
                        cut_in_said = Some(heard);
                    }
                }
                if turns == 1 {
                    let _ = play.send(Sound::Echo(echo_of(&audio)));
                }
            }
            ServerEvent::SpeechIgnored { reason, .. } => match reason {
                parlance_shared::IgnoredSpeech::Echo => echoes += 1,
                parlance_shared::IgnoredSpeech::Backchannel => acknowledged += 1,
                parlance_shared::IgnoredSpeech::Noise => {}
            },
            ServerEvent::Done { session_id, answer, sources, .. } if outcome.is_none() => {
                outcome = Some(Outcome {
                    session_id,
                    transcript: transcript.clone(),
                    answer,
                    sources: sources.into_iter().map(|source| source.title).collect(),
                    first_audio,
                    from_speech_end,
                    done: ended_at.map_or(Duration::ZERO, |at| at.elapsed()),
                    turn_ended: turn_ended.clone(),
                });
            }
            ServerEvent::Interrupted { .. } if outcome.is_some() => {
                let _ = play.send(Sound::Silence);
            }
            ServerEvent::Interrupted { session_id, kept_answer } => {
                let _ = play.send(Sound::Silence);
                outcome = Some(Outcome {
                    session_id,
                    transcript: transcript.clone(),
                    answer: kept_answer,
                    sources: vec![],
                    first_audio,
                    from_speech_end,
                    done: ended_at.map_or(Duration::ZERO, |at| at.elapsed()),
                    turn_ended: turn_ended.clone(),
                });
            }
            ServerEvent::Done { .. } if turns >= 2 => break,
            // A turn taken when nobody spoke may hear no speech (the answer's voice stopped with it).
            ServerEvent::Error { error } if turns >= 2 => {
                println!("knowledge_eval  the turn taken over the answer failed: {error}");
                break;
            }
            ServerEvent::Error { error } => panic!("the barge-in turn failed: {error}"),
            _ => {}
        }
    }
    microphone.abort();
    when_said(&mut ack_said, &mut ack_at);
    when_said(&mut cut_in_said, &mut cut_in_at);
    // A second turn is the user's when it came after they cut in, an acknowledgement's when it came within 3 s
    // of one, and otherwise the answer's own voice.
    let stop = new_turn_at.map(|at| match (cut_in_at, ack_at) {
        (Some(cut_in), _) if at >= cut_in => "interruption",
        (_, Some(ack)) if at >= ack && at.duration_since(ack) < Duration::from_secs(3) => "acknowledgement",
        _ => "self",
    });
    let record = json!({
        "acknowledgement": BargeInClips::ACKNOWLEDGEMENTS[asked % BargeInClips::ACKNOWLEDGEMENTS.len()],
        "acknowledgement_said": ack_at.is_some(),
        "interruption_said": cut_in_at.is_some(),
        "stopped_by": stop,
        "interruption_ms": cut_in_at.zip(new_turn_at).filter(|(cut_in, at)| at >= cut_in).map(|(cut_in, at)| ms(at.duration_since(cut_in))),
        "interruption_heard": second_transcript,
        "echoes_ignored": echoes,
        "acknowledgements_ignored": acknowledged,
    });
    println!("knowledge_eval  barge-in {record}");
    (outcome.expect("the question was answered or interrupted"), record)
}

/// When the microphone began saying a sound, once it has; `said` is emptied once it is known whether it was.
fn when_said(said: &mut Option<tokio::sync::oneshot::Receiver<Instant>>, at: &mut Option<Instant>) {
    match said.as_mut().map(tokio::sync::oneshot::Receiver::try_recv) {
        Some(Ok(began)) => {
            *said = None;
            *at = Some(began);
        }
        // Not said: the answer was over by then.
        Some(Err(tokio::sync::oneshot::error::TryRecvError::Closed)) => *said = None,
        Some(Err(tokio::sync::oneshot::error::TryRecvError::Empty)) | None => {}
    }
}
