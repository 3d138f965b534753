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
    /// Sent as the API's `prompt`: the words the speech is likely to hold.
    expected: std::sync::Mutex<Option<String>>,
}

impl OpenAiStt {
    pub fn new(client: OpenAiClient) -> Self {
        Self { client, expected: std::sync::Mutex::new(None) }
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
        let mut form = Form::new().part("file", file).text("model", self.client.model().to_owned()).text("response_format", "json");
        let expected = self.expected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(prompt) = expected {
            form = form.text("prompt", prompt);
        }
        let response = self.client.send(PATH, self.client.post(PATH).multipart(form)).await?;
        let transcription: Transcription = read_json(&self.client.shown(PATH), response).await?;
        Ok(transcription.text.trim().to_owned())
    }

    fn expect_words(&self, words: &[String]) {
        let prompt = (!words.is_empty()).then(|| format!("{}.", words.join(", ")));
        *self.expected.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = prompt;
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }
}
