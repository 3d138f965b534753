//! Turns over the live connection (`/api/ws`): the microphone streamed while the user speaks, the answer
//! played sentence by sentence as it is written, barge-in, and hands-free mode. When the socket is not open,
//! [`super::Turns`] uses the HTTP path instead, so everything here is an improvement, never a requirement
//! (except hands-free, which cannot work without it and says so).
//!
//! Where the connection is in a turn is [`LiveState`]'s to say; this adapter feeds it the socket's events, the
//! microphone's frames and the user's actions, and does what it answers.

use base64::Engine as _;
use leptos::logging;
use leptos::prelude::*;
use leptos::task::spawn_local;
use parlance_shared::{
    AudioEncoding, ClientMessage, ErrorBody, ErrorCode, KnowledgeSource, ServerEvent, SessionId, StageTimings, TurnDetection,
};

use super::core::Core;
use super::live_state::{AfterDone, FrameUse, LiveState, Player};
use super::{PlaybackMark, SPOKEN_QUESTION};
use crate::audio::capture::Capture;
use crate::audio::recorder::MicError;
use crate::audio::stream_player::StreamPlayer;
use crate::conversation::{Answer, Reply};
use crate::settings::{self, HandsFreeSettings};
use crate::streaming::socket::{SocketError, SocketEvent, StreamSocket};
use crate::streaming::vad::{Vad, VadConfig, VadStep};
use crate::voice_state::{VoiceEvent, VoiceState};

/// How much longer than the server the app's own detector waits before it ends a hands-free question itself:
/// the server, which also judges whether the words sound finished, normally ends it first (`turn_ended`).
const SERVER_DECIDES_MS: u32 = 1_000;

const CLOSED_MID_TURN: &str = "The live connection to the Parlance server closed in the middle of this question. It reconnects by \
                               itself; ask again in a moment.";
const HANDS_FREE_NEEDS_SOCKET: &str = "Hands-free needs the live connection to the Parlance server, which is not open right now. \
                                       It reconnects by itself; meanwhile hold the mic button to talk, or type.";

/// The socket, and what it is carrying with the browser objects that belong to that.
#[derive(Default)]
struct Link {
    socket: Option<StreamSocket>,
    state: LiveState<Capture, StreamPlayer>,
}

impl Player for StreamPlayer {
    fn stop(&self) -> Option<u32> {
        StreamPlayer::stop(self)
    }

    fn has_audio(&self) -> bool {
        StreamPlayer::has_audio(self)
    }

    fn is_idle(&self) -> bool {
        StreamPlayer::is_idle(self)
    }
}

#[derive(Clone, Copy)]
pub(super) struct Live {
    core: Core,
    /// Browser objects live on the page's one thread only.
    link: StoredValue<Link, LocalStorage>,
}

impl Live {
    pub(super) fn new(core: Core) -> Self {
        Self { core, link: StoredValue::new_local(Link::default()) }
    }

    /// Opens the live connection; it stays open (reconnecting as needed) for the page's lifetime.
    pub(super) fn connect(self) {
        let socket = StreamSocket::connect(move |event| self.on_socket_event(event));
        self.link.update_value(|link| link.socket = socket);
    }

    pub(super) fn is_open(self) -> bool {
        self.link.with_value(|link| link.socket.as_ref().is_some_and(StreamSocket::is_open))
    }

    fn send(self, message: &ClientMessage) -> Result<(), SocketError> {
        let socket = self.link.with_value(|link| link.socket.clone());
        socket.ok_or(SocketError::NotOpen)?.send(message)
    }

    fn send_audio(self, bytes: &[u8]) {
        let socket = self.link.with_value(|link| link.socket.clone());
        if let Some(Err(error)) = socket.map(|socket| socket.send_audio(bytes)) {
            logging::warn!("audio frame not sent: {error}");
        }
    }

    /// Moves the live state on; `None` once the page is gone.
    fn change_live<T>(self, change: impl FnOnce(&mut LiveState<Capture, StreamPlayer>) -> T) -> Option<T> {
        self.link.try_update_value(|link| change(&mut link.state))
    }

    fn read_live<T>(self, read: impl FnOnce(&LiveState<Capture, StreamPlayer>) -> T) -> T {
        self.link.with_value(|link| read(&link.state))
    }

    // ---- push-to-talk over the socket ----

