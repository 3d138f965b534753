//! One socket's state machine: idle -> listening (audio frames arrive) -> answering (a turn task runs) -> idle.
//! Every message gets a reaction; a message that makes no sense in the current state gets a [`SocketError`]
//! reply (the edge sends it as an `error` event saying what to send instead), and the socket stays open.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, SessionId, TurnState};

use super::early::EarlyTranscription;
use super::recording::{Recording, RecordingError};
use super::turn::{CancelledTurn, Progress, RunningTurn};
use crate::access::Caller;
use crate::budget::TurnBudget;
use crate::pipeline::{Conversation, Pipeline, Speech, Turn, TurnError, TurnInput, TurnProgress};
use crate::sessions::{self, SessionStore};

/// What the connection answers: protocol events as they are, and two things the edge puts into the wire's
/// words (a finished turn, and a failure).
#[derive(Debug)]
pub enum Reply {
    Event(ServerEvent),
    /// The turn's answer is complete: sent as `done`.
    Done(Turn),
    /// Sent as an `error` event; the socket stays open.
    Failed(SocketError),
}

/// Why a message or a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("too many turns from this client; another may start in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The turn failed, or the conversation it names could not be opened.
    #[error(transparent)]
    Turn(#[from] TurnError),
    /// What was heard of an interrupted answer could not be stored.
    #[error("the interrupted answer could not be stored: {0}")]
    NotStored(#[source] TurnError),
}

/// Mistakes in what a client sends; each becomes an `invalid_request` error event.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("that message is not one Parlance understands ({0}); send JSON such as {{\"type\": \"start\", \"encoding\": \"webm\"}}")]
    Malformed(String),
    #[error("audio arrived outside a turn; send a `start` message before the audio")]
    AudioOutsideTurn,
    #[error("a turn is already in progress; send `end_turn` or `interrupt` first")]
    Busy,
    #[error("there is no recording to end; send `start` and the audio first")]
    NotListening,
}

enum Phase {
    Idle,
    Listening { recording: Recording, conversation: Conversation, early: Option<EarlyTranscription> },
    Answering(RunningTurn),
}

/// The audio chunks of the last finished turn: the client may still be playing them when it interrupts.
struct SpokenTurn {
    session_id: SessionId,
    chunks: Vec<String>,
    /// What the turn gathered (its question, and its audio for the archive).
    progress: Arc<TurnProgress>,
}

pub struct Connection {
    pipeline: Arc<Pipeline>,
    budget: TurnBudget,
    client: IpAddr,
    max_audio_bytes: usize,
    session: Option<SessionId>,
    phase: Phase,
    last_spoken: Option<SpokenTurn>,
    /// Stray audio is reported once per turn, not once per frame.
    reported_stray_audio: bool,
    /// Who opened the socket: the conversations it may continue, and whose new ones are.
    caller: Caller,
    owners: Option<Arc<dyn SessionStore>>,
}

impl Connection {
    pub fn new(pipeline: Arc<Pipeline>, budget: TurnBudget, client: IpAddr, max_audio_bytes: usize) -> Self {
        Self {
            pipeline,
            budget,
            client,
            max_audio_bytes,
            session: None,
            phase: Phase::Idle,
            last_spoken: None,
            reported_stray_audio: false,
            caller: Caller::Anyone,
            owners: None,
        }
    }

    /// A connection of a signed-in `caller`: it continues only their conversations, and the ones it starts
    /// are recorded as theirs in `owners`.
    pub fn for_caller(self, caller: Caller, owners: Arc<dyn SessionStore>) -> Self {
        Self { caller, owners: Some(owners), ..self }
    }

    /// Whether a turn is being answered (or waits in line to be): the client is waiting, not silent.
    pub fn is_answering(&self) -> bool {
        matches!(self.phase, Phase::Answering(_))
    }

