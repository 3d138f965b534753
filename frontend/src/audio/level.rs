//! How loud the microphone is right now, for the meter shown while listening.

use web_sys::{AnalyserNode, AudioContext, MediaStream, MediaStreamAudioSourceNode};

/// Quieter than this shows as an empty meter: room noise on a laptop microphone sits around -60 dBFS.
const FLOOR_DB: f32 = -60.0;

/// Why there is no meter (the recording itself still works without one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the level meter could not be attached to the microphone")]
pub struct MeterUnavailable;

/// Maps a block of samples (-1.0..=1.0) to a meter position in 0.0..=1.0, on a decibel scale so speech moves
/// the bar visibly instead of only its loudest peaks.
pub fn meter_level(samples: &[f32]) -> f32 {
    let db = rms_dbfs(samples.iter().copied());
    if !db.is_finite() {
        return 0.0;
    }
    ((db - FLOOR_DB) / -FLOOR_DB).clamp(0.0, 1.0)
}

/// The loudness of a block of samples (-1.0..=1.0) in dB relative to full scale; minus infinity for digital
/// silence or an empty block. Shared by the meter and the hands-free voice detector.
pub fn rms_dbfs(samples: impl IntoIterator<Item = f32>) -> f32 {
    let (count, sum) = samples.into_iter().fold((0usize, 0.0f64), |(count, sum), sample| (count + 1, sum + f64::from(sample * sample)));
    if count == 0 || sum <= 0.0 {
        return f32::NEG_INFINITY;
    }
    (10.0 * (sum / count as f64).log10()) as f32
}

/// An AnalyserNode listening to the microphone. Dropping it disconnects it.
pub struct LevelMeter {
    source: MediaStreamAudioSourceNode,
    analyser: AnalyserNode,
    samples: Vec<f32>,
}

impl LevelMeter {
    pub fn attach(context: &AudioContext, stream: &MediaStream) -> Result<Self, MeterUnavailable> {
        let source = context.create_media_stream_source(stream).map_err(|_| MeterUnavailable)?;
        let analyser = context.create_analyser().map_err(|_| MeterUnavailable)?;
        analyser.set_fft_size(1024);
        // Not connected to the speakers: the user must not hear themselves.
        source.connect_with_audio_node(&analyser).map_err(|_| MeterUnavailable)?;
        let samples = vec![0.0; analyser.fft_size() as usize];
        Ok(Self { source, analyser, samples })
    }

    /// The level of the most recent block of audio.
    pub fn read(&mut self) -> f32 {
        self.analyser.get_float_time_domain_data(&mut self.samples);
        meter_level(&self.samples)
    }
}

impl Drop for LevelMeter {
    fn drop(&mut self) {
        let _ = self.source.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_an_empty_meter() {
        assert_eq!(meter_level(&[0.0; 512]), 0.0);
        assert_eq!(meter_level(&[]), 0.0);
    }

    #[test]
    fn a_full_scale_square_wave_fills_it() {
        let square: Vec<f32> = (0..512).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        assert_eq!(meter_level(&square), 1.0);
    }

    #[test]
    fn louder_speech_moves_the_bar_further() {
        let quiet = meter_level(&[0.01; 256]); // -40 dBFS
        let loud = meter_level(&[0.1; 256]); // -20 dBFS
        assert!((quiet - 1.0 / 3.0).abs() < 1e-4, "{quiet}");
        assert!((loud - 2.0 / 3.0).abs() < 1e-4, "{loud}");
    }

    #[test]
    fn dbfs_of_known_levels() {
        assert_eq!(rms_dbfs([0.0; 16]), f32::NEG_INFINITY);
        assert_eq!(rms_dbfs(std::iter::empty()), f32::NEG_INFINITY);
        assert!((rms_dbfs([0.1; 16]) + 20.0).abs() < 1e-4);
        assert!(rms_dbfs([1.0, -1.0]).abs() < 1e-6);
    }

    #[test]
    fn room_noise_below_the_floor_reads_empty() {
        assert_eq!(meter_level(&[0.0005; 256]), 0.0);
    }
}
