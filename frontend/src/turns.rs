//! Runs turns: what the mic button, Space, the text box and the stop button do, in what order the browser's
//! recorder, the server and the player are called, and which results still count.
//!
//! Every change of [`VoiceState`] goes through [`Turns::apply`]. Each turn also gets a generation number: when
//! a turn is abandoned ("New conversation", or playback interrupted by a new question), its late results (a
//! recording finishing, an answer arriving, a clip ending) see a newer generation and are dropped.

mod live;
mod live_state;

use std::sync::Arc;

use base64::Engine as _;
use leptos::logging;
use leptos::prelude::*;
use leptos::task::spawn_local;
use parlance_shared::{ErrorCode, SessionId, TextTurnRequest, TurnResponse};

use crate::api::{self, ApiError};
use crate::audio::level::LevelMeter;
use crate::audio::output::{AudioOutput, Playback};
use crate::audio::recorder::{MicError, RecordedAudio, Recording, file_name_for};
use crate::conversation::{Answer, Exchange, Reply, exchanges_from_history};
use crate::gesture::{MicAction, PressTracker};
use crate::session_store;
use crate::settings::{self, HandsFreeSettings};
use crate::voice_state::{VoiceEvent, VoiceState};
use web_sys::MediaStream;

/// Shown for a spoken question until the server sends its transcript.
const SPOKEN_QUESTION: &str = "🎤 Your question";
const OFFLINE_NOTICE: &str = "Can't reach the Parlance server. Check that it is running and that you are online; \
                              the conversation continues once it is back.";
/// Often enough for the meter to look live, rarely enough to cost nothing.
const METER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(60);

/// Where the spoken answer is, for the page's `data-playback` attribute (styling and the browser tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackMark {
    Idle,
    Playing,
    Ended,
    Stopped,
}

impl PlaybackMark {
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Playing => "playing",
            Self::Ended => "ended",
            Self::Stopped => "stopped",
        }
    }
}

/// Browser objects, which live on the page's one thread only.
#[derive(Default)]
struct Devices {
    output: AudioOutput,
    recording: Option<Recording>,
    meter: Option<LevelMeter>,
    meter_timer: Option<IntervalHandle>,
    playback: Option<Playback>,
    tracker: PressTracker,
    /// The user let go before the microphone had even started: stop as soon as it does.
    stop_requested: bool,
}

/// The app's turn-taking. `Copy`: every field is a handle into the reactive owner.
#[derive(Clone, Copy)]
pub struct Turns {
    pub state: RwSignal<VoiceState>,
    pub session: RwSignal<Option<SessionId>>,
    pub exchanges: RwSignal<Vec<Arc<Exchange>>>,
    /// The question in flight, until its answer (or error) joins `exchanges`.
    pub pending: RwSignal<Option<String>>,
    /// What the server heard at the user's last pause while they may still go on (a provisional transcript);
    /// it becomes the pending question when the turn is sent.
    pub heard: RwSignal<Option<String>>,
    /// The microphone's level while listening, 0.0..=1.0.
    pub level: RwSignal<f32>,
    /// A problem with the connection rather than with one question.
    pub notice: RwSignal<Option<String>>,
    pub playback: RwSignal<PlaybackMark>,
    /// A streamed answer's text so far, shown while the rest is still being written.
    pub partial_answer: RwSignal<String>,
    pub hands_free: RwSignal<HandsFreeSettings>,
    /// Whether the live connection is open (turns stream over it) or not (they go over HTTP).
    pub live_open: RwSignal<bool>,
    generation: StoredValue<u64>,
    next_exchange_id: StoredValue<u64>,
    devices: StoredValue<Devices, LocalStorage>,
    live: StoredValue<live::Live, LocalStorage>,
}

impl Turns {
    pub fn new() -> Self {
        Self {
            state: RwSignal::new(VoiceState::Ready),
            session: RwSignal::new(session_store::load()),
            exchanges: RwSignal::new(Vec::new()),
            pending: RwSignal::new(None),
            heard: RwSignal::new(None),
            level: RwSignal::new(0.0),
            notice: RwSignal::new(None),
            playback: RwSignal::new(PlaybackMark::Idle),
            partial_answer: RwSignal::new(String::new()),
            hands_free: RwSignal::new(settings::load()),
            live_open: RwSignal::new(false),
            generation: StoredValue::new(0),
            next_exchange_id: StoredValue::new(0),
            devices: StoredValue::new_local(Devices::default()),
            live: StoredValue::new_local(live::Live::default()),
        }
    }

