//! A recognised upload decoded to what speech models take: 16 kHz mono f32 samples. Symphonia demuxes every
//! accepted container and decodes PCM, FLAC, MP3 and AAC; it has no Opus decoder, so the Opus packets of WebM
//! and Ogg recordings go to libopus.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::format::ACCEPTED_FORMATS;
use super::resample::{ResampleError, resample};
use super::{AudioFormat, AudioUpload};

/// The rate Whisper (and most speech models) expect.
pub const SPEECH_SAMPLE_RATE: u32 = 16_000;
/// libopus decodes every Opus stream at 48 kHz.
const OPUS_RATE: u32 = 48_000;
/// The sample rates recordings come in, from telephone speech to studio audio.
const RECORDING_RATES: [u32; 13] =
    [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000];
/// The longest Opus frame is 120 ms.
const OPUS_MAX_FRAME: usize = OPUS_RATE as usize * 120 / 1000;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "received {format} audio that could not be decoded ({reason}); the file may be damaged or cut short. Parlance accepts {ACCEPTED_FORMATS}"
    )]
    Undecodable { format: AudioFormat, reason: String },
    #[error("the recording is longer than {limit_secs} seconds, the most Parlance transcribes at once; ask a shorter question")]
    TooLong { limit_secs: u64 },
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// The upload as 16 kHz mono samples in [-1, 1]. Stops early, with [`DecodeError::TooLong`], once the audio
/// passes `max_secs`, so a long upload costs no more than the limit. A file cut short (a recorder that died)
/// keeps what was decoded before the cut; one with no decodable audio at all is an error.
pub fn decode_speech(upload: &AudioUpload, max_secs: u64) -> Result<Vec<f32>, DecodeError> {
    // Symphonia's demuxers assert on some malformed input (a WebM cut inside an element panics in the EBML
    // reader, at the header or in the middle of a cluster). Reading the packets catches that itself, to keep
    // the audio before the cut; this catches the rest, so a bad upload is a clear error of ours, never the
    // library's panic message.
    std::panic::catch_unwind(AssertUnwindSafe(|| decode(upload, max_secs))).unwrap_or_else(|panic| {
        tracing::warn!(format = %upload.format, reason = panic_text(panic.as_ref()), "the audio decoder panicked on an upload");
        Err(DecodeError::Undecodable { format: upload.format, reason: CUT_SHORT.into() })
    })
}

/// Why an upload the demuxer gave up on could not be read, in our words.
const CUT_SHORT: &str = "its container ends or breaks before any audio";

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("unknown")
}

