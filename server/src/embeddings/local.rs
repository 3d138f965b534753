//! all-MiniLM-L6-v2 inside the server process, on ONNX Runtime: sentence embeddings by mean pooling over the
//! real tokens (the attention mask), L2-normalised so a dot product is the cosine similarity.
//!
//! The graph is built from the installed safetensors weights at load time (`bert_graph`). ONNX Runtime was
//! chosen over candle's BERT (which the tests keep as the reference the vectors are checked against) for
//! speed: on 2 cores a short question took 3.4 ms instead of 8-10 ms, and ingestion embedded about 2.2x as
//! many texts per second.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert_graph::{self, ATTENTION_MASK, BertConfig, INPUT_IDS, OUTPUT};
use super::{EmbedError, Embedder};
use crate::backend::BackendInfo;

/// The model was trained on sequences up to this length; longer text is cut (chunk documents before).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass: large enough to use both cores well, small enough to keep padding waste low.
const BATCH: usize = 32;
/// The vectors' length.
pub const DIMENSIONS: usize = 384;

pub struct LocalEmbeddings {
    inner: Arc<Inner>,
    info: BackendInfo,
}

struct Inner {
    /// One run at a time: each already uses every core.
    session: Mutex<Session>,
    tokenizer: Tokenizer,
}

impl LocalEmbeddings {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir` (as `parlance models` installs
    /// them) onto the ONNX Runtime library at `onnx_runtime`.
    pub fn load(dir: &Path, onnx_runtime: &Path) -> Result<Self, EmbedError> {
        let started = Instant::now();
        let fail = |path: PathBuf, reason: String| EmbedError::Load { path, reason };
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| fail(config_path.clone(), e.to_string()))?;
        let config: BertConfig = serde_json::from_str(&config_text).map_err(|e| fail(config_path.clone(), e.to_string()))?;
        if config.hidden_size != DIMENSIONS {
            return Err(fail(config_path, format!("hidden size {} is not {DIMENSIONS}", config.hidden_size)));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| fail(tokenizer_path.clone(), e.to_string()))?;
        // The shipped tokenizer pads every text to 128 tokens; batches are padded here instead, each only to its
        // own longest text (see `embed_all`).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|e| fail(tokenizer_path.clone(), e.to_string()))?;

        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| fail(weights_path.clone(), e.to_string()))?;
        let model = bert_graph::sentence_embedding_model(&weights, &config).map_err(|reason| fail(weights_path.clone(), reason))?;
        drop(weights);
        let environment = crate::onnx::runtime(onnx_runtime).map_err(|e| fail(onnx_runtime.to_path_buf(), e.to_string()))?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let session = crate::onnx::session_builder(environment, threads)
            .and_then(|mut builder| builder.commit_from_memory(&model))
            .inspect(|_| crate::exit::skip_native_teardown())
            .map_err(|e| fail(weights_path.clone(), e.to_string()))?;

        let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(dir = %dir.display(), load_ms, "embeddings model loaded");
        let info = BackendInfo {
            kind: "local",
            model: "all-MiniLM-L6-v2".to_owned(),
            location: dir.display().to_string(),
            load_ms: Some(load_ms),
        };
        Ok(Self { inner: Arc::new(Inner { session: Mutex::new(session), tokenizer }), info })
    }

    /// The vectors' length.
    pub fn dimensions(&self) -> usize {
        DIMENSIONS
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
        let padded = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor<i64>, EmbedError> {
            let mut flat = Vec::with_capacity(encodings.len() * longest);
            for encoding in encodings {
                let values = pick(encoding);
                flat.extend(values.iter().map(|&v| i64::from(v)));
                flat.extend(std::iter::repeat_n(0, longest - values.len()));
            }
            Tensor::from_array(([encodings.len(), longest], flat)).map_err(inference)
        };
        let inputs = ort::inputs![
            INPUT_IDS => padded(tokenizers::Encoding::get_ids)?,
            ATTENTION_MASK => padded(tokenizers::Encoding::get_attention_mask)?,
        ];
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs).map_err(inference)?;
        let (shape, values) = outputs[OUTPUT].try_extract_tensor::<f32>().map_err(inference)?;
        if shape.len() != 2 || shape[0] as usize != encodings.len() || shape[1] as usize != DIMENSIONS {
            return Err(EmbedError::Inference(format!("the model returned shape {shape:?} for {} texts", encodings.len())));
        }
        Ok(values.chunks_exact(DIMENSIONS).map(<[f32]>::to_vec).collect())
    }
}

fn inference(error: ort::Error) -> EmbedError {
    EmbedError::Inference(error.to_string())
}