    /// At start-up: shows the stored conversation again, or at least checks the server is there.
    pub fn restore(self) {
        self.connect_live();
        let stored = self.session.get_untracked();
        spawn_local(async move {
            let Some(id) = stored else {
                if api::probe().await.is_err() {
                    self.notice.set(Some(OFFLINE_NOTICE.to_owned()));
                }
                return;
            };
            match api::fetch_history(&id).await {
                Ok(history) => {
                    // A question asked while the history was loading already belongs after it.
                    if self.session.get_untracked().as_ref() != Some(&id) {
                        return;
                    }
                    let restored: Vec<Arc<Exchange>> = exchanges_from_history(&history.turns)
                        .into_iter()
                        .map(|(question, reply)| Arc::new(Exchange { id: self.next_exchange_id(), question, reply }))
                        .collect();
                    self.exchanges.update(|list| {
                        let newer = std::mem::replace(list, restored);
                        list.extend(newer);
                    });
                }
                Err(error) if error.code() == Some(ErrorCode::SessionNotFound) => {
                    // The server forgot it (restarted without storage, or deleted): start afresh, silently.
                    if self.session.get_untracked().as_ref() == Some(&id) {
                        self.set_session(None);
                    }
                }
                Err(ApiError::Unreachable) => self.notice.set(Some(OFFLINE_NOTICE.to_owned())),
                Err(error) => logging::warn!("the conversation could not be restored: {error}"),
            }
        });
    }

    /// The mic button or Space went down.
    pub fn press(self) {
        self.unlock_audio();
        if self.hands_free_enabled() {
            self.hands_free_press();
            return;
        }
        let state = self.state.get_untracked();
        let listening = state == VoiceState::Listening;
        let action = self.devices.try_update_value(|d| d.tracker.press(now_ms(), listening, state.accepts_new_turn()));
        self.act(action.unwrap_or(MicAction::Nothing));
    }

    /// The mic button or Space came up.
    pub fn release(self) {
        if self.hands_free_enabled() {
            return; // hands-free has no push-to-talk: each press is a tap
        }
        let listening = self.state.get_untracked() == VoiceState::Listening;
        let action = self.devices.try_update_value(|d| d.tracker.release(now_ms(), listening));
        self.act(action.unwrap_or(MicAction::Nothing));
    }

    fn act(self, action: MicAction) {
        match action {
            MicAction::StartRecording => self.start_listening(),
            MicAction::StopRecording => self.stop_listening(),
            MicAction::Nothing => {}
        }
    }

    /// A typed question. Returns whether it was accepted (it is refused while another turn is in flight).
    pub fn submit_text(self, text: String) -> bool {
        self.unlock_audio();
        if self.hands_free_idle() {
            // Typing while hands-free waits for speech: the typed question goes first, listening resumes after.
            self.apply(VoiceEvent::Reset);
        }
        if !self.state.get_untracked().accepts_new_turn() {
            return false;
        }
        self.silence_playback();
        if !self.apply(VoiceEvent::TextSubmitted) {
            return false;
        }
        let generation = self.next_generation();
        self.pending.set(Some(text.clone()));
        if self.live_is_open() && self.send_text_live(generation, &text) {
            return true;
        }
        let request = TextTurnRequest { session_id: self.session.get_untracked(), text: text.clone(), speak: true };
        spawn_local(async move {
            let result = api::send_text_turn(&request).await;
            self.finish_turn(generation, text, result).await;
        });
        true
    }

    /// The stop button: cuts the spoken answer short.
    pub fn stop_playback(self) {
        if self.interrupt_live_answer() {
            self.apply(VoiceEvent::PlaybackFinished);
            self.next_generation();
            self.resume_hands_free();
            return;
        }
        if let Some(playback) = self.devices.try_update_value(|d| d.playback.take()).flatten() {
            self.playback.set(PlaybackMark::Stopped);
            playback.silence();
        }
        self.apply(VoiceEvent::PlaybackFinished);
    }

    /// "New conversation": abandons whatever is going on, forgets the conversation here and on the server.
    pub fn new_conversation(self) {
        self.next_generation();
        self.release_microphone();
        self.silence_playback();
        self.live_new_conversation();
        self.devices.update_value(|d| d.tracker.reset());
        self.pending.set(None);
        self.exchanges.set(Vec::new());
        if let Some(old) = self.session.get_untracked() {
            // Best effort: the server forgets old conversations anyway; the user asked for a fresh start here.
            spawn_local(async move {
                if let Err(error) = api::delete_session(&old).await {
                    logging::warn!("the old conversation was not deleted on the server: {error}");
                }
            });
        }
        self.set_session(None);
        self.apply(VoiceEvent::Reset);
    }

