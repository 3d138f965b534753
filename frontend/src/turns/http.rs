//! Turns over plain HTTP, for when the live connection is not open: the microphone recorded whole and uploaded
//! when the user stops, a typed question posted, and the answer's clip played once it has all arrived. Also the
//! conversation's history at start-up.

use base64::Engine as _;
use leptos::logging;
use leptos::prelude::*;
use leptos::task::spawn_local;
use parlance_shared::{ErrorCode, TextTurnRequest, TurnResponse};

use super::core::Core;
use super::{PlaybackMark, SPOKEN_QUESTION};
use crate::api::{self, ApiError};
use crate::audio::recorder::{MicError, RecordedAudio, Recording, file_name_for};
use crate::conversation::{Answer, Exchange, Reply, exchanges_from_history};
use crate::voice_state::{VoiceEvent, VoiceState};

#[derive(Clone, Copy)]
pub(super) struct Http {
    core: Core,
    /// Browser objects live on the page's one thread only.
    recording: StoredValue<Option<Recording>, LocalStorage>,
}

impl Http {
    pub(super) fn new(core: Core) -> Self {
        Self { core, recording: StoredValue::new_local(None) }
    }

    /// At start-up: shows the stored conversation again, or at least checks the server is there.
    pub(super) fn restore(self) {
        let core = self.core;
        let stored = core.session.get_untracked();
        spawn_local(async move {
            let Some(id) = stored else {
                if api::probe().await.is_err() {
                    core.show_offline();
                }
                return;
            };
            match api::fetch_history(&id).await {
                Ok(history) => {
                    // A question asked while the history was loading already belongs after it.
                    if core.session.get_untracked().as_ref() != Some(&id) {
                        return;
                    }
                    let restored: Vec<_> = exchanges_from_history(&history.turns)
                        .into_iter()
                        .map(|(question, reply)| std::sync::Arc::new(Exchange { id: core.next_exchange_id(), question, reply }))
                        .collect();
                    core.exchanges.update(|list| {
                        let newer = std::mem::replace(list, restored);
                        list.extend(newer);
                    });
                }
                Err(error) if error.code() == Some(ErrorCode::SessionNotFound) => {
                    // The server forgot it (restarted without storage, or deleted): start afresh, silently.
                    if core.session.get_untracked().as_ref() == Some(&id) {
                        core.set_session(None);
                    }
                }
                Err(ApiError::Unreachable) => core.show_offline(),
                Err(error) => logging::warn!("the conversation could not be restored: {error}"),
            }
        });
    }

    /// Records the microphone for a turn that is already Listening.
    pub(super) fn start_recording(self, generation: u64) {
        let core = self.core;
        spawn_local(async move {
            let on_failure = move |error: MicError| {
                if core.is_current(generation) {
                    self.fail_recording(error);
                }
            };
            match Recording::start(on_failure).await {
                Ok(recording) => {
                    if !core.is_current(generation) || core.state.get_untracked() != VoiceState::Listening {
                        return; // dropping the recording releases the microphone
                    }
                    core.attach_meter(recording.stream());
                    if self.recording.try_update_value(|slot| *slot = Some(recording)).is_none() {
                        return;
                    }
                    if core.take_stop_requested() {
                        self.stop_recording();
                    }
                }
                Err(error) => {
                    if core.is_current(generation) {
                        self.fail_recording(error);
                    }
                }
            }
        });
    }

    /// The user is done talking: the recording is finished and uploaded.
    pub(super) fn stop_recording(self) {
        let core = self.core;
        core.stop_meter();
        let Some(recording) = self.recording.try_update_value(Option::take).flatten() else {
            // Still waiting for the microphone (a permission prompt, a slow device): stop once it starts.
            core.set_stop_requested(true);
            return;
        };
        core.set_stop_requested(false);
        let generation = core.generation();
        spawn_local(async move {
            let finished = recording.finish().await;
            if !core.is_current(generation) {
                return;
            }
            match finished {
                Ok(audio) if audio.blob.size() > 0.0 => {
                    if core.apply(VoiceEvent::RecordingFinished) {
                        self.upload(generation, audio).await;
                    }
                }
                Ok(_) => {
                    core.apply(VoiceEvent::RecordingDiscarded);
                }
                Err(error) => self.fail_recording(error),
            }
        });
    }

