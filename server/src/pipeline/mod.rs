//! One turn of conversation, spoken or typed: transcribe -> recall the conversation -> let the agent answer
//! -> speak the answer -> remember both lines. The HTTP routes and the streaming socket run the same turn; they
//! differ only in how the answer is spoken ([`Speech`]) and whether anyone listens to its events.
//!
//! The pipeline alone writes what a conversation remembers: whole turns, answers cut off while they were
//! written, and answers whose audio the user stopped part-way; and, when the audio archive is on, what each of
//! those turns sounded like.

mod queue;
mod speaker;
mod turn_end;
mod vocabulary;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use parlance_shared::{
    AudioClip, HistoryTurn, KnowledgeSource, Role, ServerEvent, SessionId, Stage, StageTimings, ToolCallRecord, TurnState,
};

pub use self::queue::{QueueFull, QueueLimits, RunningPlace, TurnQueue};
use self::speaker::SentenceSpeaker;
pub use self::turn_end::{EndSignal, TurnEnd};
pub use self::vocabulary::NotesVocabulary;
use crate::access::Caller;
use crate::agent::{Agent, AgentError, Answer, Findings};
use crate::archive::{AnswerAudio, Archive, ArchiveError, AudioFile, Entry, EntryId, NewEntry, Side};
use crate::audio::AudioUpload;
use crate::backend::BackendInfo;
use crate::events::EventSink;
use crate::llm::{ChatRequest, ChatStream};
use crate::openai::ProviderError;
use crate::sessions::{SessionError, SessionStore, new_session_id};
use crate::shutdown::Shutdown;
use crate::stt::{SpeechToText, SttError};
use crate::telemetry::{Telemetry, TurnFigures, TurnOutcome};
use crate::text::SentenceSplitter;
use crate::tts::{Delivery, SpeechAudio, TextToSpeech, TtsError, VoiceChoice};
use crate::vad::{SileroVad, VoiceActivity};
use tracing::Instrument as _;

pub struct Pipeline {
    stt: Option<Arc<dyn SpeechToText>>,
    agent: Option<Agent>,
    tts: Option<Arc<dyn TextToSpeech>>,
    sessions: Arc<dyn SessionStore>,
    history_turns: usize,
    max_question_chars: usize,
    vocabulary: Option<Arc<NotesVocabulary>>,
    archive: Option<Arc<Archive>>,
    /// Hears where speech starts and stops in raw streams; without it pauses are found by energy.
    vad: Option<Arc<SileroVad>>,
    /// Streamed questions are answered during the pause after them (see `streaming::speculation`).
    answer_early: bool,
    /// Every turn waits here for its place to run.
    queue: TurnQueue,
    telemetry: Arc<Telemetry>,
    /// Once the server is stopping, no new turn starts.
    shutdown: Shutdown,
}

/// How much of the conversation a turn sees, how long a question may be, and how many turns run at once.
#[derive(Debug, Clone, Copy)]
pub struct TurnLimits {
    /// Earlier lines of the conversation the model is shown.
    pub history_turns: usize,
    pub max_question_chars: usize,
    pub queue: QueueLimits,
}

/// What a turn has gathered so far, kept outside the turn itself: an answer cut off while it was written is
/// still remembered with its question, the tools it called and the notes it drew on.
#[derive(Debug)]
pub struct TurnProgress {
    /// Names the turn in every log line about it.
    turn_id: String,
    question: Mutex<Option<String>>,
    findings: Findings,
    /// When the user finished asking.
    asked_at: DateTime<Utc>,
    /// The question's recording, for the archive: known from the start, or (a turn begun during the user's
    /// pause) once the turn ends.
    recording: OnceLock<AudioUpload>,
    /// The audio of each sentence sent, in sequence order (kept only while the archive is on).
    spoken: Arc<Mutex<Vec<SpeechAudio>>>,
    /// The turn's archive entry, named once it is first written.
    archived: Mutex<Option<EntryId>>,
}

impl TurnProgress {
    /// A typed question is known from the start, a spoken one once it is transcribed.
    pub fn new(input: &TurnInput) -> Self {
        let (question, recording) = match input {
            TurnInput::Text(text) => (Some(text.trim().to_owned()), None),
            TurnInput::Voice(audio) => (None, Some(audio.clone())),
            TurnInput::Transcribing { recording, .. } => (None, recording.clone()),
        };
        Self {
            turn_id: uuid::Uuid::new_v4().simple().to_string(),
            question: Mutex::new(question),
            findings: Findings::default(),
            asked_at: Utc::now(),
            recording: recording.map(OnceLock::from).unwrap_or_default(),
            spoken: Arc::default(),
            archived: Mutex::new(None),
        }
    }