    fn apply(self, event: VoiceEvent) -> bool {
        match self.state.get_untracked().on(event) {
            Ok(next) => {
                self.state.set(next);
                true
            }
            Err(refused) => {
                logging::log!("ignored: {refused}");
                false
            }
        }
    }

    fn next_generation(self) -> u64 {
        self.generation.update_value(|generation| *generation += 1);
        self.generation.get_value()
    }

    fn is_current(self, generation: u64) -> bool {
        self.generation.get_value() == generation
    }

    fn next_exchange_id(self) -> u64 {
        let id = self.next_exchange_id.get_value();
        self.next_exchange_id.set_value(id + 1);
        id
    }

    fn set_session(self, session: Option<SessionId>) {
        session_store::save(session.as_ref());
        self.session.set(session);
    }

    fn unlock_audio(self) {
        self.devices.with_value(|d| d.output.unlock());
    }

    fn start_listening(self) {
        self.silence_playback();
        if !self.apply(VoiceEvent::StartListening) {
            return;
        }
        let generation = self.next_generation();
        self.devices.update_value(|d| d.stop_requested = false);
        if self.live_is_open() {
            self.start_streamed_listening(generation);
            return;
        }
        spawn_local(async move {
            let on_failure = move |error: MicError| {
                if self.is_current(generation) {
                    self.fail_recording(error);
                }
            };
            match Recording::start(on_failure).await {
                Ok(recording) => {
                    if !self.is_current(generation) || self.state.get_untracked() != VoiceState::Listening {
                        return; // dropping the recording releases the microphone
                    }
                    self.attach_meter(recording.stream());
                    let stop_now = self
                        .devices
                        .try_update_value(|d| {
                            d.recording = Some(recording);
                            std::mem::take(&mut d.stop_requested)
                        })
                        .unwrap_or(false);
                    if stop_now {
                        self.stop_listening();
                    }
                }
                Err(error) => {
                    if self.is_current(generation) {
                        self.fail_recording(error);
                    }
                }
            }
        });
    }

    fn attach_meter(self, stream: &MediaStream) {
        let Some(context) = self.devices.with_value(|d| d.output.context()) else { return };
        let meter = match LevelMeter::attach(&context, stream) {
            Ok(meter) => meter,
            Err(error) => {
                logging::warn!("{error}");
                return;
            }
        };
        let level = self.level;
        let devices = self.devices;
        let timer = set_interval_with_handle(
            move || {
                if let Some(now) = devices.try_update_value(|d| d.meter.as_mut().map(LevelMeter::read)).flatten() {
                    level.set(now);
                }
            },
            METER_INTERVAL,
        )
        .ok();
        self.devices.update_value(|d| {
            d.meter = Some(meter);
            d.meter_timer = timer;
        });
    }

    fn fail_recording(self, error: MicError) {
        logging::warn!("microphone: {error:?}");
        self.release_microphone();
        self.release_live_microphone();
        self.devices.update_value(|d| d.tracker.reset());
        self.apply(VoiceEvent::Failed(error.to_string()));
    }

    /// Stops the meter and drops any recording, which turns the microphone off.
    fn release_microphone(self) {
        self.devices.update_value(|d| {
            if let Some(timer) = d.meter_timer.take() {
                timer.clear();
            }
            d.meter = None;
            d.recording = None;
            d.stop_requested = false;
        });
        self.level.set(0.0);
    }

    /// Stops the level meter (the microphone itself is released by whoever holds it).
    fn stop_meter(self) {
        self.devices.update_value(|d| {
            if let Some(timer) = d.meter_timer.take() {
                timer.clear();
            }
            d.meter = None;
        });
        self.level.set(0.0);
    }

    fn stop_listening(self) {
        if self.is_streaming_capture() {
            self.end_streamed_listening();
            return;
        }
        let recording = self
            .devices
            .try_update_value(|d| {
                if let Some(timer) = d.meter_timer.take() {
                    timer.clear();
                }
                d.meter = None;
                let recording = d.recording.take();
                // Still waiting for the microphone (a permission prompt, a slow device): stop once it starts.
                d.stop_requested = recording.is_none();
                recording
            })
            .flatten();
        self.level.set(0.0);
        let Some(recording) = recording else { return };
        let generation = self.generation.get_value();
        spawn_local(async move {
            let finished = recording.finish().await;
            if !self.is_current(generation) {
                return;
            }
            match finished {
                Ok(audio) if audio.blob.size() > 0.0 => {
                    if self.apply(VoiceEvent::RecordingFinished) {
                        self.upload(generation, audio).await;
                    }
                }
                Ok(_) => {
                    self.apply(VoiceEvent::RecordingDiscarded);
                }
                Err(error) => self.fail_recording(error),
            }
        });
    }

