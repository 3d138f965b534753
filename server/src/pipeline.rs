//! One turn of conversation, spoken or typed: transcribe -> recall the conversation -> let the agent answer
//! -> speak the answer -> remember both lines. The HTTP routes and (later) the streaming socket share it.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use chrono::Utc;
use parlance_shared::{AudioClip, ErrorBody, HistoryTurn, Role, SessionId, Stage, StageTimings, TurnResponse};

use crate::agent::{Agent, AgentError};
use crate::audio::AudioUpload;
use crate::events::EventSink;
use crate::sessions::{SessionError, SessionStore, new_session_id};
use crate::stt::{SpeechToText, SttError};
use crate::tts::{TextToSpeech, TtsError};

pub struct Pipeline {
    pub stt: Option<Arc<dyn SpeechToText>>,
    pub agent: Option<Agent>,
    pub tts: Option<Arc<dyn TextToSpeech>>,
    pub sessions: Arc<dyn SessionStore>,
    pub history_turns: usize,
    pub max_question_chars: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("{0}")]
    InvalidQuestion(String),
    #[error("the {0:?} stage is not configured")]
    NotConfigured(Stage),
    #[error("unknown session {0}")]
    SessionNotFound(SessionId),
    #[error("the recording holds no speech")]
    NoSpeech,
    #[error(transparent)]
    Stt(#[from] SttError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Sessions(#[from] SessionError),
}

/// A session the turn belongs to, with what it remembers.
struct Conversation {
    id: SessionId,
    history: Vec<HistoryTurn>,
}

impl Pipeline {
    pub async fn text_turn(
        &self,
        session_id: Option<SessionId>,
        text: &str,
        speak: bool,
        events: &EventSink,
    ) -> Result<TurnResponse, TurnError> {
        let started = Instant::now();
        let question = self.check_question(text)?;
        let conversation = self.open(session_id).await?;
        self.answer(started, conversation, question, StageTimings::default(), speak, events).await
    }

    pub async fn voice_turn(
        &self,
        session_id: Option<SessionId>,
        audio: &AudioUpload,
        events: &EventSink,
    ) -> Result<TurnResponse, TurnError> {
        let started = Instant::now();
        let stt = self.stt.as_ref().ok_or(TurnError::NotConfigured(Stage::Stt))?;
        // Checked before transcribing, so a stale session id costs no model time.
        let conversation = self.open(session_id).await?;

        let stt_started = Instant::now();
        let transcript = stt.transcribe(audio).await?;
        let timings = StageTimings { stt_ms: elapsed_ms(stt_started), ..StageTimings::default() };
        tracing::info!(stt_ms = timings.stt_ms, format = %audio.format, bytes = audio.bytes.len(), "transcribed");
        if !has_words(&transcript) {
            return Err(TurnError::NoSpeech);
        }
        events.emit(parlance_shared::ServerEvent::Transcript { text: transcript.clone(), is_final: true });
        let question = self.check_question(&transcript)?;
        self.answer(started, conversation, question, timings, true, events).await
    }

    fn check_question<'a>(&self, text: &'a str) -> Result<&'a str, TurnError> {
        let question = text.trim();
        if question.is_empty() {
            return Err(TurnError::InvalidQuestion("the question is empty; type or say something".into()));
        }
        let length = question.chars().count();
        if length > self.max_question_chars {
            return Err(TurnError::InvalidQuestion(format!(
                "the question is {length} characters long; the limit is {}",
                self.max_question_chars
            )));
        }
        Ok(question)
    }

    async fn open(&self, session_id: Option<SessionId>) -> Result<Conversation, TurnError> {
        match session_id {
            None => Ok(Conversation { id: new_session_id(), history: Vec::new() }),
            Some(id) => match self.sessions.history(&id).await? {
                Some(history) => Ok(Conversation { id, history }),
                None => Err(TurnError::SessionNotFound(id)),
            },
        }
    }

    async fn answer(
        &self,
        started: Instant,
        conversation: Conversation,
        question: &str,
        mut timings: StageTimings,
        speak: bool,
        events: &EventSink,
    ) -> Result<TurnResponse, TurnError> {
        let agent = self.agent.as_ref().ok_or(TurnError::NotConfigured(Stage::Llm))?;
        let recent = &conversation.history[conversation.history.len().saturating_sub(self.history_turns)..];

        let llm_started = Instant::now();
        let answer = agent.answer(recent, question, events).await?;
        timings.llm_ms = elapsed_ms(llm_started);
        tracing::info!(llm_ms = timings.llm_ms, tools = answer.tool_calls.len(), "answered");

        let (audio, speech_error) = if speak { self.speak(&answer.text, &mut timings).await } else { (None, None) };

        let now = Utc::now();
        let user_line = HistoryTurn {
            role: Role::User,
            text: question.to_owned(),
            created_at: now,
            sources: vec![],
            tool_calls: vec![],
            interrupted: false,
        };
        let assistant_line = HistoryTurn {
            role: Role::Assistant,
            text: answer.text.clone(),
            created_at: now,
            sources: answer.sources.clone(),
            tool_calls: answer.tool_calls.clone(),
            interrupted: false,
        };
        self.sessions.append(&conversation.id, vec![user_line, assistant_line]).await?;

        timings.total_ms = elapsed_ms(started);
        Ok(TurnResponse {
            session_id: conversation.id,
            transcript: question.to_owned(),
            answer: answer.text,
            audio,
            speech_error,
            sources: answer.sources,
            tool_calls: answer.tool_calls,
            timings,
        })
    }

    /// A failure to speak keeps the written answer: the user still gets it, with a note why there is no audio.
    async fn speak(&self, text: &str, timings: &mut StageTimings) -> (Option<AudioClip>, Option<ErrorBody>) {
        if text.is_empty() {
            return (None, None);
        }
        let Some(tts) = &self.tts else {
            return (None, Some(crate::error::ApiError::from(TurnError::NotConfigured(Stage::Tts)).body()));
        };
        let tts_started = Instant::now();
        let result = tts.synthesize(text).await;
        timings.tts_ms = elapsed_ms(tts_started);
        match result {
            Ok(speech) => {
                let data_base64 = base64::engine::general_purpose::STANDARD.encode(&speech.bytes);
                (Some(AudioClip { mime_type: speech.mime_type, data_base64 }), None)
            }
            Err(error) => {
                let TtsError::Provider(provider) = &error;
                tracing::warn!(%error, "speaking the answer failed; sending text only");
                (None, Some(crate::error::provider_error_body(Stage::Tts, provider)))
            }
        }
    }
}

/// Speech recognisers return "", " ", "." or "[BLANK_AUDIO]" for silence: none of these is a question.
fn has_words(transcript: &str) -> bool {
    let without_markers: String = {
        let mut kept = String::new();
        let mut depth = 0usize;
        for c in transcript.chars() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => kept.push(c),
                _ => {}
            }
        }
        kept
    };
    without_markers.chars().any(char::is_alphanumeric)
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::has_words;

    #[test]
    fn silence_markers_are_not_words() {
        for silence in ["", "  ", ".", "[BLANK_AUDIO]", " (silence) ", "...", "[Music]"] {
            assert!(!has_words(silence), "{silence:?} counted as speech");
        }
        for speech in ["hi", "What time is it?", "[laughs] okay", "42"] {
            assert!(has_words(speech), "{speech:?} not counted as speech");
        }
    }
}
