//! Where the client is in playing the answer, reckoned from when each audio chunk was sent and how long it
//! lasts: a client that keeps its microphone open (`barge_in`) never says what it played, so when the user cuts
//! in, the server works out which sentences they had heard.

use std::io::Cursor;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parlance_shared::AudioClip;

/// A sentence spoken at an ordinary pace: for clips whose length cannot be read from their header.
const PER_CHARACTER: Duration = Duration::from_millis(65);

/// When each chunk sent will have finished playing, if the client plays them back to back as they come.
#[derive(Debug, Clone, Default)]
pub struct Playback {
    ends: Vec<Instant>,
}

impl Playback {
    /// A chunk lasting `length` was sent at `sent`: it plays once the one before it has ended.
    pub fn push(&mut self, sent: Instant, length: Duration) {
        let start = self.ends.last().map_or(sent, |end| (*end).max(sent));
        self.ends.push(start + length);
    }

    /// How many chunks had been played to the end at `at`.
    pub fn played_by(&self, at: Instant) -> usize {
        self.ends.iter().take_while(|end| **end <= at).count()
    }

    /// Whether a chunk was still playing at `at`.
    pub fn playing_at(&self, at: Instant) -> bool {
        self.ends.last().is_some_and(|end| *end > at)
    }
}

/// How long `clip` plays: from its WAV header, else estimated from the length of its `text`.
pub fn clip_length(clip: &AudioClip, text: &str) -> Duration {
    wav_length(clip).unwrap_or_else(|| PER_CHARACTER * u32::try_from(text.chars().count()).unwrap_or(u32::MAX))
}

fn wav_length(clip: &AudioClip) -> Option<Duration> {
    // Enough base64 for the RIFF, format and data chunk headers (a multiple of 4, so it decodes on its own):
    // the header says how long the clip is, and the samples need not be decoded on the way to the client.
    const HEADER_BASE64: usize = 512;
    if clip.mime_type != "audio/wav" {
        return None;
    }
    let header = clip.data_base64.get(..HEADER_BASE64).unwrap_or(&clip.data_base64);
    let bytes = base64::engine::general_purpose::STANDARD.decode(header).ok()?;
    let reader = hound::WavReader::new(Cursor::new(bytes)).ok()?;
    let rate = reader.spec().sample_rate;
    (rate > 0).then(|| Duration::from_secs_f64(f64::from(reader.duration()) / f64::from(rate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_play_back_to_back_and_wait_for_the_one_before() {
        let sent = Instant::now();
        let mut playback = Playback::default();
        playback.push(sent, Duration::from_secs(2));
        // Made while the first played: it starts when the first ends, not when it came.
        playback.push(sent + Duration::from_millis(500), Duration::from_secs(1));
        // Made after a silence: it starts when it came.
        playback.push(sent + Duration::from_secs(5), Duration::from_secs(1));
        let at = |ms: u64| sent + Duration::from_millis(ms);
        assert_eq!(playback.played_by(at(1_999)), 0);
        assert_eq!(playback.played_by(at(2_000)), 1);
        assert_eq!(playback.played_by(at(2_999)), 1);
        assert_eq!(playback.played_by(at(3_000)), 2);
        assert!(playback.playing_at(at(3_500)), "the third is still to play");
        assert_eq!(playback.played_by(at(6_000)), 3);
        assert!(!playback.playing_at(at(6_000)));
        assert!(!Playback::default().playing_at(sent));
    }

    #[test]
    fn a_clips_length_is_read_from_its_wav_header() {
        let mut wav = Cursor::new(Vec::new());
        let spec = hound::WavSpec { channels: 1, sample_rate: 22_050, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut writer = hound::WavWriter::new(&mut wav, spec).unwrap();
        for _ in 0..33_075 {
            writer.write_sample(0_i16).unwrap();
        }
        writer.finalize().unwrap();
        let clip =
            AudioClip { mime_type: "audio/wav".into(), data_base64: base64::engine::general_purpose::STANDARD.encode(wav.into_inner()) };
        assert_eq!(clip_length(&clip, "ignored"), Duration::from_millis(1_500));
        let mp3 = AudioClip { mime_type: "audio/mpeg".into(), data_base64: "AAAA".into() };
        assert_eq!(clip_length(&mp3, "Ten chars."), PER_CHARACTER * 10, "other formats: from the text");
    }
}
