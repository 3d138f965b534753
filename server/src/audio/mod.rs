//! Uploaded audio: recognising what a browser sent before any model sees it, and decoding it for the
//! models that run in this process.

mod decode;
pub mod encode;
mod format;
mod mp4;
mod resample;

pub use decode::{DecodeError, SPEECH_SAMPLE_RATE, decode_speech};
pub use format::{ACCEPTED_FORMATS, AudioError, AudioFormat, AudioUpload};
pub use resample::{ResampleError, resample};
