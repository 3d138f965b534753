//! Speech inside the server: the Piper voice on ONNX Runtime, or espeak-ng's own voice when Piper is not
//! installed, fails to load, or is not wanted.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use super::espeak::{DEFAULT_VOICE, Espeak};
use super::piper::PiperVoice;
use parlance_shared::VoiceInfo;

use super::{Delivery, Pcm, SpeechAudio, SpeechRate, TextToSpeech, TtsError, VoiceEngine};
use crate::backend::BackendInfo;
use crate::cpu::SpeechFirst;
use crate::text::sentences_to_speak;

/// Silence between sentences: Piper ends a sentence abruptly, and a short breath sounds natural.
const SENTENCE_PAUSE_MS: u32 = 250;

/// espeak-ng's voices offered beside Piper's (id, espeak-ng's name, label): the library is linked anyway, for
/// Piper's phonemes, so they cost nothing to install; robotic, but clear at any speed.
const ESPEAK_VOICES: [(&str, &str, &str); 2] = [
    ("espeak-ng-en-us", DEFAULT_VOICE, "espeak-ng, American English (robotic)"),
    ("espeak-ng-en-gb", "en", "espeak-ng, British English (robotic)"),
];

pub struct LocalTts {
    /// The default first.
    voices: Arc<[Named]>,
    info: BackendInfo,
    /// Shared with the embedded language model, which pauses while this voice speaks.
    cores: Arc<SpeechFirst>,
}

struct Named {
    id: String,
    label: String,
    voice: Voice,
}

enum Voice {
    Piper(PiperVoice),
    /// With espeak-ng's name of the voice.
    Espeak(&'static Espeak, &'static str),
}

impl LocalTts {
    /// The Piper voice in `voice_dir` on the ONNX Runtime library `onnx_runtime`, or espeak-ng's voice if
    /// `engine` asks for it or Piper cannot load (logged as a warning). Fails only if espeak-ng cannot start.
    pub fn load(voice_dir: &Path, onnx_runtime: &Path, engine: VoiceEngine) -> Result<Self, TtsError> {
        Self::load_sharing_cores(voice_dir, onnx_runtime, engine, Arc::new(SpeechFirst::new()))
    }

    /// [`LocalTts::load`], with the language model of the same server waiting while this voice speaks.
    pub fn load_sharing_cores(
        voice_dir: &Path,
        onnx_runtime: &Path,
        engine: VoiceEngine,
        cores: Arc<SpeechFirst>,
    ) -> Result<Self, TtsError> {
        let started = Instant::now();
        let espeak = Espeak::get()?;
        let piper = match engine {
            VoiceEngine::Espeak => None,
            VoiceEngine::Piper => match load_piper(voice_dir, onnx_runtime) {
                Ok(piper) => Some(piper),
                Err(error) => {
                    tracing::warn!(%error, "the Piper voice could not load; speaking with espeak-ng's voice instead");
                    None
                }
            },
        };
        let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut voices = Vec::new();
        let (model, location) = match piper {
            Some(piper) => {
                let file = super::piper::model_file(voice_dir).unwrap_or_else(|_| voice_dir.join("voice.onnx"));
                let name = voice_name(voice_dir, &file);
                voices.push(Named { id: name.clone(), label: format!("{name} (Piper)"), voice: Voice::Piper(piper) });
                (format!("piper {name}"), file.display().to_string())
            }
            None => (format!("espeak-ng {DEFAULT_VOICE}"), "libespeak-ng".to_owned()),
        };
        for (id, name, label) in ESPEAK_VOICES {
            voices.push(Named { id: id.to_owned(), label: label.to_owned(), voice: Voice::Espeak(espeak, name) });
        }
        tracing::info!(%model, %location, load_ms, voices = voices.len(), "text-to-speech voice loaded");
        Ok(Self { voices: voices.into(), info: BackendInfo { kind: "local", model, location, load_ms: Some(load_ms) }, cores })
    }

    /// Which voice engine speaks by default: `piper`, or `espeak` (the fallback).
    pub fn engine(&self) -> VoiceEngine {
        match self.voices.first().map(|named| &named.voice) {
            Some(Voice::Piper(_)) => VoiceEngine::Piper,
            _ => VoiceEngine::Espeak,
        }
    }

    /// The voice with `id`, or the default; an id the edge let through is always one of ours.
    fn index(&self, id: Option<&str>) -> usize {
        id.and_then(|id| self.voices.iter().position(|named| named.id == id)).unwrap_or(0)
    }

