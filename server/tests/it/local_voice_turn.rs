//! The offline promise end to end: with the models `parlance models` installs and no other setting, a spoken
//! question goes in and a spoken answer comes out, every stage running inside the server process.

use crate::support;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use bytes::Bytes;
use parlance_server::audio::AudioUpload;
use parlance_server::models::catalog::{self, ModelSpec};
use parlance_server::onnx;
use parlance_server::stt::{LocalStt, SpeechToText};
use parlance_server::tts::{LocalTts, VoiceEngine};
use serde_json::json;
use support::speech::{run, speak, word_error_rate};

/// The models directory with every default model installed (by the real installer when missing).
fn models_dir() -> PathBuf {
    let defaults: [&ModelSpec; 5] =
        [&catalog::WHISPER_TINY_EN, &catalog::QWEN_CODER_0_5B, &catalog::PIPER_JOE, &catalog::ONNX_RUNTIME, &catalog::MINILM_L6_V2];
    let dirs: Vec<PathBuf> = defaults.iter().map(|model| support::installed_model(model)).collect();
    dirs[0].parent().expect("a model directory sits in the models directory").to_path_buf()
}

/// The app on the installed models and nothing else set but `more`, keeping its data in `data`.
fn local_app(data: &std::path::Path, more: &[&str]) -> axum::Router {
    let models = models_dir();
    let mut args = vec![
        "--models-dir",
        models.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--frontend-dir",
        "/nonexistent-parlance-frontend",
    ];
    args.extend_from_slice(more);
    support::app(&support::settings(&args))
}

/// `text` spoken by espeak-ng and encoded as Chrome's MediaRecorder would send it (Opus in WebM).
fn spoken_webm(dir: &std::path::Path, text: &str) -> Vec<u8> {
    let wav = speak(dir, "question", text);
    let webm = dir.join("question.webm");
    run("ffmpeg", &["-nostdin", "-loglevel", "error", "-y", "-i", wav.to_str().unwrap(), "-c:a", "libopus", webm.to_str().unwrap()]);
    std::fs::read(webm).unwrap()
}

#[tokio::test]
async fn what_the_piper_voice_says_whisper_hears_back() {
    let models = models_dir();
    let tts = LocalTts::load(&models.join(catalog::PIPER_JOE.id), &onnx::library_in(&models), VoiceEngine::Piper).unwrap();
    assert_eq!(tts.engine(), VoiceEngine::Piper, "the Piper voice should load, not the fallback");
    let stt = LocalStt::load(&models.join(catalog::WHISPER_TINY_EN.id)).unwrap();

    for sentence in ["The library opens at nine in the morning.", "Please remind me to water the plants tomorrow."] {
        let wav = tts.synthesize_pcm(sentence).await.unwrap().to_wav().unwrap();
        let transcript = stt.transcribe(&AudioUpload::from_bytes(Bytes::from(wav)).unwrap()).await.unwrap();
        let wer = word_error_rate(sentence, &transcript);
        assert!(wer <= 0.2, "Piper said {sentence:?}, Whisper heard {transcript:?} (WER {wer:.2})");
    }
}

#[tokio::test]
async fn a_spoken_question_is_answered_aloud_by_the_local_models() {
    let data = tempfile::tempdir().unwrap();
    let app = local_app(data.path(), &[]);

    let (status, health) = support::send(&app, support::empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    for stage in health["stages"].as_array().unwrap() {
        assert_eq!(stage["backend"], "local", "with no settings every stage runs in-process: {stage}");
        assert!(stage["load_ms"].is_u64(), "{stage}");
    }

    let dir = tempfile::tempdir().unwrap();
    let question = spoken_webm(dir.path(), "What time is it right now?");
    let (status, turn) = support::send(&app, support::voice_request(&[("audio", Some("question.webm"), &question[..])])).await;
    assert_eq!(status, StatusCode::OK, "{turn}");

    let transcript = turn["transcript"].as_str().unwrap();
    assert!(word_error_rate("What time is it right now?", transcript) <= 0.2, "heard {transcript:?}");
    let tools: Vec<&str> = turn["tool_calls"].as_array().unwrap().iter().filter_map(|call| call["name"].as_str()).collect();
    assert_eq!(tools, ["current_time"], "the clock question needs the clock tool: {turn}");
    let answer = turn["answer"].as_str().unwrap();
    assert!(answer.split_whitespace().count() >= 3 && !answer.contains('{'), "a spoken answer, not tool JSON: {answer:?}");

    let audio = &turn["audio"];
    assert_eq!(audio["mime_type"], "audio/wav", "{audio}");
    let wav = base64::engine::general_purpose::STANDARD.decode(audio["data_base64"].as_str().unwrap()).unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    let seconds = f64::from(reader.duration()) / f64::from(reader.spec().sample_rate);
    let per_char = seconds / answer.chars().count() as f64;
    assert!((0.03..0.15).contains(&per_char), "{seconds:.1} s of speech for {} characters", answer.chars().count());

    let timings = &turn["timings"];
    for stage in ["stt_ms", "llm_ms", "tts_ms", "total_ms"] {
        assert!(timings[stage].as_u64().is_some_and(|ms| ms > 0), "{stage} missing: {timings}");
    }

    // The conversation continues: the same session remembers both lines.
    let session = turn["session_id"].as_str().unwrap();
    let (status, history) = support::send(&app, support::empty_request("GET", &format!("/api/sessions/{session}"))).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["turns"].as_array().unwrap().len(), 2, "{history}");
}

/// A name heard one letter off is written as the notes spell it once the notes know it ("Oscar" becomes the
/// notes' "Oskar"), and stays as heard before: the same recording, transcribed before and after the note.
#[tokio::test]
async fn names_heard_one_letter_off_are_spelled_as_the_notes_spell_them() {
    let data = tempfile::tempdir().unwrap();
    let app = local_app(data.path(), &["--stt-beam-size", "5"]);
    let dir = tempfile::tempdir().unwrap();
    // espeak-ng says the name as the common "Oscar"; Whisper tiny.en writes it so when it searches this doubtful
    // clip with the beam (greedily it hears "our podcast").
    let question = spoken_webm(dir.path(), "Tell me about Oskar's lesson.");
    let transcribe = || {
        let parts: Vec<support::Part> = vec![("file", Some("question.webm"), &question[..]), ("model", None, b"whisper-1")];
        Request::builder()
            .method("POST")
            .uri("/v1/audio/transcriptions")
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={}", support::BOUNDARY))
            .body(Body::from(support::multipart_body(&parts)))
            .unwrap()
    };

    let (status, before) = support::send(&app, transcribe()).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let before = before["text"].as_str().unwrap();
    assert!(before.contains("Oscar's"), "Whisper tiny.en is expected to write the common spelling: {before:?}");

    let note = json!({"notes": [{"title": "Children", "text": "Oskar: piano with Mrs Lindqvist on Thursdays at 4:15 pm."}]});
    let (status, added) = support::send(&app, support::json_request("POST", "/api/knowledge", &note)).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let (status, after) = support::send(&app, transcribe()).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["text"].as_str().unwrap(), before.replace("Oscar's", "Oskar's"));
}
