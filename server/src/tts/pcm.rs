//! Raw speech as the voices produce it, and the WAV file browsers play.

use std::io::Cursor;

use super::TtsError;

/// Mono samples in [-1, 1] at `sample_rate`: one sentence, ready to play or to stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Pcm {
    pub fn from_i16(samples: &[i16], sample_rate: u32) -> Self {
        Self { samples: samples.iter().map(|&s| f32::from(s) / 32768.0).collect(), sample_rate }
    }

    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Appends `millis` of silence.
    pub fn pause(&mut self, millis: u32) {
        let count = u64::from(self.sample_rate) * u64::from(millis) / 1000;
        self.samples.extend(std::iter::repeat_n(0.0, usize::try_from(count).unwrap_or(0)));
    }

    /// 16-bit PCM mono WAV: every browser plays it without a decoder of ours.
    pub fn to_wav(&self) -> Result<Vec<u8>, TtsError> {
        let spec =
            hound::WavSpec { channels: 1, sample_rate: self.sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut bytes = Cursor::new(Vec::with_capacity(44 + self.samples.len() * 2));
        let wav_error = |e: hound::Error| TtsError::Encode(e.to_string());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).map_err(wav_error)?;
        for sample in &self.samples {
            // The voice can overshoot [-1, 1] slightly; clip instead of wrapping around.
            let scaled = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
            writer.write_sample(scaled).map_err(wav_error)?;
        }
        writer.finalize().map_err(wav_error)?;
        Ok(bytes.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips_through_a_reader() {
        let mut pcm = Pcm { samples: vec![0.0, 0.5, -0.5, 1.5, -1.5], sample_rate: 22_050 };
        pcm.pause(100);
        assert_eq!(pcm.samples.len(), 5 + 2205);
        let wav = pcm.to_wav().unwrap();
        let mut reader = hound::WavReader::new(Cursor::new(wav)).unwrap();
        assert_eq!(reader.spec().sample_rate, 22_050);
        assert_eq!(reader.spec().channels, 1);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(&samples[..5], &[0, 16384, -16384, i16::MAX, -i16::MAX]);
        assert!(samples[5..].iter().all(|s| *s == 0));
    }
}
