//! all-MiniLM-L6-v2 inside the server process, through candle's BERT: sentence embeddings by mean pooling
//! over the real tokens (the attention mask), L2-normalised so a dot product is the cosine similarity.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{Tokenizer, TruncationParams};

use super::{EmbedError, Embedder};
use crate::backend::BackendInfo;

/// The model was trained on sequences up to this length; longer text is cut (chunk documents before).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass: large enough to use both cores well, small enough to keep padding waste low.
const BATCH: usize = 32;

pub struct LocalEmbeddings {
    inner: Arc<Inner>,
    info: BackendInfo,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl LocalEmbeddings {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir` (as `parlance models` installs them).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let started = Instant::now();
        let fail = |path: PathBuf, reason: String| EmbedError::Load { path, reason };
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| fail(config_path.clone(), e.to_string()))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| fail(config_path.clone(), e.to_string()))?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| fail(tokenizer_path.clone(), e.to_string()))?;
        // The shipped tokenizer pads every text to 128 tokens; batches are padded here instead, each only to its
        // own longest text (see `embed_all`).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|e| fail(tokenizer_path.clone(), e.to_string()))?;

        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only; `parlance models` wrote it once, checksummed, and
        // nothing in Parlance modifies it while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(std::slice::from_ref(&weights), DTYPE, &device) }
            .map_err(|e| fail(weights.clone(), e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| fail(weights.clone(), e.to_string()))?;

        let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(dir = %dir.display(), load_ms, "embeddings model loaded");
        let info = BackendInfo {
            kind: "local",
            model: "all-MiniLM-L6-v2".to_owned(),
            location: dir.display().to_string(),
            load_ms: Some(load_ms),
        };
        Ok(Self { inner: Arc::new(Inner { model, tokenizer, device }), info })
    }

    /// The vectors' length.
    pub fn dimensions(&self) -> usize {
        384
    }
}

#[async_trait]
impl Embedder for LocalEmbeddings {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        // Inference is CPU-bound for milliseconds to seconds: keep it off the async workers.
        tokio::task::spawn_blocking(move || inner.embed_all(texts))
            .await
            .map_err(|e| EmbedError::Inference(format!("the embedding task stopped: {e}")))?
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }
}

impl Inner {
    /// Texts of similar length share a batch: sorted by token count, each batch pads only to its own longest
    /// text, so a short note next to a long one no longer pays for the long one's padding (attention costs
    /// grow with the square of the padded length). The vectors come back in the order given.
    fn embed_all(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self.tokenizer.encode_batch(texts, true).map_err(|e| EmbedError::Inference(format!("tokenizing failed: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(BATCH) {
            let batch_encodings: Vec<&tokenizers::Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            for (&position, vector) in batch.iter().zip(self.embed_batch(&batch_encodings)?) {
                vectors[position] = vector;
            }
        }
        Ok(vectors)
    }

    fn embed_batch(&self, encodings: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let longest = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        // Padding positions get id 0 and mask 0: the mask keeps them out of attention and out of the mean.
        let padded = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, EmbedError> {
            let mut flat = Vec::with_capacity(encodings.len() * longest);
            for encoding in encodings {
                let values = pick(encoding);
                flat.extend_from_slice(values);
                flat.extend(std::iter::repeat_n(0, longest - values.len()));
            }
            Ok(Tensor::from_vec(flat, (encodings.len(), longest), &self.device)?)
        };
        let input_ids = padded(tokenizers::Encoding::get_ids)?;
        let type_ids = padded(tokenizers::Encoding::get_type_ids)?;
        let attention_mask = padded(tokenizers::Encoding::get_attention_mask)?;

        let hidden = self.model.forward(&input_ids, &type_ids, Some(&attention_mask))?;
        // Mean over real tokens only: padded positions have mask 0.
        let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

impl From<candle_core::Error> for EmbedError {
    fn from(error: candle_core::Error) -> Self {
        Self::Inference(error.to_string())
    }
}
