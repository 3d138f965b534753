//! Loading Whisper for candle: the converted weights, the tokenizer, the special tokens and the token
//! suppression lists from faster-whisper's `config.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{
    self, Config,
    model::{AudioEncoder, Whisper},
};
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::ct2;
use super::decoder::TextDecoder;
use super::mel::mel_filters;

#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

fn fail(path: &Path, reason: impl ToString) -> LoadError {
    LoadError { path: path.to_owned(), reason: reason.to_string() }
}

/// The ids of the tokens that steer decoding.
#[derive(Debug, Clone, Copy)]
pub struct SpecialTokens {
    pub start_of_transcript: u32,
    /// `<|startofprev|>`: what follows it, up to the start of the transcript, is text the speech may continue
    /// or use, which steers the words chosen.
    pub start_of_previous: Option<u32>,
    /// Multilingual models also need the language and the task after the start token: `<|en|><|transcribe|>`.
    pub english_transcription: Option<[u32; 2]>,
    pub end_of_text: u32,
    pub no_timestamps: u32,
    pub no_speech: u32,
}

/// faster-whisper's `config.json`: which tokens may never be produced, and which may not start a transcript.
#[derive(Debug, Default, Deserialize)]
struct SuppressionLists {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
}

pub struct LoadedWhisper {
    pub config: Config,
    pub encoder: AudioEncoder,
    pub decoder: TextDecoder,
    pub tokenizer: Tokenizer,
    pub tokens: SpecialTokens,
    /// The prompt's tokens (see [`SpecialTokens::start_of_previous`]): the words the speech is likely to hold.
    pub expected: Vec<u32>,
    /// The mel filter bank, `[bin, mel]`.
    pub mel_filters: Tensor,
    /// Added to the logits at every step: 0, or minus infinity for tokens that must not appear.
    pub suppress: Tensor,
    /// Added on top of `suppress` at the first step only.
    pub suppress_at_start: Tensor,
    /// Hypotheses the beam search keeps; 1 decodes greedily.
    pub beam_size: usize,
}

pub fn load(dir: &Path) -> Result<LoadedWhisper, LoadError> {
    let (weights, config_path) = ct2::ensure_converted(dir).map_err(|e| fail(&dir.join("model.bin"), e))?;
    let config_text = std::fs::read_to_string(&config_path).map_err(|e| fail(&config_path, e))?;
    let config: Config = serde_json::from_str(&config_text).map_err(|e| fail(&config_path, e))?;

    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| fail(&tokenizer_path, e))?;
    let id = |token: &str| tokenizer.token_to_id(token).ok_or_else(|| fail(&tokenizer_path, format!("it has no {token} token")));
    let no_speech = whisper::NO_SPEECH_TOKENS
        .iter()
        .find_map(|token| tokenizer.token_to_id(token))
        .ok_or_else(|| fail(&tokenizer_path, "it has no no-speech token"))?;
    // English-only vocabularies have one token fewer than multilingual ones (51864 against 51865 and up).
    let multilingual = config.vocab_size > 51_864;
    let english_transcription = if multilingual { Some([id("<|en|>")?, id(whisper::TRANSCRIBE_TOKEN)?]) } else { None };
    let tokens = SpecialTokens {
        start_of_transcript: id(whisper::SOT_TOKEN)?,
        start_of_previous: tokenizer.token_to_id("<|startofprev|>"),
        english_transcription,
        end_of_text: id(whisper::EOT_TOKEN)?,
        no_timestamps: id(whisper::NO_TIMESTAMPS_TOKEN)?,
        no_speech,
    };

    let lists_path = dir.join("config.json");
    let lists: SuppressionLists = match std::fs::read_to_string(&lists_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| fail(&lists_path, e))?,
        // Users may point at a converted model without faster-whisper's config: decode unsuppressed then.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SuppressionLists::default(),
        Err(e) => return Err(fail(&lists_path, e)),
    };

    let device = Device::Cpu;
    // Without timestamps the control tokens and every timestamp token (all ids after <|notimestamps|>) are noise.
    let always: Vec<u32> = lists
        .suppress_ids
        .iter()
        .copied()
        .chain([tokens.start_of_transcript, tokens.no_timestamps, tokens.no_speech])
        .chain(tokens.no_timestamps + 1..config.vocab_size as u32)
        .collect();
    let suppress = mask(config.vocab_size, &always, &device).map_err(|e| fail(&lists_path, e))?;
    let suppress_at_start = mask(config.vocab_size, &lists.suppress_ids_begin, &device).map_err(|e| fail(&lists_path, e))?;

    // SAFETY: the converted file is memory-mapped read-only; Parlance writes it once (atomically, by rename)
    // before mapping it and never modifies it afterwards.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(std::slice::from_ref(&weights), DType::F32, &device) }
        .map_err(|e| fail(&weights, e))?;
    let bank = mel_filters(whisper::SAMPLE_RATE as f64, whisper::N_FFT, config.num_mel_bins);
    let bins = whisper::N_FFT / 2 + 1;
    let mel_filters = Tensor::from_vec(bank, (config.num_mel_bins, bins), &device)
        .and_then(|bank| bank.t()?.contiguous())
        .map_err(|e| fail(&weights, e))?;
    // candle's encoder is used as it is; its decoder is replaced by one that caches its own keys and values
    // (dropped here: it holds a second copy of the decoder's weights).
    let decoder = TextDecoder::load(vb.pp("model.decoder"), &config).map_err(|e| fail(&weights, e))?;
    let Whisper { encoder, config, .. } = Whisper::load(&vb, config).map_err(|e| fail(&weights, e))?;
    Ok(LoadedWhisper {
        config,
        encoder,
        decoder,
        tokenizer,
        tokens,
        expected: Vec::new(),
        mel_filters,
        suppress,
        suppress_at_start,
        beam_size: super::DEFAULT_BEAM_SIZE,
    })
}

fn mask(vocab_size: usize, banned: &[u32], device: &Device) -> candle_core::Result<Tensor> {
    let mut values = vec![0f32; vocab_size];
    for &id in banned {
        if let Some(value) = values.get_mut(id as usize) {
            *value = f32::NEG_INFINITY;
        }
    }
    Tensor::from_vec(values, vocab_size, device)
}
