use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;

use super::{SpeechAudio, TextToSpeech, TtsError};
use crate::backend::BackendInfo;
use crate::openai::{OpenAiClient, ProviderError, transport_error};

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
}

#[async_trait]
impl TextToSpeech for OpenAiTts {
    async fn synthesize(&self, text: &str) -> Result<SpeechAudio, TtsError> {
        let request = SpeechRequest { model: self.client.model(), input: text, voice: &self.voice, response_format: "wav" };
        let endpoint = self.client.shown(PATH);
        let response = self.client.send(PATH, self.client.post(PATH).json(&request)).await?;
        let declared = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.bytes().await.map_err(|e| transport_error(&endpoint, &e))?;
        if bytes.is_empty() {
            return Err(ProviderError::InvalidResponse { endpoint, reason: "no audio in the response".into() }.into());
        }
        // Some compatible servers answer `application/octet-stream`; the bytes are what we asked for.
        let mime_type = declared.filter(|t| t.starts_with("audio/")).unwrap_or_else(|| "audio/wav".to_owned());
        Ok(SpeechAudio { bytes, mime_type })
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }
}
