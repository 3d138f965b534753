//! Speech the voices made (WAV) in the other forms clients ask for: Ogg Opus, which every browser and player
//! takes at a tenth of the size, and raw 16-bit PCM at 24 kHz, as OpenAI's speech endpoint sends it.

use std::io::Cursor;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::resample::resample;

/// Opus runs at 48 kHz; the voices speak at 16-24 kHz and are resampled up.
const OPUS_RATE: u32 = 48_000;
/// 20 ms frames: Opus's usual size, a good balance of overhead and latency.
const FRAME: usize = 960;
/// Speech in mono stays clear at this rate (Opus's own guidance for wideband speech is 16-32 kbit/s).
const SPEECH_BITRATE: i32 = 32_000;
/// OpenAI's `pcm` format: 24 kHz, 16-bit little-endian, mono.
pub const RAW_PCM_RATE: u32 = 24_000;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the speech is not a WAV file this server can read: {0}")]
    NotWav(String),
    #[error("could not resample the speech: {0}")]
    Resample(String),
    #[error("the Opus encoder failed: {0}")]
    Opus(#[from] opus::Error),
    #[error("could not write the Ogg stream: {0}")]
    Ogg(#[from] std::io::Error),
}

/// Mono samples in [-1, 1] and their rate, from a WAV file (channels mixed down).
pub fn read_wav(bytes: &[u8]) -> Result<(Vec<f32>, u32), EncodeError> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| EncodeError::NotWav(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 2f32.powi(i32::from(spec.bits_per_sample.saturating_sub(1)));
            reader.samples::<i32>().map(|s| s.map(|s| s as f32 / scale)).collect::<Result<_, _>>()
        }
    }
    .map_err(|e| EncodeError::NotWav(e.to_string()))?;
    let mono = interleaved.chunks(channels).map(|frame| frame.iter().sum::<f32>() / frame.len() as f32).collect();
    Ok((mono, spec.sample_rate))
}

/// Raw 16-bit little-endian mono PCM at [`RAW_PCM_RATE`].
pub fn to_raw_pcm(samples: &[f32], rate: u32) -> Result<Vec<u8>, EncodeError> {
    let resampled = resample(samples, rate, RAW_PCM_RATE).map_err(|e| EncodeError::Resample(e.to_string()))?;
    Ok(resampled.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16).to_le_bytes()).collect())
}

/// An Ogg Opus file (RFC 7845): mono, 48 kHz, 20 ms frames.
pub fn to_ogg_opus(samples: &[f32], rate: u32) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)?;
    encoder.set_bitrate(opus::Bitrate::Bits(SPEECH_BITRATE))?;
    // The decoder drops this many samples from the start: the encoder's delay.
    let pre_skip = u16::try_from(encoder.get_lookahead()?).unwrap_or(0);
    let mut pcm = resample(samples, rate, OPUS_RATE).map_err(|e| EncodeError::Resample(e.to_string()))?;
    let length = pcm.len();
    // The last frame is padded with silence (and the granule position says where the sound ends).
    pcm.resize(length.div_ceil(FRAME).max(1) * FRAME, 0.0);

    let serial = 0x5041_524c; // "PARL"
    let mut writer = PacketWriter::new(Cursor::new(Vec::new()));
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes()); // the original rate, for information
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono/stereo
    writer.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
    let vendor = b"Parlance";
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes()); // no comments
    writer.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;

    let frames = pcm.len() / FRAME;
    let mut packet = vec![0u8; 4000];
    for (index, frame) in pcm.chunks(FRAME).enumerate() {
        let size = encoder.encode_float(frame, &mut packet)?;
        let last = index + 1 == frames;
        // The granule position counts 48 kHz samples to the end of this packet, pre-skip included; the last
        // one stops at the end of the real sound, so players trim the padding.
        let end = if last { length } else { (index + 1) * FRAME };
        let granule = (end + usize::from(pre_skip)) as u64;
        let info = if last { PacketWriteEndInfo::EndStream } else { PacketWriteEndInfo::NormalPacket };
        writer.write_packet(packet[..size].to_vec(), serial, info, granule)?;
    }
    Ok(writer.into_inner().into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5).collect()
    }

    #[test]
    fn ogg_opus_has_its_headers_pages_and_the_sound_decodes_back() {
        let samples = tone(22_050, 1.0);
        let file = to_ogg_opus(&samples, 22_050).unwrap();
        assert_eq!(&file[..4], b"OggS");
        assert!(file.windows(8).any(|w| w == b"OpusHead") && file.windows(8).any(|w| w == b"OpusTags"));
        assert!(file.len() < samples.len() * 2 / 4, "much smaller than 16-bit PCM: {} bytes", file.len());

        // Read it back with the Ogg reader and libopus: about a second of a loud tone comes out.
        let mut reader = ogg::reading::PacketReader::new(Cursor::new(file));
        let mut decoder = opus::Decoder::new(OPUS_RATE, opus::Channels::Mono).unwrap();
        let (mut decoded, mut packets, mut last_granule) = (Vec::new(), 0, 0);
        while let Some(packet) = reader.read_packet().unwrap() {
            packets += 1;
            if packets <= 2 {
                continue;
            }
            let mut out = vec![0f32; FRAME];
            let n = decoder.decode_float(&packet.data, &mut out, false).unwrap();
            decoded.extend_from_slice(&out[..n]);
            last_granule = packet.absgp_page();
        }
        assert_eq!(packets, 2 + 50, "two headers and 50 frames of 20 ms");
        let seconds = decoded.len() as f32 / OPUS_RATE as f32;
        assert!((seconds - 1.0).abs() < 0.05, "{seconds} s");
        assert!(last_granule >= 48_000, "the granule position covers the sound: {last_granule}");
        let rms = (decoded.iter().skip(2_000).map(|s| s * s).sum::<f32>() / decoded.len() as f32).sqrt();
        assert!(rms > 0.2, "the tone survives: rms {rms}");
    }

    #[test]
    fn raw_pcm_is_24_khz_16_bit_and_wav_is_read_back() {
        let samples = tone(16_000, 0.5);
        let spec = hound::WavSpec { channels: 1, sample_rate: 16_000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut wav = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut wav, spec).unwrap();
        for s in &samples {
            writer.write_sample((s * 32767.0) as i16).unwrap();
        }
        writer.finalize().unwrap();
        let (read, rate) = read_wav(wav.get_ref()).unwrap();
        assert_eq!((read.len(), rate), (samples.len(), 16_000));
        assert!((read[100] - samples[100]).abs() < 0.001);
        let raw = to_raw_pcm(&read, rate).unwrap();
        let expected = RAW_PCM_RATE as usize / 2 * 2;
        assert!(raw.len().abs_diff(expected) < 200, "{} bytes for half a second", raw.len());
        assert!(matches!(read_wav(b"not a wav"), Err(EncodeError::NotWav(_))));
    }
}