    pub(super) fn fail_recording(self, error: MicError) {
        logging::warn!("microphone: {error:?}");
        self.release_microphone();
        self.core.track(|tracker| tracker.reset());
        self.core.apply(VoiceEvent::Failed(error.to_string()));
    }

    /// Stops the meter and drops any recording, which turns the microphone off.
    pub(super) fn release_microphone(self) {
        self.core.stop_meter();
        self.recording.update_value(|slot| *slot = None);
        self.core.set_stop_requested(false);
    }

    /// A typed question, posted.
    pub(super) fn send_text(self, generation: u64, text: String) {
        let prefs = crate::prefs::load();
        let request = TextTurnRequest {
            session_id: self.core.session.get_untracked(),
            text: text.clone(),
            speak: prefs.speak_answers,
            speech_rate: prefs.rate_to_send(),
            voice: prefs.voice.clone(),
        };
        spawn_local(async move {
            let result = api::send_text_turn(&request).await;
            self.finish_turn(generation, text, result).await;
        });
    }

    async fn upload(self, generation: u64, audio: RecordedAudio) {
        let core = self.core;
        core.pending.set(Some(SPOKEN_QUESTION.to_owned()));
        let session = core.session.get_untracked();
        let on_uploaded = move || {
            if core.is_current(generation) {
                core.apply(VoiceEvent::UploadComplete);
            }
        };
        let prefs = crate::prefs::load();
        let result = api::send_voice_turn(&audio.blob, file_name_for(&audio.mime_type), session.as_ref(), &prefs, on_uploaded).await;
        self.finish_turn(generation, SPOKEN_QUESTION.to_owned(), result).await;
    }

    async fn finish_turn(self, generation: u64, question: String, result: Result<TurnResponse, ApiError>) {
        let core = self.core;
        if !core.is_current(generation) {
            return;
        }
        core.pending.set(None);
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                if error == ApiError::Unreachable {
                    core.show_offline();
                }
                if error.code() == Some(ErrorCode::SessionNotFound) {
                    core.set_session(None);
                }
                let message = error.to_string();
                core.push_exchange(question, Reply::Failed(message.clone()));
                core.apply(VoiceEvent::Failed(message));
                return;
            }
        };
        core.notice.set(None);
        core.set_session(Some(response.session_id.clone()));
        let question = if response.transcript.trim().is_empty() { question } else { response.transcript.clone() };
        core.push_exchange(question, Reply::Answer(Answer::from_response(&response)));

        let audio = response.audio.as_ref().and_then(|clip| match base64::engine::general_purpose::STANDARD.decode(&clip.data_base64) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                logging::warn!("the answer's audio is not valid base64: {error}");
                None
            }
        });
        if !core.apply(VoiceEvent::AnswerReceived { has_audio: audio.is_some() }) {
            return;
        }
        if let Some(bytes) = audio {
            self.play(generation, bytes).await;
        }
    }

    async fn play(self, generation: u64, bytes: Vec<u8>) {
        let core = self.core;
        let on_ended = move || {
            if core.is_current(generation) && core.take_clip().is_some() {
                core.playback.set(PlaybackMark::Ended);
                core.apply(VoiceEvent::PlaybackFinished);
            }
        };
        match core.audio_output().play(&bytes, on_ended).await {
            Ok(clip) if core.is_current(generation) => {
                logging::log!("playing the answer: {:.1} s", clip.duration_secs);
                core.clip_started(clip);
            }
            Ok(clip) => clip.silence(),
            Err(error) => {
                logging::warn!("playback: {error}");
                if core.is_current(generation) {
                    core.apply(VoiceEvent::Failed(format!(
                        "The spoken answer could not be played ({error}); the written answer is above."
                    )));
                }
            }
        }
    }
}
