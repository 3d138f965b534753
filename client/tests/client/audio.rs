//! How long a recording plays, read from its container: files made by ffmpeg, as a user's would be.

use std::time::Duration;

use parlance_client::audio::recording_duration;
use parlance_client::types::AudioEncoding;

use crate::support::fake_openai::tone_wav;
use crate::support::speech::run;

#[test]
fn each_container_states_how_long_it_plays() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    std::fs::write(&wav, tone_wav(16_000, 1.5)).unwrap();
    let wav_arg = wav.to_str().unwrap();
    let convert = |name: &str, options: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["-nostdin", "-loglevel", "error", "-y", "-i", wav_arg];
        args.extend_from_slice(options);
        args.push(out.to_str().unwrap());
        run("ffmpeg", &args);
        std::fs::read(out).unwrap()
    };
    let cases = [
        ("WAV", AudioEncoding::Wav, std::fs::read(&wav).unwrap()),
        ("raw PCM16", AudioEncoding::Pcm16, convert("tone.pcm", &["-f", "s16le", "-ar", "16000", "-ac", "1"])),
        ("Ogg Opus", AudioEncoding::Ogg, convert("tone.ogg", &["-c:a", "libopus"])),
        ("WebM Opus", AudioEncoding::Webm, convert("tone.webm", &["-c:a", "libopus"])),
        // As MediaRecorder writes it: no duration in the header, small clusters.
        ("live WebM", AudioEncoding::Webm, convert("live.webm", &["-c:a", "libopus", "-live", "1", "-cluster_time_limit", "200"])),
        ("M4A AAC", AudioEncoding::Mp4, convert("tone.m4a", &["-c:a", "aac"])),
    ];
    for (name, encoding, bytes) in cases {
        let length = recording_duration(encoding, &bytes).unwrap_or_else(|| panic!("{name}: no length found"));
        assert!(length.abs_diff(Duration::from_millis(1_500)) <= Duration::from_millis(100), "{name}: {length:?}");
    }
    assert_eq!(recording_duration(AudioEncoding::Webm, b"not a webm file at all"), None);
    assert_eq!(recording_duration(AudioEncoding::Mp4, &[0u8; 64]), None);
}
