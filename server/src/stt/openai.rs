use async_trait::async_trait;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{SpeechToText, SttError};
use crate::audio::AudioUpload;
use crate::backend::BackendInfo;
use crate::openai::{OpenAiClient, read_json};

const PATH: &str = "audio/transcriptions";

/// `POST /v1/audio/transcriptions` on OpenAI, speaches, or any server with the same API.
pub struct OpenAiStt {
    client: OpenAiClient,
}

impl OpenAiStt {
    pub fn new(client: OpenAiClient) -> Self {
        Self { client }
    }
}

#[derive(Deserialize)]
struct Transcription {
    text: String,
}

#[async_trait]
impl SpeechToText for OpenAiStt {
    async fn transcribe(&self, audio: &AudioUpload) -> Result<String, SttError> {
        // The file name's extension is how these APIs choose a decoder.
        let file = Part::stream(audio.bytes.clone())
            .file_name(format!("speech.{}", audio.format.extension()))
            .mime_str(audio.format.mime_type())
            .map_err(|e| crate::openai::transport_error(&self.client.shown(PATH), &e))?;
        let form = Form::new().part("file", file).text("model", self.client.model().to_owned()).text("response_format", "json");
        let response = self.client.send(PATH, self.client.post(PATH).multipart(form)).await?;
        let transcription: Transcription = read_json(&self.client.shown(PATH), response).await?;
        Ok(transcription.text.trim().to_owned())
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }
}
