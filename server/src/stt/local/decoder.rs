//! Whisper's text decoder with a cache of its own keys and values. candle's decoder caches only the
//! cross-attention over the audio and re-reads every token written so far at each step, so a 40-token
//! transcript cost 40 growing passes (1.4 s of a 10 s clip's 1.9 s on two cores). Here each step reads one
//! new token. The weights and the arithmetic are Whisper's (openai/whisper `model.py`), loaded under the
//! Hugging Face names the converted file uses.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::whisper::Config;

pub struct TextDecoder {
    token_embedding: Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    final_norm: LayerNorm,
    /// How many tokens the self-attention caches hold.
    cached: usize,
}

struct Block {
    self_attention: Attention,
    self_norm: LayerNorm,
    cross_attention: Attention,
    cross_norm: LayerNorm,
    expand: Linear,
    contract: Linear,
    mlp_norm: LayerNorm,
    /// Keys and values of the tokens read so far, `[batch, heads, tokens, head size]`.
    own: Option<(Tensor, Tensor)>,
    /// Keys and values of the audio, computed once per window.
    audio: Option<(Tensor, Tensor)>,
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

fn layer_norm(size: usize, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(LayerNorm::new(vb.get(size, "weight")?, vb.get(size, "bias")?, 1e-5))
}

impl TextDecoder {
    /// `vb` points at the decoder's weights (`model.decoder`).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let width = config.d_model;
        let heads = config.decoder_attention_heads;
        let token_embedding = candle_nn::embedding(config.vocab_size, width, vb.pp("embed_tokens"))?;
        let positions = vb.get((config.max_target_positions, width), "embed_positions.weight")?;
        let blocks = (0..config.decoder_layers).map(|i| Block::load(width, heads, vb.pp(format!("layers.{i}")))).collect::<Result<_>>()?;
        let final_norm = layer_norm(width, vb.pp("layer_norm"))?;
        Ok(Self { token_embedding, positions, blocks, final_norm, cached: 0 })
    }

    /// Forgets the previous window and reads the audio features (`[1, frames, width]`) of the next one.
    pub fn start(&mut self, features: &Tensor) -> Result<()> {
        self.cached = 0;
        for block in &mut self.blocks {
            block.own = None;
            let attention = &block.cross_attention;
            block.audio =
                Some((attention.heads_of(&attention.key.forward(features)?)?, attention.heads_of(&attention.value.forward(features)?)?));
        }
        Ok(())
    }

    /// Reads `tokens` after those already read; returns their hidden states, `[1, tokens, width]`.
    pub fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let device = self.positions.device().clone();
        let count = tokens.len();
        let input = Tensor::new(tokens, &device)?.unsqueeze(0)?;
        let mut x = self.token_embedding.forward(&input)?.broadcast_add(&self.positions.narrow(0, self.cached, count)?)?;
        // Several new tokens must not see those after them; a single one sees everything before it.
        let mask = if count > 1 { Some(causal_mask(count, self.cached, &device)?) } else { None };
        for block in &mut self.blocks {
            x = block.forward(&x, mask.as_ref())?;
        }
        self.cached += count;
        self.final_norm.forward(&x)
    }

    /// Reads one new token for each hypothesis of a beam search, `[hypotheses, 1, width]` out: `tokens[i]`
    /// follows the tokens cached in row `i` (see [`TextDecoder::keep_rows`]).
    pub fn step_each(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let device = self.positions.device().clone();
        let input = Tensor::new(tokens, &device)?.unsqueeze(1)?;
        let mut x = self.token_embedding.forward(&input)?.broadcast_add(&self.positions.narrow(0, self.cached, 1)?)?;
        for block in &mut self.blocks {
            x = block.forward(&x, None)?;
        }
        self.cached += 1;
        self.final_norm.forward(&x)
    }

    /// Keeps, as the cache's rows, the rows named by `rows` in that order (a row may be kept several times):
    /// the hypotheses a beam search goes on with, each from the one it extends.
    pub fn keep_rows(&mut self, rows: &[u32]) -> Result<()> {
        let index = Tensor::new(rows, self.positions.device())?;
        for block in &mut self.blocks {
            if let Some((key, value)) = block.own.take() {
                block.own = Some((key.index_select(&index, 0)?, value.index_select(&index, 0)?));
            }
        }
        Ok(())
    }

    /// Scores over the vocabulary for hidden states `[batch, tokens, width]`: the output projection is the
    /// token embedding, transposed.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden.broadcast_matmul(&self.token_embedding.embeddings().t()?)
    }
}