fn decode(upload: &AudioUpload, max_secs: u64) -> Result<Vec<f32>, DecodeError> {
    let format = upload.format;
    let undecodable = |reason: String| DecodeError::Undecodable { format, reason };
    if format == AudioFormat::Mp4 {
        super::mp4::check_sample_tables(&upload.bytes).map_err(undecodable)?;
    }
    let mut reader = open(&upload.bytes, format).map_err(|e| undecodable(e.to_string()))?;
    let track = reader
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| undecodable("it holds no audio track".into()))?;
    // The resampler's work grows with the rates' ratio in lowest terms: an odd rate (a header changed to claim
    // 4 GHz, or 44,101 Hz) takes it minutes for a second of audio (found by fuzzing). Recorders use these.
    if let Some(rate) = track.codec_params.sample_rate
        && !RECORDING_RATES.contains(&rate)
    {
        return Err(undecodable(format!("its sample rate of {rate} Hz is not one recordings use")));
    }
    let track_id = track.id;
    let mut decoder = PacketDecoder::new(&track.codec_params).map_err(undecodable)?;

    let mut mono = Vec::new();
    let mut rate = None;
    let mut first_error = None;
    loop {
        let next = std::panic::catch_unwind(AssertUnwindSafe(|| reader.next_packet()));
        let packet = match next {
            Ok(Ok(packet)) => packet,
            Ok(Err(SymphoniaError::IoError(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(Err(SymphoniaError::ResetRequired)) => break,
            // The demuxer gave up inside a damaged or cut element: what came before it is still the recording.
            Err(panic) => {
                tracing::debug!(reason = panic_text(panic.as_ref()), decoded = mono.len(), "the container stopped being readable");
                first_error.get_or_insert_with(|| CUT_SHORT.to_owned());
                break;
            }
            Ok(Err(error)) => {
                // A container damaged midway: keep what came before the damage.
                tracing::debug!(%error, decoded = mono.len(), "the container stopped being readable");
                first_error.get_or_insert_with(|| error.to_string());
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet, &mut mono) {
            Ok(packet_rate) => {
                if *rate.get_or_insert(packet_rate) != packet_rate {
                    return Err(undecodable(format!("the sample rate changes midway ({} Hz to {packet_rate} Hz)", rate.unwrap_or(0))));
                }
            }
            // One bad packet loses a few milliseconds; the rest of the recording is still worth transcribing.
            Err(reason) => {
                tracing::debug!(%reason, "skipped an undecodable packet");
                first_error.get_or_insert(reason);
            }
        }
        if let Some(rate) = rate
            && mono.len() as u64 > max_secs * u64::from(rate)
        {
            return Err(DecodeError::TooLong { limit_secs: max_secs });
        }
    }
    let Some(rate) = rate.filter(|_| !mono.is_empty()) else {
        return Err(undecodable(first_error.unwrap_or_else(|| "it holds no audio".into())));
    };
    let skip = decoder.leading_padding(rate).min(mono.len());
    mono.drain(..skip);
    Ok(resample(&mono, rate, SPEECH_SAMPLE_RATE)?)
}

fn open(bytes: &Bytes, format: AudioFormat) -> Result<Box<dyn FormatReader>, SymphoniaError> {
    // `Bytes` is cheap to clone and a `Cursor` over it is a seekable media source: no copy of the upload.
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.clone())), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(format.extension());
    let probed = symphonia::default::get_probe().format(&hint, source, &FormatOptions::default(), &MetadataOptions::default())?;
    Ok(probed.format)
}

/// Decodes one track's packets, appending mono samples; returns the packet's sample rate.
enum PacketDecoder {
    Symphonia(Box<dyn Decoder>),
    Opus { decoder: opus::Decoder, frame: Vec<f32>, pre_skip: u32 },
}

impl PacketDecoder {
    fn new(params: &CodecParameters) -> Result<Self, String> {
        if params.codec == CODEC_TYPE_OPUS {
            // Asking libopus for one channel makes it downmix stereo streams itself.
            let decoder = opus::Decoder::new(OPUS_RATE, opus::Channels::Mono).map_err(|e| format!("libopus: {e}"))?;
            return Ok(Self::Opus { decoder, frame: vec![0.0; OPUS_MAX_FRAME], pre_skip: params.delay.unwrap_or(0) });
        }
        symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
            .map(Self::Symphonia)
            .map_err(|e| format!("its codec is not supported: {e}"))
    }

    fn decode(&mut self, packet: &Packet, mono: &mut Vec<f32>) -> Result<u32, String> {
        match self {
            Self::Opus { decoder, frame, .. } => {
                let samples = decoder.decode_float(packet.buf(), frame, false).map_err(|e| format!("libopus: {e}"))?;
                mono.extend_from_slice(&frame[..samples]);
                Ok(OPUS_RATE)
            }
            Self::Symphonia(decoder) => {
                let decoded = decoder.decode(packet).map_err(|e| e.to_string())?;
                let spec = *decoded.spec();
                let channels = spec.channels.count().max(1);
                let mut interleaved = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
                interleaved.copy_interleaved_ref(decoded);
                mono.extend(interleaved.samples().chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32));
                Ok(spec.rate)
            }
        }
    }

    /// Samples at the start that are encoder priming, not audio (Opus' pre-skip).
    fn leading_padding(&self, rate: u32) -> usize {
        match self {
            Self::Opus { pre_skip, .. } => (u64::from(*pre_skip) * u64::from(rate) / u64::from(OPUS_RATE)) as usize,
            Self::Symphonia(_) => 0,
        }
    }
}
