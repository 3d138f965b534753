//! A spoken question through `parlance-cli talk` to Parlance on every local model (Whisper, Qwen, Piper,
//! MiniLM), installed by the real installer when missing.

use parlance_server::models::catalog::{self, ModelSpec};

use crate::servers::{self, cli};
use crate::support;
use crate::support::speech::{speak, word_error_rate};

#[tokio::test(flavor = "multi_thread")]
async fn a_spoken_question_is_heard_and_answered_aloud_by_the_local_models() {
    let defaults: [&ModelSpec; 5] =
        [&catalog::WHISPER_TINY_EN, &catalog::QWEN_CODER_0_5B, &catalog::PIPER_JOE, &catalog::ONNX_RUNTIME, &catalog::MINILM_L6_V2];
    let dirs: Vec<_> = defaults.iter().map(|model| support::installed_model(model)).collect();
    let models = dirs[0].parent().unwrap().to_str().unwrap().to_owned();
    let settings = support::settings(&["--models-dir", &models, "--frontend-dir", "/nonexistent-parlance-frontend"]);
    let url = servers::serve(parlance_server::start(&settings).await.expect("Parlance starts on the local models")).await;

    let dir = tempfile::tempdir().unwrap();
    let question = "What time is it right now?";
    let wav = speak(dir.path(), "question", question);
    let saved = dir.path().join("answer.wav");
    let run = cli(&["--server", &url, "talk", wav.to_str().unwrap(), "--save", saved.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{run:?}");

    let heard = run.stdout.lines().next().and_then(|line| line.strip_prefix("You said: ")).expect("the transcript comes first");
    assert!(word_error_rate(question, heard) <= 0.2, "said {question:?}, heard {heard:?}");
    assert!(run.stderr.contains("[used current_time]"), "the clock question needs the clock: {run:?}");
    let first_audio = run.stdout.lines().find_map(|line| line.strip_prefix("First audio: ")).expect("the time to first audio is shown");
    let client_ms: u64 = first_audio.split(' ').next().unwrap().parse().unwrap();
    assert!(client_ms > 0, "{first_audio}");

    let mut reader = hound::WavReader::open(&saved).expect("the spoken answer is one readable WAV");
    let seconds = reader.duration() as f32 / reader.spec().sample_rate as f32;
    assert!(seconds > 0.5, "an answer is said aloud: {seconds} s");
    assert!(reader.samples::<i16>().take(100_000).any(|sample| sample.unwrap().abs() > 500), "and it is not silence");
}