    /// The id in the turn's log lines.
    pub fn turn_id(&self) -> &str {
        &self.turn_id
    }

    /// The question's recording, for the archive, once a turn begun before it ended has it whole.
    pub fn keep_recording(&self, recording: AudioUpload) {
        let _ = self.recording.set(recording);
    }

    /// The audio of the first `played` sentences sent.
    fn spoken(&self, played: usize) -> Vec<SpeechAudio> {
        self.spoken.lock().unwrap_or_else(PoisonError::into_inner).iter().take(played).cloned().collect()
    }

    /// The turn's archive entry: the one named before (it may still be being written), or a new one.
    fn archive_entry(&self) -> EntryId {
        self.archived.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| EntryId::new(self.asked_at)).clone()
    }

    fn archived_before(&self) -> bool {
        self.archived.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    fn heard(&self, question: &str) {
        *self.question.lock().unwrap_or_else(PoisonError::into_inner) = Some(question.to_owned());
    }

    fn question(&self) -> Option<String> {
        self.question.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
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
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Speech alone was asked for (not a turn's answer, which stays text when speaking fails).
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// The server is stopping: it starts no new turn.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// As many turns run as may, and the line of those waiting is full.
    #[error("{} turns are waiting already; retry in {} s", .0.waiting, .0.retry_after_secs)]
    Busy(QueueFull),
}

/// The language model's answer to [`Pipeline::complete_only`], as it is written.
pub struct Completion {
    pub events: ChatStream,
    _place: RunningPlace,
}

/// A finished turn. The edge sends it on in the wire's shape (`TurnResponse`, or the socket's `done`), and
/// says there why the answer was not spoken, if it was not.
#[derive(Debug)]
pub struct Turn {
    pub session_id: SessionId,
    /// What the user said: the transcript of a spoken turn, the text of a typed one.
    pub transcript: String,
    pub answer: String,
    /// The whole answer spoken ([`Speech::WholeAnswer`] only: sentences go out as events).
    pub audio: Option<AudioClip>,
    /// Why speech that was asked for is missing or stopped early; the written answer stands.
    pub speech_error: Option<SpeechFailure>,
    pub sources: Vec<KnowledgeSource>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub timings: StageTimings,
    /// From the model's start to its first piece of answer (for the metrics; not on the wire).
    pub first_token: Option<Duration>,
}

/// Why an answer was not (wholly) spoken. Not a failed turn: the user still gets the text.
#[derive(Debug, thiserror::Error)]
pub enum SpeechFailure {
    #[error("text-to-speech is not configured")]
    NotConfigured,
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// The task speaking the sentences ended without a report (it panicked).
    #[error("the speech task stopped: {0}")]
    Stopped(String),
}

/// A session a turn belongs to, with what it remembers.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: SessionId,
    history: Vec<HistoryTurn>,
    /// Who is talking: the notes searched and the memories kept are theirs (and the shared notes).
    caller: Caller,
}

/// What the user asked.
pub enum TurnInput {
    Text(String),
    Voice(AudioUpload),
    /// Speech whose transcription began before the turn ended (the socket transcribes during pauses), with its
    /// recording when the archive keeps it.
    Transcribing {
        transcript: EarlyTranscript,
        recording: Option<AudioUpload>,
    },
}

/// A transcription under way.
pub type EarlyTranscript = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, SttError>> + Send>>;

/// How the answer is spoken.
#[derive(Debug, Clone, PartialEq)]
pub enum Speech {
    /// Text only.
    Off,
    /// One recording of the whole answer, once it is complete (the HTTP endpoints answer once, at the end).
    WholeAnswer(Delivery),
    /// Sentence by sentence while the answer is written, each sent as an `audio_chunk` event.
    Sentences(Delivery),
}

impl Pipeline {
    pub fn new(
        stt: Option<Arc<dyn SpeechToText>>,
        agent: Option<Agent>,
        tts: Option<Arc<dyn TextToSpeech>>,
        sessions: Arc<dyn SessionStore>,
        limits: TurnLimits,
        telemetry: Arc<Telemetry>,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            stt,
            agent,
            tts,
            sessions,
            history_turns: limits.history_turns,
            max_question_chars: limits.max_question_chars,
            vocabulary: None,
            archive: None,
            vad: None,
            answer_early: true,
            queue: TurnQueue::new(limits.queue).with_telemetry(Arc::clone(&telemetry)),
            telemetry,
            shutdown,
        }
    }

    /// Find speech in raw streams with `vad` (see [`crate::vad`]).
    pub fn with_vad(mut self, vad: Arc<SileroVad>) -> Self {
        self.vad = Some(vad);
        self
    }

    /// Whether streamed questions are answered during the pause after them (`--answer-early`).
    pub fn with_answer_early(mut self, answer_early: bool) -> Self {
        self.answer_early = answer_early;
        self
    }

    /// Whether to answer a streamed question during the pause after it.
    pub fn answers_early(&self) -> bool {
        self.answer_early
    }

    /// A voice activity detector for a new raw stream, when the model is loaded.
    pub fn voice_activity(&self) -> Option<VoiceActivity> {
        self.vad.as_ref().map(SileroVad::stream)
    }

    /// Turns (and `/v1` calls) running or waiting for a place now.
    pub fn turns_in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// Keep each turn's audio and transcript in `archive` (see [`crate::archive`]).
    pub fn with_archive(mut self, archive: Arc<Archive>) -> Self {
        self.archive = Some(archive);
        self
    }

    /// Whether turns are archived: the socket then keeps a raw stream's recording for it.
    pub fn archives(&self) -> bool {
        self.archive.is_some()
    }

    /// Tell speech-to-text to expect the notes' own words (see [`NotesVocabulary`]).
    pub fn with_vocabulary(mut self, vocabulary: NotesVocabulary) -> Self {
        self.vocabulary = Some(Arc::new(vocabulary));
        self
    }

    /// The voices answers may be spoken in (none without a voice).
    pub fn voices(&self) -> Vec<parlance_shared::VoiceInfo> {
        self.tts.as_ref().map(|tts| tts.voices()).unwrap_or_default()
    }

    /// A client's choice of voice, checked against the voices there are (see [`VoiceChoice::choose`]).
    pub fn choose_voice(&self, requested: Option<&str>) -> Result<Option<Arc<str>>, String> {
        match &self.tts {
            // Without a voice nothing is spoken, whichever was asked for: the turn reports that instead.
            None => Ok(None),
            Some(tts) => VoiceChoice::choose(&tts.voices(), requested),
        }
    }

    /// What serves each model stage of a turn (`None`: not set up), for `/health`.
    pub fn stages(&self) -> [(Stage, Option<BackendInfo>); 3] {
        [
            (Stage::Stt, self.stt.as_ref().map(|stt| stt.info())),
            (Stage::Llm, self.agent.as_ref().map(|agent| agent.model().info())),
            (Stage::Tts, self.tts.as_ref().map(|tts| tts.info())),
        ]
    }

    /// Whether each model stage of a turn answers now (a stage not set up has nothing to ask: `Ok`).
    pub async fn reachable(&self) -> [(Stage, Result<(), ProviderError>); 3] {
        let stt = async {
            match &self.stt {
                Some(stt) => stt.reachable().await,
                None => Ok(()),
            }
        };
        let llm = async {
            match &self.agent {
                Some(agent) => agent.model().reachable().await,
                None => Ok(()),
            }
        };
        let tts = async {
            match &self.tts {
                Some(tts) => tts.reachable().await,
                None => Ok(()),
            }
        };
        let (stt, llm, tts) = tokio::join!(stt, llm, tts);
        [(Stage::Stt, stt), (Stage::Llm, llm), (Stage::Tts, tts)]
    }

    /// Whether spoken questions can be transcribed (speech-to-text is set up).
    pub fn hears(&self) -> bool {
        self.stt.is_some()
    }

    /// Whether speech during an answer can be told from the answer's own voice: that takes the voice activity
    /// model to find it and speech-to-text to read it.
    pub fn listens_while_answering(&self) -> bool {
        self.vad.is_some() && self.stt.is_some()
    }

    /// Transcribes `audio` apart from any turn: the socket transcribes while the user pauses and hands the
    /// result to the turn later as [`TurnInput::Transcribing`]. `None` when speech-to-text is not set up.
    pub fn transcription(&self, audio: AudioUpload) -> Option<EarlyTranscript> {
        let stt = Arc::clone(self.stt.as_ref()?);
        let vocabulary = self.vocabulary.clone();
        Some(Box::pin(async move { hear(stt.as_ref(), vocabulary.as_deref(), &audio).await }))
    }

    /// `POST /api/chat`.
    pub async fn text_turn(
        &self,
        session_id: Option<SessionId>,
        caller: &Caller,
        text: &str,
        speech: Option<Delivery>,
        events: &EventSink,
    ) -> Result<Turn, TurnError> {
        let started = Instant::now();
        let conversation = self.open(session_id, caller).await?;
        let speech = speech.map_or(Speech::Off, Speech::WholeAnswer);
        let input = TurnInput::Text(text.to_owned());
        let progress = TurnProgress::new(&input);
        self.run_turn_until_cut(conversation, input, speech, events, &progress, started).await
    }

    /// `POST /api/voice`.
    pub async fn voice_turn(
        &self,
        session_id: Option<SessionId>,
        caller: &Caller,
        audio: &AudioUpload,
        delivery: Delivery,
        events: &EventSink,
    ) -> Result<Turn, TurnError> {
        let started = Instant::now();
        self.stt.as_ref().ok_or(TurnError::NotConfigured(Stage::Stt))?;
        // Checked before transcribing, so a stale session id costs no model time.
        let conversation = self.open(session_id, caller).await?;
        let input = TurnInput::Voice(audio.clone());
        let progress = TurnProgress::new(&input);
        self.run_turn_until_cut(conversation, input, Speech::WholeAnswer(delivery), events, &progress, started).await
    }

    /// A turn whose client hears nothing before its end (HTTP): if the server stops and its grace period runs
    /// out first, the turn stops, and the client is told so (nothing of it was stored).
    async fn run_turn_until_cut(
        &self,
        conversation: Conversation,
        input: TurnInput,
        speech: Speech,
        events: &EventSink,
        progress: &TurnProgress,
        started: Instant,
    ) -> Result<Turn, TurnError> {
        tokio::select! {
            result = self.run_turn(conversation, input, speech, events, progress, TurnEnd::At(started)) => result,
            () = self.shutdown.cutting() => Err(TurnError::ShuttingDown),
        }
    }

    /// The answer to the last of a conversation the client keeps itself (the OpenAI-compatible chat): the
    /// agent with its tools, the notes and `caller`'s memories, each piece of the answer sent as it is written.
    /// Nothing is stored.
    pub async fn answer_only(
        &self,
        history: &[HistoryTurn],
        question: &str,
        caller: &Caller,
        events: &EventSink,
    ) -> Result<Answer, TurnError> {
        let question = self.check_question(question)?;
        let agent = self.agent.as_ref().ok_or(TurnError::NotConfigured(Stage::Llm))?;
        let recent = &history[history.len().saturating_sub(self.history_turns)..];
        let _place = self.wait_for_place(events).await?;
        let answer = agent.answer(recent, question, caller, events).await?;
        tracing::info!(tools = answer.tool_calls.len(), "answered a client's conversation");
        Ok(answer)
    }

    /// The language model alone, for a client that runs its own agent (another Parlance, say): its
    /// conversation and tools in, the model's text and calls out as they come. The model holds its place in
    /// the line of turns until the returned stream is dropped.
    pub async fn complete_only(&self, request: ChatRequest) -> Result<Completion, TurnError> {
        let agent = self.agent.as_ref().ok_or(TurnError::NotConfigured(Stage::Llm))?;
        let (place, _) = self.wait_for_place(&EventSink::none()).await?;
        let events = agent.model().stream(request).await.map_err(AgentError::from)?;
        Ok(Completion { events, _place: place })
    }

    /// Speech-to-text alone: the words in `audio` (empty when it holds none).
    pub async fn transcribe_only(&self, audio: &AudioUpload) -> Result<String, TurnError> {
        let stt = self.stt.as_ref().ok_or(TurnError::NotConfigured(Stage::Stt))?;
        let _place = self.wait_for_place(&EventSink::none()).await?;
        Ok(hear(stt.as_ref(), self.vocabulary.as_deref(), audio).await?)
    }

    /// Text-to-speech alone.
    pub async fn speak_only(&self, text: &str, delivery: &Delivery) -> Result<SpeechAudio, TurnError> {
        let tts = self.tts.as_ref().ok_or(TurnError::NotConfigured(Stage::Tts))?;
        let _place = self.wait_for_place(&EventSink::none()).await?;
        Ok(tts.synthesize_with(text, delivery).await?)
    }

    /// A conversation as remembered, oldest line first; `None` when there is none by that id.
    pub async fn history(&self, id: &SessionId) -> Result<Option<Vec<HistoryTurn>>, TurnError> {
        Ok(self.sessions.history(id).await?)
    }

    /// Forgets a conversation for good, its archived audio first (if that fails, the conversation stays and
    /// the deletion can be asked again); `false` when there was no conversation.
    pub async fn forget(&self, id: &SessionId) -> Result<bool, TurnError> {
        if let Some(archive) = &self.archive
            && archive.remove_session(id).await?
        {
            tracing::info!(session_id = %id, "archived audio deleted");
        }
        Ok(self.sessions.delete(id).await?)
    }

    /// A conversation's archived turns, oldest first (`GET /api/sessions/{id}/archive`).
    pub async fn archived(&self, id: &SessionId) -> Result<Vec<Entry>, ArchiveError> {
        self.archive.as_ref().ok_or(ArchiveError::Off)?.entries(id).await
    }

    /// One archived recording of a conversation's turn.
    pub async fn archived_audio(&self, id: &SessionId, turn: &str, side: Side) -> Result<AudioFile, ArchiveError> {
        self.archive.as_ref().ok_or(ArchiveError::Off)?.audio(id, turn, side).await
    }

    /// The conversation a client names (it must exist), or a new one, for `caller` (whether they may reach it
    /// is the edge's question).
    pub async fn open(&self, session_id: Option<SessionId>, caller: &Caller) -> Result<Conversation, TurnError> {
        let caller = caller.clone();
        match session_id {
            None => {
                let id = new_session_id();
                self.sessions.started(&id);
                Ok(Conversation { id, history: Vec::new(), caller })
            }
            Some(id) => match self.sessions.history(&id).await? {
                Some(history) => Ok(Conversation { id, history, caller }),
                None => Err(TurnError::SessionNotFound(id)),
            },
        }
    }

    /// A conversation the server itself started (a socket's session): empty until its first turn is stored.
    pub async fn resume(&self, id: SessionId, caller: &Caller) -> Result<Conversation, TurnError> {
        let history = self.sessions.history(&id).await?.unwrap_or_default();
        Ok(Conversation { id, history, caller: caller.clone() })
    }

    /// A likely question, heard while the user pauses: the model may start reading it (see
    /// [`Agent::prepare`]). Nothing is stored or sent; the turn itself follows when the user's turn ends.
    pub fn prepare(&self, conversation: &Conversation, transcript: &str) {
        if let (Some(agent), Ok(question)) = (&self.agent, self.check_question(transcript)) {
            agent.prepare(self.recent(conversation), question, &conversation.caller);
        }
    }

    /// Lets the language model read what every turn's prompt starts with before the first turn (see
    /// [`Agent::warm_up`]).
    pub fn warm_up(&self) {
        if let Some(agent) = &self.agent {
            agent.warm_up();
        }
    }

    /// How likely `transcript` (heard so far) is the user's whole turn, from the language model; `None` when
    /// there is no model or it cannot tell (see [`Agent::end_of_turn`]).
    pub async fn end_of_turn(&self, conversation: &Conversation, transcript: &str) -> Option<f32> {
        let agent = self.agent.as_ref()?;
        let question = self.check_question(transcript).ok()?;
        agent.end_of_turn(self.recent(conversation), question).await
    }

    /// The turns of `conversation` the model is shown.
    fn recent<'a>(&self, conversation: &'a Conversation) -> &'a [HistoryTurn] {
        &conversation.history[conversation.history.len().saturating_sub(self.history_turns)..]
    }

    /// One whole turn. `ended` is when the user finished asking: the timings count from there. A turn begun
    /// before that is known (see [`TurnEnd`]) is answered and spoken, but stored only once it is confirmed. What
    /// the turn gathers goes into `progress` as it happens, for [`Pipeline::remember_interrupted`]. The turn
    /// first waits for its place to run (see [`TurnQueue`]), telling `events` its place in line while it waits.
    ///
    /// Everything logged meanwhile carries the turn's id and session (a span); the request's own span, if it
    /// has a `turn_id` field (HTTP), gets the id too, so its access line names the turn. The turn's end is
    /// counted here, however it ends: a turn whose future is dropped (a barge-in, a client gone) counts as
    /// interrupted, unless it was begun early and never confirmed (the user was not done: nobody heard it).
    pub async fn run_turn(
        &self,
        conversation: Conversation,
        input: TurnInput,
        speech: Speech,
        events: &EventSink,
        progress: &TurnProgress,
        ended: TurnEnd,
    ) -> Result<Turn, TurnError> {
        tracing::Span::current().record("turn_id", tracing::field::display(progress.turn_id()));
        let span = tracing::info_span!("turn", turn_id = %progress.turn_id(), session_id = %conversation.id);
        let spoken = !matches!(input, TurnInput::Text(_));
        let mut counted = Counted { telemetry: &self.telemetry, finished: false, ended: ended.clone() };
        let result = self.answer_turn(conversation, input, speech, events, progress, ended).instrument(span).await;
        if result.is_err() {
            // A turn begun early fails only once the user is known to be done; until then its failure may
            // still be dropped unheard with it, and is not counted.
            counted.ended.confirmed().await;
        }
        counted.finish(&result, spoken);
        result
    }

    async fn answer_turn(
        &self,
        conversation: Conversation,
        input: TurnInput,
        speech: Speech,
        events: &EventSink,
        progress: &TurnProgress,
        mut ended: TurnEnd,
    ) -> Result<Turn, TurnError> {
        let (_place, queued_ms) = self.wait_for_place(events).await?;
        let mut timings = StageTimings { queued_ms, ..StageTimings::default() };
        let question = match input {
            TurnInput::Text(text) => text,
            TurnInput::Voice(audio) => self.transcribe(&audio, &mut timings, events).await?,
            TurnInput::Transcribing { transcript, .. } => self.finish_transcribing(transcript, &mut timings, events).await?,
        };
        let question = self.check_question(&question)?;
        progress.heard(question);
        let agent = self.agent.as_ref().ok_or(TurnError::NotConfigured(Stage::Llm))?;
        let recent = self.recent(&conversation);
        events.emit(ServerEvent::status(TurnState::Thinking));

        let speaker = match (&self.tts, &speech) {
            (Some(tts), Speech::Sentences(delivery)) => {
                let keep = self.archive.is_some().then(|| Arc::clone(&progress.spoken));
                Some(SentenceSpeaker::start(Arc::clone(tts), delivery.clone(), events.clone(), ended.clone(), keep))
            }
            _ => None,
        };
        let llm_started = Instant::now();
        let asked = Asked { history: recent, question, caller: &conversation.caller };
        let (answer, first_token) = answer_aloud(agent, asked, speaker.as_ref(), events, &progress.findings).await?;
        timings.llm_ms = elapsed_ms(llm_started);
        tracing::info!(llm_ms = timings.llm_ms, tools = answer.tool_calls.len(), "answered");
        let started = ended.confirmed().await;

        let (spoken, speech_error) = match (speech, speaker) {
            (Speech::Off, _) => (AnswerAudio::None, None),
            (Speech::WholeAnswer(delivery), _) => {
                let (audio, error) = self.speak_whole(&answer.text, &delivery, &mut timings).await;
                (audio.map_or(AnswerAudio::None, AnswerAudio::Whole), error)
            }
            (Speech::Sentences(_), Some(speaker)) => {
                let report = speaker.finish().await;
                timings.tts_ms = report.tts_ms;
                // Audio made before the turn ended reached the client when it ended.
                timings.first_audio_ms = report.first_sent.map(|sent| duration_ms(sent.saturating_duration_since(started)));
                (AnswerAudio::Sentences(progress.spoken(usize::MAX)), report.error)
            }
            (Speech::Sentences(_), None) => (AnswerAudio::None, Some(SpeechFailure::NotConfigured)),
        };
        let audio = match &spoken {
            AnswerAudio::Whole(speech) => Some(AudioClip {
                mime_type: speech.mime_type.clone(),
                data_base64: base64::engine::general_purpose::STANDARD.encode(&speech.bytes),
            }),
            AnswerAudio::None | AnswerAudio::Sentences(_) => None,
        };

        // Archived before the conversation stores it: if the turn is cut off from here on, the interrupted
        // version rewrites this entry (see `TurnProgress::archive_entry`) instead of adding a second one.
        self.archive(&conversation.id, progress, question, &answer.text, spoken, false).await;
        let stored = self.remember(&conversation.id, question, &answer).await?;
        let mut history = conversation.history;
        history.extend(stored);
        agent.read_ahead(&history[history.len().saturating_sub(self.history_turns)..]);
        timings.total_ms = elapsed_ms(started);
        Ok(Turn {
            session_id: conversation.id,
            transcript: question.to_owned(),
            answer: answer.text,
            audio,
            speech_error,
            sources: answer.sources,
            tool_calls: answer.tool_calls,
            timings,
            first_token: first_token.map(|at| at.saturating_duration_since(llm_started)),
        })
    }

    /// Waits for a place to run (see [`TurnQueue`]), telling `events` the place in line while it waits; the
    /// place is held until dropped. Also returns how long it waited, in ms (0: it started at once). Turns, and
    /// the `/v1` routes' answers, transcriptions and speech, all wait in this one line: they use the same models.
    async fn wait_for_place(&self, events: &EventSink) -> Result<(RunningPlace, u64), TurnError> {
        if self.shutdown.is_stopping() {
            return Err(TurnError::ShuttingDown);
        }
        let arrived = Instant::now();
        let mut first_place = None;
        let place = self
            .queue
            .enter(|position| {
                first_place.get_or_insert(position);
                events.emit(ServerEvent::queued(position));
            })
            .await
            .map_err(|full| {
                tracing::warn!(waiting = full.waiting, retry_after_secs = full.retry_after_secs, "refused: the line is full");
                TurnError::Busy(full)
            })?;
        self.telemetry.waited_in_line(arrived.elapsed());
        let queued_ms = match first_place {
            Some(first_place) => {
                let queued_ms = elapsed_ms(arrived);
                tracing::info!(queued_ms, first_place, "waited in line");
                queued_ms
            }
            None => 0,
        };
        Ok((place, queued_ms))
    }

    async fn transcribe(&self, audio: &AudioUpload, timings: &mut StageTimings, events: &EventSink) -> Result<String, TurnError> {
        let stt = self.stt.as_ref().ok_or(TurnError::NotConfigured(Stage::Stt))?;
        events.emit(ServerEvent::status(TurnState::Transcribing));
        let stt_started = Instant::now();
        let transcript = hear(stt.as_ref(), self.vocabulary.as_deref(), audio).await?;
        timings.stt_ms = elapsed_ms(stt_started);
        tracing::info!(stt_ms = timings.stt_ms, format = %audio.format, bytes = audio.bytes.len(), "transcribed");
        heard(transcript, events)
    }

    /// `stt_ms` is then only the wait after the turn ended: the rest happened while the user paused.
    async fn finish_transcribing(
        &self,
        transcript: EarlyTranscript,
        timings: &mut StageTimings,
        events: &EventSink,
    ) -> Result<String, TurnError> {
        events.emit(ServerEvent::status(TurnState::Transcribing));
        let stt_started = Instant::now();
        let transcript = transcript.await?;
        timings.stt_ms = elapsed_ms(stt_started);
        tracing::info!(stt_ms = timings.stt_ms, "transcribed during the pause");
        heard(transcript, events)
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

    /// Returns the lines stored.
    async fn remember(&self, session_id: &SessionId, question: &str, answer: &Answer) -> Result<[HistoryTurn; 2], TurnError> {
        self.store_exchange(session_id, question, answer.clone(), false).await
    }

    /// An answer the user cut off while it was being written: the question and the part of the answer they
    /// heard (the first `played` sentences sent) are remembered, marked interrupted, with the tools the answer
    /// had called and the notes it had drawn on so far; the archive keeps the audio of that part. A turn cut off
    /// before its question was understood leaves nothing to remember.
    pub async fn remember_interrupted(
        &self,
        session_id: &SessionId,
        progress: &TurnProgress,
        heard: &str,
        played: usize,
    ) -> Result<(), TurnError> {
        let Some(question) = progress.question().filter(|question| !question.is_empty()) else { return Ok(()) };
        let answer = Answer { text: heard.to_owned(), tool_calls: progress.findings.tool_calls(), sources: progress.findings.sources() };
        self.store_exchange(session_id, &question, answer, true).await?;
        self.archive(session_id, progress, &question, heard, AnswerAudio::Sentences(progress.spoken(played)), true).await;
        Ok(())
    }

    /// The user stopped the audio of the conversation's last answer (the turn of `progress`) part-way, after
    /// the first `played` sentences: the stored answer is cut to what they heard and marked interrupted (its
    /// sources and tool calls stay), and so is its archive entry. `false` when the last line is not an answer.
    pub async fn cut_last_answer(
        &self,
        session_id: &SessionId,
        progress: &TurnProgress,
        heard: &str,
        played: usize,
    ) -> Result<bool, TurnError> {
        let history = self.sessions.history(session_id).await?.unwrap_or_default();
        let Some(last) = history.into_iter().last().filter(|line| line.role == Role::Assistant) else { return Ok(false) };
        let cut = HistoryTurn { text: heard.to_owned(), interrupted: true, ..last };
        let replaced = self.sessions.replace_last(session_id, cut).await?;
        if replaced && let Some(question) = progress.question() {
            self.archive(session_id, progress, &question, heard, AnswerAudio::Sentences(progress.spoken(played)), true).await;
        }
        Ok(replaced)
    }

    /// Keeps the turn in the archive, when it is on and the turn had audio (or was archived before and is now
    /// cut). A failure is logged and the turn goes on: the user still gets the answer.
    async fn archive(
        &self,
        session_id: &SessionId,
        progress: &TurnProgress,
        question: &str,
        answer: &str,
        answer_audio: AnswerAudio,
        interrupted: bool,
    ) {
        let Some(archive) = &self.archive else { return };
        let question_audio = progress.recording.get().cloned();
        if question_audio.is_none() && answer_audio.is_none() && !progress.archived_before() {
            return;
        }
        let id = progress.archive_entry();
        let entry = NewEntry {
            asked_at: progress.asked_at,
            answered_at: Utc::now(),
            question: question.to_owned(),
            answer: answer.to_owned(),
            interrupted,
            question_audio,
            answer_audio,
        };
        if let Err(error) = archive.record(session_id, &id, entry).await {
            tracing::warn!(%error, %session_id, turn_id = %id, "archiving the turn failed; the answer stands");
        }
    }

    async fn store_exchange(
        &self,
        session_id: &SessionId,
        question: &str,
        answer: Answer,
        interrupted: bool,
    ) -> Result<[HistoryTurn; 2], TurnError> {
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
            text: answer.text,
            created_at: now,
            sources: answer.sources,
            tool_calls: answer.tool_calls,
            interrupted,
        };
        self.sessions.append(session_id, vec![user_line.clone(), assistant_line.clone()]).await?;
        Ok([user_line, assistant_line])
    }

    /// A failure to speak keeps the written answer: the user still gets it, with a note why there is no audio.
    async fn speak_whole(
        &self,
        text: &str,
        delivery: &Delivery,
        timings: &mut StageTimings,
    ) -> (Option<SpeechAudio>, Option<SpeechFailure>) {
        if text.is_empty() {
            return (None, None);
        }
        let Some(tts) = &self.tts else {
            return (None, Some(SpeechFailure::NotConfigured));
        };
        let tts_started = Instant::now();
        let result = tts.synthesize_with(text, delivery).await;
        timings.tts_ms = elapsed_ms(tts_started);
        match result {
            Ok(speech) => (Some(speech), None),
            Err(error) => {
                tracing::warn!(%error, "speaking the answer failed; sending text only");
                (None, Some(SpeechFailure::Tts(error)))
            }
        }
    }
}

