//! Greedy Whisper decoding without timestamps, one 30-second window at a time, with Whisper's own test for
//! "this window holds no speech" so silence and noise give no words rather than invented ones.

use candle_core::{D, IndexOp, Tensor};
use candle_nn::ops::{log_softmax, softmax};
use candle_transformers::models::whisper::{self, audio::pcm_to_mel};

use super::energy::may_hold_speech;
use super::model::LoadedWhisper;

/// A window is silence when the model thinks so (no-speech probability above this) ...
const NO_SPEECH_THRESHOLD: f32 = whisper::NO_SPEECH_THRESHOLD as f32;
/// ... and is not confident about the words it would otherwise produce (mean log-probability below this).
const LOGPROB_THRESHOLD: f32 = whisper::LOGPROB_THRESHOLD as f32;

/// What one window decoded to, with the evidence used to keep or drop it.
#[derive(Debug)]
pub struct WindowResult {
    pub text: String,
    pub no_speech_probability: f32,
    pub mean_logprob: f32,
}

impl WindowResult {
    fn is_speech(&self) -> bool {
        !(self.no_speech_probability > NO_SPEECH_THRESHOLD && self.mean_logprob < LOGPROB_THRESHOLD)
    }
}

/// The words in `samples` (16 kHz mono); empty when there are none.
pub fn transcribe(whisper: &mut LoadedWhisper, samples: &[f32]) -> candle_core::Result<String> {
    // Under one hop (10 ms) there is not even one spectrogram frame.
    if samples.len() < whisper::HOP_LENGTH {
        return Ok(String::new());
    }
    let config = whisper.model.config.clone();
    let mel = pcm_to_mel(&config, samples, &whisper.mel_filters);
    let mel_frames = mel.len() / config.num_mel_bins;
    let mel = Tensor::from_vec(mel, (1, config.num_mel_bins, mel_frames), &whisper.device)?;
    // `pcm_to_mel` pads with at least one window of silence, so every window below is complete.
    let content_frames = samples.len() / whisper::HOP_LENGTH;

    let mut texts = Vec::new();
    for start in (0..content_frames).step_by(whisper::N_FRAMES) {
        let from = (start * whisper::HOP_LENGTH).min(samples.len());
        let window_samples = &samples[from..(from + whisper::N_SAMPLES).min(samples.len())];
        if !may_hold_speech(window_samples) {
            tracing::debug!(start_s = start / 100, "window below the loudness gate: skipped");
            continue;
        }
        let window = mel.narrow(2, start, whisper::N_FRAMES)?;
        let result = decode_window(whisper, &window)?;
        tracing::debug!(
            start_s = start / 100,
            no_speech = result.no_speech_probability,
            logprob = result.mean_logprob,
            text = %result.text,
            "decoded a window"
        );
        if result.is_speech() {
            texts.push(result.text.trim().to_owned());
        }
    }
    Ok(texts.into_iter().filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" "))
}

fn decode_window(whisper: &mut LoadedWhisper, mel: &Tensor) -> candle_core::Result<WindowResult> {
    let tokens = whisper.tokens;
    let features = whisper.model.encoder.forward(mel, true)?;
    let mut prompt = vec![tokens.start_of_transcript];
    prompt.extend(tokens.english_transcription.iter().flatten());
    prompt.push(tokens.no_timestamps);
    let mut sequence = prompt.clone();
    let max_new = whisper.model.config.max_target_positions / 2;
    let mut sum_logprob = 0f32;
    let mut no_speech_probability = 0f32;
    for step in 0..max_new {
        let input = Tensor::new(sequence.as_slice(), &whisper.device)?.unsqueeze(0)?;
        // The first step computes the cross-attention keys and values for this window; later steps reuse them.
        let hidden = whisper.model.decoder.forward(&input, &features, step == 0)?;
        if step == 0 {
            // Whisper reads "no speech" off the prediction at the start-of-transcript position.
            let at_start = whisper.model.decoder.final_linear(&hidden.i((.., 0..1))?)?.i((0, 0))?;
            no_speech_probability = softmax(&at_start, D::Minus1)?.i(tokens.no_speech as usize)?.to_scalar::<f32>()?;
        }
        let last = hidden.dim(1)? - 1;
        let mut logits = whisper.model.decoder.final_linear(&hidden.i((.., last..))?)?.i((0, 0))?.broadcast_add(&whisper.suppress)?;
        if step == 0 {
            logits = logits.broadcast_add(&whisper.suppress_at_start)?;
        }
        let next = logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
        sum_logprob += log_softmax(&logits, D::Minus1)?.i(next as usize)?.to_scalar::<f32>()?;
        if next == tokens.end_of_text {
            break;
        }
        sequence.push(next);
    }
    let generated = &sequence[prompt.len()..];
    let text = whisper.tokenizer.decode(generated, true).map_err(|e| candle_core::Error::Msg(format!("detokenizing failed: {e}")))?;
    Ok(WindowResult { text, no_speech_probability, mean_logprob: sum_logprob / (generated.len() + 1) as f32 })
}
