//! A recording cut short, as a browser's recorder leaves it when it dies mid-file: real WebM/Opus (espeak-ng
//! speaking, ffmpeg encoding it as MediaRecorder streams it) cut at many offsets. What was recorded before the
//! cut is decoded and transcribed, over `POST /api/voice` and over the socket; a file cut before any audio gets
//! our own message, never the demuxer's panic text.
//!
//! Speech-to-text is the local Whisper model (it decodes the upload in the process; a provider would get the
//! file as it is). The language model and voice are the fake OpenAI-compatible provider.

use crate::support;

use std::path::Path;
use std::process::Command;

use axum::http::StatusCode;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use parlance_server::audio::{AudioUpload, SPEECH_SAMPLE_RATE, decode_speech};
use parlance_server::models::catalog::WHISPER_TINY_EN;
use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent};
use support::fake_openai::FakeOpenAi;
use support::speech::speak;
use tokio_tungstenite::tungstenite::Message;

const QUESTION: &str = "Please tell me the capital of France, and what the weather will be like in Paris tomorrow.";

/// Text a panic in a library would bring along (Rust's own panic messages, symphonia's assertions).
const PANIC_WORDS: [&str; 6] = ["panicked", "assertion", "unwrap", "index out of bounds", "overflow", "ebml"];

/// `text` spoken and encoded as Chrome's MediaRecorder streams it: WebM with clusters of unknown size and no
/// cues (ffmpeg writes the same to a pipe).
fn streamed_webm(dir: &Path, text: &str) -> Bytes {
    let wav = speak(dir, "question", text);
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i", wav.to_str().unwrap(), "-c:a", "libopus", "-f", "webm", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    Bytes::from(output.stdout)
}

/// Where the first cluster starts: before it there is a header but no audio.
fn first_cluster(webm: &[u8]) -> usize {
    webm.windows(4).position(|w| w == [0x1f, 0x43, 0xb6, 0x75]).expect("a cluster")
}

fn seconds(samples: &[f32]) -> f64 {
    samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE)
}

fn assert_our_words(message: &str) {
    let lower = message.to_lowercase();
    assert!(!PANIC_WORDS.iter().any(|word| lower.contains(word)), "a library's panic text reached the user: {message}");
}

#[test]
fn every_cut_keeps_the_audio_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let webm = streamed_webm(dir.path(), QUESTION);
    let whole = decode_speech(&AudioUpload::from_bytes(webm.clone()).unwrap(), 60).expect("the whole file decodes");
    let cluster = first_cluster(&webm);
    let mut panicked_before = 0;
    let mut last_seconds = 0.0;
    // Every offset in the header and the first block, then 60 cuts spread through the audio (each decode
    // takes a while in a debug build).
    let step = (webm.len() - cluster) / 60;
    let offsets = (16..cluster + 64).chain((cluster + 64..webm.len()).step_by(step.max(1)));
    for cut in offsets {
        let Ok(upload) = AudioUpload::from_bytes(webm.slice(..cut)) else { continue };
        match decode_speech(&upload, 60) {
            Ok(samples) => {
                let heard = seconds(&samples);
                assert!(cut > cluster, "audio decoded from a file cut in its header at {cut}");
                // Each byte more gives as much audio or more (Opus frames are 20 ms; a frame may end later).
                assert!(heard + 0.021 >= last_seconds, "cut at {cut}: {heard:.3} s after {last_seconds:.3} s at an earlier cut");
                assert!(heard <= seconds(&whole) + 0.001);
                last_seconds = last_seconds.max(heard);
            }
            Err(error) => {
                let message = error.to_string();
                assert_our_words(&message);
                assert!(message.contains("cut short") && message.contains("WebM"), "cut at {cut}: {message}");
                // Once the audio has begun, a cut is never an error: what came before it is the recording.
                assert!(cut < cluster + 64 || last_seconds == 0.0, "cut at {cut} after {last_seconds:.3} s of audio: {message}");
                panicked_before += 1;
            }
        }
    }
    assert!(last_seconds > seconds(&whole) - 0.5, "the last cuts keep almost all: {last_seconds:.2} of {:.2} s", seconds(&whole));
    assert!(panicked_before > 0, "the header cuts were tried");
}

