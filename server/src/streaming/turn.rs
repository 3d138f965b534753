//! A turn answered in a task of its own, so the socket keeps reading (an interrupt must get through while the
//! model talks) and so aborting the task stops the whole turn: generation, synthesis, storage.

use std::sync::Arc;
use std::time::Instant;

use parlance_shared::{ServerEvent, SessionId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use super::playback::{Playback, clip_length};
use crate::events::EventSink;
use crate::pipeline::{Conversation, Pipeline, Speech, Turn, TurnEnd, TurnError, TurnInput, TurnProgress};

pub struct RunningTurn {
    pub session_id: SessionId,
    /// What the turn has gathered, for remembering it if it is cut off.
    pub progress: Arc<TurnProgress>,
    /// The text of each audio chunk sent to the client, by sequence.
    pub chunks: Vec<String>,
    /// When the client will have played each chunk.
    pub playback: Playback,
    /// The silence heard after the user's speech before the turn ended (raw streams only): added to the
    /// time to first audio, it gives that time from the end of speech.
    pub silence_before_ms: Option<u64>,
    /// The answer's text handed out so far (since the last tool call: text before one is a lead-in).
    pub written: String,
    events: mpsc::UnboundedReceiver<ServerEvent>,
    /// Sent once the turn's events have all been emitted.
    result: oneshot::Receiver<Result<Turn, TurnError>>,
    task: AbortOnDropHandle<()>,
}

/// What a running turn hands out: its events in order, then how it ended.
pub enum Progress {
    Event(ServerEvent),
    Finished(Result<Turn, TurnError>),
}

impl RunningTurn {
    pub fn spawn(pipeline: Arc<Pipeline>, conversation: Conversation, input: TurnInput, speech: Speech, ended: TurnEnd) -> Self {
        let session_id = conversation.id.clone();
        let progress = Arc::new(TurnProgress::new(&input));
        let (sink, events) = EventSink::channel();
        let (finished, result) = oneshot::channel();
        let gathered = Arc::clone(&progress);
        // In the socket's span: the turn's log lines name the socket too.
        let task = tokio::spawn(
            async move {
                let outcome = pipeline.run_turn(conversation, input, speech, &sink, &gathered, ended).await;
                // Nobody waits any more when the socket has gone.
                let _ = finished.send(outcome);
            }
            .in_current_span(),
        );
        Self {
            session_id,
            progress,
            chunks: Vec::new(),
            playback: Playback::default(),
            silence_before_ms: None,
            written: String::new(),
            events,
            result,
            task: AbortOnDropHandle::new(task),
        }
    }

    /// The turn's next event, then its end; `None` after that (or if the task died without an end).
    pub async fn next_event(&mut self) -> Option<Progress> {
        // Every event is emitted before the result is sent, so events are handed out first and the end last.
        let progress = tokio::select! {
            biased;
            Some(event) = self.events.recv() => Progress::Event(event),
            result = &mut self.result => match result {
                Ok(result) => Progress::Finished(result),
                // The task ended without a result: it panicked.
                Err(_) => return None,
            },
        };
        match &progress {
            Progress::Event(ServerEvent::AudioChunk { text, audio, .. }) => {
                self.chunks.push(text.clone());
                self.playback.push(Instant::now(), clip_length(audio, text));
            }
            Progress::Event(ServerEvent::AnswerDelta { text }) => self.written.push_str(text),
            Progress::Event(ServerEvent::ToolCall { .. }) => self.written.clear(),
            _ => {}
        }
        Some(progress)
    }

    /// Stops the turn and waits until it has stopped: when this returns, no model or synthesis work of the
    /// turn is left running. Events not yet sent are dropped: the client never saw them.
    pub async fn cancel(self) -> CancelledTurn {
        let Self { session_id, progress, chunks, written, mut events, mut result, task, .. } = self;
        task.abort();
        // Cancellation takes effect at the task's next await point; waiting makes "stopped" true.
        let _ = task.await;
        // The turn may have finished (and been stored) just before the interrupt arrived, with audio the client
        // never got: it counts as not played when the stored answer is cut.
        let completed = matches!(result.try_recv(), Ok(Ok(_)));
        let mut unsent = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let ServerEvent::AudioChunk { text, .. } = event {
                unsent.push(text);
            }
        }
        CancelledTurn { session_id, progress, chunks, written, unsent, completed }
    }
}

/// What the client saw of a turn it interrupted.
pub struct CancelledTurn {
    pub session_id: SessionId,
    pub progress: Arc<TurnProgress>,
    pub chunks: Vec<String>,
    /// The answer's text the client was sent.
    pub written: String,
    /// The text of the audio chunks made but not sent before the interrupt.
    pub unsent: Vec<String>,
    /// The whole answer was generated and stored before the interrupt.
    pub completed: bool,
}