    /// Starts streaming the microphone for a turn that `start_listening` already moved to Listening.
    pub(super) fn start_streamed_listening(self, generation: u64) {
        spawn_local(async move {
            let Some(context) = self.core.audio_context() else {
                self.fail_microphone(MicError::Unsupported);
                return;
            };
            let on_failure = move |error: MicError| {
                if self.core.is_current(generation) {
                    self.fail_microphone(error);
                }
            };
            match Capture::start(&context, move |frame| self.on_frame(frame), on_failure).await {
                Ok(capture) => {
                    if !self.core.is_current(generation) || self.core.state.get_untracked() != VoiceState::Listening {
                        return; // dropping the capture releases the microphone
                    }
                    self.core.attach_meter(capture.stream());
                    let session_id = self.core.session.get_untracked();
                    self.core.heard.set(None);
                    let prefs = crate::prefs::load();
                    if let Err(error) = self.send(&ClientMessage::Start {
                        session_id,
                        encoding: AudioEncoding::Pcm16,
                        turn_detection: None,
                        speech_rate: prefs.socket_rate(),
                        voice: prefs.socket_voice(),
                    }) {
                        self.fail_microphone(MicError::RecorderFailed(error.to_string()));
                        return;
                    }
                    if self.change_live(|live| live.hold(capture)).is_none() {
                        return;
                    }
                    let stop_now = self.core.take_stop_requested();
                    if stop_now {
                        self.end_streamed_listening();
                    }
                }
                Err(error) => {
                    if self.core.is_current(generation) {
                        self.fail_microphone(error);
                    }
                }
            }
        });
    }

    /// Whether the microphone is streaming to the server (push-to-talk) rather than recording for an upload.
    pub(super) fn is_streaming_capture(self) -> bool {
        self.read_live(LiveState::is_held)
    }

    /// Push-to-talk let go: the rest of the audio goes out, then `end_turn`, and the microphone is released.
    pub(super) fn end_streamed_listening(self) {
        self.core.stop_meter();
        self.end_streamed_turn();
    }

    /// Sends what is left of the recording and `end_turn`; the answer is awaited as a live turn.
    fn end_streamed_turn(self) {
        if let Some(Some(rest)) = self.change_live(LiveState::end_question) {
            self.send_audio(&rest);
        }
        if let Err(error) = self.send(&ClientMessage::EndTurn) {
            self.core.apply(VoiceEvent::Failed(format!("{CLOSED_MID_TURN} ({error})")));
            self.resume_hands_free();
            return;
        }
        self.await_answer();
    }

    /// Hands-free: the server heard the question end, after a short silence if it sounded finished.
    fn turn_ended_by_server(self) {
        if self.change_live(LiveState::question_ended_by_server) == Some(true) {
            self.await_answer();
        }
    }

    /// The question has gone: the answer is awaited as a live turn.
    fn await_answer(self) {
        // What the server heard at the last pause is most often the whole question: shown until the final transcript.
        let heard = self.core.heard.try_update(Option::take).flatten();
        if self.core.apply(VoiceEvent::StreamEnded) {
            let generation = self.core.generation();
            let question = heard.unwrap_or_else(|| SPOKEN_QUESTION.to_owned());
            self.core.pending.set(Some(question.clone()));
            self.begin_live_turn(generation, question);
        }
    }

    fn begin_live_turn(self, generation: u64, question: String) {
        self.core.partial_answer.set(String::new());
        self.change_live(|live| live.begin(generation, question));
    }

    /// A typed question over the socket. Returns false if the socket refused it (the caller falls back to HTTP).
    pub(super) fn send_text(self, generation: u64, text: &str) -> bool {
        let prefs = crate::prefs::load();
        let message = ClientMessage::Text {
            session_id: self.core.session.get_untracked(),
            text: text.to_owned(),
            speak: prefs.speak_answers,
            speech_rate: prefs.socket_rate(),
            voice: prefs.socket_voice(),
        };
        if self.send(&message).is_err() {
            return false;
        }
        self.begin_live_turn(generation, text.to_owned());
        true
    }

    // ---- the microphone's frames ----

