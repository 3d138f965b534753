//! One socket's state machine: idle -> listening (audio frames arrive) -> answering (a turn task runs) -> idle.
//! Every message gets a reaction; a message that makes no sense in the current state gets a [`SocketError`]
//! reply (the edge sends it as an `error` event saying what to send instead), and the socket stays open.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parlance_shared::{AudioEncoding, ClientMessage, ServerEvent, SessionId, TurnDetection, TurnState};

use super::barge_in::{self, AnswerListener, Overheard};
use super::early::{EarlyTranscription, Heard};
use super::pauses::SAMPLES_PER_MS;
use super::playback::Playback;
use super::recording::{Recording, RecordingError};
use super::speculation::Speculation;
use super::turn::{CancelledTurn, Progress, RunningTurn};
use crate::access::Caller;
use crate::budget::TurnBudget;
use crate::pipeline::{Conversation, Pipeline, Speech, Turn, TurnEnd, TurnError, TurnInput, TurnProgress};
use crate::sessions::{self, SessionStore};
use crate::tts::{Delivery, SpeechRate};
use crate::vad::VoiceEvent;

/// The language model's probability that the words heard end there, above which they count as a complete
/// turn, ended after `complete_silence_ms`. Qwen2.5-Coder-0.5B puts more than this on finished questions and
/// requests and less than a fifth of it on ones that break off mid-phrase (`local_llm.rs` checks both kinds).
pub const COMPLETE_TURN: f32 = 0.01;

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
    #[error("the server can only hear when you stop speaking in raw audio; send `turn_detection` with the `pcm16` encoding")]
    DetectionNeedsPcm16,
    #[error("this server cannot listen while it answers: it has no voice activity model or no speech-to-text; leave out `barge_in`")]
    BargeInUnavailable,
    #[error("{0}")]
    BadRate(String),
    #[error("{0}")]
    BadVoice(String),
}

enum Phase {
    Idle,
    Listening {
        recording: Recording,
        conversation: Conversation,
        /// Boxed: the voice activity detector's buffers make it large.
        early: Option<Box<EarlyTranscription>>,
        /// The server ends the turn itself.
        detection: Option<TurnDetection>,
        /// The answer begun during the current pause, if the words sounded finished.
        speculation: Option<Speculation>,
    },
    Answering(RunningTurn),
}

/// The audio chunks of the last finished turn: the client may still be playing them when it interrupts.
struct SpokenTurn {
    session_id: SessionId,
    chunks: Vec<String>,
    playback: Playback,
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
    /// The server ended the current turn: audio the client sent before it heard so is not a mistake.
    ended_by_server: bool,
    /// Replies to hand out before waiting for more (one event may bring several).
    pending: VecDeque<Reply>,
    /// Who opened the socket: the conversations it may continue, and whose new ones are.
    caller: Caller,
    owners: Option<Arc<dyn SessionStore>>,
    /// The id of the turn running or last run, for the edge's log lines about it.
    turn_id: Option<String>,
    /// How answers are spoken: the last rate and voice the client asked for.
    delivery: Delivery,
    /// With `barge_in`: the microphone while the answer plays, until the user takes the turn.
    overhearing: Option<Box<Overhearing>>,
}

/// Listening during the answer, and the settings of the turn the user may start by speaking.
struct Overhearing {
    listener: AnswerListener,
    detection: TurnDetection,
}

/// What the socket's wait brought ([`Connection::next_turn_event`]), to hand to [`Connection::take`].
pub enum Step {
    /// Boxed: a finished turn is large.
    Reply(Box<Reply>),
    /// Speech heard during the answer (`barge_in`), to judge.
    Overheard(Overheard),
}

