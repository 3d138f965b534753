//! What every turn shares, whichever way it travels: the signals the page shows, the [`VoiceState`] and the
//! only way it changes ([`Core::apply`]), the turn generation that makes late results stale, the conversation's
//! exchanges and session, and the browser objects both paths use (the audio output, the level meter, the clip
//! of an answer that came over HTTP, the press tracker).

use std::sync::Arc;

use leptos::logging;
use leptos::prelude::*;
use parlance_shared::SessionId;
use web_sys::{AudioContext, MediaStream};

use super::PlaybackMark;
use crate::audio::level::LevelMeter;
use crate::audio::output::{AudioOutput, Playback};
use crate::conversation::{Exchange, Reply};
use crate::gesture::PressTracker;
use crate::session_store;
use crate::settings::{self, HandsFreeSettings};
use crate::voice_state::{VoiceEvent, VoiceState};

const OFFLINE_NOTICE: &str = "Can't reach the Parlance server. Check that it is running and that you are online; \
                                         the conversation continues once it is back.";
/// Often enough for the meter to look live, rarely enough to cost nothing.
const METER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(60);

/// Browser objects, which live on the page's one thread only.
#[derive(Default)]
struct Devices {
    output: AudioOutput,
    meter: Option<LevelMeter>,
    meter_timer: Option<IntervalHandle>,
    /// A whole answer that came over HTTP, while it plays.
    clip: Option<Playback>,
    tracker: PressTracker,
    /// The user let go before the microphone had even started: stop as soon as it does.
    stop_requested: bool,
}

/// The turns' shared state. `Copy`: every field is a handle into the reactive owner.
#[derive(Clone, Copy)]
pub struct Core {
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
    /// While the server has the question wait for others to be answered first: its place in line (1: next).
    pub queue_place: RwSignal<Option<u32>>,
    pub hands_free: RwSignal<HandsFreeSettings>,
    /// Whether the live connection is open (turns stream over it) or not (they go over HTTP).
    pub live_open: RwSignal<bool>,
    generation: StoredValue<u64>,
    next_exchange_id: StoredValue<u64>,
    devices: StoredValue<Devices, LocalStorage>,
}

impl Core {
    pub(super) fn new() -> Self {
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
            queue_place: RwSignal::new(None),
            hands_free: RwSignal::new(settings::load()),
            live_open: RwSignal::new(false),
            generation: StoredValue::new(0),
            next_exchange_id: StoredValue::new(0),
            devices: StoredValue::new_local(Devices::default()),
        }
    }

    /// The one way [`VoiceState`] changes; returns whether the table allowed `event`.
    pub(super) fn apply(self, event: VoiceEvent) -> bool {
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

    /// Starts a new turn generation: the results of every earlier turn are stale from now on.
    pub(super) fn next_generation(self) -> u64 {
        self.generation.update_value(|generation| *generation += 1);
        self.generation.get_value()
    }

    pub(super) fn generation(self) -> u64 {
        self.generation.get_value()
    }

    pub(super) fn is_current(self, generation: u64) -> bool {
        self.generation.get_value() == generation
    }

    pub(super) fn next_exchange_id(self) -> u64 {
        let id = self.next_exchange_id.get_value();
        self.next_exchange_id.set_value(id + 1);
        id
    }

    pub(super) fn set_session(self, session: Option<SessionId>) {
        session_store::save(session.as_ref());
        self.session.set(session);
    }

    pub(super) fn hands_free_enabled(self) -> bool {
        self.hands_free.with_untracked(|settings| settings.enabled)
    }

    pub(super) fn show_offline(self) {
        self.notice.set(Some(OFFLINE_NOTICE.to_owned()));
    }

    /// Shows a finished exchange; returns its id.
    pub(super) fn push_exchange(self, question: String, reply: Reply) -> u64 {
        let id = self.next_exchange_id();
        let exchange = Arc::new(Exchange { id, question, reply });
        self.exchanges.update(|list| list.push(exchange));
        id
    }

    /// Changes what an exchange shows as its reply (an answer cut short after it was shown). The exchange gets
    /// a new id: the list is keyed by id, and `For` keeps the DOM of a key it has already rendered, so under the
    /// old id the page went on showing the whole answer instead of the part that was kept.
    pub(super) fn replace_reply(self, id: u64, reply: Reply) {
        let new_id = self.next_exchange_id();
        self.exchanges.update(|list| {
            if let Some(slot) = list.iter_mut().find(|exchange| exchange.id == id) {
                *slot = Arc::new(Exchange { id: new_id, question: slot.question.clone(), reply });
            }
        });
    }

    // ---- the browser objects both paths use ----

    pub(super) fn unlock_audio(self) {
        self.devices.with_value(|d| d.output.unlock());
    }

    pub(super) fn audio_output(self) -> AudioOutput {
        self.devices.with_value(|d| d.output.clone())
    }

    /// The page's one AudioContext; `None` in browsers without Web Audio.
    pub(super) fn audio_context(self) -> Option<AudioContext> {
        self.devices.with_value(|d| d.output.context())
    }

    /// The press or release of the mic button, through the tracker that tells holds from taps.
    pub(super) fn track<T>(self, gesture: impl FnOnce(&mut PressTracker) -> T) -> Option<T> {
        self.devices.try_update_value(|d| gesture(&mut d.tracker))
    }

    pub(super) fn set_stop_requested(self, requested: bool) {
        self.devices.update_value(|d| d.stop_requested = requested);
    }

    /// Whether the user let go while the microphone was starting (and forgets it).
    pub(super) fn take_stop_requested(self) -> bool {
        self.devices.try_update_value(|d| std::mem::take(&mut d.stop_requested)).unwrap_or(false)
    }

    pub(super) fn attach_meter(self, stream: &MediaStream) {
        let Some(context) = self.audio_context() else { return };
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

    /// Stops the level meter (the microphone itself is released by whoever holds it).
    pub(super) fn stop_meter(self) {
        self.devices.update_value(|d| {
            if let Some(timer) = d.meter_timer.take() {
                timer.clear();
            }
            d.meter = None;
        });
        self.level.set(0.0);
    }

    pub(super) fn clip_started(self, clip: Playback) {
        self.playback.set(PlaybackMark::Playing);
        self.devices.update_value(|d| d.clip = Some(clip));
    }

    /// The clip playing, if any, which is then no longer the page's to stop.
    pub(super) fn take_clip(self) -> Option<Playback> {
        self.devices.try_update_value(|d| d.clip.take()).flatten()
    }

    /// Stops the HTTP answer's clip without a PlaybackFinished: the caller moves the state on itself.
    pub(super) fn silence_clip(self) {
        if let Some(clip) = self.take_clip() {
            self.playback.set(PlaybackMark::Stopped);
            clip.silence();
        }
    }
}
