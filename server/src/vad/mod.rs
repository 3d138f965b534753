//! Voice activity detection: where speech starts and stops in a stream of raw 16 kHz samples.
//!
//! [`SileroVad`] is the Silero VAD model `parlance models` installs, run through ONNX Runtime: it tells a
//! voice from a door, a fan or music, which an energy threshold cannot. One model serves every socket; each
//! stream keeps its own [`VoiceActivity`] (the model's recurrent state, and where speech was heard). Without
//! the model the energy detector in `streaming` still finds pauses.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ort::session::Session;
use ort::value::Tensor;

/// The model reads 32 ms windows at 16 kHz ...
const WINDOW: usize = 512;
/// ... each preceded by the last 64 samples of the window before, as Silero's own wrapper feeds it.
const CONTEXT: usize = 64;
/// The recurrent state: two layers of 128 for one stream.
const STATE: usize = 2 * 128;
const SAMPLE_RATE: i64 = 16_000;
/// Silero's own streaming iterator: speech starts at 0.5 and lasts until the probability falls under 0.35.
const SPEECH_ON: f32 = 0.5;
const SPEECH_OFF: f32 = 0.35;
/// One window at a time per stream; a second thread would only compete with the language model.
const THREADS: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("could not load the voice activity model from {}: {reason}; `parlance models --only silero-vad` installs it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("the voice activity model failed: {0}")]
    Inference(String),
}

pub struct SileroVad {
    /// `Session::run` takes `&mut self`; a window takes well under a millisecond, so streams take turns.
    session: Mutex<Session>,
}

impl SileroVad {
    /// Loads `silero_vad.onnx` at `path` on an ONNX Runtime already set up (see `crate::onnx`).
    pub fn load(path: &Path, environment: &ort::environment::Environment) -> Result<Self, VadError> {
        let session = crate::onnx::session_builder(environment, THREADS)
            .and_then(|mut builder| builder.commit_from_file(path))
            .inspect(|_| crate::exit::skip_native_teardown())
            .map_err(|e| VadError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(Self { session: Mutex::new(session) })
    }

    /// A detector for one new stream.
    pub fn stream(self: &Arc<Self>) -> VoiceActivity {
        VoiceActivity {
            model: Arc::clone(self),
            state: vec![0.0; STATE],
            context: vec![0.0; CONTEXT],
            window: Vec::with_capacity(WINDOW),
            half_sample: None,
            samples: 0,
            speaking: false,
            speech_start: None,
            speech_end: None,
            failed: false,
        }
    }

    /// The probability that `window` (with the `context` before it) is speech, updating `state`.
    fn probability(&self, context: &[f32], window: &[f32], state: &mut [f32]) -> Result<f32, VadError> {
        let inference = |e: ort::Error| VadError::Inference(e.to_string());
        let input: Vec<f32> = context.iter().chain(window).copied().collect();
        let inputs = ort::inputs![
            "input" => Tensor::from_array(([1, CONTEXT + WINDOW], input)).map_err(inference)?,
            "state" => Tensor::from_array(([2, 1, 128], state.to_vec())).map_err(inference)?,
            "sr" => Tensor::from_array(([1], vec![SAMPLE_RATE])).map_err(inference)?,
        ];
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs).map_err(inference)?;
        let (_, probability) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        let (_, next_state) = outputs[1].try_extract_tensor::<f32>().map_err(inference)?;
        if next_state.len() == state.len() {
            state.copy_from_slice(next_state);
        }
        probability.first().copied().ok_or_else(|| VadError::Inference("the model gave no probability".to_owned()))
    }
}

/// A change the detector saw, at a sample position from the start of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceEvent {
    SpeechStarted { at_sample: usize },
    SpeechStopped { at_sample: usize },
}

/// One stream's detector: feed it PCM16 bytes as they come.
pub struct VoiceActivity {
    model: Arc<SileroVad>,
    state: Vec<f32>,
    context: Vec<f32>,
    /// Samples of the window being filled.
    window: Vec<f32>,
    /// The odd byte of a sample split across two frames.
    half_sample: Option<u8>,
    samples: usize,
    speaking: bool,
    speech_start: Option<usize>,
    speech_end: Option<usize>,
    /// The model failed once: the stream is left undetected rather than failing every frame.
    failed: bool,
}

impl VoiceActivity {
    /// Reads a frame of little-endian PCM16 bytes, of any length; returns the starts and stops it holds.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<VoiceEvent> {
        let mut events = Vec::new();
        if let (Some(low), Some((&high, rest))) = (self.half_sample, bytes.split_first()) {
            self.half_sample = None;
            self.sample(i16::from_le_bytes([low, high]), &mut events);
            bytes = rest;
        }
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            self.sample(i16::from_le_bytes([pair[0], pair[1]]), &mut events);
        }
        if let [odd] = pairs.remainder() {
            self.half_sample = Some(*odd);
        }
        events
    }

    fn sample(&mut self, sample: i16, events: &mut Vec<VoiceEvent>) {
        self.window.push(f32::from(sample) / 32_768.0);
        self.samples += 1;
        if self.window.len() < WINDOW {
            return;
        }
        let window = std::mem::take(&mut self.window);
        if !self.failed {
            match self.model.probability(&self.context, &window, &mut self.state) {
                Ok(probability) => self.judge(probability, events),
                Err(error) => {
                    tracing::warn!(%error, "voice activity detection stopped for this stream");
                    self.failed = true;
                }
            }
        }
        self.context.copy_from_slice(&window[WINDOW - CONTEXT..]);
        self.window = window;
        self.window.clear();
    }

    fn judge(&mut self, probability: f32, events: &mut Vec<VoiceEvent>) {
        let window_start = self.samples - WINDOW;
        if probability >= SPEECH_ON {
            if !self.speaking {
                self.speaking = true;
                self.speech_start = Some(window_start);
                events.push(VoiceEvent::SpeechStarted { at_sample: window_start });
            }
            self.speech_end = Some(self.samples);
        } else if self.speaking && probability >= SPEECH_OFF {
            // Trailing off: still the same speech.
            self.speech_end = Some(self.samples);
        } else if self.speaking {
            self.speaking = false;
            let at_sample = self.speech_end.unwrap_or(window_start);
            events.push(VoiceEvent::SpeechStopped { at_sample });
        }
    }

    /// The sample just after the last window heard as speech; `None` before any speech.
    pub fn speech_end(&self) -> Option<usize> {
        self.speech_end
    }

    /// Whether speech was heard and has been followed by at least `samples` of something else.
    pub fn silent_for(&self, samples: usize) -> bool {
        !self.speaking && self.speech_end.is_some_and(|end| self.samples - end >= samples)
    }

    /// Samples of silence since the speech ended (0 while speaking or before any speech).
    pub fn silence(&self) -> usize {
        match self.speech_end {
            Some(end) if !self.speaking => self.samples - end,
            _ => 0,
        }
    }

    /// Whether the last window read was speech (or speech trailing off).
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Samples read so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Whether the model stopped working on this stream (the energy detector should take over).
    pub fn failed(&self) -> bool {
        self.failed
    }
}
