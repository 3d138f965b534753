//! Text-to-speech: an answer in, encoded audio a browser can play out.

mod espeak;
mod local;
mod openai;
mod pcm;
mod piper;

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

pub use self::espeak::EspeakError;
pub use self::local::LocalTts;
pub use self::openai::OpenAiTts;
pub use self::pcm::Pcm;
use crate::backend::BackendInfo;
use crate::onnx::OnnxError;
use crate::openai::ProviderError;

/// Encoded audio, ready to send.
#[derive(Debug, Clone)]
pub struct SpeechAudio {
    pub bytes: Bytes,
    pub mime_type: String,
}

#[async_trait]
pub trait TextToSpeech: Send + Sync {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError>;
    fn info(&self) -> BackendInfo;
    /// Whether the backend can answer now: a provider is asked briefly (see `OpenAiClient::probe`); a model
    /// in this process is ready once loaded.
    async fn reachable(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// The voice the local backend speaks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceEngine {
    /// The Piper voice (natural), on ONNX Runtime; espeak-ng if it cannot load.
    Piper,
    /// espeak-ng's own voice (robotic, but needs no model files).
    Espeak,
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("text-to-speech provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("could not load the voice from {}: {reason}; `parlance models` reinstalls it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error(transparent)]
    Runtime(#[from] OnnxError),
    #[error("espeak-ng: {0}")]
    Espeak(#[from] EspeakError),
    #[error("the voice model failed: {0}")]
    Inference(String),
    #[error("could not encode the speech as WAV: {0}")]
    Encode(String),
    #[error("the answer holds nothing that can be read aloud")]
    NothingToSay,
}