    /// A JSON text frame; returns what to send back.
    pub async fn on_message(&mut self, text: &str) -> Vec<Reply> {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(error) => return vec![failed(ProtocolError::Malformed(error.to_string()))],
        };
        let result = match message {
            ClientMessage::Start { session_id, encoding } => self.start(session_id, encoding).await,
            ClientMessage::EndTurn => self.end_turn(),
            ClientMessage::Text { session_id, text, speak } => self.text(session_id, text, speak).await,
            ClientMessage::Interrupt { played_through } => self.interrupt(played_through).await,
            ClientMessage::NewSession => self.new_session(),
        };
        result.unwrap_or_else(|error| vec![Reply::Failed(error)])
    }

    /// A binary frame: audio of the turn being recorded.
    pub fn on_audio(&mut self, frame: &[u8]) -> Vec<Reply> {
        match &mut self.phase {
            Phase::Listening { recording, early, .. } => match recording.push(frame) {
                Ok(()) => {
                    if let Some(early) = early {
                        early.observe(frame, recording);
                    }
                    vec![]
                }
                Err(error) => vec![failed(error)],
            },
            Phase::Idle | Phase::Answering(_) if !self.reported_stray_audio => {
                self.reported_stray_audio = true;
                vec![failed(ProtocolError::AudioOutsideTurn)]
            }
            Phase::Idle | Phase::Answering(_) => vec![],
        }
    }

    /// The running turn's next event, or while listening a provisional transcript; waits forever when there
    /// is none (for use in `select!`). The socket is idle again as soon as the turn's end (its answer or its
    /// failure) is handed out.
    pub async fn next_turn_event(&mut self) -> Option<Reply> {
        let turn = match &mut self.phase {
            Phase::Answering(turn) => turn,
            Phase::Listening { early: Some(early), conversation, .. } => {
                let text = early.next_partial().await;
                // Most often the question is complete: the model reads it while the user's silence runs out.
                self.pipeline.prepare(conversation, &text);
                return Some(Reply::Event(ServerEvent::Transcript { text, is_final: false }));
            }
            Phase::Listening { .. } | Phase::Idle => return std::future::pending().await,
        };
        match turn.next_event().await {
            Some(Progress::Event(event)) => Some(Reply::Event(event)),
            Some(Progress::Finished(Ok(answered))) => {
                self.last_spoken = Some(SpokenTurn {
                    session_id: turn.session_id.clone(),
                    chunks: turn.chunks.clone(),
                    progress: Arc::clone(&turn.progress),
                });
                // Idle before the client can react to `done`: its next `start` must not find the turn still running.
                self.phase = Phase::Idle;
                Some(Reply::Done(answered))
            }
            Some(Progress::Finished(Err(error))) => {
                self.phase = Phase::Idle;
                Some(failed(error))
            }
            None => {
                self.phase = Phase::Idle;
                None
            }
        }
    }

    async fn start(&mut self, session_id: Option<SessionId>, encoding: AudioEncoding) -> Result<Vec<Reply>, SocketError> {
        self.ensure_idle()?;
        self.take_turn_budget()?;
        let conversation = self.conversation(session_id).await?;
        let early =
            (encoding == AudioEncoding::Pcm16 && self.pipeline.hears()).then(|| EarlyTranscription::new(Arc::clone(&self.pipeline)));
        self.phase = Phase::Listening { recording: Recording::new(encoding, self.max_audio_bytes), conversation, early };
        self.begin_turn();
        Ok(vec![Reply::Event(ServerEvent::status(TurnState::Listening))])
    }

    fn end_turn(&mut self) -> Result<Vec<Reply>, SocketError> {
        let ended_at = Instant::now();
        let (recording, conversation, early) = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Listening { recording, conversation, early } => (recording, conversation, early),
            other => {
                self.phase = other;
                return Err(ProtocolError::NotListening.into());
            }
        };
        if recording.overflowed() {
            // Already reported when the limit was crossed; the turn is abandoned.
            return Ok(vec![idle()]);
        }
        let input = match early.and_then(EarlyTranscription::finish) {
            Some(transcript) => {
                // Only the archive still wants the recording: speech-to-text has read it.
                let recording = if self.pipeline.archives() { recording.finish().ok() } else { None };
                TurnInput::Transcribing { transcript, recording }
            }
            None => TurnInput::Voice(recording.finish()?),
        };
        let turn = RunningTurn::spawn(Arc::clone(&self.pipeline), conversation, input, Speech::Sentences, ended_at);
        self.phase = Phase::Answering(turn);
        Ok(vec![])
    }

    async fn text(&mut self, session_id: Option<SessionId>, text: String, speak: bool) -> Result<Vec<Reply>, SocketError> {
        let ended_at = Instant::now();
        self.ensure_idle()?;
        self.take_turn_budget()?;
        let conversation = self.conversation(session_id).await?;
        self.begin_turn();
        let speech = if speak { Speech::Sentences } else { Speech::Off };
        let turn = RunningTurn::spawn(Arc::clone(&self.pipeline), conversation, TurnInput::Text(text), speech, ended_at);
        self.phase = Phase::Answering(turn);
        Ok(vec![])
    }

    async fn interrupt(&mut self, played_through: Option<u32>) -> Result<Vec<Reply>, SocketError> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => self.trim_spoken_turn(played_through).await,
            Phase::Listening { .. } => Ok(vec![idle()]),
            Phase::Answering(turn) => {
                let asked = Instant::now();
                let cancelled = turn.cancel().await;
                tracing::info!(
                    cancel_ms = asked.elapsed().as_secs_f64() * 1000.0,
                    chunks_sent = cancelled.chunks.len(),
                    "turn interrupted"
                );
                if cancelled.completed {
                    let chunks = [cancelled.chunks, cancelled.unsent].concat();
                    self.last_spoken = Some(SpokenTurn { session_id: cancelled.session_id, chunks, progress: cancelled.progress });
                    return self.trim_spoken_turn(played_through).await;
                }
                self.keep_played_part(cancelled, played_through).await
            }
        }
    }

    /// An answer cut off while it was generated: the question and the played part are remembered.
    async fn keep_played_part(&mut self, turn: CancelledTurn, played_through: Option<u32>) -> Result<Vec<Reply>, SocketError> {
        let kept_answer = played_text(&turn.chunks, played_through);
        let played = played_count(played_through).min(turn.chunks.len());
        self.pipeline.remember_interrupted(&turn.session_id, &turn.progress, &kept_answer, played).await.map_err(SocketError::NotStored)?;
        Ok(vec![Reply::Event(ServerEvent::Interrupted { session_id: turn.session_id, kept_answer })])
    }

    /// An answer generated in full whose audio the client stopped playing: its stored line is cut to what was
    /// played.
    async fn trim_spoken_turn(&mut self, played_through: Option<u32>) -> Result<Vec<Reply>, SocketError> {
        let Some(spoken) = self.last_spoken.take() else { return Ok(vec![idle()]) };
        let played = played_count(played_through);
        if spoken.chunks.is_empty() || played >= spoken.chunks.len() {
            return Ok(vec![idle()]);
        }
        let kept_answer = played_text(&spoken.chunks, played_through);
        self.pipeline.cut_last_answer(&spoken.session_id, &spoken.progress, &kept_answer, played).await.map_err(SocketError::NotStored)?;
        Ok(vec![Reply::Event(ServerEvent::Interrupted { session_id: spoken.session_id, kept_answer })])
    }

    fn new_session(&mut self) -> Result<Vec<Reply>, SocketError> {
        self.ensure_idle()?;
        self.session = None;
        self.last_spoken = None;
        Ok(vec![idle()])
    }

    fn ensure_idle(&self) -> Result<(), SocketError> {
        match self.phase {
            Phase::Idle => Ok(()),
            Phase::Listening { .. } | Phase::Answering(_) => Err(ProtocolError::Busy.into()),
        }
    }

    fn take_turn_budget(&self) -> Result<(), SocketError> {
        self.budget.take(self.client).map_err(|retry_after_secs| SocketError::RateLimited { retry_after_secs })
    }

    fn begin_turn(&mut self) {
        self.last_spoken = None;
        self.reported_stray_audio = false;
    }

    /// The conversation a turn continues: the one the client names (it must exist), else this socket's own.
    async fn conversation(&mut self, requested: Option<SessionId>) -> Result<Conversation, SocketError> {
        let new = requested.is_none() && self.session.is_none();
        let conversation = match (requested, self.session.clone()) {
            (Some(id), _) => {
                if let Some(owners) = &self.owners
                    && !sessions::visible_to(owners.as_ref(), &id, &self.caller).await.map_err(TurnError::from)?
                {
                    return Err(TurnError::SessionNotFound(id).into());
                }
                self.pipeline.open(Some(id), &self.caller).await
            }
            (None, Some(own)) => self.pipeline.resume(own, &self.caller).await,
            (None, None) => self.pipeline.open(None, &self.caller).await,
        }?;
        if new && let Some(owners) = &self.owners {
            // Recorded before the first line is stored, so the conversation is never without its owner.
            sessions::claim(owners.as_ref(), &conversation.id, &self.caller).await.map_err(TurnError::from)?;
        }
        self.session = Some(conversation.id.clone());
        Ok(conversation)
    }
}

/// The text of the chunks up to and including `played_through`, as one answer.
fn played_text(chunks: &[String], played_through: Option<u32>) -> String {
    chunks.iter().take(played_count(played_through)).map(String::as_str).collect::<Vec<_>>().join(" ")
}

/// How many chunks were played to the end, the last being `played_through`.
fn played_count(played_through: Option<u32>) -> usize {
    played_through.map_or(0, |sequence| usize::try_from(sequence).unwrap_or(usize::MAX).saturating_add(1))
}

fn failed(error: impl Into<SocketError>) -> Reply {
    Reply::Failed(error.into())
}

fn idle() -> Reply {
    Reply::Event(ServerEvent::status(TurnState::Idle))
}

#[cfg(test)]
mod tests {
    use super::played_text;

    #[test]
    fn only_chunks_up_to_the_played_one_are_kept() {
        let chunks = ["One.".to_owned(), "Two.".to_owned(), "Three.".to_owned()];
        assert_eq!(played_text(&chunks, None), "");
        assert_eq!(played_text(&chunks, Some(0)), "One.");
        assert_eq!(played_text(&chunks, Some(1)), "One. Two.");
        assert_eq!(played_text(&chunks, Some(7)), "One. Two. Three.");
    }
}
