use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{EmbedError, Embedder};
use crate::backend::BackendInfo;
use crate::openai::{OpenAiClient, ProviderError};

const PATH: &str = "embeddings";

/// `POST /v1/embeddings` on OpenAI, Ollama, llama.cpp server, or any server with the same API.
pub struct OpenAiEmbeddings {
    client: OpenAiClient,
}

impl OpenAiEmbeddings {
    pub fn new(client: OpenAiClient) -> Self {
        Self { client }
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingData>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    index: usize,
    embedding: Vec<f32>,
}

#[async_trait]
impl Embedder for OpenAiEmbeddings {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let request = EmbeddingsRequest { model: self.client.model(), input: texts };
        let fetched = self.client.fetch(PATH, |builder| Ok(builder.json(&request))).await?;
        let mut response: EmbeddingsResponse = fetched.json(&self.client.shown(PATH))?;
        if response.data.len() != texts.len() {
            let reason = format!("asked for {} embeddings, got {}", texts.len(), response.data.len());
            return Err(ProviderError::InvalidResponse { endpoint: self.client.shown(PATH), reason }.into());
        }
        // The API does not promise order; `index` does.
        response.data.sort_by_key(|d| d.index);
        Ok(response.data.into_iter().map(|d| d.embedding).collect())
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }

    async fn reachable(&self) -> Result<(), ProviderError> {
        self.client.probe(crate::backend::PROBE_TIMEOUT).await
    }
}
