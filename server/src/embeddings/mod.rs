//! Embeddings: texts in, vectors out, for the knowledge search.

mod local;
mod openai;

use std::path::PathBuf;

use async_trait::async_trait;

pub use self::local::LocalEmbeddings;
pub use self::openai::OpenAiEmbeddings;
use crate::backend::BackendInfo;
use crate::openai::ProviderError;

#[async_trait]
pub trait Embedder: Send + Sync {
    /// One vector per text, in the order given.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn info(&self) -> BackendInfo;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embeddings provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("could not load the embeddings model from {}: {reason}; `parlance models` reinstalls it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("the embeddings model failed: {0}")]
    Inference(String),
}
