//! Greedy Whisper decoding without timestamps, one window of up to 30 seconds at a time, with Whisper's own
//! test for "this window holds no speech" so silence and noise give no words rather than invented ones.

use candle_core::{D, IndexOp, Tensor};
use candle_nn::ops::{log_softmax, softmax};
use candle_transformers::models::whisper;

use super::energy::may_hold_speech;
use super::mel::log_mel_spectrogram;
use super::model::LoadedWhisper;

/// A window is silence when the model thinks so (no-speech probability above this) ...
const NO_SPEECH_THRESHOLD: f32 = whisper::NO_SPEECH_THRESHOLD as f32;
/// ... and is not confident about the words it would otherwise produce (mean log-probability below this).
const LOGPROB_THRESHOLD: f32 = whisper::LOGPROB_THRESHOLD as f32;

/// Silence kept after the speech in a window, in spectrogram frames (10 ms each). Measured on the stage bench's
/// clips: 0.5 s to 4 s of tail all transcribe alike; the full 30 s window took 2.5 times as long for a 3 s clip.
const TAIL_FRAMES: usize = 100;

/// The shortest run of tokens whose immediate repetition counts as the model looping: four tokens are a few
/// words, so "very very" or "no, no" are not loops.
const MIN_LOOP_TOKENS: usize = 4;

/// The shortest window, 10 s: on `tests/it/local_stt.rs`'s 18 clips, windows cut to the speech plus a second
/// misheard more (summed WER 1.40, "the capital on France") than 10 s windows (0.96); full 30 s ones gave 1.41.
const MIN_WINDOW_FRAMES: usize = 1_000;

/// What one window decoded to, with the evidence used to keep or drop it.
#[derive(Debug)]
pub struct WindowResult {
    pub text: String,
    pub no_speech_probability: f32,
    pub mean_logprob: f32,
    /// Decoding stopped because the model began to repeat itself; `text` holds the repetitions.
    pub looped: bool,
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
    let content_frames = samples.len() / whisper::HOP_LENGTH;
    let mut texts = Vec::new();
    for start in (0..content_frames).step_by(whisper::N_FRAMES) {
        let from = (start * whisper::HOP_LENGTH).min(samples.len());
        let window_samples = &samples[from..(from + whisper::N_SAMPLES).min(samples.len())];
        if !may_hold_speech(window_samples) {
            tracing::debug!(start_s = start / 100, "window below the loudness gate: skipped");
            continue;
        }
        let fitted = window_frames(content_frames - start);
        let mut result = decode_window(whisper, &log_mel_spectrogram(window_samples, &whisper.mel_filters, fitted)?)?;
        if result.looped && fitted < whisper::N_FRAMES {
            // Cut short, the window sometimes makes the model say the same sentence over and over; on the
            // full window it does not.
            tracing::debug!(start_s = start / 100, text = %result.text, "looped on a fitted window: decoding the full window");
            result = decode_window(whisper, &log_mel_spectrogram(window_samples, &whisper.mel_filters, whisper::N_FRAMES)?)?;
        }
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

/// Whether `tokens` end with the same run of at least [`MIN_LOOP_TOKENS`] tokens twice in a row: a model
/// repeating itself, which people asking a question do not do.
fn ends_in_a_loop(tokens: &[u32]) -> bool {
    (MIN_LOOP_TOKENS..=tokens.len() / 2).any(|run| {
        let end = tokens.len();
        tokens[end - run..] == tokens[end - 2 * run..end - run]
    })
}

/// How many spectrogram frames the encoder reads for a window holding `content` frames of audio. Whisper was
/// trained on 30 s windows, but its encoder reads any length (its positions are sinusoids cut to fit): a 3 s
/// question padded to 30 s spent nine tenths of the encoder's time, and of the decoder's cross-attention, on
/// silence. Some silence stays after the speech, as the model expects it; at least [`MIN_WINDOW_FRAMES`].
fn window_frames(content: usize) -> usize {
    let padded = (content + TAIL_FRAMES).max(MIN_WINDOW_FRAMES);
    // The encoder's second convolution halves the frames: keep the count even.
    (padded + padded % 2).min(whisper::N_FRAMES)
}

fn decode_window(whisper: &mut LoadedWhisper, mel: &Tensor) -> candle_core::Result<WindowResult> {
    let tokens = whisper.tokens;
    let features = whisper.encoder.forward(mel, true)?;
    whisper.decoder.start(&features)?;
    let mut prompt = Vec::new();
    if let (Some(previous), false) = (tokens.start_of_previous, whisper.expected.is_empty()) {
        prompt.push(previous);
        prompt.extend(&whisper.expected);
    }
    let start = prompt.len();
    prompt.push(tokens.start_of_transcript);
    prompt.extend(tokens.english_transcription.iter().flatten());
    prompt.push(tokens.no_timestamps);
    let mut sequence = prompt.clone();
    let max_new = whisper.config.max_target_positions / 2;
    let mut sum_logprob = 0f32;
    let mut looped = false;
    // Whisper reads "no speech" off the prediction at the start-of-transcript position.
    let hidden = whisper.decoder.step(&prompt)?;
    let at_start = whisper.decoder.logits(&hidden.i((.., start..start + 1))?)?.i((0, 0))?;
    let no_speech_probability = softmax(&at_start, D::Minus1)?.i(tokens.no_speech as usize)?.to_scalar::<f32>()?;
    let mut last_hidden = hidden.i((.., prompt.len() - 1..))?;
    for step in 0..max_new {
        let mut logits = whisper.decoder.logits(&last_hidden)?.i((0, 0))?.broadcast_add(&whisper.suppress)?;
        if step == 0 {
            logits = logits.broadcast_add(&whisper.suppress_at_start)?;
        }
        let next = logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
        sum_logprob += log_softmax(&logits, D::Minus1)?.i(next as usize)?.to_scalar::<f32>()?;
        if next == tokens.end_of_text {
            break;
        }
        sequence.push(next);
        if ends_in_a_loop(&sequence[prompt.len()..]) {
            looped = true;
            break;
        }
        if step + 1 == max_new {
            break;
        }
        last_hidden = whisper.decoder.step(&[next])?;
    }
    let generated = &sequence[prompt.len()..];
    let text = whisper.tokenizer.decode(generated, true).map_err(|e| candle_core::Error::Msg(format!("detokenizing failed: {e}")))?;
    Ok(WindowResult { text, no_speech_probability, mean_logprob: sum_logprob / (generated.len() + 1) as f32, looped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_run_of_four_tokens_or_more_is_a_loop() {
        assert!(ends_in_a_loop(&[1, 2, 3, 4, 1, 2, 3, 4]));
        assert!(ends_in_a_loop(&[9, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9]));
        assert!(!ends_in_a_loop(&[1, 2, 3, 1, 2, 3]), "three tokens: a short phrase said twice");
        assert!(!ends_in_a_loop(&[5, 5, 5, 5, 5, 5, 5]), "a word said seven times is not four tokens repeated");
        assert!(!ends_in_a_loop(&[1, 2, 3, 4, 1, 2, 3, 4, 5]), "the repetition must be what the model said last");
        assert!(!ends_in_a_loop(&[]));
    }

    #[test]
    fn windows_fit_the_speech_with_a_second_of_silence_from_ten_up_to_thirty_seconds() {
        assert_eq!(window_frames(300), MIN_WINDOW_FRAMES);
        assert_eq!(window_frames(1201), 1302, "an even number of frames");
        assert_eq!(window_frames(2950), whisper::N_FRAMES);
        assert_eq!(window_frames(3000), whisper::N_FRAMES);
    }
}
