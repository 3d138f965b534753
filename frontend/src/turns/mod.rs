//! Runs turns: what the mic button, Space, the text box and the stop button do, in what order the browser's
//! recorder, the server and the player are called, and which results still count.
//!
//! [`Turns`] is the controller the page talks to (shared through Leptos context). What every turn shares is in
//! [`Core`]: every change of [`VoiceState`] goes through [`Core::apply`], and each turn gets a generation
//! number, so when a turn is abandoned ("New conversation", or playback interrupted by a new question) its late
//! results (a recording finishing, an answer arriving, a clip ending) see a newer generation and are dropped.
//! A turn travels over the live connection when it is open ([`live`], whose state is [`live_state`]'s
//! explicit machine) and over plain HTTP otherwise ([`http`]).

mod core;
mod http;
mod live;
mod live_state;

use leptos::prelude::*;

pub use self::core::Core;
use self::http::Http;
use self::live::Live;
use crate::gesture::MicAction;
use crate::settings::HandsFreeSettings;
use crate::voice_state::{VoiceEvent, VoiceState};

/// Shown for a spoken question until the server sends its transcript.
const SPOKEN_QUESTION: &str = "🎤 Your question";

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

/// The app's turn-taking: the user's actions, each sent down the path that is open. `Copy`: every part is a
/// handle into the reactive owner.
#[derive(Clone, Copy)]
pub struct Turns {
    /// What the page shows.
    pub core: Core,
    http: Http,
    live: Live,
}

impl Turns {
    pub fn new() -> Self {
        let core = Core::new();
        Self { core, http: Http::new(core), live: Live::new(core) }
    }

    /// At start-up: opens the live connection and shows the stored conversation again.
    pub fn restore(self) {
        self.live.connect();
        self.http.restore();
    }

    /// The mic button or Space went down.
    pub fn press(self) {
        self.core.unlock_audio();
        if self.core.hands_free_enabled() {
            self.live.hands_free_press();
            return;
        }
        let state = self.core.state.get_untracked();
        let listening = state == VoiceState::Listening;
        let action = self.core.track(|tracker| tracker.press(now_ms(), listening, state.accepts_new_turn()));
        self.act(action.unwrap_or(MicAction::Nothing));
    }

    /// The mic button or Space came up.
    pub fn release(self) {
        if self.core.hands_free_enabled() {
            return; // hands-free has no push-to-talk: each press is a tap
        }
        let listening = self.core.state.get_untracked() == VoiceState::Listening;
        let action = self.core.track(|tracker| tracker.release(now_ms(), listening));
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
        let core = self.core;
        core.unlock_audio();
        if self.live.hands_free_idle() {
            // Typing while hands-free waits for speech: the typed question goes first, listening resumes after.
            core.apply(VoiceEvent::Reset);
        }
        if !core.state.get_untracked().accepts_new_turn() {
            return false;
        }
        self.live.silence_playback();
        if !core.apply(VoiceEvent::TextSubmitted) {
            return false;
        }
        let generation = core.next_generation();
        core.pending.set(Some(text.clone()));
        if self.live.is_open() && self.live.send_text(generation, &text) {
            return true;
        }
        self.http.send_text(generation, text);
        true
    }

    /// The stop button: cuts the spoken answer short.
    pub fn stop_playback(self) {
        if self.live.interrupt_answer() {
            self.core.apply(VoiceEvent::PlaybackFinished);
            self.core.next_generation();
            self.live.resume_hands_free();
            return;
        }
        self.core.silence_clip();
        self.core.apply(VoiceEvent::PlaybackFinished);
    }

    /// "New conversation": abandons whatever is going on and starts afresh. The old conversation is kept on
    /// the server (the conversations panel lists it, to reopen or delete).
    pub fn start_afresh(self) {
        self.leave_conversation();
        self.core.set_session(None);
        self.core.apply(VoiceEvent::Reset);
    }

    /// Shows a past conversation; the next question continues it.
    pub fn open_conversation(self, id: parlance_shared::SessionId) {
        self.leave_conversation();
        self.core.set_session(Some(id));
        self.core.apply(VoiceEvent::Reset);
        self.http.restore();
    }

    fn leave_conversation(self) {
        let core = self.core;
        core.next_generation();
        self.http.release_microphone();
        self.live.silence_playback();
        self.live.new_conversation();
        core.track(|tracker| tracker.reset());
        core.pending.set(None);
        core.exchanges.set(Vec::new());
    }

    /// The hands-free switch (a user gesture, which also unlocks audio).
    pub fn set_hands_free(self, enabled: bool) {
        self.live.set_hands_free(enabled);
    }

    /// The hands-free pause that ends a question.
    pub fn set_silence_ms(self, silence_ms: u32) {
        self.live.set_silence_ms(silence_ms);
    }

    /// The current hands-free settings, for the page.
    pub fn hands_free_settings(self) -> Signal<HandsFreeSettings> {
        self.live.hands_free_settings()
    }

    fn start_listening(self) {
        let core = self.core;
        self.live.silence_playback();
        if !core.apply(VoiceEvent::StartListening) {
            return;
        }
        let generation = core.next_generation();
        core.set_stop_requested(false);
        if self.live.is_open() {
            self.live.start_streamed_listening(generation);
        } else {
            self.http.start_recording(generation);
        }
    }

    fn stop_listening(self) {
        if self.live.is_streaming_capture() {
            self.live.end_streamed_listening();
        } else {
            self.http.stop_recording();
        }
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}
