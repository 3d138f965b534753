//! Where the speech in a stream of raw 16 kHz PCM16 samples ends. With the voice activity model loaded it
//! judges (see `crate::vad`); without it, loud 20 ms blocks are speech, and the speech has paused once quiet
//! blocks have followed the last loud one for a while.

use crate::vad::{VoiceActivity, VoiceEvent};

/// 20 ms at 16 kHz: one short syllable lifts its block above the quiet.
const BLOCK_SAMPLES: usize = 320;
/// A quarter second of quiet after speech: shorter than the client's end of turn (0.3 s and up), longer
/// than the gaps between words, so most pauses it sees are the end of the question.
pub const PAUSE_SAMPLES: usize = 4_000;
/// With the voice activity model, which tells a voice from a quiet word, a tenth of a second: the model hears
/// the speech end about 90 ms late already, and every moment before the transcript delays the end of the turn.
/// A gap between words then starts more attempts that speech after it makes stale (README: "Turn-taking").
pub const VOICE_PAUSE_SAMPLES: usize = 1_600;
/// About -50 dBFS RMS: below a voice close to a microphone, above digital silence and a quiet room.
const MIN_SPEECH_RMS: f32 = 0.003;
/// Quiet is at most this many times the quietest block heard (the room) ...
const OVER_NOISE: f32 = 2.0;
/// ... and at most this fraction of the loudest (20 dB under the voice). Both must hold: a block wrongly
/// taken for quiet could lose the user's last words, one wrongly taken for speech only costs the early start.
const UNDER_VOICE: f32 = 0.1;

/// Samples per millisecond.
pub const SAMPLES_PER_MS: usize = 16;

/// The stream's pauses, by the voice activity model when there is one, else by energy.
pub enum Pauses {
    Energy(PauseDetector),
    Voice(VoiceActivity),
}

impl Pauses {
    /// Reads a frame of PCM16 bytes; returns where speech started and stopped in it (the model only).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<VoiceEvent> {
        match self {
            Self::Energy(detector) => {
                detector.push(bytes);
                Vec::new()
            }
            Self::Voice(voice) => voice.push(bytes),
        }
    }

    /// The sample just after the last speech; `None` before any.
    pub fn speech_end(&self) -> Option<usize> {
        match self {
            Self::Energy(detector) => detector.speech_end(),
            Self::Voice(voice) => voice.speech_end(),
        }
    }

    /// Whether the speech has paused long enough to transcribe what was said.
    pub fn paused(&self) -> bool {
        match self {
            Self::Energy(detector) => detector.paused(),
            Self::Voice(voice) => voice.silent_for(VOICE_PAUSE_SAMPLES),
        }
    }

    /// Samples of silence since the speech stopped; 0 while speaking or before any speech.
    pub fn silence(&self) -> usize {
        match self {
            Self::Energy(detector) => detector.silence(),
            Self::Voice(voice) => voice.silence(),
        }
    }
}

#[derive(Debug, Default)]
pub struct PauseDetector {
    /// The odd byte of a sample split across two frames.
    half_sample: Option<u8>,
    /// Sum of squares and count of the samples in the block being filled.
    block_energy: f32,
    block_len: usize,
    samples: usize,
    quietest_rms: Option<f32>,
    loudest_rms: f32,
    speech_end: Option<usize>,
}

