//! A streamed answer's sentences, each its own WAV file, as one recording.

use std::io::Cursor;

use hound::{SampleFormat, WavReader, WavWriter};

use crate::tts::SpeechAudio;

/// The pieces as one file and its type: WAV pieces of one format joined into one WAV; pieces of any other
/// kind (a provider's other format) laid end to end, which MP3 and raw streams survive. `None` for no pieces.
pub fn join(pieces: &[SpeechAudio]) -> Option<(Vec<u8>, String)> {
    let first = pieces.first()?;
    if let [only] = pieces {
        return Some((only.bytes.to_vec(), only.mime_type.clone()));
    }
    match join_wav(pieces) {
        Ok(Some(wav)) => Some((wav, "audio/wav".to_owned())),
        Ok(None) | Err(_) => Some((pieces.iter().flat_map(|piece| piece.bytes.iter().copied()).collect(), first.mime_type.clone())),
    }
}

/// `None` when the pieces differ in format.
fn join_wav(pieces: &[SpeechAudio]) -> Result<Option<Vec<u8>>, hound::Error> {
    let readers = pieces.iter().map(|piece| WavReader::new(Cursor::new(&piece.bytes[..]))).collect::<Result<Vec<_>, _>>()?;
    let spec = readers[0].spec();
    if readers.iter().any(|reader| reader.spec() != spec) {
        return Ok(None);
    }
    let total: u32 = readers.iter().map(WavReader::len).sum();
    let mut joined = Cursor::new(Vec::with_capacity(44 + total as usize * usize::from(spec.bits_per_sample / 8)));
    let mut writer = WavWriter::new(&mut joined, spec)?;
    for reader in readers {
        match spec.sample_format {
            SampleFormat::Int => {
                for sample in reader.into_samples::<i32>() {
                    writer.write_sample(sample?)?;
                }
            }
            SampleFormat::Float => {
                for sample in reader.into_samples::<f32>() {
                    writer.write_sample(sample?)?;
                }
            }
        }
    }
    writer.finalize()?;
    Ok(Some(joined.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, samples: &[i16]) -> SpeechAudio {
        let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: SampleFormat::Int };
        let mut bytes = Cursor::new(Vec::new());
        let mut writer = WavWriter::new(&mut bytes, spec).unwrap();
        samples.iter().for_each(|s| writer.write_sample(*s).unwrap());
        writer.finalize().unwrap();
        SpeechAudio { bytes: bytes.into_inner().into(), mime_type: "audio/wav".to_owned() }
    }

    #[test]
    fn sentences_of_one_voice_become_one_wav_holding_them_in_order() {
        let (joined, mime) = join(&[wav(22_050, &[1, 2, 3]), wav(22_050, &[4, 5])]).unwrap();
        assert_eq!(mime, "audio/wav");
        let reader = WavReader::new(Cursor::new(joined)).unwrap();
        assert_eq!(reader.spec().sample_rate, 22_050);
        assert_eq!(reader.into_samples::<i16>().map(Result::unwrap).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn other_pieces_are_laid_end_to_end() {
        assert!(join(&[]).is_none());
        let mp3 = |bytes: &'static [u8]| SpeechAudio { bytes: bytes.into(), mime_type: "audio/mpeg".to_owned() };
        assert_eq!(join(&[mp3(b"ab"), mp3(b"cd")]).unwrap(), (b"abcd".to_vec(), "audio/mpeg".to_owned()));
        let (mixed, _) = join(&[wav(16_000, &[1]), wav(22_050, &[2])]).unwrap();
        assert_eq!(mixed.len(), 2 * 46, "two rates cannot be one WAV: kept as they came");
    }
}
