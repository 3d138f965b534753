//! A loudness gate in front of the model: Whisper, given near-silence, still tends to "hear" something
//! ("Thank you.", "you"), so audio with no frame louder than a quiet room is not sent to it at all.

/// 20 ms at 16 kHz: short enough that a single short word lifts its frame above the gate.
const FRAME: usize = 320;
/// About -50 dBFS RMS: below a voice close to a microphone, above digital silence and a quiet room.
pub const SILENCE_RMS: f32 = 0.003;

/// The RMS level of the loudest 20 ms frame.
pub fn loudest_frame_rms(samples: &[f32]) -> f32 {
    samples.chunks(FRAME).map(|frame| (frame.iter().map(|x| x * x).sum::<f32>() / frame.len() as f32).sqrt()).fold(0.0, f32::max)
}

/// Whether any part of `samples` is loud enough to hold speech.
pub fn may_hold_speech(samples: &[f32]) -> bool {
    loudest_frame_rms(samples) >= SILENCE_RMS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_hiss_are_quiet_a_short_tone_is_not() {
        assert!(!may_hold_speech(&[]));
        assert!(!may_hold_speech(&vec![0.0; 16_000]));
        // -60 dBFS hiss, as from a muted or distant microphone.
        let hiss: Vec<f32> = (0..16_000).map(|i| if i % 2 == 0 { 0.001 } else { -0.001 }).collect();
        assert!(!may_hold_speech(&hiss));
        // 50 ms of a moderate tone in two seconds of silence still counts.
        let mut clip = vec![0.0; 32_000];
        for (i, sample) in clip[16_000..16_800].iter_mut().enumerate() {
            *sample = (i as f32 * 0.2).sin() * 0.05;
        }
        assert!(may_hold_speech(&clip));
        assert!((loudest_frame_rms(&clip) - 0.05 / 2f32.sqrt()).abs() < 0.005);
    }
}