/// Counts a turn's end once: as [`Counted::finish`] says, or as interrupted if the turn is dropped first.
struct Counted<'a> {
    telemetry: &'a Telemetry,
    finished: bool,
    ended: TurnEnd,
}

impl Counted<'_> {
    fn finish(&mut self, result: &Result<Turn, TurnError>, spoken: bool) {
        self.finished = true;
        match result {
            Ok(turn) => {
                let figures = TurnFigures { spoken, first_token: turn.first_token };
                self.telemetry.turn_finished(TurnOutcome::Done, Some(&turn.timings), figures);
            }
            Err(TurnError::Busy(_)) => self.telemetry.turn_finished(TurnOutcome::RefusedBusy, None, TurnFigures::default()),
            Err(_) => self.telemetry.turn_finished(TurnOutcome::Failed, None, TurnFigures::default()),
        }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if !self.finished && self.ended.known().is_some() {
            self.telemetry.turn_finished(TurnOutcome::Interrupted, None, TurnFigures::default());
        }
    }
}

/// A question, who asked it and the turns before it.
#[derive(Clone, Copy)]
struct Asked<'a> {
    history: &'a [HistoryTurn],
    question: &'a str,
    caller: &'a Caller,
}

/// Runs the agent, passing its events on, and hands each sentence to the speaker as soon as the model has
/// finished writing it. Text cut off by a tool call is never spoken, nor is the call itself. Also returns when
/// the first piece of the answer arrived.
async fn answer_aloud(
    agent: &Agent,
    asked: Asked<'_>,
    speaker: Option<&SentenceSpeaker>,
    events: &EventSink,
    findings: &Findings,
) -> Result<(Answer, Option<Instant>), TurnError> {
    let (agent_events, mut progress) = EventSink::channel();
    let generate = async move {
        let answer = agent.answer_noting(asked.history, asked.question, asked.caller, &agent_events, findings).await;
        // Closing the channel ends the relay below.
        drop(agent_events);
        answer
    };
    let relay = async {
        let mut splitter = SentenceSplitter::clause_first();
        let mut first_token = None;
        while let Some(event) = progress.recv().await {
            if first_token.is_none() && matches!(event, ServerEvent::AnswerDelta { .. }) {
                first_token = Some(Instant::now());
            }
            match (&event, speaker) {
                (ServerEvent::AnswerDelta { text }, Some(speaker)) => splitter.push(text).iter().for_each(|s| speaker.say(s)),
                // A tool round's unfinished text is a lead-in to the call, not part of the answer.
                (ServerEvent::ToolCall { .. }, _) => splitter = SentenceSplitter::clause_first(),
                _ => {}
            }
            events.emit(event);
        }
        (splitter, first_token)
    };
    let (answer, (mut splitter, first_token)) = tokio::join!(generate, relay);
    let answer = answer?;
    if let (Some(rest), Some(speaker)) = (splitter.flush(), speaker) {
        speaker.say(&rest);
    }
    Ok((answer, first_token))
}

/// The words in `audio`, with the notes' names written as the notes spell them.
async fn hear(stt: &dyn SpeechToText, vocabulary: Option<&NotesVocabulary>, audio: &AudioUpload) -> Result<String, SttError> {
    let Some(vocabulary) = vocabulary else { return stt.transcribe(audio).await };
    vocabulary.refresh(stt).await;
    Ok(vocabulary.respell(&stt.transcribe(audio).await?))
}

/// The final transcript, sent to the client, when it holds words.
fn heard(transcript: String, events: &EventSink) -> Result<String, TurnError> {
    if !has_words(&transcript) {
        return Err(TurnError::NoSpeech);
    }
    events.emit(ServerEvent::Transcript { text: transcript.clone(), is_final: true });
    Ok(transcript)
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
    duration_ms(since.elapsed())
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
