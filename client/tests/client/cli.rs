//! The built `parlance-cli` against a real server on a random port: what it prints, what it saves, and its
//! exit codes.

use std::io::Cursor;

use parlance_client::types::{ServerEvent, SessionHistory};
use parlance_shared::{KnowledgeSearchResponse, NotePage};
use reqwest::StatusCode;

use crate::servers::{self, TOKEN, cli};
use crate::support::fake_openai::tone_wav;
use parlance_shared::Stage;

#[tokio::test(flavor = "multi_thread")]
async fn ask_streams_the_answer_and_saves_the_spoken_one_as_one_wav() {
    let (fakes, url) = servers::fake("", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("reply.wav");
    fakes.configure(|behaviour| behaviour.answer = Some("The first sentence. And a second one here.".into()));
    let run = cli(&["--server", &url, "ask", "Say", "two", "things", "--save", saved.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("The first sentence. And a second one here."), "{run:?}");
    assert!(run.stderr.contains("Session: "), "the conversation's id is shown: {run:?}");
    assert_eq!(fakes.questions(), ["Say two things"]);

    // The file holds every sentence's samples once, in order, under one header.
    let spoken = fakes.spoken();
    assert_eq!(spoken.len(), 2, "{spoken:?}");
    let expected: Vec<i16> = spoken
        .iter()
        .flat_map(|sentence| {
            let words = sentence.split_whitespace().count();
            let wav = tone_wav(16_000, words.max(1) as f32 / 3.0);
            hound::WavReader::new(Cursor::new(wav)).unwrap().samples::<i16>().map(Result::unwrap).collect::<Vec<_>>()
        })
        .collect();
    let mut reader = hound::WavReader::open(&saved).unwrap();
    assert_eq!(reader.spec().sample_rate, 16_000);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), expected.len());
    assert!(samples == expected, "the saved samples are the sentences' samples in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_prints_each_event_and_the_history_for_scripts() {
    let (_fakes, url) = servers::fake("", &[]).await;
    let run = cli(&["--server", &url, "--json", "ask", "Hello there"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "nothing but JSON, and nothing on stderr: {run:?}");
    let events: Vec<ServerEvent> = run.json_lines().into_iter().map(|line| serde_json::from_value(line).unwrap()).collect();
    assert!(events.iter().filter(|e| matches!(e, ServerEvent::AnswerDelta { .. })).count() > 3, "{}", crate::turns::brief(&events));
    let Some(ServerEvent::Done { session_id, answer, .. }) = events.last() else { panic!("{}", crate::turns::brief(&events)) };
    assert_eq!(answer, "You said: Hello there. I was shown 0 earlier messages.");
    assert!(!events.iter().any(|e| matches!(e, ServerEvent::AudioChunk { .. })), "no audio unless --save asks for it");

    // The same conversation, continued.
    let run = cli(&["--server", &url, "--json", "ask", "--session", session_id.as_str(), "Again"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let last: ServerEvent = serde_json::from_value(run.json_lines().pop().unwrap()).unwrap();
    assert!(matches!(&last, ServerEvent::Done { answer, .. } if answer.ends_with("I was shown 2 earlier messages.")), "{last:?}");

    let run = cli(&["--server", &url, "--json", "history", session_id.as_str()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines = run.json_lines();
    assert_eq!(lines.len(), 1, "one object: {run:?}");
    let history: SessionHistory = serde_json::from_value(lines[0].clone()).unwrap();
    let texts: Vec<&str> = history.turns.iter().map(|turn| turn.text.as_str()).collect();
    assert_eq!(texts[0], "Hello there");
    assert_eq!(texts[2], "Again");
    assert_eq!(texts.len(), 4);

    let run = cli(&["--server", &url, "history", session_id.as_str()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("you: Hello there\n") && run.stdout.contains("parlance: You said: Again."), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn talk_streams_a_recording_and_reports_the_time_to_first_audio() {
    let (fakes, url) = servers::fake("What time is it?", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("question.wav");
    let recording = tone_wav(16_000, 1.5);
    std::fs::write(&wav, &recording).unwrap();
    let run = cli(&["--server", &url, "talk", wav.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("You said: What time is it?\nIt is "), "{run:?}");
    assert!(run.stdout.contains("First audio: "), "{run:?}");
    assert!(run.stderr.contains("[used current_time]"), "{run:?}");
    assert_eq!(fakes.transcribed(), [(parlance_server::audio::AudioFormat::Wav, recording.len())]);

    // Another container, named by its extension, sent as fast as allowed.
    let webm = dir.path().join("question.webm");
    crate::support::speech::run(
        "ffmpeg",
        &["-nostdin", "-loglevel", "error", "-y", "-i", wav.to_str().unwrap(), "-c:a", "libopus", webm.to_str().unwrap()],
    );
    let run = cli(&["--server", &url, "--json", "talk", "--pace", "fast", webm.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fakes.transcribed().last().map(|(format, _)| *format), Some(parlance_server::audio::AudioFormat::Webm));
    let lines = run.json_lines();
    assert_eq!(lines.last().unwrap()["type"], "done", "{run:?}");
}

/// `talk --hands-free`: the recording streams as a microphone would, silence included, and the server (its real
/// Silero voice activity model) ends the question; the wait is reported from the end of the speech. `--voice`
/// and `voices` name the server's voices, and a voice it does not have is refused with the ones it has.
#[tokio::test(flavor = "multi_thread")]
async fn talk_hands_free_is_ended_by_the_server_and_voices_are_listed_and_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let spoken = crate::support::speech::speak(dir.path(), "question", "What time is it?");
    let wav = dir.path().join("hands-free.wav");
    let wav_arg = wav.to_str().unwrap();
    // 16 kHz mono 16-bit, with 0.3 s of silence before the words and 2 s after, as a microphone hears them.
    crate::support::speech::run("sox", &[spoken.to_str().unwrap(), "-r", "16000", "-c", "1", "-b", "16", wav_arg, "pad", "0.3", "2.0"]);

    let (fakes, url) = servers::with_silero("What time is it?").await;

    let run = cli(&["--server", &url, "voices"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "fake-tts  fake-tts  (default)\n", "{run:?}");

    let saved = dir.path().join("answer.wav");
    let run = cli(&[
        "--server",
        &url,
        "talk",
        "--hands-free",
        "--silence-ms",
        "800",
        "--pace",
        "fast",
        "--voice",
        "fake-tts",
        "--rate",
        "1.5",
        "--save",
        saved.to_str().unwrap(),
        wav_arg,
    ])
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("You said: What time is it?\nIt is "), "{run:?}");
    assert!(run.stderr.contains("[the server ended the question after 8"), "the server's silence ended it: {run:?}");
    assert!(run.stdout.contains("First audio: ") && run.stdout.contains("after the speech ended"), "{run:?}");
    assert!(saved.exists(), "the answer was spoken");
    assert_eq!(
        fakes.transcribed().last().map(|(format, _)| *format),
        Some(parlance_server::audio::AudioFormat::Wav),
        "PCM is sent on as WAV"
    );

    let run = cli(&["--server", &url, "ask", "--voice", "en_GB-alan-medium", "--save", saved.to_str().unwrap(), "Hello"]).await;
    assert_eq!(run.code, 4, "refused: {run:?}");
    assert!(run.stderr.contains("no voice \"en_GB-alan-medium\"") && run.stderr.contains("fake-tts"), "{run:?}");
    let run = cli(&["--server", &url, "ask", "--rate", "3", "Hello"]).await;
    assert_eq!(run.code, 2, "{run:?}");

    // A recording the server cannot listen to as it comes is refused before anything is sent.
    let cd = dir.path().join("cd.wav");
    crate::support::speech::run("sox", &[spoken.to_str().unwrap(), "-r", "44100", "-c", "2", cd.to_str().unwrap()]);
    let run = cli(&["--server", &url, "talk", "--hands-free", cd.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("44100 Hz") && run.stderr.contains("16 kHz"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn knowledge_is_added_listed_found_and_deleted() {
    let url = servers::with_knowledge().await;
    let dir = tempfile::tempdir().unwrap();
    let bike = dir.path().join("bike.md");
    std::fs::write(&bike, "# My bike\n\nMy bike is a Trek Marlin 7, bought in 2023 and ridden to work.\n").unwrap();
    let wifi = dir.path().join("wifi.txt");
    std::fs::write(&wifi, "The guest Wi-Fi network is called Meadow and its password is on the fridge.\n").unwrap();

    let run = cli(&["--server", &url, "knowledge", "add", bike.to_str().unwrap(), wifi.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("bike.md: added (") && run.stdout.contains("wifi.txt: added ("), "{run:?}");
    let run = cli(&["--server", &url, "--json", "knowledge", "add", bike.to_str().unwrap()]).await;
    assert_eq!(run.json_lines()[0]["unchanged"], 1, "stored once: {run:?}");

    let run = cli(&["--server", &url, "--json", "knowledge", "list", "--limit", "100"]).await;
    let page: NotePage = serde_json::from_value(run.json_lines()[0].clone()).unwrap();
    assert_eq!(page.total, 2, "{page:?}");
    let bike_id = page.notes.iter().find(|note| note.source.as_deref() == Some("bike.md")).expect("listed").id.clone();

    let run = cli(&["--server", &url, "--json", "knowledge", "search", "what brand is my bicycle", "-k", "1"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let found: KnowledgeSearchResponse = serde_json::from_value(run.json_lines()[0].clone()).unwrap();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].id, bike_id, "{found:?}");
    let run = cli(&["--server", &url, "knowledge", "search", "guest network password"]).await;
    assert!(run.stdout.lines().next().unwrap().contains("wifi"), "the Wi-Fi note first: {run:?}");

    let run = cli(&["--server", &url, "knowledge", "delete", &bike_id]).await;
    assert_eq!((run.code, run.stdout.trim()), (0, format!("Deleted {bike_id}.").as_str()), "{run:?}");
    let run = cli(&["--server", &url, "--json", "knowledge", "list"]).await;
    assert_eq!(run.json_lines()[0]["total"], 1, "{run:?}");
    let run = cli(&["--server", &url, "knowledge", "delete", &bike_id]).await;
    assert_eq!(run.code, 4, "deleting it again is refused (404): {run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_failure_has_its_own_exit_code() {
    let (fakes, url) = servers::fake("", &["--token", TOKEN]).await;

    // 2: usage.
    let run = cli(&[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let run = cli(&["--server", &url, "ask"]).await;
    assert_eq!(run.code, 2, "a question is needed: {run:?}");
    let run = cli(&["--server", &url, "--token", TOKEN, "talk", "question.xyz"]).await;
    assert_eq!(run.code, 1, "a file that cannot be read is a local problem: {run:?}");
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("question.xyz");
    std::fs::write(&odd, b"....").unwrap();
    let run = cli(&["--server", &url, "--token", TOKEN, "talk", odd.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "an audio format the name does not tell: {run:?}");
    assert!(run.stderr.contains("--encoding"), "{run:?}");

    // 3: unreachable.
    let nowhere = servers::closed_port();
    let run = cli(&["--server", &nowhere, "ask", "Hello"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("could not be reached"), "{run:?}");
    let run = cli(&["--server", &nowhere, "--json", "knowledge", "list"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.json_lines()[0]["error"]["code"], "unreachable", "{run:?}");

    // 4: refused (no token, a wrong one, an unknown conversation).
    let run = cli(&["--server", &url, "ask", "Hello"]).await;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("--token or PARLANCE_TOKEN"), "{run:?}");
    let run = cli(&["--server", &url, "--token", "a-wrong-token-0000000000", "--json", "history", "abc"]).await;
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.json_lines()[0]["error"]["code"], "unauthorized", "{run:?}");
    assert!(!run.stdout.contains("a-wrong-token"), "the token is never printed: {run:?}");
    let run = cli(&["--server", &url, "--token", TOKEN, "history", "no-such-conversation"]).await;
    assert_eq!(run.code, 4, "{run:?}");

    // 0 with the token, from the environment as well as the flag.
    let run = cli(&["--server", &url, "--token", TOKEN, "ask", "Hello"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = servers::cli_with_env(&["ask", "Hello"], &[("PARLANCE_SERVER", &url), ("PARLANCE_TOKEN", TOKEN)]).await;
    assert_eq!(run.code, 0, "{run:?}");

    // 5: the server failed (its model provider did).
    fakes.fail(Stage::Llm, StatusCode::INTERNAL_SERVER_ERROR);
    let run = cli(&["--server", &url, "--token", TOKEN, "ask", "Hello"]).await;
    assert_eq!(run.code, 5, "{run:?}");
    let run = cli(&["--server", &url, "--token", TOKEN, "--json", "ask", "Hello"]).await;
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(run.json_lines().last().unwrap()["error"]["code"], "provider_error", "{run:?}");

    let help = cli(&["--help"]).await;
    assert_eq!(help.code, 0);
    for line in ["2  usage", "3  unreachable", "4  refused", "5  server error"] {
        assert!(help.stdout.contains(line), "--help documents {line:?}: {}", help.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_answer_on_the_server_too() {
    let (fakes, url) = servers::fake("", &[]).await;
    fakes.configure(|behaviour| {
        behaviour.answer = Some(crate::turns::STORY.to_owned());
        behaviour.delta_delay = std::time::Duration::from_millis(100);
    });
    let (code, stdout) = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_parlance-cli"))
            .args(["--server", &url, "ask", "Tell me a story"])
            .env_remove("PARLANCE_SERVER")
            .env_remove("PARLANCE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // The answer has begun: its first word is on the terminal.
        let mut first = [0u8; 4];
        stdout.read_exact(&mut first).unwrap();
        assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        (status.code(), format!("{}{rest}", String::from_utf8_lossy(&first)))
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130), "{stdout}");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert!(!stdout.contains("their friend"), "the answer stopped: {stdout}");
    let streams = fakes.chat_streams();
    assert_eq!((streams.finished, streams.dropped_at.len()), (0, 1), "the model stopped writing: {streams:?}");
}