    async fn upload(self, generation: u64, audio: RecordedAudio) {
        self.pending.set(Some(SPOKEN_QUESTION.to_owned()));
        let session = self.session.get_untracked();
        let on_uploaded = move || {
            if self.is_current(generation) {
                self.apply(VoiceEvent::UploadComplete);
            }
        };
        let result = api::send_voice_turn(&audio.blob, file_name_for(&audio.mime_type), session.as_ref(), on_uploaded).await;
        self.finish_turn(generation, SPOKEN_QUESTION.to_owned(), result).await;
    }

    async fn finish_turn(self, generation: u64, question: String, result: Result<TurnResponse, ApiError>) {
        if !self.is_current(generation) {
            return;
        }
        self.pending.set(None);
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                if error == ApiError::Unreachable {
                    self.notice.set(Some(OFFLINE_NOTICE.to_owned()));
                }
                if error.code() == Some(ErrorCode::SessionNotFound) {
                    self.set_session(None);
                }
                let message = error.to_string();
                self.push_exchange(question, Reply::Failed(message.clone()));
                self.apply(VoiceEvent::Failed(message));
                return;
            }
        };
        self.notice.set(None);
        self.set_session(Some(response.session_id.clone()));
        let question = if response.transcript.trim().is_empty() { question } else { response.transcript.clone() };
        self.push_exchange(question, Reply::Answer(Answer::from_response(&response)));

        let audio = response.audio.as_ref().and_then(|clip| match base64::engine::general_purpose::STANDARD.decode(&clip.data_base64) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                logging::warn!("the answer's audio is not valid base64: {error}");
                None
            }
        });
        if !self.apply(VoiceEvent::AnswerReceived { has_audio: audio.is_some() }) {
            return;
        }
        if let Some(bytes) = audio {
            self.play(generation, bytes).await;
        }
    }

    async fn play(self, generation: u64, bytes: Vec<u8>) {
        let output = self.devices.with_value(|d| d.output.clone());
        let on_ended = move || {
            if self.is_current(generation) && self.devices.try_update_value(|d| d.playback.take()).flatten().is_some() {
                self.playback.set(PlaybackMark::Ended);
                self.apply(VoiceEvent::PlaybackFinished);
            }
        };
        match output.play(&bytes, on_ended).await {
            Ok(playback) if self.is_current(generation) => {
                logging::log!("playing the answer: {:.1} s", playback.duration_secs);
                self.playback.set(PlaybackMark::Playing);
                self.devices.update_value(|d| d.playback = Some(playback));
            }
            Ok(playback) => playback.silence(),
            Err(error) => {
                logging::warn!("playback: {error}");
                if self.is_current(generation) {
                    self.apply(VoiceEvent::Failed(format!(
                        "The spoken answer could not be played ({error}); the written answer is above."
                    )));
                }
            }
        }
    }

    /// Ends playback without a PlaybackFinished: the caller is about to move the state on itself.
    fn silence_playback(self) {
        self.interrupt_live_answer();
        if let Some(playback) = self.devices.try_update_value(|d| d.playback.take()).flatten() {
            self.playback.set(PlaybackMark::Stopped);
            playback.silence();
        }
    }

    /// Shows a finished exchange; returns its id.
    fn push_exchange(self, question: String, reply: Reply) -> u64 {
        let id = self.next_exchange_id();
        let exchange = Arc::new(Exchange { id, question, reply });
        self.exchanges.update(|list| list.push(exchange));
        id
    }

    /// Changes what an exchange shows as its reply (an answer cut short after it was shown). The exchange gets
    /// a new id: the list is keyed by id, and `For` keeps the DOM of a key it has already rendered, so under the
    /// old id the page went on showing the whole answer instead of the part that was kept.
    fn replace_reply(self, id: u64, reply: Reply) {
        let new_id = self.next_exchange_id();
        self.exchanges.update(|list| {
            if let Some(slot) = list.iter_mut().find(|exchange| exchange.id == id) {
                *slot = Arc::new(Exchange { id: new_id, question: slot.question.clone(), reply });
            }
        });
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}