    /// The phonemes Piper reads for `text`, one string per sentence; `None` with the espeak-ng voice, which
    /// reads text itself.
    pub fn phonemes(&self, text: &str) -> Option<Result<Vec<String>, TtsError>> {
        match &self.voices.first()?.voice {
            Voice::Piper(piper) => Some(sentences_to_speak(text).iter().map(|sentence| piper.phonemes(sentence)).collect()),
            Voice::Espeak(..) => None,
        }
    }

    /// One sentence as samples, for streaming speech sentence by sentence.
    pub async fn synthesize_sentence(&self, sentence: &str) -> Result<Pcm, TtsError> {
        let voices = Arc::clone(&self.voices);
        let cores = Arc::clone(&self.cores);
        let sentence = sentence.to_owned();
        // Inference takes tens to hundreds of milliseconds of CPU: keep it off the async workers.
        tokio::task::spawn_blocking(move || voices[0].voice.synthesize(&sentence, SpeechRate::NORMAL, &cores))
            .await
            .map_err(|e| TtsError::Inference(format!("the speech task stopped: {e}")))?
    }

    /// All of `text`, sentence by sentence with short pauses between, as one clip.
    pub async fn synthesize_pcm(&self, text: &str) -> Result<Pcm, TtsError> {
        self.synthesize_pcm_at(text, SpeechRate::NORMAL).await
    }

    /// [`LocalTts::synthesize_pcm`] at `rate`.
    pub async fn synthesize_pcm_at(&self, text: &str, rate: SpeechRate) -> Result<Pcm, TtsError> {
        self.synthesize_pcm_with(text, &Delivery::at(rate)).await
    }

    /// [`LocalTts::synthesize_pcm`] as `delivery` asks.
    pub async fn synthesize_pcm_with(&self, text: &str, delivery: &Delivery) -> Result<Pcm, TtsError> {
        let sentences = sentences_to_speak(text);
        if sentences.is_empty() {
            return Err(TtsError::NothingToSay);
        }
        let (voices, index, rate) = (Arc::clone(&self.voices), self.index(delivery.voice.as_deref()), delivery.rate);
        let cores = Arc::clone(&self.cores);
        tokio::task::spawn_blocking(move || {
            let voice = &voices[index].voice;
            let mut clip: Option<Pcm> = None;
            for sentence in &sentences {
                let pcm = voice.synthesize(sentence, rate, &cores)?;
                match &mut clip {
                    None => clip = Some(pcm),
                    Some(clip) => {
                        clip.pause(SENTENCE_PAUSE_MS);
                        clip.samples.extend_from_slice(&pcm.samples);
                    }
                }
            }
            clip.ok_or(TtsError::NothingToSay)
        })
        .await
        .map_err(|e| TtsError::Inference(format!("the speech task stopped: {e}")))?
    }
}

#[async_trait]
impl TextToSpeech for LocalTts {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError> {
        self.synthesize_with(text, &Delivery::default()).await
    }

    async fn synthesize_with(&self, text: &str, delivery: &Delivery) -> Result<SpeechAudio, TtsError> {
        let started = Instant::now();
        let pcm = self.synthesize_pcm_with(text, delivery).await?;
        let wav = pcm.to_wav()?;
        tracing::debug!(audio_secs = pcm.duration_secs(), compute_ms = started.elapsed().as_millis() as u64, "speech synthesised");
        Ok(SpeechAudio { bytes: Bytes::from(wav), mime_type: "audio/wav".to_owned() })
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        let voices = self.voices.iter().enumerate();
        voices.map(|(i, named)| VoiceInfo { id: named.id.clone(), label: named.label.clone(), default: i == 0 }).collect()
    }
}

impl Voice {
    fn synthesize(&self, sentence: &str, rate: SpeechRate, cores: &SpeechFirst) -> Result<Pcm, TtsError> {
        // The language model pauses meanwhile: someone is waiting to hear this (see `crate::cpu`).
        let _speaking = cores.speaking();
        match self {
            Voice::Piper(piper) => piper.synthesize(sentence, rate),
            Voice::Espeak(espeak, name) => Ok(Pcm::from_i16(&espeak.synthesize_at(sentence, name, rate.factor())?, espeak.sample_rate())),
        }
    }
}

fn load_piper(voice_dir: &Path, onnx_runtime: &Path) -> Result<PiperVoice, TtsError> {
    let environment = crate::onnx::runtime(onnx_runtime)?;
    PiperVoice::load(voice_dir, environment)
}

/// A downloaded voice's file is named after it (`en_US-lessac-medium.onnx`); the installed one's folder is
/// (`piper-en_US-joe-medium/voice.onnx`).
fn voice_name(voice_dir: &Path, file: &Path) -> String {
    let stem = file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    if stem != "voice" {
        return stem;
    }
    let name = voice_dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_prefix("piper-").map(str::to_owned).unwrap_or(name)
}
