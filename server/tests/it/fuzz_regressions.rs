//! What the fuzzer found (`scripts/fuzz.sh`), kept. Each file in `fuzz-crashes/audio` made a decoder panic (all
//! in Symphonia's MP4 and AAC readers, from one recording with a few bytes changed), and one of them made it
//! reserve 24 GB, which aborted the process: Parlance must come back from each with a clear error of its own,
//! or the audio it could read, never let the panic through or show the library's words. Each file in
//! `fuzz-crashes/audio-slow` is a 13 kB WAV file whose header claims a sample rate of gigahertz: resampling it
//! took the decoder from 3 s to over 30 s; it is refused for its rate.

use std::path::Path;

use bytes::Bytes;
use parlance_server::audio::{AudioUpload, decode_speech};
use parlance_server::stt::MAX_RECORDING_SECS;

/// What a library's panic says, which is not ours to show.
const LIBRARY_WORDS: [&str; 6] = ["overflow", "out of bounds", "unwrap", "TimeBase", "must be read", "panicked"];

#[test]
fn every_upload_that_crashed_a_decoder_is_refused_in_our_words() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashes/audio");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 14, "the kept crashes are missing from {}", dir.display());
    let mut problems = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let upload = match AudioUpload::from_bytes(Bytes::from(std::fs::read(file).unwrap())) {
            Ok(upload) => upload,
            Err(error) => {
                problems.push(format!("{name}: no longer recognised as audio ({error}); the case no longer tests the decoder"));
                continue;
            }
        };
        // A panic that got through would fail the test right here.
        match decode_speech(&upload, MAX_RECORDING_SECS) {
            Ok(samples) => assert!(samples.len() as u64 <= MAX_RECORDING_SECS * 16_000 + 16_000, "{name}: past the length limit"),
            Err(error) => {
                let message = error.to_string();
                if let Some(words) = LIBRARY_WORDS.iter().find(|words| message.contains(*words)) {
                    problems.push(format!("{name}: the library's panic ({words:?}) in our message: {message}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} of {} kept crashes:\n{}", problems.len(), files.len(), problems.join("\n"));
}

#[test]
fn a_recording_at_an_odd_sample_rate_is_refused_for_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashes/audio-slow");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert!(files.len() >= 2);
    for file in files {
        let upload = AudioUpload::from_bytes(Bytes::from(std::fs::read(&file).unwrap())).expect("a WAV file");
        let error = decode_speech(&upload, MAX_RECORDING_SECS).expect_err("refused");
        assert!(error.to_string().contains("sample rate"), "{}: {error}", file.display());
    }
}
