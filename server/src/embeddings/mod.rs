//! Embeddings: texts in, vectors out, for the knowledge search.

mod bert_graph;
mod local;
mod onnx_proto;
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
    /// Whether the backend can answer now: a provider is asked briefly (see `OpenAiClient::probe`); a model
    /// in this process is ready once loaded.
    async fn reachable(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embeddings provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("could not load the embeddings model from {}: {reason}; `parlance models` reinstalls it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("the embeddings model failed: {0}")]
    Inference(String),
    /// The knowledge table's vectors have a fixed length; a model making other vectors cannot fill or search it.
    #[error(
        "the embeddings model {model} makes {got}-dimensional vectors, but the knowledge base stores {expected}-dimensional ones \
         (all-MiniLM-L6-v2); set PARLANCE_EMBEDDINGS_MODEL to a {expected}-dimensional model, or unset the embeddings URL to use \
         the local model"
    )]
    Dimensions { model: String, got: usize, expected: usize },
}
