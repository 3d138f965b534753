//! Transcribing during the user's pauses. A spoken question ends in silence: the client ends the turn a few
//! tenths of a second after the last word (hands-free mode waits for 0.8 s of it). The server sees the pause
//! in the raw samples and transcribes what it has meanwhile; when the turn ends with nothing said since, that
//! transcript is the final one and the answer starts at once. Speech after the pause makes it stale: it is
//! dropped, and the next pause starts another. Each finished attempt is also sent to the client as a
//! provisional transcript. Only raw PCM16 can be watched this way; containers are transcribed at the end.
//!
//! When the server ends turns itself (the client's `turn_detection`), each attempt also asks the language
//! model how complete the transcript sounds, right after transcribing: a complete question ends the turn
//! after a short silence, anything else after a long one. The transcript is handed out before the judgement
//! comes, so the answer can start meanwhile (see `speculation`).

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

enum AttemptState {
    Transcribing(AbortOnDropHandle<Result<String, SttError>>),
    /// The model is asked how likely the transcript is the whole turn.
    Judging(String, AbortOnDropHandle<Option<f32>>),
    /// The transcript, and the model's judgement (when asked and able to tell).
    Finished(Result<String, SttError>, Option<f32>),
}

/// What an attempt brought.
pub enum Heard {
    /// The words said up to the pause (not empty).
    Transcript(String),
    /// The model's judgement of them came: [`EarlyTranscription::completeness`] has it.
    Judged,
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
        tracing::debug!(speech_end, "a pause: transcribing early");
        let task = AbortOnDropHandle::new(tokio::spawn(transcription));
        self.attempt = Some(Attempt { speech_end, state: AttemptState::Transcribing(task) });
    }

    /// What the running attempt brings next: its transcript (unless empty), then the model's judgement of it
    /// (when asked). Waits forever when there is nothing to wait for (for `select!`; stopping the wait loses
    /// nothing).
    pub async fn next(&mut self) -> Heard {
        let Some(Attempt { state, .. }) = &mut self.attempt else { return std::future::pending().await };
        match state {
            AttemptState::Transcribing(task) => {
                let result = task.await.unwrap_or_else(|e| Err(stopped(&e)));
                let text = result.as_ref().ok().filter(|text| !text.trim().is_empty()).cloned();
                *state = match (&text, &self.judged_in) {
                    (Some(text), Some(conversation)) => {
                        let (pipeline, conversation, heard) = (Arc::clone(&self.pipeline), conversation.clone(), text.clone());
                        let judging = tokio::spawn(async move { pipeline.end_of_turn(&conversation, &heard).await });
                        AttemptState::Judging(text.clone(), AbortOnDropHandle::new(judging))
                    }
                    _ => AttemptState::Finished(result, None),
                };
                match text {
                    Some(text) => Heard::Transcript(text),
                    None => std::future::pending().await,
                }
            }
            AttemptState::Judging(text, task) => {
                let complete = task.await.unwrap_or(None);
                *state = AttemptState::Finished(Ok(std::mem::take(text)), complete);
                Heard::Judged
            }
            AttemptState::Finished(..) => std::future::pending().await,
        }
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

    /// Whether the model is asked to judge each transcript.
    pub fn judges(&self) -> bool {
        self.judged_in.is_some()
    }

    /// The transcript of everything said so far, once there is one.
    pub fn transcript(&self) -> Option<&str> {
        match &self.attempt {
            Some(Attempt { speech_end, state: AttemptState::Finished(Ok(text), _) | AttemptState::Judging(text, _) })
                if Some(*speech_end) == self.pauses.speech_end() =>
            {
                Some(text)
            }
            _ => None,
        }
    }

    /// Where the speech ends that the finished attempt transcribed, when nothing was said after it.
    pub fn covered_speech_end(&self) -> Option<usize> {
        self.transcript().and(self.pauses.speech_end())
    }

    /// At the end of the turn: the early transcript when nothing was said after the pause it covers.
    pub fn finish(mut self) -> Option<EarlyTranscript> {
        let attempt = self.attempt.take()?;
        if Some(attempt.speech_end) != self.pauses.speech_end() {
            return None;
        }
        match attempt.state {
            AttemptState::Transcribing(task) => Some(Box::pin(async move { task.await.unwrap_or_else(|e| Err(stopped(&e))) })),
            AttemptState::Judging(text, _) => Some(Box::pin(std::future::ready(Ok(text)))),
            AttemptState::Finished(result, _) => Some(Box::pin(std::future::ready(result))),
        }
    }
}

fn stopped(error: &tokio::task::JoinError) -> SttError {
    SttError::Inference(format!("the transcription task stopped: {error}"))
}
