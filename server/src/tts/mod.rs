//! Text-to-speech: an answer in, encoded audio a browser can play out.

mod espeak;
mod local;
mod openai;
mod pcm;
mod piper;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parlance_shared::{MAX_VOICE_ID_CHARS, VoiceInfo};

pub use self::espeak::EspeakError;
pub use self::local::LocalTts;
pub use self::openai::OpenAiTts;
pub use self::pcm::Pcm;
use crate::backend::BackendInfo;
use crate::onnx::OnnxError;
use crate::openai::ProviderError;

/// Encoded audio, ready to send.
#[derive(Debug, Clone)]
pub struct SpeechAudio {
    pub bytes: Bytes,
    pub mime_type: String,
}

#[async_trait]
pub trait TextToSpeech: Send + Sync {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError>;
    /// Speech as `delivery` asks; a backend that cannot change its pace speaks at its own. The voice is one of
    /// [`TextToSpeech::voices`] (the edge refuses others, see [`VoiceChoice::choose`]).
    async fn synthesize_with(&self, text: &str, delivery: &Delivery) -> Result<SpeechAudio, TtsError> {
        let _ = delivery;
        self.synthesize(text).await
    }
    fn info(&self) -> BackendInfo;
    /// The voices a turn may choose; exactly one is the default.
    fn voices(&self) -> Vec<VoiceInfo> {
        let model = self.info().model;
        vec![VoiceInfo { id: model.clone(), label: model, default: true }]
    }
    /// Whether the backend can answer now: a provider is asked briefly (see `OpenAiClient::probe`); a model
    /// in this process is ready once loaded.
    async fn reachable(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// How fast to speak, relative to the voice's own pace: 2.0 takes half as long, 0.5 twice as long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechRate(f32);

impl SpeechRate {
    pub const NORMAL: Self = Self(1.0);

    /// A client's rate (`None`: the voice's own), or why it cannot be used.
    pub fn from_client(rate: Option<f32>) -> Result<Self, String> {
        let range = parlance_shared::SPEECH_RATE_RANGE;
        match rate {
            None => Ok(Self::NORMAL),
            Some(rate) if rate.is_finite() && range.contains(&rate) => Ok(Self(rate)),
            Some(_) => Err(format!("speech_rate must be between {} and {} (1 is the voice's own pace)", range.start(), range.end())),
        }
    }

    pub fn factor(self) -> f32 {
        self.0
    }

    pub fn is_normal(self) -> bool {
        (self.0 - 1.0).abs() < f32::EPSILON
    }
}

impl Default for SpeechRate {
    fn default() -> Self {
        Self::NORMAL
    }
}

/// How an answer is spoken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivery {
    pub rate: SpeechRate,
    /// One of the backend's [`TextToSpeech::voices`] by id; `None` for its default.
    pub voice: Option<Arc<str>>,
}

impl Delivery {
    pub fn at(rate: SpeechRate) -> Self {
        Self { rate, voice: None }
    }
}

/// Picks a client's voice out of the ones a backend has.
pub struct VoiceChoice;

impl VoiceChoice {
    /// `requested` if `voices` holds it (`None`: the default), or why not, in words for the person who chose.
    /// An empty name is the default too: a socket's client goes back to it that way (leaving the field out keeps
    /// the socket's last choice).
    pub fn choose(voices: &[VoiceInfo], requested: Option<&str>) -> Result<Option<Arc<str>>, String> {
        let Some(requested) = requested.map(str::trim).filter(|name| !name.is_empty()) else { return Ok(None) };
        if requested.chars().count() <= MAX_VOICE_ID_CHARS
            && let Some(voice) = voices.iter().find(|voice| voice.id == requested)
        {
            return Ok(Some(Arc::from(voice.id.as_str())));
        }
        let shown: String = requested.chars().take(40).collect();
        let ellipsis = if shown.len() < requested.len() { "…" } else { "" };
        if voices.is_empty() {
            return Err(format!("there is no voice {shown:?}{ellipsis}: this server speaks no answers"));
        }
        let known: Vec<&str> = voices.iter().map(|voice| voice.id.as_str()).collect();
        Err(format!("there is no voice {shown:?}{ellipsis} on this server; its voices are: {}", known.join(", ")))
    }
}

/// The voice the local backend speaks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceEngine {
    /// The Piper voice (natural), on ONNX Runtime; espeak-ng if it cannot load.
    Piper,
    /// espeak-ng's own voice (robotic, but needs no model files).
    Espeak,
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("text-to-speech provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("could not load the voice from {}: {reason}; `parlance models` reinstalls it", path.display())]
    Load { path: PathBuf, reason: String },
    #[error(transparent)]
    Runtime(#[from] OnnxError),
    #[error("espeak-ng: {0}")]
    Espeak(#[from] EspeakError),
    #[error("the voice model failed: {0}")]
    Inference(String),
    #[error("could not encode the speech as WAV: {0}")]
    Encode(String),
    #[error("the answer holds nothing that can be read aloud")]
    NothingToSay,
}
