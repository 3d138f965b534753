//! Whisper decoding without timestamps, greedy and, for transcripts the model doubts, Whisper's beam search;
//! one window of up to 30 seconds at a time, with Whisper's own test for "this window holds no speech" so
//! silence and noise give no words rather than invented ones.

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

/// A greedy transcript whose tokens average a lower log-probability than this is searched again with the beam.
/// On the knowledge evaluation's 64 spoken questions, the misheard transcripts the beam mended ("Can this kids
/// have chicken?") averaged -0.48 to -0.93, the well-heard ones mostly above -0.35; about one in four clips
/// falls below, most of them questions with names and trade words rather than general ones. Whisper's own
/// retry line ([`LOGPROB_THRESHOLD`], -1) caught only the unintelligible ones.
const DOUBTFUL_LOGPROB: f32 = -0.45;

/// Silence kept after the speech in a window, in spectrogram frames (10 ms each). Measured on the stage bench's
/// clips: 0.5 s to 4 s of tail all transcribe alike; the full 30 s window took 2.5 times as long for a 3 s clip.
const TAIL_FRAMES: usize = 100;

/// The shortest run of tokens whose immediate repetition counts as the model looping: four tokens are a few
/// words, so "very very" or "no, no" are not loops.
const MIN_LOOP_TOKENS: usize = 4;

/// The shortest window, 6 s. Cut to the speech plus a second, windows misheard more on `tests/it/local_stt.rs`'s
/// 18 clips (summed WER 1.40, "the capital on France") than 10 s ones (0.96; 6 s: 1.14; full 30 s: 1.41); on
/// the knowledge evaluation's 64 spoken questions 6 s heard better than 10 s (README: "Turn-taking"), and the
/// encoder, run at every pause while the user waits, costs a little over half as much.
const MIN_WINDOW_FRAMES: usize = 600;

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
        let started = std::time::Instant::now();
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
            frames = fitted,
            ms = started.elapsed().as_millis(),
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

/// Decodes greedily; with a beam set, a transcript the model doubts (mean log-probability under
/// [`DOUBTFUL_LOGPROB`]) that is not silence is searched again with it. Greedy decoding is right about most
/// clear speech at a fraction of the beam's cost (README: "The knowledge evaluation").
fn decode_window(whisper: &mut LoadedWhisper, mel: &Tensor) -> candle_core::Result<WindowResult> {
    let started = std::time::Instant::now();
    let features = whisper.encoder.forward(mel, true)?;
    tracing::debug!(encoder_ms = started.elapsed().as_millis(), "encoded");
    let greedy = decode_features(whisper, &features, 1)?;
    let doubtful = greedy.mean_logprob < DOUBTFUL_LOGPROB && greedy.no_speech_probability <= NO_SPEECH_THRESHOLD;
    if whisper.beam_size <= 1 || !doubtful {
        return Ok(greedy);
    }
    let searched = decode_features(whisper, &features, whisper.beam_size)?;
    tracing::debug!(greedy = %greedy.text, greedy_logprob = greedy.mean_logprob, searched = %searched.text, searched_logprob = searched.mean_logprob, "doubtful transcript: searched with the beam");
    Ok(searched)
}

fn decode_features(whisper: &mut LoadedWhisper, features: &Tensor, beam_size: usize) -> candle_core::Result<WindowResult> {
    let tokens = whisper.tokens;
    whisper.decoder.start(features)?;
    let mut prompt = Vec::new();
    if let (Some(previous), false) = (tokens.start_of_previous, whisper.expected.is_empty()) {
        prompt.push(previous);
        prompt.extend(&whisper.expected);
    }
    let start = prompt.len();
    prompt.push(tokens.start_of_transcript);
    prompt.extend(tokens.english_transcription.iter().flatten());
    prompt.push(tokens.no_timestamps);
    let max_new = whisper.config.max_target_positions / 2;
    // Whisper reads "no speech" off the prediction at the start-of-transcript position.
    let prompt_started = std::time::Instant::now();
    let hidden = whisper.decoder.step(&prompt)?;
    tracing::debug!(prompt_tokens = prompt.len(), prompt_ms = prompt_started.elapsed().as_millis(), "prompt read");
    let at_start = whisper.decoder.logits(&hidden.i((.., start..start + 1))?)?.i((0, 0))?;
    let no_speech_probability = softmax(&at_start, D::Minus1)?.i(tokens.no_speech as usize)?.to_scalar::<f32>()?;

    let mut search = BeamSearch::new(beam_size);
    let mut logits = whisper.decoder.logits(&hidden.i((.., prompt.len() - 1..))?)?.i((.., 0))?;
    for step in 0..max_new {
        logits = logits.broadcast_add(&whisper.suppress)?;
        if step == 0 {
            logits = logits.broadcast_add(&whisper.suppress_at_start)?;
        }
        let offers = likeliest(&log_softmax(&logits, D::Minus1)?, search.width + 1)?;
        let Some(kept) = search.advance(&offers, tokens.end_of_text) else { break };
        if step + 1 == max_new {
            break;
        }
        whisper.decoder.keep_rows(&kept.rows)?;
        let hidden = whisper.decoder.step_each(&kept.last_tokens)?;
        logits = whisper.decoder.logits(&hidden)?.i((.., 0))?;
    }
    let best = search.best();
    let text = whisper.tokenizer.decode(&best.tokens, true).map_err(|e| candle_core::Error::Msg(format!("detokenizing failed: {e}")))?;
    Ok(WindowResult { text, no_speech_probability, mean_logprob: best.logprob / (best.tokens.len() + 1) as f32, looped: best.looped })
}

