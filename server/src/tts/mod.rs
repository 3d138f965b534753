//! Text-to-speech: an answer in, encoded audio a browser can play out.

mod openai;

use async_trait::async_trait;
use bytes::Bytes;

pub use self::openai::OpenAiTts;
use crate::backend::BackendInfo;
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
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("text-to-speech provider: {0}")]
    Provider(#[from] ProviderError),
}
