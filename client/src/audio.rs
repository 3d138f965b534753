//! Audio on the client's side: the answer's sentences as one file (the server speaks an answer sentence by
//! sentence, one WAV per `audio_chunk`, and a player or `parlance-cli ask --save` wants one), and how long a
//! recording plays (to send it at a microphone's pace).

use std::io::Cursor;

use std::time::Duration;

use base64::Engine as _;
use parlance_shared::{AudioClip, AudioEncoding};

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

/// How long a recording plays, read from its container without decoding it (so a client can send it at the
/// pace a microphone would): WAV and raw PCM16 from their size, Ogg from its last page's granule position, WebM
/// from its `Duration` or else its last block's timecode (MediaRecorder writes no duration), MP4 from its movie
/// header. `None` when the container does not say.
pub fn recording_duration(encoding: AudioEncoding, bytes: &[u8]) -> Option<Duration> {
    match encoding {
        AudioEncoding::Pcm16 => Some(Duration::from_secs_f64(bytes.len() as f64 / (f64::from(AudioEncoding::PCM16_SAMPLE_RATE) * 2.0))),
        AudioEncoding::Wav => {
            let reader = hound::WavReader::new(Cursor::new(bytes)).ok()?;
            let rate = reader.spec().sample_rate;
            (rate > 0).then(|| Duration::from_secs_f64(f64::from(reader.duration()) / f64::from(rate)))
        }
        AudioEncoding::Ogg => ogg_duration(bytes),
        AudioEncoding::Webm => webm_duration(bytes),
        AudioEncoding::Mp4 => mp4_duration(bytes),
    }
}

/// The last page's granule position counts samples: at 48 kHz for Opus (less its pre-skip), at the stream's
/// rate for Vorbis.
fn ogg_duration(bytes: &[u8]) -> Option<Duration> {
    let last_page = find_last(bytes, b"OggS")?;
    let granule = u64::from_le_bytes(bytes.get(last_page + 6..last_page + 14)?.try_into().ok()?);
    let (rate, skip) = if let Some(head) = find(bytes, b"OpusHead") {
        (48_000, u64::from(u16::from_le_bytes(bytes.get(head + 10..head + 12)?.try_into().ok()?)))
    } else {
        let head = find(bytes, b"\x01vorbis")?;
        (u64::from(u32::from_le_bytes(bytes.get(head + 12..head + 16)?.try_into().ok()?)), 0)
    };
    (rate > 0 && granule != u64::MAX).then(|| Duration::from_secs_f64(granule.saturating_sub(skip) as f64 / rate as f64))
}

/// Matroska elements used here (IDs with their length marker, as they appear in the file).
const EBML_DURATION: u64 = 0x4489;
const EBML_TIMECODE_SCALE: u64 = 0x2A_D7B1;
const EBML_CLUSTER: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];
const EBML_CLUSTER_TIMECODE: u64 = 0xE7;
const EBML_SIMPLE_BLOCK: u64 = 0xA3;
/// Matroska's default timecode unit: a millisecond.
const DEFAULT_TIMECODE_SCALE_NS: u64 = 1_000_000;

