//! A Piper voice (VITS, ONNX): IPA phonemes from espeak-ng, mapped to ids as Piper maps them, run through
//! ONNX Runtime into float samples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use super::espeak::Espeak;
use super::{Pcm, SpeechRate, TtsError};

const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';
/// Both cores: one sentence at a time is synthesised, and it is on the critical path of a turn.
const THREADS: usize = 2;

/// The parts of `voice.onnx.json` inference needs.
#[derive(Debug, Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    espeak: EspeakConfig,
    inference: InferenceConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: u32,
}

#[derive(Debug, Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakConfig {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

pub struct PiperVoice {
    /// `Session::run` takes `&mut self`: one inference at a time per session.
    session: Mutex<Session>,
    phoneme_ids: HashMap<char, Vec<i64>>,
    espeak_voice: String,
    /// `[noise_scale, length_scale, noise_w]`, the order of the model's `scales` input.
    scales: [f32; 3],
    sample_rate: u32,
    /// Multi-speaker voices take a speaker id; the first speaker is used.
    takes_speaker_id: bool,
    espeak: &'static Espeak,
}

/// The voice model in `dir`: `voice.onnx` as `parlance models` installs it, or else the one `NAME.onnx` a
/// downloaded Piper voice comes as.
pub fn model_file(dir: &Path) -> Result<PathBuf, TtsError> {
    let installed = dir.join("voice.onnx");
    if installed.is_file() {
        return Ok(installed);
    }
    let fail = |reason: &str| TtsError::Load { path: dir.to_path_buf(), reason: reason.to_owned() };
    let entries = std::fs::read_dir(dir).map_err(|e| fail(&e.to_string()))?;
    let mut voices: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| path.extension().is_some_and(|e| e == "onnx")).collect();
    match voices.len() {
        1 => Ok(voices.remove(0)),
        0 => Err(fail("there is no Piper voice (a NAME.onnx file) in this folder")),
        _ => Err(fail("there is more than one .onnx file in this folder; keep one Piper voice per folder")),
    }
}

impl PiperVoice {
    /// Loads the voice in `dir` (see [`model_file`]) and its `.onnx.json` on an ONNX Runtime already set up
    /// (see `crate::onnx`).
    pub fn load(dir: &Path, environment: &ort::environment::Environment) -> Result<Self, TtsError> {
        let model_path = model_file(dir)?;
        let config_path = {
            let mut name = model_path.clone().into_os_string();
            name.push(".json");
            PathBuf::from(name)
        };
        let fail = |path: &Path, reason: String| TtsError::Load { path: path.to_path_buf(), reason };
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| fail(&config_path, e.to_string()))?;
        let config: VoiceConfig = serde_json::from_str(&config_text).map_err(|e| fail(&config_path, e.to_string()))?;
        let phoneme_ids = phoneme_id_map(&config.phoneme_id_map).map_err(|reason| fail(&config_path, reason))?;

        let session = crate::onnx::session_builder(environment, THREADS)
            .and_then(|mut builder| builder.commit_from_file(&model_path))
            .inspect(|_| crate::exit::skip_native_teardown())
            .map_err(|e| fail(&model_path, e.to_string()))?;
        let takes_speaker_id = config.num_speakers > 1 && session.inputs().iter().any(|input| input.name() == "sid");
        let espeak = Espeak::get().map_err(|e| fail(&config_path, e.to_string()))?;
        Ok(Self {
            session: Mutex::new(session),
            phoneme_ids,
            espeak_voice: config.espeak.voice,
            scales: [config.inference.noise_scale, config.inference.length_scale, config.inference.noise_w],
            sample_rate: config.audio.sample_rate,
            takes_speaker_id,
            espeak,
        })
    }

    /// The phonemes the voice will read for one sentence (Piper's IPA, with clause punctuation).
    pub fn phonemes(&self, sentence: &str) -> Result<String, TtsError> {
        Ok(self.espeak.phonemes(sentence, &self.espeak_voice)?)
    }

    /// Piper's id sequence: BOS and PAD, then every known phoneme followed by PAD, then EOS. Phonemes the voice
    /// has no id for are skipped, as Piper does.
    pub fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let id = |c: char| self.phoneme_ids.get(&c).map(Vec::as_slice).unwrap_or_default();
        let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
        ids.extend_from_slice(id(BOS));
        ids.extend_from_slice(id(PAD));
        for phoneme in phonemes.chars() {
            let phoneme_ids = id(phoneme);
            if phoneme_ids.is_empty() {
                continue;
            }
            ids.extend_from_slice(phoneme_ids);
            ids.extend_from_slice(id(PAD));
        }
        ids.extend_from_slice(id(EOS));
        ids
    }

    /// One sentence to samples in [-1, 1]. Blocks for the inference: call it off the async workers.
    /// At `rate`, Piper's length scale stretches every phoneme, so dividing it by the
    /// rate changes the pace without changing the pitch.
    pub fn synthesize(&self, sentence: &str, rate: SpeechRate) -> Result<Pcm, TtsError> {
        let mut scales = self.scales;
        scales[1] /= rate.factor();
        let phonemes = self.phonemes(sentence)?;
        let ids = self.phoneme_ids(&phonemes);
        let length = i64::try_from(ids.len()).map_err(|_| TtsError::Inference("the sentence is too long".to_owned()))?;
        let inference = |e: ort::Error| TtsError::Inference(e.to_string());
        let mut inputs = ort::inputs![
            "input" => Tensor::from_array(([1, ids.len()], ids)).map_err(inference)?,
            "input_lengths" => Tensor::from_array(([1], vec![length])).map_err(inference)?,
            "scales" => Tensor::from_array(([3], scales.to_vec())).map_err(inference)?,
        ];
        if self.takes_speaker_id {
            inputs.push(("sid".into(), Tensor::from_array(([1], vec![0_i64])).map_err(inference)?.into()));
        }
        // A panic inside ort cannot leave the session half-updated in a way a later run would observe.
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs).map_err(inference)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        Ok(Pcm { samples: audio.to_vec(), sample_rate: self.sample_rate })
    }
}

/// The JSON maps each phoneme (one character) to its ids.
fn phoneme_id_map(map: &HashMap<String, Vec<i64>>) -> Result<HashMap<char, Vec<i64>>, String> {
    let mut by_char = HashMap::with_capacity(map.len());
    for (phoneme, ids) in map {
        let mut chars = phoneme.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => {
                by_char.insert(c, ids.clone());
            }
            _ => return Err(format!("phoneme_id_map: {phoneme:?} is not a single character")),
        }
    }
    for required in [BOS, EOS, PAD] {
        if !by_char.contains_key(&required) {
            return Err(format!("phoneme_id_map has no {required:?}"));
        }
    }
    Ok(by_char)
}