/// `[new, past + new]`: token i of the new ones sees the past and new tokens up to itself.
fn causal_mask(new: usize, past: usize, device: &candle_core::Device) -> Result<Tensor> {
    let values: Vec<f32> =
        (0..new).flat_map(|i| (0..past + new).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(values, (new, past + new), device)
}

impl Block {
    fn load(width: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attention: Attention::load(width, heads, vb.pp("self_attn"))?,
            self_norm: layer_norm(width, vb.pp("self_attn_layer_norm"))?,
            cross_attention: Attention::load(width, heads, vb.pp("encoder_attn"))?,
            cross_norm: layer_norm(width, vb.pp("encoder_attn_layer_norm"))?,
            expand: candle_nn::linear(width, width * 4, vb.pp("fc1"))?,
            contract: candle_nn::linear(width * 4, width, vb.pp("fc2"))?,
            mlp_norm: layer_norm(width, vb.pp("final_layer_norm"))?,
            own: None,
            audio: None,
        })
    }

    fn forward(&mut self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let attention = &self.self_attention;
        let normed = self.self_norm.forward(x)?;
        let (key, value) = (attention.heads_of(&attention.key.forward(&normed)?)?, attention.heads_of(&attention.value.forward(&normed)?)?);
        let (key, value) = match self.own.take() {
            Some((past_key, past_value)) => (Tensor::cat(&[&past_key, &key], 2)?, Tensor::cat(&[&past_value, &value], 2)?),
            None => (key, value),
        };
        let attended = attention.attend(&normed, &key, &value, mask)?;
        self.own = Some((key, value));
        let x = (x + attended)?;

        let (audio_key, audio_value) =
            self.audio.as_ref().ok_or_else(|| candle_core::Error::Msg("the decoder read tokens before any audio".into()))?;
        let x = (&x + self.cross_attention.attend_audio(&self.cross_norm.forward(&x)?, audio_key, audio_value)?)?;

        let mlp = self.contract.forward(&self.expand.forward(&self.mlp_norm.forward(&x)?)?.gelu()?)?;
        x + mlp
    }
}

impl Attention {
    fn load(width: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: candle_nn::linear(width, width, vb.pp("q_proj"))?,
            // Whisper's key projection has no bias.
            key: candle_nn::linear_no_bias(width, width, vb.pp("k_proj"))?,
            value: candle_nn::linear(width, width, vb.pp("v_proj"))?,
            out: candle_nn::linear(width, width, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// `[batch, tokens, width]` -> `[batch, heads, tokens, head size]`.
    fn heads_of(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, tokens, width) = x.dims3()?;
        x.reshape((batch, tokens, self.heads, width / self.heads))?.transpose(1, 2)?.contiguous()
    }

    /// Attention over the audio's `key` and `value` (`[1, heads, frames, head size]`) of one new token per
    /// hypothesis of a beam search (`x`: `[hypotheses, 1, width]`), or of a prompt's tokens (`[1, tokens,
    /// width]`). The hypotheses all read the same audio: they are attended as one row of queries, so the
    /// audio's keys and values are never copied for each of them.
    fn attend_audio(&self, x: &Tensor, key: &Tensor, value: &Tensor) -> Result<Tensor> {
        let (hypotheses, tokens, width) = x.dims3()?;
        if hypotheses == 1 {
            return self.attend(x, key, value, None);
        }
        let as_one = x.reshape((1, hypotheses * tokens, width))?;
        self.attend(&as_one, key, value, None)?.reshape((hypotheses, tokens, width))
    }

    /// Attention of the queries from `x` over `key` and `value` (already split into heads).
    fn attend(&self, x: &Tensor, key: &Tensor, value: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let query = self.heads_of(&self.query.forward(x)?)?;
        let head_size = query.dim(D::Minus1)?;
        let mut scores = (query.matmul(&key.t()?)? * (head_size as f64).powf(-0.5))?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        self.out.forward(&weights.matmul(value)?.transpose(1, 2)?.flatten_from(2)?)
    }
}