fn webm_duration(bytes: &[u8]) -> Option<Duration> {
    let scale = find_element(bytes, EBML_TIMECODE_SCALE)
        .and_then(|value| value.iter().try_fold(0u64, |n, b| n.checked_mul(256).map(|n| n + u64::from(*b))))
        .filter(|scale| *scale > 0)
        .unwrap_or(DEFAULT_TIMECODE_SCALE_NS);
    if let Some(value) = find_element(bytes, EBML_DURATION) {
        let ticks = match value.len() {
            4 => f64::from(f32::from_be_bytes(value.try_into().ok()?)),
            8 => f64::from_be_bytes(value.try_into().ok()?),
            _ => return None,
        };
        return (ticks.is_finite() && ticks > 0.0).then(|| Duration::from_secs_f64(ticks * scale as f64 / 1e9));
    }
    // A live recording: the last cluster's timecode plus its last block's offset.
    let cluster = find_last(bytes, &EBML_CLUSTER)?;
    let (_, size_len, _) = ebml_vint(bytes.get(cluster + 4..)?)?;
    let mut at = cluster + 4 + size_len;
    let (mut base, mut offset) = (0u64, 0i64);
    while let Some((_, id_len, id)) = bytes.get(at..).and_then(ebml_vint) {
        let Some((size, size_len, _)) = bytes.get(at + id_len..).and_then(ebml_vint) else { break };
        let body = at + id_len + size_len;
        let end = usize::try_from(size).ok().and_then(|size| body.checked_add(size)).unwrap_or(usize::MAX).min(bytes.len());
        let value = bytes.get(body..end).unwrap_or_default();
        match id {
            EBML_CLUSTER_TIMECODE => base = value.iter().fold(0u64, |n, b| n.wrapping_mul(256).wrapping_add(u64::from(*b))),
            EBML_SIMPLE_BLOCK => {
                let relative = ebml_vint(value).and_then(|(_, track_len, _)| value.get(track_len..track_len + 2));
                if let Some(relative) = relative.and_then(|b| b.try_into().ok()).map(i16::from_be_bytes) {
                    offset = offset.max(i64::from(relative));
                }
            }
            _ => {}
        }
        if end <= at {
            break;
        }
        at = end;
    }
    let ticks = base.saturating_add(u64::try_from(offset).unwrap_or(0));
    (ticks > 0).then(|| Duration::from_nanos(ticks.saturating_mul(scale)))
}

/// The value of the first element with this ID (a naive scan: good enough for the header's small elements).
fn find_element(bytes: &[u8], id: u64) -> Option<&[u8]> {
    let id_bytes: Vec<u8> = id.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let at = find(bytes, &id_bytes)? + id_bytes.len();
    let (size, size_len, _) = ebml_vint(bytes.get(at..)?)?;
    bytes.get(at + size_len..at + size_len + usize::try_from(size).ok().filter(|size| *size <= 8)?)
}

/// An EBML variable-length integer: its value without the length marker, its length, and the raw bytes as a
/// number (how element IDs are written).
fn ebml_vint(bytes: &[u8]) -> Option<(u64, usize, u64)> {
    let first = *bytes.first()?;
    let len = usize::try_from(first.leading_zeros()).ok()? + 1;
    if len > 8 {
        return None;
    }
    let raw = bytes.get(..len)?.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    let value = raw & (u64::MAX >> (64 - 7 * len));
    Some((value, len, raw))
}

/// `moov` > `mvhd`: the movie's duration in its time scale.
fn mp4_duration(bytes: &[u8]) -> Option<Duration> {
    let moov = mp4_box(bytes, b"moov")?;
    let mvhd = mp4_box(moov, b"mvhd")?;
    let (scale, duration) = match mvhd.first()? {
        0 => (u32::from_be_bytes(mvhd.get(12..16)?.try_into().ok()?), u64::from(u32::from_be_bytes(mvhd.get(16..20)?.try_into().ok()?))),
        1 => (u32::from_be_bytes(mvhd.get(20..24)?.try_into().ok()?), u64::from_be_bytes(mvhd.get(24..32)?.try_into().ok()?)),
        _ => return None,
    };
    (scale > 0).then(|| Duration::from_secs_f64(duration as f64 / f64::from(scale)))
}

/// The body of the first box of this type among the boxes in `bytes`.
fn mp4_box<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        let (header, size) = match size {
            0 => (8, bytes.len() - at),
            1 => (16, usize::try_from(u64::from_be_bytes(bytes.get(at + 8..at + 16)?.try_into().ok()?)).ok()?),
            size => (8, usize::try_from(size).ok()?),
        };
        if size < header {
            return None;
        }
        if bytes.get(at + 4..at + 8)? == kind {
            return bytes.get(at + header..(at + size).min(bytes.len()));
        }
        at = at.checked_add(size)?;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|window| window == needle)
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
