use async_trait::async_trait;
use serde::Serialize;

use parlance_shared::VoiceInfo;

use super::{Delivery, SpeechAudio, TextToSpeech, TtsError};
use crate::backend::BackendInfo;
use crate::openai::{OpenAiClient, ProviderError};

const PATH: &str = "audio/speech";

/// `POST /v1/audio/speech` on OpenAI, speaches, or any server with the same API.
pub struct OpenAiTts {
    client: OpenAiClient,
    voice: String,
}

impl OpenAiTts {
    pub fn new(client: OpenAiClient, voice: String) -> Self {
        Self { client, voice }
    }
}

#[derive(Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    /// WAV plays in every browser and needs no decoder on our side.
    response_format: &'static str,
    /// OpenAI's pace (0.25 to 4, 1 by default); left out at the normal pace for servers that do not know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f32>,
}

#[async_trait]
impl TextToSpeech for OpenAiTts {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError> {
        self.synthesize_with(text, &Delivery::default()).await
    }

    async fn synthesize_with(&self, text: &str, delivery: &Delivery) -> Result<SpeechAudio, TtsError> {
        let speed = (!delivery.rate.is_normal()).then_some(delivery.rate.factor());
        let voice = delivery.voice.as_deref().unwrap_or(&self.voice);
        let request = SpeechRequest { model: self.client.model(), input: text, voice, response_format: "wav", speed };
        // The same words make the same speech: a failed try may be repeated.
        let fetched = self.client.fetch(PATH, |builder| Ok(builder.json(&request))).await?;
        if fetched.body.is_empty() {
            let endpoint = self.client.shown(PATH);
            return Err(ProviderError::InvalidResponse { endpoint, reason: "no audio in the response".into() }.into());
        }
        // Some compatible servers answer `application/octet-stream`; the bytes are what we asked for.
        let mime_type = fetched.content_type.filter(|t| t.starts_with("audio/")).unwrap_or_else(|| "audio/wav".to_owned());
        Ok(SpeechAudio { bytes: fetched.body, mime_type })
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }

    /// The configured voice: which others a provider has, it does not say.
    fn voices(&self) -> Vec<VoiceInfo> {
        let label = format!("{} ({})", self.voice, self.client.model());
        vec![VoiceInfo { id: self.voice.clone(), label, default: true }]
    }

    async fn reachable(&self) -> Result<(), ProviderError> {
        self.client.probe(crate::backend::PROBE_TIMEOUT).await
    }
}
