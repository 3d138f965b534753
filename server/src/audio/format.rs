//! The container of an upload is read from its bytes: browsers label recordings inconsistently
//! (`audio/webm;codecs=opus`, `video/webm`, `audio/mp4`, an empty type), and a label proves nothing.

use std::fmt;

use bytes::Bytes;

/// The containers Parlance accepts: what browsers' recorders produce, plus common audio files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Wav,
    /// Chrome's and Firefox's MediaRecorder output (Opus in WebM).
    Webm,
    /// Ogg, usually Opus (Firefox's older MediaRecorder output).
    Ogg,
    /// MP4/M4A, usually AAC (Safari's MediaRecorder output).
    Mp4,
    Mp3,
    Flac,
}

/// For error messages: what a user may send.
pub const ACCEPTED_FORMATS: &str = "WAV, WebM (Opus), Ogg (Opus), MP4/M4A (AAC), MP3 or FLAC";

impl AudioFormat {
    /// Detects the container from the file's leading bytes.
    pub fn sniff(bytes: &[u8]) -> Result<Self, AudioError> {
        if bytes.is_empty() {
            return Err(AudioError::Empty);
        }
        let detected = infer::get(bytes);
        let format = detected.as_ref().and_then(|kind| match kind.mime_type() {
            "audio/x-wav" | "audio/wav" => Some(Self::Wav),
            "video/webm" | "audio/webm" => Some(Self::Webm),
            "audio/ogg" | "audio/opus" => Some(Self::Ogg),
            "audio/m4a" | "audio/mp4" | "video/mp4" | "audio/aac" => Some(Self::Mp4),
            "audio/mpeg" => Some(Self::Mp3),
            "audio/x-flac" | "audio/flac" => Some(Self::Flac),
            _ => None,
        });
        format.ok_or_else(|| AudioError::Unsupported {
            detected: match detected {
                Some(kind) => format!("a {} file", kind.mime_type()),
                None => format!("data that is not a known audio format (it starts with {})", hex_preview(bytes)),
            },
        })
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Webm => "audio/webm",
            Self::Ogg => "audio/ogg",
            Self::Mp4 => "audio/mp4",
            Self::Mp3 => "audio/mpeg",
            Self::Flac => "audio/flac",
        }
    }

    /// The file extension speech APIs use to pick a decoder (OpenAI's reads the upload's file name).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Webm => "webm",
            Self::Ogg => "ogg",
            Self::Mp4 => "m4a",
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime_type())
    }
}

/// A recording whose container has been recognised.
#[derive(Debug, Clone)]
pub struct AudioUpload {
    pub bytes: Bytes,
    pub format: AudioFormat,
}

impl AudioUpload {
    pub fn from_bytes(bytes: Bytes) -> Result<Self, AudioError> {
        let format = AudioFormat::sniff(&bytes)?;
        Ok(Self { bytes, format })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AudioError {
    #[error("the audio file is empty")]
    Empty,
    #[error("received {detected}; Parlance accepts {ACCEPTED_FORMATS}")]
    Unsupported { detected: String },
}

fn hex_preview(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_header() -> Vec<u8> {
        let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&[1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0]);
        bytes.extend_from_slice(b"data\x00\x00\x00\x00");
        bytes
    }

    #[test]
    fn recognises_what_browsers_record() {
        assert_eq!(AudioFormat::sniff(&wav_header()), Ok(AudioFormat::Wav));

        // The start of a MediaRecorder WebM file: EBML header with DocType "webm".
        let mut webm = vec![
            0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81, 0x08,
            0x42, 0x82, 0x84, b'w', b'e', b'b', b'm',
        ];
        webm.resize(512, 0); // the detector wants the first 256 bytes, as any real recording has
        assert_eq!(AudioFormat::sniff(&webm), Ok(AudioFormat::Webm));

        let ogg = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead";
        assert_eq!(AudioFormat::sniff(ogg), Ok(AudioFormat::Ogg));

        let m4a = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A isommp42\x00\x00\x00\x00";
        assert_eq!(AudioFormat::sniff(m4a), Ok(AudioFormat::Mp4));

        assert_eq!(AudioFormat::sniff(b"fLaC\x00\x00\x00\x22"), Ok(AudioFormat::Flac));
    }

    #[test]
    fn says_what_was_received_when_it_is_not_audio() {
        assert_eq!(AudioFormat::sniff(b""), Err(AudioError::Empty));

        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
        let message = AudioFormat::sniff(png).unwrap_err().to_string();
        assert!(message.contains("image/png") && message.contains("WAV"), "{message}");

        let message = AudioFormat::sniff(b"hello, this is text").unwrap_err().to_string();
        assert!(message.contains("68 65 6c 6c"), "{message}");
    }
}
