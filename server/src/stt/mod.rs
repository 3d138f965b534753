//! Speech-to-text: a recording in, the words out.

mod local;
mod openai;

use std::path::PathBuf;

use async_trait::async_trait;

pub use self::local::{DEFAULT_BEAM_SIZE, LocalStt, MAX_RECORDING_SECS};
pub use self::openai::OpenAiStt;
use crate::audio::{AudioUpload, DecodeError};
use crate::backend::BackendInfo;
use crate::openai::ProviderError;

#[async_trait]
pub trait SpeechToText: Send + Sync {
    /// The words spoken in `audio`; empty when there were none.
    async fn transcribe(&self, audio: &AudioUpload) -> Result<String, SttError>;
    /// Words the speech is likely to hold (the user's notes' names and terms), for backends that can be
    /// steered toward them (Whisper's prompt); later transcriptions use them. Others ignore it.
    fn expect_words(&self, _words: &[String]) {}
    fn info(&self) -> BackendInfo;
    /// Whether the backend can answer now: a provider is asked briefly (see `OpenAiClient::probe`); a model
    /// in this process is ready once loaded.
    async fn reachable(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("speech-to-text provider: {0}")]
    Provider(#[from] ProviderError),
    /// The recording itself is the problem (damaged, too long): the user can fix it.
    #[error(transparent)]
    Audio(#[from] DecodeError),
    #[error("could not load the speech-to-text model from {}: {reason}; `parlance models` reinstalls it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("the speech-to-text model failed: {0}")]
    Inference(String),
}
