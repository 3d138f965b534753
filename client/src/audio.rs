//! The answer's audio as one file: the server speaks an answer sentence by sentence, one WAV per
//! `audio_chunk`, and a player (or `parlance-cli ask --save`) wants one.

use std::io::Cursor;

use base64::Engine as _;
use parlance_shared::AudioClip;

use crate::error::ClientError;

/// The bytes of a clip (its `data_base64` decoded).
pub fn clip_bytes(clip: &AudioClip) -> Result<Vec<u8>, ClientError> {
    base64::engine::general_purpose::STANDARD
        .decode(&clip.data_base64)
        .map_err(|error| ClientError::Audio(format!("an audio clip is not valid base64: {error}")))
}

/// Joins WAV clips into one WAV: the samples one after another under a single header. Concatenating the
/// files would leave every later header inside the audio (a click each, and players stop at the first
/// header's length). The clips must share one format, as one voice's sentences do.
pub fn join_wav(clips: &[AudioClip]) -> Result<Vec<u8>, ClientError> {
    let mut format: Option<hound::WavSpec> = None;
    let mut samples = Samples::Int(Vec::new());
    for (index, clip) in clips.iter().enumerate() {
        if !clip.mime_type.eq_ignore_ascii_case("audio/wav") && !clip.mime_type.eq_ignore_ascii_case("audio/x-wav") {
            return Err(ClientError::Audio(format!(
                "the server speaks {}, not WAV: only WAV sentences can be joined into one file",
                clip.mime_type.chars().take(40).collect::<String>()
            )));
        }
        let bytes = clip_bytes(clip)?;
        let unreadable = |error: hound::Error| ClientError::Audio(format!("audio chunk {index} is not a readable WAV: {error}"));
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(unreadable)?;
        let spec = reader.spec();
        let expected = *format.get_or_insert(spec);
        if spec != expected {
            return Err(ClientError::Audio(format!(
                "audio chunk {index} is {} Hz, {} channel(s), {} bits, unlike the first ({} Hz, {}, {}): they cannot be joined",
                spec.sample_rate, spec.channels, spec.bits_per_sample, expected.sample_rate, expected.channels, expected.bits_per_sample
            )));
        }
        if index == 0 && spec.sample_format == hound::SampleFormat::Float {
            samples = Samples::Float(Vec::new());
        }
        match &mut samples {
            Samples::Int(all) => {
                for sample in reader.samples::<i32>() {
                    all.push(sample.map_err(unreadable)?);
                }
            }
            Samples::Float(all) => {
                for sample in reader.samples::<f32>() {
                    all.push(sample.map_err(unreadable)?);
                }
            }
        }
    }
    let Some(spec) = format else { return Err(ClientError::Audio("the answer came without audio".to_owned())) };
    let unwritable = |error: hound::Error| ClientError::Audio(format!("the joined WAV could not be written: {error}"));
    let mut output = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut output, spec).map_err(unwritable)?;
    match samples {
        Samples::Int(all) => all.into_iter().try_for_each(|sample| writer.write_sample(sample)),
        Samples::Float(all) => all.into_iter().try_for_each(|sample| writer.write_sample(sample)),
    }
    .map_err(unwritable)?;
    writer.finalize().map_err(unwritable)?;
    Ok(output.into_inner())
}

/// The samples of every clip, in the clips' sample format.
enum Samples {
    Int(Vec<i32>),
    Float(Vec<f32>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, samples: &[i16]) -> AudioClip {
        let mut bytes = Cursor::new(Vec::new());
        let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for sample in samples {
            writer.write_sample(*sample).unwrap();
        }
        writer.finalize().unwrap();
        AudioClip { mime_type: "audio/wav".into(), data_base64: base64::engine::general_purpose::STANDARD.encode(bytes.into_inner()) }
    }

    #[test]
    fn sentences_join_into_one_wav_with_every_sample_once() {
        let joined = join_wav(&[wav(22_050, &[1, 2, 3]), wav(22_050, &[-4, 5])]).unwrap();
        let mut reader = hound::WavReader::new(Cursor::new(joined)).unwrap();
        assert_eq!(reader.spec().sample_rate, 22_050);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples, [1, 2, 3, -4, 5]);
    }

    #[test]
    fn clips_of_different_formats_are_not_joined() {
        let error = join_wav(&[wav(22_050, &[1]), wav(16_000, &[2])]).unwrap_err();
        assert!(error.to_string().contains("16000 Hz"), "{error}");
        let mp3 = AudioClip { mime_type: "audio/mpeg".into(), data_base64: String::new() };
        assert!(join_wav(&[mp3]).unwrap_err().to_string().contains("audio/mpeg"));
        assert!(join_wav(&[]).is_err());
    }
}