/// Parlance with local Whisper and the fake provider for the rest, on a real port; its `host:port`.
async fn serve(provider: &FakeOpenAi) -> String {
    let whisper = support::installed_model(&WHISPER_TINY_EN);
    let models = whisper.parent().unwrap().to_str().unwrap().to_owned();
    let settings = support::settings_for_provider(&provider.base_url, &["--stt-backend", "local", "--models-dir", &models]);
    let app = parlance_server::app(&settings).expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    address.to_string()
}

async fn over_http(address: &str, webm: Bytes) -> (StatusCode, serde_json::Value) {
    let form = reqwest::multipart::Form::new()
        .part("audio", reqwest::multipart::Part::stream(webm).file_name("question.webm").mime_str("audio/webm").unwrap());
    let response = reqwest::Client::new().post(format!("http://{address}/api/voice")).multipart(form).send().await.unwrap();
    (StatusCode::from_u16(response.status().as_u16()).unwrap(), response.json().await.unwrap())
}

/// The final transcript of a turn sent in 1 KiB frames, or its error.
async fn over_socket(address: &str, webm: &[u8]) -> Result<String, parlance_shared::ErrorBody> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.unwrap();
    let send = |message: &ClientMessage| Message::text(serde_json::to_string(message).unwrap());
    socket
        .send(send(&ClientMessage::Start {
            session_id: None,
            encoding: AudioEncoding::Webm,
            turn_detection: None,
            speech_rate: None,
            voice: None,
        }))
        .await
        .unwrap();
    for frame in webm.chunks(1024) {
        socket.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    socket.send(send(&ClientMessage::EndTurn)).await.unwrap();
    let mut transcript = None;
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(60), socket.next()).await.unwrap().unwrap().unwrap();
        let Message::Text(text) = frame else { continue };
        match serde_json::from_str::<ServerEvent>(text.as_str()).unwrap() {
            ServerEvent::Transcript { text, is_final: true } => transcript = Some(text),
            ServerEvent::Done { .. } => return Ok(transcript.expect("a transcript before done")),
            ServerEvent::Error { error } => return Err(error),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_cut_recording_is_transcribed_as_far_as_it_goes_over_http_and_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let webm = streamed_webm(dir.path(), QUESTION);
    let provider = FakeOpenAi::start("").await;
    provider.configure(|fake| fake.answer = Some("Paris.".into()));
    let address = serve(&provider).await;

    for percent in [45, 70, 90] {
        let cut = webm.slice(..webm.len() * percent / 100);
        let (status, body) = over_http(&address, cut.clone()).await;
        assert_eq!(status, StatusCode::OK, "cut at {percent}%: {body}");
        let heard = body["transcript"].as_str().unwrap().to_lowercase();
        assert!(heard.contains("tell me"), "cut at {percent}%: heard {heard:?}");
        assert!(!heard.contains("tomorrow"), "cut at {percent}%: the end was cut off, yet heard {heard:?}");
        if percent >= 70 {
            assert!(heard.contains("capital"), "cut at {percent}%: heard {heard:?}");
        }

        let streamed = over_socket(&address, &cut).await.unwrap_or_else(|error| panic!("cut at {percent}% over the socket: {error:?}"));
        assert!(streamed.to_lowercase().contains("tell me"), "cut at {percent}% over the socket: heard {streamed:?}");
    }

    // Cut inside the header: nothing to hear, and the refusal is ours.
    let header_only = webm.slice(..first_cluster(&webm) - 3);
    let (status, body) = over_http(&address, header_only.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    support::assert_error(&body, "invalid_request");
    assert_our_words(body["message"].as_str().unwrap());
    let error = over_socket(&address, &header_only).await.expect_err("no audio in a header");
    assert_eq!(error.code.as_str(), "invalid_request");
    assert_our_words(&error.message);
}