/// What came first while answering or idle.
enum Next {
    /// Boxed: a finished turn is large.
    Turn(Option<Box<Progress>>),
    Heard(Overheard),
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
            delivery: Delivery::default(),
            reported_stray_audio: false,
            ended_by_server: false,
            pending: VecDeque::new(),
            caller: Caller::Anyone,
            owners: None,
            turn_id: None,
            overhearing: None,
        }
    }

    /// A connection of a signed-in `caller`: it continues only their conversations, and the ones it starts
    /// are recorded as theirs in `owners`.
    pub fn for_caller(self, caller: Caller, owners: Arc<dyn SessionStore>) -> Self {
        Self { caller, owners: Some(owners), ..self }
    }

    /// The turn running now, or the last one.
    pub fn turn_id(&self) -> Option<&str> {
        self.turn_id.as_deref()
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
            ClientMessage::Start { session_id, encoding, turn_detection, speech_rate, voice } => {
                match self.delivery_for(speech_rate, voice) {
                    // Kept for the turn's answer (spawned at its end) only once the recording is under way.
                    Ok(delivery) => {
                        let started = self.start(session_id, encoding, turn_detection).await;
                        if started.is_ok() {
                            self.delivery = delivery;
                        }
                        started
                    }
                    Err(error) => Err(error),
                }
            }
            // Sent before the client heard that the server had ended the turn: already done.
            ClientMessage::EndTurn if self.ended_by_server && !matches!(self.phase, Phase::Listening { .. }) => Ok(vec![]),
            ClientMessage::EndTurn => self.end_turn(),
            ClientMessage::Text { session_id, text, speak, speech_rate, voice } => match self.delivery_for(speech_rate, voice) {
                Ok(delivery) => self.text(session_id, text, speak, delivery).await,
                Err(error) => Err(error),
            },
            ClientMessage::Interrupt { played_through } => {
                // The client takes over: it decides when the user speaks.
                self.overhearing = None;
                self.interrupt(played_through).await
            }
            ClientMessage::NewSession => self.new_session(),
        };
        result.unwrap_or_else(|error| vec![Reply::Failed(error)])
    }

    /// A binary frame: audio of the turn being recorded.
    pub fn on_audio(&mut self, frame: &[u8]) -> Vec<Reply> {
        // With `barge_in`, the microphone through the answer and after it (it is never set while listening).
        if let Some(overhearing) = self.overhearing.as_mut() {
            return overhearing.listener.push(frame).into_iter().map(speech_event).collect();
        }
        let (mut replies, over) = match &mut self.phase {
            Phase::Listening { recording, early, detection, speculation, .. } => match (recording.push(frame), early) {
                (Ok(()), Some(early)) => {
                    let heard = early.observe(frame, recording).into_iter().map(speech_event).collect();
                    if speculation.as_ref().is_some_and(|answer| !answer.covers(early.speech_end())) {
                        tracing::debug!("speech after the pause: the answer begun in it is dropped unheard");
                        *speculation = None;
                    }
                    (heard, detection.and_then(|detection| turn_over(early, detection)))
                }
                (Ok(()), None) => (vec![], None),
                (Err(error), _) => (vec![failed(error)], None),
            },
            // Sent before the client heard that the server ended the turn.
            Phase::Idle | Phase::Answering(_) if self.ended_by_server => (vec![], None),
            Phase::Idle | Phase::Answering(_) if !self.reported_stray_audio => {
                self.reported_stray_audio = true;
                (vec![failed(ProtocolError::AudioOutsideTurn)], None)
            }
            Phase::Idle | Phase::Answering(_) => (vec![], None),
        };
        if let Some(ended) = over {
            replies.extend(self.end_detected_turn(ended));
        }
        replies
    }

    /// The server decided the user is done: the turn ends as if the client had sent `end_turn`.
    fn end_detected_turn(&mut self, ended: ServerEvent) -> Vec<Reply> {
        tracing::debug!(?ended, "the server ended the turn");
        let mut replies = vec![Reply::Event(ended)];
        match self.end_turn() {
            Ok(more) => {
                self.ended_by_server = true;
                replies.extend(more);
            }
            Err(error) => replies.push(Reply::Failed(error)),
        }
        replies
    }

    /// The running turn's next event, or while listening a provisional transcript, or with `barge_in` what the
    /// user said during the answer; waits forever when there is none. For use in `select!`: stopping the wait
    /// loses nothing, and the work a step needs is done by [`Connection::take`], which must not be stopped.
    /// The socket is idle again as soon as the turn's end (its answer or its failure) is handed out.
    pub async fn next_turn_event(&mut self) -> Option<Step> {
        loop {
            if let Some(reply) = self.pending.pop_front() {
                return Some(Step::Reply(Box::new(reply)));
            }
            let next = match (&mut self.phase, &mut self.overhearing) {
                (Phase::Listening { early: Some(_), .. }, _) => {
                    if let Some(reply) = self.hear_early().await {
                        return Some(Step::Reply(Box::new(reply)));
                    }
                    continue;
                }
                (Phase::Listening { .. }, _) | (Phase::Idle, None) => return std::future::pending().await,
                (Phase::Idle, Some(overhearing)) => Next::Heard(overhearing.listener.next().await),
                (Phase::Answering(turn), None) => Next::Turn(turn.next_event().await.map(Box::new)),
                (Phase::Answering(turn), Some(overhearing)) => tokio::select! {
                    progress = turn.next_event() => Next::Turn(progress.map(Box::new)),
                    heard = overhearing.listener.next() => Next::Heard(heard),
                },
            };
            return match next {
                Next::Turn(progress) => self.turn_progress(progress.map(|progress| *progress)).map(|reply| Step::Reply(Box::new(reply))),
                Next::Heard(heard) => Some(Step::Overheard(heard)),
            };
        }
    }

    /// What to send for a step [`Connection::next_turn_event`] brought.
    pub async fn take(&mut self, step: Step) -> Vec<Reply> {
        match step {
            Step::Reply(reply) => vec![*reply],
            Step::Overheard(heard) => self.overheard(heard).await,
        }
    }

    /// What the running turn brought: an event to pass on, or its end.
    fn turn_progress(&mut self, progress: Option<Progress>) -> Option<Reply> {
        let Phase::Answering(turn) = &mut self.phase else { return None };
        match progress {
            Some(Progress::Event(event)) => Some(Reply::Event(event)),
            Some(Progress::Finished(Ok(mut answered))) => {
                let timings = &mut answered.timings;
                timings.first_audio_from_speech_end_ms =
                    timings.first_audio_ms.zip(turn.silence_before_ms).map(|(first, silence)| first.saturating_add(silence));
                self.last_spoken = Some(SpokenTurn {
                    session_id: turn.session_id.clone(),
                    chunks: turn.chunks.clone(),
                    playback: turn.playback.clone(),
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

    /// Speech heard during the answer (`barge_in`): ignored when it is the answer's own voice, an
    /// acknowledgement or a noise; otherwise the user takes the turn.
    async fn overheard(&mut self, heard: Overheard) -> Vec<Reply> {
        let playing = self.playing_at(heard.onset);
        match barge_in::ignored(&heard.text, playing.as_deref()) {
            Some(reason) => {
                tracing::debug!(?reason, chars = heard.text.len(), "speech during the answer ignored");
                if let Some(overhearing) = self.overhearing.as_mut() {
                    overhearing.listener.dismiss();
                }
                vec![Reply::Event(ServerEvent::SpeechIgnored { text: heard.text, reason })]
            }
            None => self.barge_in(&heard).await,
        }
    }

    /// The text of the answer the client was playing at `at`, if it was playing one: an answer still being
    /// made counts as playing.
    fn playing_at(&self, at: Instant) -> Option<String> {
        match &self.phase {
            Phase::Answering(turn) => Some(turn.chunks.join(" ")),
            Phase::Idle => self.last_spoken.as_ref().filter(|spoken| spoken.playback.playing_at(at)).map(|spoken| spoken.chunks.join(" ")),
            Phase::Listening { .. } => None,
        }
    }

    /// The user spoke over the answer: it stops where they began (what had been played is kept, as after
    /// `interrupt`), and their speech starts the next turn, heard as if the client had sent `start` with it.
    async fn barge_in(&mut self, heard: &Overheard) -> Vec<Reply> {
        let Some(overhearing) = self.overhearing.take() else { return vec![] };
        let played = match &self.phase {
            Phase::Answering(turn) => turn.playback.played_by(heard.onset),
            Phase::Idle => self.last_spoken.as_ref().map_or(0, |spoken| spoken.playback.played_by(heard.onset)),
            Phase::Listening { .. } => 0,
        };
        tracing::info!(
            played,
            decided_after_ms = heard.onset.elapsed().as_secs_f64() * 1000.0,
            "the user spoke over the answer: it stops and their turn begins"
        );
        let played_through = played.checked_sub(1).map(|last| u32::try_from(last).unwrap_or(u32::MAX));
        let mut replies: Vec<Reply> = match self.interrupt(played_through).await {
            // "Idle" would only say that nothing was cut: the user's turn starts now.
            Ok(stopped) => stopped.into_iter().filter(|reply| !matches!(reply, Reply::Event(ServerEvent::Status { .. }))).collect(),
            Err(error) => vec![Reply::Failed(error)],
        };
        let Overhearing { listener, detection } = *overhearing;
        let speech = listener.into_speech();
        match self.start(None, AudioEncoding::Pcm16, Some(detection)).await {
            Ok(started) => {
                replies.extend(started);
                replies.extend(self.on_audio(&speech));
            }
            Err(error) => {
                // Refused (too many turns, say): the client never sends `start`, so the server listens on.
                replies.push(Reply::Failed(error));
                self.overhearing =
                    AnswerListener::new(Arc::clone(&self.pipeline)).map(|listener| Box::new(Overhearing { listener, detection }));
            }
        }
        replies
    }

    /// While listening: the early transcript as a provisional one, with the answer begun on it, or the model's
    /// judgement of it, which may end the turn (its events then wait in `pending`). `None` when there is
    /// nothing to send yet.
    async fn hear_early(&mut self) -> Option<Reply> {
        let Phase::Listening { early: Some(early), conversation, detection, speculation, .. } = &mut self.phase else {
            return std::future::pending().await;
        };
        let partial = match early.next().await {
            Heard::Transcript(text) => {
                // Without a judgement to wait for (the client ends its turns), the answer starts now, or the
                // model at least reads the question.
                match (early.judges(), self.pipeline.answers_early()) {
                    (true, _) => {}
                    (false, true) => Self::speculate(&self.pipeline, early, conversation, speculation, &self.delivery, &text),
                    (false, false) => self.pipeline.prepare(conversation, &text),
                }
                Some(Reply::Event(ServerEvent::Transcript { text, is_final: false }))
            }
            Heard::Judged => {
                match (early.completeness(), early.transcript()) {
                    // Most often the question is complete: the answer starts while the user's silence runs out.
                    // It starts only now, not with the transcript: on two cores the agent's work would slow the
                    // judgement, which decides when the turn ends.
                    (Some(p), Some(text)) if p >= COMPLETE_TURN && self.pipeline.answers_early() => {
                        let text = text.to_owned();
                        Self::speculate(&self.pipeline, early, conversation, speculation, &self.delivery, &text);
                    }
                    // The user is likely to go on, or the model cannot tell (or answers wait for the turn's end):
                    // it only reads the words.
                    (_, Some(text)) => self.pipeline.prepare(conversation, text),
                    (_, None) => {}
                }
                None
            }
        };
        // The judgement may end a complete turn now.
        if let Some(ended) = detection.and_then(|detection| turn_over(early, detection)) {
            let replies = self.end_detected_turn(ended);
            self.pending.extend(replies);
        }
        partial
    }

    /// Begins answering the early transcript `text`, if it covers everything said so far.
    fn speculate(
        pipeline: &Arc<Pipeline>,
        early: &EarlyTranscription,
        conversation: &Conversation,
        speculation: &mut Option<Speculation>,
        delivery: &Delivery,
        text: &str,
    ) {
        if let Some(speech_end) = early.covered_speech_end() {
            *speculation = Some(Speculation::start(pipeline, conversation.clone(), text.to_owned(), delivery.clone(), speech_end));
        }
    }

    /// How the turn a `start` or `text` asks for is spoken: a rate or voice it sends holds for the socket's later
    /// turns too (once the message is taken), one it leaves out stays as it was.
    fn delivery_for(&self, rate: Option<f32>, voice: Option<String>) -> Result<Delivery, SocketError> {
        let rate = match rate {
            Some(_) => SpeechRate::from_client(rate).map_err(ProtocolError::BadRate)?,
            None => self.delivery.rate,
        };
        let voice = match voice {
            Some(voice) => self.pipeline.choose_voice(Some(&voice)).map_err(ProtocolError::BadVoice)?,
            None => self.delivery.voice.clone(),
        };
        Ok(Delivery { rate, voice })
    }

    async fn start(
        &mut self,
        session_id: Option<SessionId>,
        encoding: AudioEncoding,
        detection: Option<TurnDetection>,
    ) -> Result<Vec<Reply>, SocketError> {
        self.ensure_idle()?;
        if detection.is_some() && encoding != AudioEncoding::Pcm16 {
            return Err(ProtocolError::DetectionNeedsPcm16.into());
        }
        if detection.is_some_and(|detection| detection.barge_in) && !self.pipeline.listens_while_answering() {
            return Err(ProtocolError::BargeInUnavailable.into());
        }
        // The client starts the turn itself: whatever was heard during the last answer is its to judge.
        self.overhearing = None;
        self.take_turn_budget()?;
        let conversation = self.conversation(session_id).await?;
        let early = (encoding == AudioEncoding::Pcm16 && self.pipeline.hears()).then(|| {
            let judged_in = detection.filter(|detection| detection.complete_silence_ms > 0).map(|_| conversation.clone());
            Box::new(EarlyTranscription::new(Arc::clone(&self.pipeline), judged_in))
        });
        let recording = Recording::new(encoding, self.max_audio_bytes);
        self.phase = Phase::Listening { recording, conversation, early, detection, speculation: None };
        self.begin_turn();
        Ok(vec![Reply::Event(ServerEvent::status(TurnState::Listening))])
    }

    fn end_turn(&mut self) -> Result<Vec<Reply>, SocketError> {
        let ended_at = Instant::now();
        let (recording, conversation, early, speculation, detection) = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Listening { recording, conversation, early, speculation, detection } => {
                (recording, conversation, early, speculation, detection)
            }
            other => {
                self.phase = other;
                return Err(ProtocolError::NotListening.into());
            }
        };
        if let Some(detection) = detection.filter(|detection| detection.barge_in) {
            self.overhearing =
                AnswerListener::new(Arc::clone(&self.pipeline)).map(|listener| Box::new(Overhearing { listener, detection }));
        }
        if recording.overflowed() {
            // Already reported when the limit was crossed; the turn is abandoned.
            return Ok(vec![idle()]);
        }
        let silence_before_ms = early
            .as_ref()
            .filter(|early| early.speech_end().is_some())
            .map(|early| u64::try_from(early.silence() / SAMPLES_PER_MS).unwrap_or(u64::MAX));
        if let Some(speculation) = speculation.filter(|answer| answer.covers(early.as_ref().and_then(|early| early.speech_end()))) {
            let recording = if self.pipeline.archives() { recording.finish().ok() } else { None };
            let mut turn = speculation.confirm(ended_at, recording);
            tracing::debug!(turn_id = turn.progress.turn_id(), "the turn ended as its answer began: it is kept");
            turn.silence_before_ms = silence_before_ms;
            self.turn_id = Some(turn.progress.turn_id().to_owned());
            self.phase = Phase::Answering(turn);
            return Ok(vec![]);
        }
        let input = match early.and_then(|early| early.finish()) {
            Some(transcript) => {
                // Only the archive still wants the recording: speech-to-text has read it.
                let recording = if self.pipeline.archives() { recording.finish().ok() } else { None };
                TurnInput::Transcribing { transcript, recording }
            }
            None => TurnInput::Voice(recording.finish()?),
        };
        let speech = Speech::Sentences(self.delivery.clone());
        let mut turn = RunningTurn::spawn(Arc::clone(&self.pipeline), conversation, input, speech, TurnEnd::At(ended_at));
        turn.silence_before_ms = silence_before_ms;
        self.turn_id = Some(turn.progress.turn_id().to_owned());
        self.phase = Phase::Answering(turn);
        Ok(vec![])
    }

    /// A typed question, spoken as `delivery` says; the socket keeps `delivery` once the turn is under way.
    async fn text(
        &mut self,
        session_id: Option<SessionId>,
        text: String,
        speak: bool,
        delivery: Delivery,
    ) -> Result<Vec<Reply>, SocketError> {
        let ended_at = Instant::now();
        self.ensure_idle()?;
        self.overhearing = None;
        self.take_turn_budget()?;
        let conversation = self.conversation(session_id).await?;
        self.begin_turn();
        let speech = if speak { Speech::Sentences(delivery.clone()) } else { Speech::Off };
        let turn = RunningTurn::spawn(Arc::clone(&self.pipeline), conversation, TurnInput::Text(text), speech, TurnEnd::At(ended_at));
        self.delivery = delivery;
        self.turn_id = Some(turn.progress.turn_id().to_owned());
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
                    self.last_spoken = Some(SpokenTurn {
                        session_id: cancelled.session_id,
                        chunks,
                        playback: Playback::default(),
                        progress: cancelled.progress,
                    });
                    return self.trim_spoken_turn(played_through).await;
                }
                self.keep_played_part(cancelled, played_through).await
            }
        }
    }

    /// The server is stopping and the turn being answered is out of time: it is stopped, and what the client was
    /// sent of the answer is remembered, marked interrupted: the sentences sent when it was spoken, else the
    /// text written. Nothing to send back when no turn was running, or it had just finished (and was stored).
    pub async fn cut_short(&mut self) -> Vec<Reply> {
        let turn = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Answering(turn) => turn,
            other => {
                self.phase = other;
                return vec![];
            }
        };
        let cancelled = turn.cancel().await;
        if cancelled.completed {
            return vec![];
        }
        let (kept_answer, played) = if cancelled.chunks.is_empty() {
            (cancelled.written.trim().to_owned(), 0)
        } else {
            (cancelled.chunks.join(" "), cancelled.chunks.len())
        };
        tracing::info!(chunks_sent = played, chars_written = cancelled.written.len(), "turn cut short: the server is stopping");
        let stored = self.pipeline.remember_interrupted(&cancelled.session_id, &cancelled.progress, &kept_answer, played).await;
        match stored {
            Ok(()) => vec![Reply::Event(ServerEvent::Interrupted { session_id: cancelled.session_id, kept_answer })],
            Err(error) => vec![Reply::Failed(SocketError::NotStored(error))],
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
        self.overhearing = None;
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
        self.ended_by_server = false;
        self.pending.clear();
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

/// Whether the silence after the speech ends the turn: a long one always, a short one after a turn the model
/// judged complete. Returns the event that says so.
fn turn_over(early: &EarlyTranscription, detection: TurnDetection) -> Option<ServerEvent> {
    let speech_end = early.speech_end()?;
    let silence_ms = u64::try_from(early.silence() / SAMPLES_PER_MS).unwrap_or(u64::MAX);
    let probability = early.completeness();
    let long_enough = silence_ms >= u64::from(detection.silence_ms.max(1));
    let complete_enough = detection.complete_silence_ms > 0
        && silence_ms >= u64::from(detection.complete_silence_ms)
        && probability.is_some_and(|p| p >= COMPLETE_TURN);
    (long_enough || complete_enough).then(|| ServerEvent::TurnEnded {
        speech_end_ms: u64::try_from(speech_end / SAMPLES_PER_MS).unwrap_or(u64::MAX),
        silence_ms,
        end_of_turn_probability: probability,
    })
}

fn speech_event(event: VoiceEvent) -> Reply {
    let ms = |samples: usize| u64::try_from(samples / SAMPLES_PER_MS).unwrap_or(u64::MAX);
    Reply::Event(match event {
        VoiceEvent::SpeechStarted { at_sample } => ServerEvent::SpeechStarted { at_ms: ms(at_sample) },
        VoiceEvent::SpeechStopped { at_sample } => ServerEvent::SpeechStopped { at_ms: ms(at_sample) },
    })
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