/// One transcript being written: its tokens and the sum of their log-probabilities.
#[derive(Debug, Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    logprob: f32,
    /// It ended because the model began to repeat itself.
    looped: bool,
}

/// The hypotheses to read next: row `rows[i]` of the decoder's cache extended by `last_tokens[i]`.
struct Kept {
    rows: Vec<u32>,
    last_tokens: Vec<u32>,
}

/// Whisper's beam search (openai/whisper `BeamSearchDecoder`, as faster-whisper runs it): at each step every
/// open hypothesis offers its `width + 1` likeliest next tokens, the `width` likeliest extensions overall stay
/// open, and those that end are set aside until `width` have ended. The best ended one, by log-probability per
/// token, is the transcript. A width of 1 is greedy decoding.
struct BeamSearch {
    width: usize,
    open: Vec<Hypothesis>,
    ended: Vec<Hypothesis>,
}

impl BeamSearch {
    fn new(width: usize) -> Self {
        let width = width.max(1);
        Self { width, open: vec![Hypothesis { tokens: Vec::new(), logprob: 0.0, looped: false }], ended: Vec::new() }
    }

    /// Takes, for each open hypothesis in order, its likeliest next tokens with their log-probabilities (at
    /// least `width + 1` of them); returns the hypotheses to read next, or `None` when the search is over.
    fn advance(&mut self, offers: &[Vec<(u32, f32)>], end_of_text: u32) -> Option<Kept> {
        let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
        for (row, (hypothesis, offered)) in self.open.iter().zip(offers).enumerate() {
            for &(token, logprob) in offered {
                candidates.push((hypothesis.logprob + logprob, row, token));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut open = Vec::new();
        let mut kept = Kept { rows: Vec::new(), last_tokens: Vec::new() };
        let mut ended = Vec::new();
        for (logprob, row, token) in candidates {
            let parent = &self.open[row];
            if token == end_of_text {
                ended.push(Hypothesis { tokens: parent.tokens.clone(), logprob, looped: false });
                continue;
            }
            let mut tokens = parent.tokens.clone();
            tokens.push(token);
            if ends_in_a_loop(&tokens) {
                ended.push(Hypothesis { tokens, logprob, looped: true });
                continue;
            }
            open.push(Hypothesis { tokens, logprob, looped: false });
            kept.rows.push(u32::try_from(row).unwrap_or(u32::MAX));
            kept.last_tokens.push(token);
            if open.len() == self.width {
                break;
            }
        }
        // The likeliest endings first, until `width` have ended.
        for hypothesis in ended {
            if self.ended.len() < self.width {
                self.ended.push(hypothesis);
            }
        }
        self.open = open;
        (self.ended.len() < self.width && !self.open.is_empty()).then_some(kept)
    }

    /// The transcript: the ended hypothesis with the highest log-probability per token (the open ones when
    /// none ended within the window's token budget).
    fn best(self) -> Hypothesis {
        let pool = if self.ended.is_empty() { self.open } else { self.ended };
        let score = |h: &Hypothesis| h.logprob / h.tokens.len().max(1) as f32;
        pool.into_iter().max_by(|a, b| score(a).total_cmp(&score(b))).unwrap_or(Hypothesis {
            tokens: Vec::new(),
            logprob: 0.0,
            looped: false,
        })
    }
}

/// The `count` likeliest tokens of each row of `logprobs` (`[rows, vocabulary]`), likeliest first. Picked
/// with the tensor library's own optimised loops, one arg-max per token, rather than by scanning the whole
/// vocabulary for every hypothesis at every step in this crate's unoptimised build.
fn likeliest(logprobs: &Tensor, count: usize) -> candle_core::Result<Vec<Vec<(u32, f32)>>> {
    let rows = logprobs.dim(0)?;
    let gone = Tensor::full(f32::NEG_INFINITY, (rows, 1), logprobs.device())?;
    let mut remaining = logprobs.clone();
    let mut offers = vec![Vec::with_capacity(count); rows];
    for _ in 0..count.min(logprobs.dim(D::Minus1)?) {
        let best = remaining.argmax_keepdim(D::Minus1)?;
        let scores = remaining.gather(&best, D::Minus1)?;
        for ((offered, token), score) in
            offers.iter_mut().zip(best.flatten_all()?.to_vec1::<u32>()?).zip(scores.flatten_all()?.to_vec1::<f32>()?)
        {
            offered.push((token, score));
        }
        remaining = remaining.scatter(&best, &gone, D::Minus1)?;
    }
    Ok(offers)
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

    /// A toy model over three tokens (0 ends the text): "a" is the likelier first token, but "b" is the
    /// likelier transcript, since after "a" the model is unsure how to go on.
    fn toy_model(prefix: &[u32]) -> Vec<f32> {
        let probabilities: [f32; 3] = match prefix {
            [] => [0.000_001, 0.6, 0.4],
            [1] => [0.4, 0.3, 0.3],
            [2] => [0.95, 0.025, 0.025],
            _ => [0.5, 0.25, 0.25],
        };
        probabilities.iter().map(|p| p.ln()).collect()
    }

    fn search_toy(width: usize) -> (Vec<u32>, usize) {
        let mut search = BeamSearch::new(width);
        let mut steps = 0;
        loop {
            steps += 1;
            let rows: Vec<Vec<f32>> = search.open.iter().map(|hypothesis| toy_model(&hypothesis.tokens)).collect();
            let logprobs = Tensor::new(rows, &candle_core::Device::Cpu).unwrap();
            let offers = likeliest(&logprobs, width + 1).unwrap();
            let Some(kept) = search.advance(&offers, 0) else { break };
            assert_eq!(kept.rows.len(), search.open.len(), "one cache row for each open hypothesis");
            assert!(kept.rows.len() <= width);
            for (hypothesis, token) in search.open.iter().zip(&kept.last_tokens) {
                assert_eq!(hypothesis.tokens.last(), Some(token));
            }
        }
        (search.best().tokens, steps)
    }

    #[test]
    fn a_wider_search_finds_the_likelier_transcript_that_greedy_decoding_misses() {
        assert_eq!(search_toy(1).0, vec![1], "greedy: the likeliest first token, then the end");
        assert_eq!(search_toy(2).0, vec![2], "0.6 x 0.4 for \"a\" loses to 0.4 x 0.95 for \"b\"");
        assert_eq!(search_toy(5).0, vec![2]);
        assert!(search_toy(5).1 < 10, "the search ends once enough hypotheses have ended");
    }

    #[test]
    fn likeliest_tokens_come_in_order_for_each_row() {
        let logprobs = Tensor::new(&[[-3.0f32, -0.5, -2.0, -0.1], [-0.2, -4.0, -1.0, -3.0]], &candle_core::Device::Cpu).unwrap();
        assert_eq!(likeliest(&logprobs, 2).unwrap(), vec![vec![(3, -0.1), (1, -0.5)], vec![(0, -0.2), (2, -1.0)]]);
        let one = Tensor::new(&[[-1.0f32]], &candle_core::Device::Cpu).unwrap();
        assert_eq!(likeliest(&one, 3).unwrap(), vec![vec![(0, -1.0)]], "no more than the vocabulary holds");
    }

    #[test]
    fn windows_fit_the_speech_with_a_second_of_silence_from_six_up_to_thirty_seconds() {
        assert_eq!(window_frames(300), MIN_WINDOW_FRAMES);
        assert_eq!(window_frames(1201), 1302, "an even number of frames");
        assert_eq!(window_frames(2950), whisper::N_FRAMES);
        assert_eq!(window_frames(3000), whisper::N_FRAMES);
    }
}
