//! Whisper tiny.en running in-process on the real weights (installed by the real installer if missing), on
//! speech made at test time by espeak-ng and re-encoded by ffmpeg the way browsers record.

use crate::support;

use support::speech::{run, speak, word_error_rate};

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use axum::http::StatusCode;
use bytes::Bytes;
use parlance_server::audio::{AudioFormat, AudioUpload, DecodeError, SPEECH_SAMPLE_RATE, decode_speech};
use parlance_server::models::catalog::WHISPER_TINY_EN;
use parlance_server::stt::{LocalStt, SpeechToText, SttError};

/// Loaded once for the whole file: tests share it as the server's requests do.
static STT: LazyLock<LocalStt> = LazyLock::new(|| LocalStt::load(&support::installed_model(&WHISPER_TINY_EN)).expect("the model loads"));

#[test]
fn word_error_rate_counts_edits_per_reference_word() {
    assert_eq!(word_error_rate("What is the capital of France?", "what is the capital of france"), 0.0);
    assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
    assert_eq!(word_error_rate("a b c d", "a c d"), 0.25);
    assert_eq!(word_error_rate("a b", "a b c d"), 1.0);
    assert_eq!(word_error_rate("a b", ""), 1.0);
}

/// `input` re-encoded by ffmpeg with `args` into `dir/file_name`.
fn encode(input: &Path, dir: &Path, file_name: &str, args: &[&str]) -> Bytes {
    let output = dir.join(file_name);
    let mut all = vec!["-nostdin", "-loglevel", "error", "-y", "-i", input.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push(output.to_str().unwrap());
    run("ffmpeg", &all);
    Bytes::from(std::fs::read(output).unwrap())
}

/// WebM as MediaRecorder writes it: streamed, so the segment and clusters have "unknown" sizes and there
/// are no cues. ffmpeg does the same when its output is a pipe.
fn encode_streamed_webm(input: &Path) -> Bytes {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i", input.to_str().unwrap(), "-c:a", "libopus", "-f", "webm", "-"])
        .output()
        .unwrap();
    assert!(output.status.success());
    Bytes::from(output.stdout)
}

fn upload(bytes: Bytes) -> AudioUpload {
    AudioUpload::from_bytes(bytes).expect("the container is recognised")
}

/// Highest word error rate accepted, calibrated on these sentences rather than hoped for. tiny.en hears
/// espeak-ng's synthetic voice imperfectly: when this was written the question came out word for word in every
/// format, the two longer sentences at WER 0.0 to 0.27 depending on the format ("will trade in London",
/// "I wrote them out in the garden"). faster-whisper on the same weights makes the same kind of mistakes
/// ("will train in London"), so they are the model's, not this decoder's. A broken decoder, wrong mel filters or
/// a bad resampler give WER near 1, far above this.
const MAX_WER: f64 = 0.3;

#[tokio::test]
async fn spoken_questions_transcribe_in_every_format_browsers_send() {
    let dir = tempfile::tempdir().unwrap();
    let sentences = [
        ("capital", "What is the capital of France?"),
        ("weather", "Will it rain in London on Saturday afternoon or evening?"),
        ("notes", "Read me the notes I wrote about the garden last week."),
    ];
    for (name, sentence) in sentences {
        let wav = speak(dir.path(), name, sentence);
        let recordings = [
            ("wav", Bytes::from(std::fs::read(&wav).unwrap()), AudioFormat::Wav),
            ("webm/opus", encode(&wav, dir.path(), &format!("{name}.webm"), &["-c:a", "libopus"]), AudioFormat::Webm),
            ("streamed webm/opus", encode_streamed_webm(&wav), AudioFormat::Webm),
            ("ogg/opus", encode(&wav, dir.path(), &format!("{name}.ogg"), &["-c:a", "libopus"]), AudioFormat::Ogg),
            ("mp4/aac", encode(&wav, dir.path(), &format!("{name}.m4a"), &["-c:a", "aac"]), AudioFormat::Mp4),
            (
                "stereo 44.1 kHz wav",
                encode(&wav, dir.path(), &format!("{name}-stereo.wav"), &["-ar", "44100", "-ac", "2"]),
                AudioFormat::Wav,
            ),
        ];
        for (label, bytes, format) in recordings {
            let audio = upload(bytes);
            assert_eq!(audio.format, format, "{label}");
            let transcript = STT.transcribe(&audio).await.unwrap_or_else(|e| panic!("{label}: {e}"));
            let wer = word_error_rate(sentence, &transcript);
            println!("{name:8} {label:20} WER {wer:.2}  {transcript:?}");
            assert!(wer <= MAX_WER, "{label}: {transcript:?} for {sentence:?} (WER {wer:.2})");
            if name == "capital" {
                let heard = transcript.to_lowercase();
                assert!(heard.contains("capital") && heard.contains("france"), "{label}: {transcript:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_clip_over_30_seconds_is_transcribed_window_by_window() {
    let dir = tempfile::tempdir().unwrap();
    let first = speak(dir.path(), "first", "What is the capital of France?");
    let second = speak(dir.path(), "second", "Will it rain in London on Saturday afternoon or evening?");
    // The first question, 30 s of silence, then the second one, which starts in Whisper's second window.
    let padded = dir.path().join("first-padded.wav");
    run("sox", &[first.to_str().unwrap(), padded.to_str().unwrap(), "pad", "0", "30"]);
    let long = dir.path().join("long.wav");
    run("sox", &[padded.to_str().unwrap(), second.to_str().unwrap(), long.to_str().unwrap()]);
    let audio = upload(encode(&long, dir.path(), "long.webm", &["-c:a", "libopus"]));
    let transcript = STT.transcribe(&audio).await.unwrap();
    let reference = "What is the capital of France? Will it rain in London on Saturday afternoon or evening?";
    let wer = word_error_rate(reference, &transcript);
    assert!(wer <= MAX_WER, "{transcript:?} (WER {wer:.2})");
    let heard = transcript.to_lowercase();
    let (capital, london) = (heard.find("capital"), heard.find("london"));
    assert!(matches!((capital, london), (Some(c), Some(l)) if c < l), "both windows, in order: {transcript:?}");
}

/// A 16-bit mono WAV file of `samples` at `rate`.
fn wav_bytes(samples: &[f32], rate: u32) -> Bytes {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&((sample.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    Bytes::from(out)
}

#[tokio::test]
async fn silence_and_noise_give_no_words() {
    let dir = tempfile::tempdir().unwrap();
    let silence = wav_bytes(&vec![0.0; 3 * 16_000], 16_000);
    let noise_wav = dir.path().join("noise.wav");
    run("sox", &["-n", "-r", "16000", "-c", "1", "-b", "16", noise_wav.to_str().unwrap(), "synth", "4", "whitenoise", "vol", "0.3"]);
    let quiet_noise_wav = dir.path().join("quiet-noise.wav");
    run("sox", &["-n", "-r", "48000", "-c", "1", "-b", "16", quiet_noise_wav.to_str().unwrap(), "synth", "3", "pinknoise", "vol", "0.002"]);
    let silence_wav = dir.path().join("silence.wav");
    std::fs::write(&silence_wav, &silence).unwrap();
    let cases = [
        ("digital silence", silence.clone()),
        ("silence recorded as webm/opus", encode(&silence_wav, dir.path(), "silence.webm", &["-c:a", "libopus"])),
        ("loud white noise", Bytes::from(std::fs::read(&noise_wav).unwrap())),
        ("white noise as webm/opus", encode(&noise_wav, dir.path(), "noise.webm", &["-c:a", "libopus"])),
        ("a quiet room", Bytes::from(std::fs::read(&quiet_noise_wav).unwrap())),
    ];
    for (label, bytes) in cases {
        let transcript = STT.transcribe(&upload(bytes)).await.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(transcript, "", "{label} was heard as words");
    }
}

#[tokio::test]
async fn a_truncated_or_corrupt_webm_is_a_decode_error_that_says_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "q", "What is the capital of France?");
    let webm = encode(&wav, dir.path(), "q.webm", &["-c:a", "libopus"]);
    // Cut before the first cluster: the header says WebM/Opus, but no audio follows.
    let cluster = webm.windows(4).position(|w| w == [0x1f, 0x43, 0xb6, 0x75]).expect("a cluster");
    let truncated = webm.slice(..cluster);
    // The header, then bytes that are not Matroska at all.
    let mut corrupt = webm[..cluster].to_vec();
    corrupt.extend((0u32..20_000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for (label, bytes) in [("truncated", truncated), ("corrupt", Bytes::from(corrupt))] {
        let error = STT.transcribe(&upload(bytes)).await.expect_err(label);
        assert!(matches!(error, SttError::Audio(DecodeError::Undecodable { format: AudioFormat::Webm, .. })), "{label}: {error:?}");
        let message = error.to_string();
        assert!(message.contains("audio/webm") && message.contains("WAV, WebM (Opus)"), "{label}: {message}");
    }
}

/// Frequency of a clean tone from its upward zero crossings.
fn frequency(samples: &[f32]) -> f32 {
    let crossings = samples.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    crossings as f32 * SPEECH_SAMPLE_RATE as f32 / samples.len() as f32
}

#[test]
fn stereo_44_1_khz_is_downmixed_and_resampled_to_16_khz() {
    let dir = tempfile::tempdir().unwrap();
    let tone = dir.path().join("tone.wav");
    // 1 kHz at half scale on the left, silence on the right: the mono mix is the tone at a quarter scale.
    run(
        "sox",
        &[
            "-n",
            "-r",
            "44100",
            "-c",
            "2",
            "-b",
            "16",
            tone.to_str().unwrap(),
            "synth",
            "2",
            "sine",
            "1000",
            "vol",
            "0.5",
            "remix",
            "1",
            "0",
        ],
    );
    let samples = decode_speech(&upload(Bytes::from(std::fs::read(&tone).unwrap())), 120).unwrap();
    assert_eq!(samples.len(), 32_000, "2 s at 16 kHz");
    let middle = &samples[1_000..31_000];
    let pitch = frequency(middle);
    assert!((pitch - 1000.0).abs() < 5.0, "pitch {pitch} Hz");
    let rms = (middle.iter().map(|x| x * x).sum::<f32>() / middle.len() as f32).sqrt();
    assert!((rms - 0.25 / 2f32.sqrt()).abs() < 0.01, "rms {rms}: the channels were not averaged");
}

#[test]
fn a_recording_over_the_limit_is_refused_before_transcription() {
    let long = wav_bytes(&vec![0.0; 5 * 16_000], 16_000);
    let error = decode_speech(&upload(long), 4).unwrap_err();
    assert!(matches!(error, DecodeError::TooLong { limit_secs: 4 }), "{error:?}");
    assert!(error.to_string().contains("4 seconds"), "{error}");
}

fn local_stt_app() -> axum::Router {
    let dir = support::installed_model(&WHISPER_TINY_EN);
    let models_dir = dir.parent().unwrap().to_str().unwrap().to_owned();
    support::app(&support::settings(&[
        "--frontend-dir",
        "/nonexistent",
        "--models-dir",
        &models_dir,
        "--stt-backend",
        "local",
        "--llm-backend",
        "none",
        "--embeddings-backend",
        "none",
    ]))
}

#[tokio::test]
async fn a_voice_turn_transcribes_locally_before_it_needs_the_language_model() {
    let app = local_stt_app();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "q", "What is the capital of France?");
    let webm = encode(&wav, dir.path(), "q.webm", &["-c:a", "libopus"]);

    // Words were heard, so the turn goes on to the (absent) language model.
    let (status, body) = support::send(&app, support::voice_request(&[("audio", Some("q.webm"), &webm[..])])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    support::assert_error(&body, "not_configured");
    assert!(body["message"].as_str().unwrap().contains("language model"), "{body}");

    // Silence stops at speech-to-text with "I didn't catch that".
    let silence = wav_bytes(&vec![0.0; 2 * 16_000], 16_000);
    let (status, body) = support::send(&app, support::voice_request(&[("audio", Some("silence.wav"), &silence[..])])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    support::assert_error(&body, "no_speech");

    let cluster = webm.windows(4).position(|w| w == [0x1f, 0x43, 0xb6, 0x75]).unwrap();
    let (status, body) = support::send(&app, support::voice_request(&[("audio", Some("cut.webm"), &webm[..cluster])])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    support::assert_error(&body, "invalid_request");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("audio/webm") && message.contains("could not be decoded") && message.contains("WAV"), "{message}");

    let (status, health) = support::send(&app, support::empty_request("GET", "/health")).await;
    assert_eq!(status, StatusCode::OK);
    let stt = health["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "stt").unwrap().clone();
    assert_eq!(stt["backend"], "local", "{stt}");
    assert_eq!(stt["ready"], true);
    assert!(stt["load_ms"].is_u64(), "{stt}");
}

/// The notes' words given to Whisper as its prompt are heard where they are said, and not made up where they
/// are not: a prompt that leaked into transcripts would put "Voltwerk" into every question.
#[tokio::test]
async fn expected_words_are_heard_where_said_and_not_invented_where_not() {
    let stt = LocalStt::load(&support::installed_model(&WHISPER_TINY_EN)).expect("the model loads");
    let words = ["Voltwerk", "Brompton", "tune-up", "derailleur", "Schwalbe", "stopcock", "Petrakis", "A17"].map(String::from);
    stt.expect_words(&words);
    let dir = tempfile::tempdir().unwrap();
    let asked = [
        ("tune", "How long does a tune-up take?"),
        ("france", "What is the capital of France?"),
        ("weather", "Will it rain in London on Saturday afternoon or evening?"),
    ];
    for (name, sentence) in asked {
        let wav = speak(dir.path(), name, sentence);
        let transcript = stt.transcribe(&upload(Bytes::from(std::fs::read(&wav).unwrap()))).await.unwrap();
        let wer = word_error_rate(sentence, &transcript);
        println!("{name:8} WER {wer:.2}  {transcript:?}");
        assert!(wer <= MAX_WER, "{transcript:?} for {sentence:?} (WER {wer:.2})");
        let invented: Vec<&String> = words.iter().filter(|w| transcript.contains(w.as_str()) && !sentence.contains(w.as_str())).collect();
        assert!(invented.is_empty(), "{invented:?} in {transcript:?}");
    }
    // Nothing said: nothing heard, prompt or not.
    let silence = wav_bytes(&vec![0.0; SPEECH_SAMPLE_RATE as usize * 2], SPEECH_SAMPLE_RATE);
    assert_eq!(stt.transcribe(&upload(silence)).await.unwrap(), "");
}
