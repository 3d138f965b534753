//! Speech-to-text: a recording in, the words out.

mod openai;

use async_trait::async_trait;

pub use self::openai::OpenAiStt;
use crate::audio::AudioUpload;
use crate::backend::BackendInfo;
use crate::openai::ProviderError;

#[async_trait]
pub trait SpeechToText: Send + Sync {
    /// The words spoken in `audio`; empty when there were none.
    async fn transcribe(&self, audio: &AudioUpload) -> Result<String, SttError>;
    fn info(&self) -> BackendInfo;
}

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("speech-to-text provider: {0}")]
    Provider(#[from] ProviderError),
}
