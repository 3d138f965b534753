//! Transcribing during the user's pauses. A spoken question ends in silence: the client ends the turn a few
//! tenths of a second after the last word (hands-free mode waits for 0.8 s of it). The server sees the pause
//! in the raw samples and transcribes what it has meanwhile; when the turn ends with nothing said since, that
//! transcript is the final one and the answer starts at once. Speech after the pause makes it stale: it is
//! dropped, and the next pause starts another. Each finished attempt is also sent to the client as a
//! provisional transcript. Only raw PCM16 can be watched this way; containers are transcribed at the end.

use std::sync::Arc;

use tokio_util::task::AbortOnDropHandle;

use super::pauses::PauseDetector;
use super::recording::Recording;
use crate::pipeline::{EarlyTranscript, Pipeline};
use crate::stt::SttError;

pub struct EarlyTranscription {
    pipeline: Arc<Pipeline>,
    pauses: PauseDetector,
    attempt: Option<Attempt>,
}

struct Attempt {
    /// Where the speech it transcribes ends, in samples.
    speech_end: usize,
    state: AttemptState,
}

enum AttemptState {
    Running(AbortOnDropHandle<Result<String, SttError>>),
    Finished(Result<String, SttError>),
}

impl EarlyTranscription {
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline, pauses: PauseDetector::default(), attempt: None }
    }

    /// Reads a frame that `recording` now ends with. Starts transcribing at a pause; drops an attempt that
    /// speech after its pause made stale.
    pub fn observe(&mut self, frame: &[u8], recording: &Recording) {
        self.pauses.push(frame);
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
        let task = tokio::spawn(transcription);
        tracing::debug!(speech_end, "a pause: transcribing early");
        self.attempt = Some(Attempt { speech_end, state: AttemptState::Running(AbortOnDropHandle::new(task)) });
    }

    /// The next provisional transcript, once the running attempt has one; waits forever otherwise (for
    /// `select!`; stopping the wait loses nothing).
    pub async fn next_partial(&mut self) -> String {
        if let Some(Attempt { state, .. }) = &mut self.attempt
            && let AttemptState::Running(task) = state
        {
            let result = task.await.unwrap_or_else(|e| Err(stopped(&e)));
            let partial = result.as_ref().ok().filter(|text| !text.trim().is_empty()).cloned();
            *state = AttemptState::Finished(result);
            if let Some(text) = partial {
                return text;
            }
        }
        std::future::pending().await
    }

    /// At the end of the turn: the early transcript when nothing was said after the pause it covers.
    pub fn finish(mut self) -> Option<EarlyTranscript> {
        let attempt = self.attempt.take()?;
        if Some(attempt.speech_end) != self.pauses.speech_end() {
            return None;
        }
        match attempt.state {
            AttemptState::Running(task) => Some(Box::pin(async move { task.await.unwrap_or_else(|e| Err(stopped(&e))) })),
            AttemptState::Finished(result) => Some(Box::pin(std::future::ready(result))),
        }
    }
}

fn stopped(error: &tokio::task::JoinError) -> SttError {
    SttError::Inference(format!("the transcription task stopped: {error}"))
}