    fn on_frame(self, frame: Vec<i16>) {
        let state = self.core.state.get_untracked();
        // Hands-free hears a new question while waiting for one and while an answer plays (to be talked over),
        // not while the server works on one.
        let detector_listens = matches!(state, VoiceState::Listening | VoiceState::Speaking);
        match self.change_live(|live| live.frame(frame, detector_listens)) {
            Some(FrameUse::Send(message)) => self.send_audio(&message),
            Some(FrameUse::Detected(step)) => match step {
                VadStep::Waiting => {}
                VadStep::Started(frames) => self.hands_free_turn_started(state, frames),
                VadStep::Continue(frame) => self.send_frame(&frame),
                VadStep::Ended(frame) => {
                    self.send_frame(&frame);
                    self.end_streamed_turn();
                }
            },
            Some(FrameUse::Nothing) | None => {}
        }
    }

    fn send_frame(self, frame: &[i16]) {
        if let Some(Some(message)) = self.change_live(|live| live.push(frame)) {
            self.send_audio(&message);
        }
    }

    /// The detector heard speech: a new turn, cutting the answer short if one is playing (barge-in by voice).
    fn hands_free_turn_started(self, state: VoiceState, frames: Vec<Vec<i16>>) {
        if state == VoiceState::Speaking {
            logging::log!("barge-in: the user started speaking during the answer");
            self.silence_playback();
            if !self.core.apply(VoiceEvent::StartListening) {
                return;
            }
            self.core.next_generation();
        }
        let session_id = self.core.session.get_untracked();
        self.core.heard.set(None);
        // The server ends the turn: after the pause setting, or after a short one when the language model judges
        // the question finished. The app's own detector ends it only later (SERVER_DECIDES_MS), for a server that
        // does not listen for the end of turns.
        let silence_ms = self.core.hands_free.with_untracked(|settings| settings.silence_ms);
        let prefs = crate::prefs::load();
        if let Err(error) = self.send(&ClientMessage::Start {
            session_id,
            encoding: AudioEncoding::Pcm16,
            turn_detection: Some(TurnDetection { silence_ms, ..TurnDetection::default() }),
            speech_rate: prefs.socket_rate(),
            voice: prefs.socket_voice(),
        }) {
            self.fail_hands_free(&error.to_string());
            return;
        }
        self.change_live(LiveState::speech_started);
        for frame in frames {
            self.send_frame(&frame);
        }
    }

    // ---- hands-free ----

    /// The toggle (a user gesture, which also unlocks audio).
    pub(super) fn set_hands_free(self, enabled: bool) {
        self.core.unlock_audio();
        self.core.hands_free.update(|settings| settings.enabled = enabled);
        settings::save(self.core.hands_free.get_untracked());
        if enabled {
            if self.core.state.get_untracked().accepts_new_turn() {
                self.open_hands_free();
            }
        } else {
            self.close_hands_free();
        }
    }

    /// The silence setting; a turn being listened to keeps its detector, the next one uses the new value.
    pub(super) fn set_silence_ms(self, silence_ms: u32) {
        let silence_ms = VadConfig::with_silence_ms(silence_ms).silence_ms;
        self.core.hands_free.update(|settings| settings.silence_ms = silence_ms);
        settings::save(self.core.hands_free.get_untracked());
        // The next turn asks the server for this silence: the app's own detector must still wait longer.
        self.change_live(|live| live.set_detector_silence(silence_ms + SERVER_DECIDES_MS));
    }

    /// The mic button (or Space) in hands-free mode: opens the microphone, interrupts the answer, ends a
    /// question early, or closes the microphone, depending on what is going on.
    pub(super) fn hands_free_press(self) {
        let (listening_open, sending) = self.read_live(|live| (live.hands_free_open(), live.is_sending()));
        match self.core.state.get_untracked() {
            VoiceState::Listening if sending => self.end_streamed_turn(),
            VoiceState::Listening => self.close_hands_free(),
            VoiceState::Speaking => {
                self.silence_playback();
                self.core.apply(VoiceEvent::PlaybackFinished);
                self.core.next_generation();
                if listening_open {
                    self.resume_hands_free();
                } else {
                    self.open_hands_free();
                }
            }
            state if state.accepts_new_turn() => self.open_hands_free(),
            _ => {}
        }
    }

