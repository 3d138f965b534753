//! Sample-rate conversion of a mono signal (FFT-based, band-limited: no aliasing when going down to 16 kHz).

use rubato::{FftFixedIn, Resampler};

/// Input frames per FFT round: a few tens of milliseconds, a good speed/latency balance for whole clips.
const CHUNK: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    reason: String,
}

/// `samples` at `from` Hz, returned at `to` Hz with the same duration (to the nearest sample).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let fail = |reason: String| ResampleError { from, to, reason };
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1).map_err(|e| fail(e.to_string()))?;
    let wanted = (samples.len() as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
    // The filter delays its output; that many leading samples are dropped so the timing is preserved.
    let delay = resampler.output_delay();
    let mut output = Vec::with_capacity(wanted + delay + CHUNK);

    let mut rest = samples;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        output.extend_from_slice(&resampler.process(&[chunk], None).map_err(|e| fail(e.to_string()))?[0]);
        rest = tail;
    }
    if !rest.is_empty() {
        output.extend_from_slice(&resampler.process_partial(Some(&[rest]), None).map_err(|e| fail(e.to_string()))?[0]);
    }
    // Flush what the filter still holds.
    while output.len() < wanted + delay {
        output.extend_from_slice(&resampler.process_partial::<&[f32]>(None, None).map_err(|e| fail(e.to_string()))?[0]);
    }
    output.drain(..delay);
    output.truncate(wanted);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize).map(|i| (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin() * 0.5).collect()
    }

    /// Upward zero crossings per second: the frequency of a clean tone.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        crossings as f32 * rate as f32 / samples.len() as f32
    }

    #[test]
    fn a_tone_keeps_its_pitch_length_level_and_timing() {
        for from in [44_100, 48_000, 8_000] {
            let input = sine(440.0, from, 1.5);
            let output = resample(&input, from, 16_000).unwrap();
            assert_eq!(output.len(), 24_000, "from {from} Hz");
            let measured = frequency(&output, 16_000);
            assert!((measured - 440.0).abs() < 2.0, "from {from} Hz: {measured} Hz");
            let rms = (output[2000..22_000].iter().map(|x| x * x).sum::<f32>() / 20_000.0).sqrt();
            assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "from {from} Hz: rms {rms}");
            // No delay: the output lines up with the tone sampled directly at 16 kHz. One sample (62.5 µs) of
            // shift would make an error of about 0.09 here.
            let expected = sine(440.0, 16_000, 1.5);
            let error = output[8000..16_000].iter().zip(&expected[8000..16_000]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(error < 0.05, "from {from} Hz: off by {error}");
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed_not_folded() {
        let input = sine(12_000.0, 48_000, 1.0);
        let output = resample(&input, 48_000, 16_000).unwrap();
        let rms = (output[1000..15_000].iter().map(|x| x * x).sum::<f32>() / 14_000.0).sqrt();
        assert!(rms < 0.01, "a 12 kHz tone would alias to 4 kHz: rms {rms}");
    }
}
