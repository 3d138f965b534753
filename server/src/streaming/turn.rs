//! A turn answered in a task of its own, so the socket keeps reading (an interrupt must get through while the
//! model talks) and so aborting the task stops the whole turn: generation, synthesis, storage.

use std::sync::Arc;
use std::time::Instant;

use parlance_shared::{ServerEvent, SessionId};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use crate::error::ApiError;
use crate::events::EventSink;
use crate::pipeline::{Conversation, Pipeline, Speech, TurnInput};

pub struct RunningTurn {
    pub session_id: SessionId,
    /// The question as far as it is known: a typed one at once, a spoken one once transcribed.
    pub question: Option<String>,
    /// The text of each audio chunk sent to the client, by sequence.
    pub chunks: Vec<String>,
    events: mpsc::UnboundedReceiver<ServerEvent>,
    task: AbortOnDropHandle<()>,
}

impl RunningTurn {
    pub fn spawn(pipeline: Arc<Pipeline>, conversation: Conversation, input: TurnInput, speech: Speech, ended_at: Instant) -> Self {
        let session_id = conversation.id.clone();
        let question = match &input {
            TurnInput::Text(text) => Some(text.trim().to_owned()),
            TurnInput::Voice(_) | TurnInput::Transcribing(_) => None,
        };
        let (sink, events) = EventSink::channel();
        let task = tokio::spawn(async move {
            let last = match pipeline.run_turn(conversation, input, speech, &sink, ended_at).await {
                Ok(turn) => ServerEvent::Done {
                    session_id: turn.session_id,
                    answer: turn.answer,
                    sources: turn.sources,
                    timings: turn.timings,
                    speech_error: turn.speech_error,
                },
                Err(error) => {
                    let error = ApiError::from(error);
                    tracing::warn!(%error, code = error.code().as_str(), "streamed turn failed");
                    ServerEvent::Error { error: error.body() }
                }
            };
            sink.emit(last);
        });
        Self { session_id, question, chunks: Vec::new(), events, task: AbortOnDropHandle::new(task) }
    }

    /// The turn's next event; `None` once it has ended (after its `done` or `error`).
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        let event = self.events.recv().await?;
        match &event {
            ServerEvent::Transcript { text, is_final: true } => self.question = Some(text.clone()),
            ServerEvent::AudioChunk { text, .. } => self.chunks.push(text.clone()),
            _ => {}
        }
        Some(event)
    }

    /// Stops the turn and waits until it has stopped: when this returns, no model or synthesis work of the
    /// turn is left running. Events not yet sent are dropped: the client never saw them.
    pub async fn cancel(self) -> CancelledTurn {
        let Self { session_id, question, chunks, mut events, task } = self;
        task.abort();
        // Cancellation takes effect at the task's next await point; waiting makes "stopped" true.
        let _ = task.await;
        // The turn may have finished (and been stored) just before the interrupt arrived, with audio the client
        // never got: it counts as not played when the stored answer is cut.
        let mut completed = false;
        let mut unsent = Vec::new();
        while let Ok(event) = events.try_recv() {
            match event {
                ServerEvent::Done { .. } => completed = true,
                ServerEvent::AudioChunk { text, .. } => unsent.push(text),
                _ => {}
            }
        }
        CancelledTurn { session_id, question, chunks, unsent, completed }
    }
}

/// What the client saw of a turn it interrupted.
pub struct CancelledTurn {
    pub session_id: SessionId,
    pub question: Option<String>,
    pub chunks: Vec<String>,
    /// The text of the audio chunks made but not sent before the interrupt.
    pub unsent: Vec<String>,
    /// The whole answer was generated and stored before the interrupt.
    pub completed: bool,
}