    fn open_hands_free(self) {
        if !self.is_open() {
            self.core.apply(VoiceEvent::Reset);
            self.core.apply(VoiceEvent::StartListening);
            self.core.apply(VoiceEvent::Failed(HANDS_FREE_NEEDS_SOCKET.to_owned()));
            return;
        }
        if !self.core.apply(VoiceEvent::StartListening) {
            return;
        }
        let generation = self.core.next_generation();
        spawn_local(async move {
            let Some(context) = self.core.audio_context() else {
                self.fail_microphone(MicError::Unsupported);
                return;
            };
            let on_failure = move |error: MicError| self.fail_microphone(error);
            match Capture::start(&context, move |frame| self.on_frame(frame), on_failure).await {
                Ok(capture) => {
                    if !self.core.is_current(generation)
                        || self.core.state.get_untracked() != VoiceState::Listening
                        || !self.core.hands_free_enabled()
                    {
                        return;
                    }
                    self.core.attach_meter(capture.stream());
                    // Read now: the setting may have changed while the microphone opened.
                    let silence_ms = self.core.hands_free.with_untracked(|settings| settings.silence_ms);
                    let config = VadConfig { silence_ms: silence_ms + SERVER_DECIDES_MS, ..VadConfig::with_silence_ms(silence_ms) };
                    self.change_live(|live| live.open_hands_free(capture, Vad::new(config)));
                }
                Err(error) => {
                    if self.core.is_current(generation) {
                        self.fail_microphone(error);
                    }
                }
            }
        });
    }

    /// Turns hands-free listening off: the microphone is released, a question being streamed is dropped.
    fn close_hands_free(self) {
        self.release_microphone();
        self.core.stop_meter();
        if self.core.state.get_untracked() == VoiceState::Listening {
            self.core.apply(VoiceEvent::Reset);
        }
    }

    /// After an answer (or a failure) in hands-free mode: listen again, with the microphone that is still open.
    pub(super) fn resume_hands_free(self) {
        if !self.core.hands_free_enabled() || !self.core.state.get_untracked().accepts_new_turn() {
            return;
        }
        if self.change_live(LiveState::listen_again) == Some(true) {
            if self.core.apply(VoiceEvent::StartListening) {
                self.core.next_generation();
            }
        } else {
            self.open_hands_free();
        }
    }

    fn fail_hands_free(self, reason: &str) {
        logging::warn!("hands-free: {reason}");
        self.close_hands_free();
        self.core.apply(VoiceEvent::Reset);
        self.core.apply(VoiceEvent::StartListening);
        self.core.apply(VoiceEvent::Failed(HANDS_FREE_NEEDS_SOCKET.to_owned()));
    }

    /// Hands-free is waiting for speech (the microphone open, nothing sent yet).
    pub(super) fn hands_free_idle(self) -> bool {
        self.core.state.get_untracked() == VoiceState::Listening && self.read_live(LiveState::waiting_for_speech)
    }

    /// Releases the microphone; a question being streamed is dropped.
    fn release_microphone(self) {
        if self.change_live(LiveState::release_mic) == Some(true) {
            // While listening the server drops what it received.
            let _ = self.send(&ClientMessage::Interrupt { played_through: None });
        }
    }

    /// "New conversation": the live turn is dropped without keeping anything, and the socket leaves the old
    /// conversation too.
    pub(super) fn new_conversation(self) {
        let busy = self.change_live(LiveState::reset);
        self.core.partial_answer.set(String::new());
        if busy == Some(true) {
            let _ = self.send(&ClientMessage::Interrupt { played_through: None });
        }
        if self.is_open() {
            let _ = self.send(&ClientMessage::NewSession);
        }
    }

    /// The microphone failed (or could not start): the turn fails with a sentence saying why.
    fn fail_microphone(self, error: MicError) {
        logging::warn!("microphone: {error:?}");
        self.release_microphone();
        self.core.stop_meter();
        self.core.set_stop_requested(false);
        self.core.track(|tracker| tracker.reset());
        self.core.apply(VoiceEvent::Failed(error.to_string()));
    }

    // ---- playback and barge-in ----

    /// Ends whatever answer is playing, streamed or a whole clip, without a PlaybackFinished: the caller is
    /// about to move the state on itself.
    pub(super) fn silence_playback(self) {
        self.interrupt_answer();
        self.core.silence_clip();
    }

    /// Stops a streamed answer that is playing (or still arriving) and tells the server how much was heard, so
    /// the conversation keeps only that. Returns whether there was one.
    pub(super) fn interrupt_answer(self) -> bool {
        let shown_question = self.core.pending.get_untracked();
        let Some(Some(stopped)) = self.change_live(|live| live.cut(shown_question)) else { return false };
        if stopped.was_playing {
            self.core.playback.set(PlaybackMark::Stopped);
        }
        self.core.partial_answer.set(String::new());
        self.core.pending.set(None);
        let played_through = stopped.played_through;
        logging::log!("interrupting the answer; played through chunk {played_through:?}");
        if let Err(error) = self.send(&ClientMessage::Interrupt { played_through }) {
            logging::warn!("the interruption could not be sent: {error}");
        }
        true
    }

