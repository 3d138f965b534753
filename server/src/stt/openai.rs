use async_trait::async_trait;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{SpeechToText, SttError};
use crate::audio::AudioUpload;
use crate::backend::BackendInfo;
use crate::openai::{OpenAiClient, ProviderError};

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
        let expected = self.expected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        // A form is sent once: each try builds its own (the audio itself is shared, not copied).
        let form = || -> Result<Form, reqwest::Error> {
            // The file name's extension is how these APIs choose a decoder.
            let file = Part::stream(audio.bytes.clone())
                .file_name(format!("speech.{}", audio.format.extension()))
                .mime_str(audio.format.mime_type())?;
            let mut form = Form::new().part("file", file).text("model", self.client.model().to_owned()).text("response_format", "json");
            if let Some(prompt) = &expected {
                form = form.text("prompt", prompt.clone());
            }
            Ok(form)
        };
        let fetched = self.client.fetch(PATH, |request| Ok(request.multipart(form()?))).await?;
        let transcription: Transcription = fetched.json(&self.client.shown(PATH))?;
        Ok(transcription.text.trim().to_owned())
    }

    fn expect_words(&self, words: &[String]) {
        let prompt = (!words.is_empty()).then(|| format!("{}.", words.join(", ")));
        *self.expected.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = prompt;
    }

    fn info(&self) -> BackendInfo {
        self.client.info()
    }

    async fn reachable(&self) -> Result<(), ProviderError> {
        self.client.probe(crate::backend::PROBE_TIMEOUT).await
    }
}
