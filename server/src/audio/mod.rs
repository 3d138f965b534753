//! Uploaded audio: recognising what a browser sent before any model sees it.

mod format;

pub use format::{AudioError, AudioFormat, AudioUpload};