    fn play_chunk(self, sequence: u32, audio: &parlance_shared::AudioClip) {
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&audio.data_base64) {
            Ok(bytes) => bytes,
            Err(error) => {
                logging::warn!("answer chunk {sequence} is not valid base64: {error}");
                return;
            }
        };
        let Some(context) = self.core.audio_context() else { return };
        let generation = self.core.generation();
        let make = move || StreamPlayer::new(context, move || self.on_player_idle(generation));
        let Some(Some((player, first))) = self.change_live(|live| live.chunk_player(make)) else { return };
        player.push(sequence, &bytes);
        if first {
            self.core.playback.set(PlaybackMark::Playing);
            self.core.apply(VoiceEvent::AnswerStarted);
        }
    }

    /// Everything received so far has played: the turn is over if `done` has come too.
    fn on_player_idle(self, generation: u64) {
        if !self.core.is_current(generation) {
            return;
        }
        if self.change_live(LiveState::played_out) == Some(true) {
            self.answer_played();
        }
    }

    fn answer_played(self) {
        self.core.playback.set(PlaybackMark::Ended);
        self.core.apply(VoiceEvent::PlaybackFinished);
        self.resume_hands_free();
    }

    // ---- what the server says ----

    fn on_socket_event(self, event: SocketEvent) {
        match event {
            SocketEvent::Opened => {
                logging::log!("live connection open");
                self.core.live_open.set(true);
            }
            SocketEvent::Closed { was_open, reason } => {
                self.core.live_open.set(false);
                self.on_socket_closed(was_open, &reason);
            }
            SocketEvent::Event(event) => self.on_server_event(event),
        }
    }

    fn on_socket_closed(self, was_open: bool, reason: &str) {
        logging::warn!("live connection closed (was open: {was_open}; {reason})");
        let in_turn = self.change_live(LiveState::reset);
        self.core.stop_meter();
        self.core.queue_place.set(None);
        if in_turn == Some(true) {
            self.core.next_generation();
            let question = self.core.pending.get_untracked();
            self.core.pending.set(None);
            self.core.partial_answer.set(String::new());
            if let Some(question) = question {
                self.core.push_exchange(question, Reply::Failed(CLOSED_MID_TURN.to_owned()));
            }
            self.core.apply(VoiceEvent::Failed(CLOSED_MID_TURN.to_owned()));
        } else if self.core.hands_free_enabled() && self.core.state.get_untracked() == VoiceState::Listening {
            self.core.apply(VoiceEvent::Failed(HANDS_FREE_NEEDS_SOCKET.to_owned()));
        }
    }

    fn on_server_event(self, event: ServerEvent) {
        let awaiting_cut = self.read_live(LiveState::awaiting_cut);
        // Any other event means the question left the line (it started, or ended).
        let place = match &event {
            ServerEvent::Status { state: parlance_shared::TurnState::Queued, position } if self.live_turn_is_current() => *position,
            _ => None,
        };
        if self.core.queue_place.get_untracked() != place {
            self.core.queue_place.set(place);
        }
        match event {
            ServerEvent::Interrupted { session_id, kept_answer } => self.on_interrupted(session_id, &kept_answer),
            // The reply to an interruption when everything had been played: the answer stands as it was.
            ServerEvent::Status { state: parlance_shared::TurnState::Idle, .. } if awaiting_cut => {
                self.change_live(LiveState::take_cut);
            }
            ServerEvent::Hello { protocol } if protocol != parlance_shared::PROTOCOL_VERSION => {
                self.core.apply(VoiceEvent::Failed(format!(
                    "this page speaks protocol {} and the server {protocol}: reload the page to get the server's own app",
                    parlance_shared::PROTOCOL_VERSION
                )));
            }
            ServerEvent::TurnEnded { .. } if !awaiting_cut => self.turn_ended_by_server(),
            // Where the server hears speech is only news: the app's own detector shows the level and barges in.
            ServerEvent::Hello { .. }
            | ServerEvent::Status { .. }
            | ServerEvent::ToolCall { .. }
            | ServerEvent::SpeechStarted { .. }
            | ServerEvent::SpeechStopped { .. }
            | ServerEvent::SpeechIgnored { .. }
            | ServerEvent::TurnEnded { .. } => {}
            // Whatever the cut turn still sent before the server saw the interruption.
            ServerEvent::Transcript { .. }
            | ServerEvent::AnswerDelta { .. }
            | ServerEvent::AudioChunk { .. }
            | ServerEvent::Done { .. }
                if awaiting_cut => {}
            // Heard at a pause while the user may still go on: provisional until the turn is sent.
            ServerEvent::Transcript { text, is_final: false } if self.core.state.get_untracked() == VoiceState::Listening => {
                self.core.heard.set(Some(text));
            }
            ServerEvent::Transcript { text, .. } => {
                if self.live_turn_is_current() {
                    self.core.pending.set(Some(text.clone()));
                    self.change_live(|live| live.set_question(text));
                }
            }
            ServerEvent::AnswerDelta { text } => {
                if self.live_turn_is_current() {
                    self.core.partial_answer.update(|answer| answer.push_str(&text));
                }
            }
            ServerEvent::AudioChunk { sequence, audio, .. } => {
                if self.live_turn_is_current() {
                    self.play_chunk(sequence, &audio);
                }
            }
            ServerEvent::Done { session_id, answer, sources, timings, speech_error } => {
                if self.live_turn_is_current() {
                    self.on_done(session_id, &answer, sources, timings, speech_error.as_ref());
                }
            }
            ServerEvent::Error { error } => self.on_server_error(&error),
        }
    }

    fn live_turn_is_current(self) -> bool {
        let generation = self.core.generation();
        self.read_live(|live| live.answering(generation))
    }

    fn on_done(
        self,
        session_id: SessionId,
        answer: &str,
        sources: Vec<KnowledgeSource>,
        timings: StageTimings,
        speech_error: Option<&ErrorBody>,
    ) {
        self.core.notice.set(None);
        self.core.set_session(Some(session_id));
        let question = self.read_live(|live| live.turn().map(|turn| turn.question.clone())).unwrap_or_default();
        self.core.pending.set(None);
        self.core.partial_answer.set(String::new());
        let id = self.core.push_exchange(question, Reply::Answer(Answer::from_done(answer, &sources, timings, speech_error)));
        match self.change_live(|live| live.done(id, sources, timings)).unwrap_or(AfterDone::Silent) {
            AfterDone::Silent => {
                self.core.apply(VoiceEvent::AnswerReceived { has_audio: false });
                self.resume_hands_free();
            }
            AfterDone::Played => self.answer_played(),
            AfterDone::PlayingOut => {}
        }
    }

    fn on_interrupted(self, session_id: SessionId, kept_answer: &str) {
        let Some(Some(cut)) = self.change_live(LiveState::take_cut) else { return };
        self.core.set_session(Some(session_id));
        let reply = Reply::Answer(Answer::interrupted(kept_answer, cut.sources, cut.timings));
        match cut.exchange {
            Some(id) => self.core.replace_reply(id, reply),
            None => {
                self.core.push_exchange(cut.question, reply);
            }
        }
    }

    fn on_server_error(self, error: &ErrorBody) {
        let in_turn = self.live_turn_is_current() || self.read_live(LiveState::is_sending);
        if !in_turn {
            logging::warn!("the server reported: {} ({:?})", error.message, error.code);
            return;
        }
        // A refused `start` releases a push-to-talk microphone; hands-free keeps listening.
        let mic_released = self.change_live(LiveState::stop_sending).unwrap_or(false);
        let question = self.change_live(LiveState::fail_answer).flatten();
        self.core.pending.set(None);
        self.core.partial_answer.set(String::new());
        if error.code == ErrorCode::SessionNotFound {
            self.core.set_session(None);
        }
        if error.code == ErrorCode::NoSpeech && self.core.hands_free_enabled() {
            // Hands-free took a noise for speech: nothing to show, keep listening.
            if self.core.apply(VoiceEvent::NothingHeard) {
                self.change_live(LiveState::listen_again);
            }
            return;
        }
        if mic_released {
            self.core.stop_meter();
        }
        if let Some(question) = question {
            self.core.push_exchange(question, Reply::Failed(error.message.clone()));
        }
        self.core.apply(VoiceEvent::Failed(error.message.clone()));
        self.resume_hands_free();
    }

    /// The current hands-free settings, for the page.
    pub(super) fn hands_free_settings(self) -> Signal<HandsFreeSettings> {
        self.core.hands_free.into()
    }
}