impl PauseDetector {
    /// Reads a frame of little-endian PCM16 bytes, of any length.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if let (Some(low), Some((&high, rest))) = (self.half_sample, bytes.split_first()) {
            self.half_sample = None;
            self.sample(i16::from_le_bytes([low, high]));
            bytes = rest;
        }
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            self.sample(i16::from_le_bytes([pair[0], pair[1]]));
        }
        if let [odd] = pairs.remainder() {
            self.half_sample = Some(*odd);
        }
    }

    fn sample(&mut self, sample: i16) {
        let value = f32::from(sample) / 32_768.0;
        self.block_energy += value * value;
        self.block_len += 1;
        self.samples += 1;
        if self.block_len == BLOCK_SAMPLES {
            let rms = (self.block_energy / BLOCK_SAMPLES as f32).sqrt();
            self.loudest_rms = self.loudest_rms.max(rms);
            let room = self.quietest_rms.map_or(f32::INFINITY, |quietest| quietest * OVER_NOISE);
            if rms >= MIN_SPEECH_RMS.max(room.min(self.loudest_rms * UNDER_VOICE)) {
                self.speech_end = Some(self.samples);
            }
            self.quietest_rms = Some(self.quietest_rms.map_or(rms, |quietest| quietest.min(rms)));
            (self.block_energy, self.block_len) = (0.0, 0);
        }
    }

    /// The sample just after the last loud block; `None` before any speech.
    pub fn speech_end(&self) -> Option<usize> {
        self.speech_end
    }

    /// Samples since the last loud block; 0 before any.
    pub fn silence(&self) -> usize {
        self.speech_end.map_or(0, |end| self.samples - end)
    }

    /// Whether there was speech and it has been followed by [`PAUSE_SAMPLES`] of quiet.
    pub fn paused(&self) -> bool {
        self.speech_end.is_some_and(|end| self.samples - end >= PAUSE_SAMPLES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
        samples.into_iter().flat_map(i16::to_le_bytes).collect()
    }

    fn tone(ms: usize, amplitude: f32) -> Vec<u8> {
        bytes((0..ms * 16).map(|i| ((i as f32 * 0.3).sin() * amplitude * 32_767.0) as i16))
    }

    fn hiss(ms: usize, amplitude: f32) -> Vec<u8> {
        bytes((0..ms * 16).map(|i| if i % 2 == 0 { (amplitude * 32_767.0) as i16 } else { -(amplitude * 32_767.0) as i16 }))
    }

    #[test]
    fn speech_then_a_quarter_second_of_silence_is_a_pause() {
        let mut pauses = PauseDetector::default();
        pauses.push(&hiss(300, 0.0));
        assert!(!pauses.paused() && pauses.speech_end().is_none(), "silence alone is not a pause after speech");
        pauses.push(&tone(1000, 0.2));
        assert_eq!(pauses.speech_end(), Some(16 * 1300));
        pauses.push(&hiss(200, 0.0));
        assert!(!pauses.paused(), "200 ms is a gap between words");
        pauses.push(&hiss(60, 0.0));
        assert!(pauses.paused());
        pauses.push(&tone(100, 0.2));
        assert!(!pauses.paused(), "speaking again ends the pause");
        assert_eq!(pauses.speech_end(), Some(16 * 1660));
    }

    #[test]
    fn quiet_is_near_the_room_and_well_under_the_voice() {
        let mut pauses = PauseDetector::default();
        // -46 dBFS of steady room noise before the voice: nothing to compare it with yet, so not a pause.
        pauses.push(&hiss(500, 0.005));
        assert_eq!(pauses.speech_end(), Some(8000));
        pauses.push(&tone(300, 0.3));
        assert_eq!(pauses.speech_end(), Some(16 * 800));
        pauses.push(&hiss(300, 0.005));
        assert!(pauses.paused(), "back to the room's noise is a pause");
        // A murmur three times the room's level is not quiet, though far under the voice.
        pauses.push(&hiss(300, 0.015));
        assert_eq!(pauses.speech_end(), Some(16 * 1400));
    }

    #[test]
    fn a_steady_sound_is_never_a_pause() {
        let mut pauses = PauseDetector::default();
        pauses.push(&tone(1000, 0.2));
        assert_eq!(pauses.speech_end(), Some(16_000));
        assert!(!pauses.paused());
    }

    #[test]
    fn samples_split_across_frames_are_read_whole() {
        let audio = tone(100, 0.2);
        let mut whole = PauseDetector::default();
        whole.push(&audio);
        let mut split = PauseDetector::default();
        for frame in audio.chunks(333) {
            split.push(frame);
        }
        assert_eq!((split.samples, split.speech_end), (whole.samples, whole.speech_end));
        assert_eq!(split.samples, 1600);
    }

    #[test]
    fn a_voice_from_the_first_block_on_is_speech() {
        let mut pauses = PauseDetector::default();
        pauses.push(&tone(500, 0.2));
        pauses.push(&hiss(300, 0.0));
        assert_eq!(pauses.speech_end(), Some(8000));
        assert!(pauses.paused());
    }
}
