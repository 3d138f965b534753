//! Transcribing during the user's pauses. A spoken question ends in silence: the client ends the turn a few
//! tenths of a second after the last word (hands-free mode waits for 0.8 s of it). The server sees the pause
//! in the raw samples and transcribes what it has meanwhile; when the turn ends with nothing said since, that
//! transcript is the final one and the answer starts at once. Speech after the pause makes it stale: it is
//! dropped, and the next pause starts another. Each finished attempt is also sent to the client as a
//! provisional transcript. Only raw PCM16 can be watched this way; containers are transcribed at the end.
//!
//! When the server ends turns itself (the client's `turn_detection`), each attempt also asks the language
//! model how complete the transcript sounds, right after transcribing: a complete question ends the turn
//! after a short silence, anything else after a long one.

use std::sync::Arc;

use tokio_util::task::AbortOnDropHandle;

use super::pauses::{PauseDetector, Pauses};
use super::recording::Recording;
use crate::pipeline::{Conversation, EarlyTranscript, Pipeline};
use crate::stt::SttError;
use crate::vad::VoiceEvent;

pub struct EarlyTranscription {
    pipeline: Arc<Pipeline>,
    pauses: Pauses,
    attempt: Option<Attempt>,
    /// The conversation whose next turn this is, when the model should judge whether the turn is over.
    judged_in: Option<Conversation>,
}

struct Attempt {
    /// Where the speech it transcribes ends, in samples.
    speech_end: usize,
    state: AttemptState,
}

/// A transcript, and how likely the model thinks it is the whole turn (when asked and able to tell).
type Heard = (Result<String, SttError>, Option<f32>);

enum AttemptState {
    Running(AbortOnDropHandle<Heard>),
    Finished(Result<String, SttError>, Option<f32>),
}

impl EarlyTranscription {
    /// `judged_in`: ask the model whether each early transcript ends the turn (see the module's comment).
    pub fn new(pipeline: Arc<Pipeline>, judged_in: Option<Conversation>) -> Self {
        let pauses = pipeline.voice_activity().map_or_else(|| Pauses::Energy(PauseDetector::default()), Pauses::Voice);
        Self { pipeline, pauses, attempt: None, judged_in }
    }

    /// Reads a frame that `recording` now ends with. Starts transcribing at a pause; drops an attempt that
    /// speech after its pause made stale. Returns where speech started and stopped in the frame.
    pub fn observe(&mut self, frame: &[u8], recording: &Recording) -> Vec<VoiceEvent> {
        let events = self.pauses.push(frame);
        self.transcribe_at_pause(recording);
        events
    }

    fn transcribe_at_pause(&mut self, recording: &Recording) {
        let Some(speech_end) = self.pauses.speech_end() else { return };
        if self.attempt.as_ref().is_some_and(|attempt| attempt.speech_end != speech_end) {
            tracing::debug!(speech_end, "speech after the pause: the early transcript is stale");
            // Dropping aborts the task; a local model already transcribing finishes that clip first (it cannot
            // be stopped mid-way), so the next transcription may wait for it: at most one short clip.
            self.attempt = None;
        }
        if self.attempt.is_some() || !self.pauses.paused() {
            return;
        }
        let audio = match recording.snapshot() {
            Ok(audio) => audio,
            Err(error) => return tracing::debug!(%error, "no early transcript"),
        };
        let Some(transcription) = self.pipeline.transcription(audio) else { return };
        let (pipeline, judged_in) = (Arc::clone(&self.pipeline), self.judged_in.clone());
        let task = tokio::spawn(async move {
            let text = transcription.await;
            let complete = match (&text, &judged_in) {
                (Ok(text), Some(conversation)) if !text.trim().is_empty() => pipeline.end_of_turn(conversation, text).await,
                _ => None,
            };
            (text, complete)
        });
        tracing::debug!(speech_end, "a pause: transcribing early");
        self.attempt = Some(Attempt { speech_end, state: AttemptState::Running(AbortOnDropHandle::new(task)) });
    }

    /// The next provisional transcript, once the running attempt has one; waits forever otherwise (for
    /// `select!`; stopping the wait loses nothing).
    pub async fn next_partial(&mut self) -> String {
        if let Some(Attempt { state, .. }) = &mut self.attempt
            && let AttemptState::Running(task) = state
        {
            let (result, complete) = task.await.unwrap_or_else(|e| (Err(stopped(&e)), None));
            let partial = result.as_ref().ok().filter(|text| !text.trim().is_empty()).cloned();
            *state = AttemptState::Finished(result, complete);
            if let Some(text) = partial {
                return text;
            }
        }
        std::future::pending().await
    }

    /// Samples of silence since the speech stopped (0 while speaking).
    pub fn silence(&self) -> usize {
        self.pauses.silence()
    }

    /// Where the last speech stopped, in samples.
    pub fn speech_end(&self) -> Option<usize> {
        self.pauses.speech_end()
    }

    /// How likely the model judged the speech so far to be the whole turn: only once the transcript of
    /// everything said is in (an attempt for an earlier pause says nothing about the words after it).
    pub fn completeness(&self) -> Option<f32> {
        match &self.attempt {
            Some(Attempt { speech_end, state: AttemptState::Finished(Ok(_), complete) })
                if Some(*speech_end) == self.pauses.speech_end() =>
            {
                *complete
            }
            _ => None,
        }
    }

    /// At the end of the turn: the early transcript when nothing was said after the pause it covers.
    pub fn finish(mut self) -> Option<EarlyTranscript> {
        let attempt = self.attempt.take()?;
        if Some(attempt.speech_end) != self.pauses.speech_end() {
            return None;
        }
        match attempt.state {
            AttemptState::Running(task) => Some(Box::pin(async move { task.await.map_or_else(|e| Err(stopped(&e)), |(text, _)| text) })),
            AttemptState::Finished(result, _) => Some(Box::pin(std::future::ready(result))),
        }
    }
}

fn stopped(error: &tokio::task::JoinError) -> SttError {
    SttError::Inference(format!("the transcription task stopped: {error}"))
}
