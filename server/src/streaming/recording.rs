//! The user's speech as it arrives in binary frames, kept within the upload limit and turned into one
//! recording the speech-to-text stage can read.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use parlance_shared::AudioEncoding;

use crate::audio::{AudioError, AudioUpload};

pub struct Recording {
    encoding: AudioEncoding,
    bytes: BytesMut,
    limit_bytes: usize,
    overflowed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("the recording is longer than this server accepts")]
    TooLarge { limit_bytes: usize },
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("could not wrap the raw samples as WAV: {0}")]
    Wav(#[from] hound::Error),
}

impl Recording {
    pub fn new(encoding: AudioEncoding, limit_bytes: usize) -> Self {
        Self { encoding, bytes: BytesMut::new(), limit_bytes, overflowed: false }
    }

    /// Adds a frame. Past the limit the whole recording is dropped and `TooLarge` is returned once; later
    /// frames are ignored, so a client still sending gets one error, not one per frame.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), RecordingError> {
        if self.overflowed {
            return Ok(());
        }
        if self.bytes.len().saturating_add(frame.len()) > self.limit_bytes {
            self.overflowed = true;
            self.bytes = BytesMut::new();
            return Err(RecordingError::TooLarge { limit_bytes: self.limit_bytes });
        }
        self.bytes.extend_from_slice(frame);
        Ok(())
    }

    /// Whether the recording was dropped for being too large (the turn is then abandoned).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn finish(self) -> Result<AudioUpload, RecordingError> {
        as_upload(self.encoding, self.bytes.freeze())
    }

    /// The recording so far, as [`Recording::finish`] would give it.
    pub fn snapshot(&self) -> Result<AudioUpload, RecordingError> {
        as_upload(self.encoding, Bytes::copy_from_slice(&self.bytes))
    }
}

fn as_upload(encoding: AudioEncoding, bytes: Bytes) -> Result<AudioUpload, RecordingError> {
    let file = match encoding {
        AudioEncoding::Pcm16 => pcm16_as_wav(&bytes)?,
        AudioEncoding::Webm | AudioEncoding::Ogg | AudioEncoding::Mp4 | AudioEncoding::Wav => bytes,
    };
    // The container is read from the bytes, as for uploads: a client's label proves nothing.
    Ok(AudioUpload::from_bytes(file)?)
}

/// Raw 16 kHz mono samples get a WAV header, the one form every speech-to-text backend reads.
fn pcm16_as_wav(samples: &[u8]) -> Result<Bytes, RecordingError> {
    if samples.len() < 2 {
        return Err(AudioError::Empty.into());
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: AudioEncoding::PCM16_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = Cursor::new(Vec::with_capacity(44 + samples.len()));
    let mut writer = hound::WavWriter::new(&mut wav, spec)?;
    let mut samples_writer = writer.get_i16_writer(u32::try_from(samples.len() / 2).unwrap_or(u32::MAX));
    // A trailing odd byte is half a sample: there is nothing to play in it.
    for sample in samples.chunks_exact(2) {
        samples_writer.write_sample(i16::from_le_bytes([sample[0], sample[1]]));
    }
    samples_writer.flush()?;
    writer.finalize()?;
    Ok(Bytes::from(wav.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioFormat;

    #[test]
    fn raw_samples_become_a_wav_file_holding_exactly_them() {
        let samples: Vec<u8> = (0..1600i16).flat_map(|n| (n * 7).to_le_bytes()).collect();
        let mut recording = Recording::new(AudioEncoding::Pcm16, 1 << 20);
        for frame in samples.chunks(333) {
            recording.push(frame).unwrap();
        }
        let upload = recording.finish().unwrap();
        assert_eq!(upload.format, AudioFormat::Wav);
        let reader = hound::WavReader::new(Cursor::new(upload.bytes.to_vec())).unwrap();
        assert_eq!((reader.spec().sample_rate, reader.spec().channels), (16_000, 1));
        let read: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(read, (0..1600i16).map(|n| n * 7).collect::<Vec<_>>());
    }

    #[test]
    fn past_the_limit_the_recording_is_dropped_with_one_error() {
        let mut recording = Recording::new(AudioEncoding::Webm, 1000);
        recording.push(&[1; 600]).unwrap();
        assert!(matches!(recording.push(&[1; 600]), Err(RecordingError::TooLarge { limit_bytes: 1000 })));
        assert!(recording.overflowed());
        recording.push(&[1; 10]).expect("later frames are ignored quietly");
        assert!(matches!(recording.finish(), Err(RecordingError::Audio(AudioError::Empty))));
    }

    #[test]
    fn container_chunks_are_joined_and_recognised_from_their_bytes() {
        let mut recording = Recording::new(AudioEncoding::Webm, 1 << 20);
        assert!(matches!(Recording::new(AudioEncoding::Wav, 10).finish(), Err(RecordingError::Audio(AudioError::Empty))));
        recording.push(b"fLaC").unwrap();
        recording.push(b"\x00\x00\x00\x22").unwrap();
        assert_eq!(recording.finish().unwrap().format, AudioFormat::Flac, "the bytes decide, not the label");
    }
}
