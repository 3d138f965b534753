//! Recording the user's question with the browser's MediaRecorder.
//!
//! The microphone is requested on the first press (never on page load), the container is picked by feature
//! detection, chunks are collected as they come and the Blob is built only in `onstop`, after the recorder has
//! flushed its last chunk. The microphone's tracks are released when the recording ends or is dropped, so the
//! browser's "recording" indicator goes off after every turn.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, BlobEvent, BlobPropertyBag, MediaRecorder, MediaRecorderOptions, MediaStream, MediaStreamConstraints, MediaStreamTrack,
};

/// In order of preference: Opus in WebM (Chrome, Firefox, Edge) is small and the server decodes it natively;
/// MP4/AAC is what Safari records. If neither is supported the browser picks its default.
pub const PREFERRED_MIME_TYPES: [&str; 2] = ["audio/webm;codecs=opus", "audio/mp4"];

/// A chunk a second: a long question never sits in one growing buffer, and a crash mid-recording loses little.
const CHUNK_MS: i32 = 1000;

/// Why there is no recording. Each message is a sentence for people, and says the text input still works.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicError {
    #[error("The microphone only works on a secure connection (HTTPS or localhost). You can still type your question below.")]
    InsecureContext,
    #[error("This browser cannot record audio. You can still type your question below.")]
    Unsupported,
    #[error("Microphone access was denied. Allow the microphone in your browser's site settings to talk, or type your question below.")]
    PermissionDenied,
    #[error("No microphone was found. Connect one to talk, or type your question below.")]
    NoMicrophone,
    #[error("The microphone could not be started; another app may be using it. Try again, or type your question below.")]
    MicrophoneBusy,
    #[error("The recording failed ({0}). Try again, or type your question below.")]
    RecorderFailed(String),
}

impl MicError {
    /// Maps a `getUserMedia` rejection (a DOMException's `name`) to what the user should hear.
    /// Older names (`PermissionDeniedError`, `DevicesNotFoundError`, `TrackStartError`) come from older Chromes.
    pub fn from_get_user_media(name: &str, message: &str) -> Self {
        match name {
            "NotAllowedError" | "PermissionDeniedError" | "SecurityError" => Self::PermissionDenied,
            "NotFoundError" | "DevicesNotFoundError" | "OverconstrainedError" => Self::NoMicrophone,
            "NotReadableError" | "TrackStartError" | "AbortError" => Self::MicrophoneBusy,
            "NotSupportedError" | "TypeError" => Self::Unsupported,
            _ => Self::RecorderFailed(describe(name, message)),
        }
    }
}

fn describe(name: &str, message: &str) -> String {
    match (name.trim(), message.trim()) {
        ("", "") => "no reason given".to_owned(),
        (name, "") => name.to_owned(),
        ("", message) => message.to_owned(),
        (name, message) => format!("{name}: {message}"),
    }
}

/// The first preferred type the browser can record, or `None` for the browser's default.
pub fn choose_mime_type(is_supported: impl Fn(&str) -> bool) -> Option<&'static str> {
    PREFERRED_MIME_TYPES.into_iter().find(|mime| is_supported(mime))
}

/// The upload's file name: the server detects the format from the bytes, but logs and proxies like a sane name.
pub fn file_name_for(mime_type: &str) -> &'static str {
    let essence = mime_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "audio/webm" | "video/webm" => "question.webm",
        "audio/mp4" | "video/mp4" | "audio/aac" => "question.m4a",
        "audio/ogg" => "question.ogg",
        "audio/wav" | "audio/wave" | "audio/x-wav" => "question.wav",
        _ => "question.audio",
    }
}

/// A finished recording.
pub struct RecordedAudio {
    pub blob: Blob,
    pub mime_type: String,
}

/// A recording in progress. Dropping it stops the recorder and releases the microphone.
pub struct Recording {
    recorder: MediaRecorder,
    stream: MediaStream,
    chunks: Rc<RefCell<Vec<Blob>>>,
    chosen_mime_type: Option<&'static str>,
    // Kept alive for as long as the recorder may call them.
    _on_data: Closure<dyn FnMut(BlobEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
    _on_track_ended: Closure<dyn FnMut(JsValue)>,
}

impl Recording {
    /// Asks for the microphone (the browser may prompt) and starts recording. `on_failure` hears about
    /// failures after the start: the recorder erroring, or the microphone going away mid-question.
    pub async fn start(on_failure: impl Fn(MicError) + 'static) -> Result<Self, MicError> {
        let window = web_sys::window().ok_or(MicError::Unsupported)?;
        if !has_media_recorder(&window) {
            return Err(MicError::Unsupported);
        }
        let stream = open_microphone().await?;

        let chosen_mime_type = choose_mime_type(MediaRecorder::is_type_supported);
        let options = MediaRecorderOptions::new();
        if let Some(mime) = chosen_mime_type {
            options.set_mime_type(mime);
        }
        let recorder = match MediaRecorder::new_with_media_stream_and_media_recorder_options(&stream, &options) {
            Ok(recorder) => recorder,
            Err(error) => {
                release(&stream);
                return Err(MicError::RecorderFailed(js_error_text(&error)));
            }
        };

        let chunks = Rc::new(RefCell::new(Vec::new()));
        let on_data = {
            let chunks = Rc::clone(&chunks);
            Closure::<dyn FnMut(BlobEvent)>::new(move |event: BlobEvent| {
                if let Some(data) = event.data().filter(|data| data.size() > 0.0) {
                    chunks.borrow_mut().push(data);
                }
            })
        };
        recorder.set_ondataavailable(Some(on_data.as_ref().unchecked_ref()));

        let on_failure = Rc::new(on_failure);
        let on_error = {
            let on_failure = Rc::clone(&on_failure);
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                // The spec's ErrorEvent carries the DOMException in `error`; older browsers put it elsewhere.
                let error = Reflect::get(&event, &JsValue::from_str("error")).unwrap_or(event);
                on_failure(MicError::RecorderFailed(js_error_text(&error)));
            })
        };
        recorder.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let on_track_ended = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            on_failure(MicError::RecorderFailed("the microphone was disconnected or its permission revoked".to_owned()));
        });
        for track in tracks(&stream) {
            track.set_onended(Some(on_track_ended.as_ref().unchecked_ref()));
        }

        let recording =
            Self { recorder, stream, chunks, chosen_mime_type, _on_data: on_data, _on_error: on_error, _on_track_ended: on_track_ended };
        recording.recorder.start_with_time_slice(CHUNK_MS).map_err(|error| MicError::RecorderFailed(js_error_text(&error)))?;
        Ok(recording)
    }

    /// The microphone's stream, for the level meter.
    pub fn stream(&self) -> &MediaStream {
        &self.stream
    }

    /// Stops recording and returns the audio. The Blob is assembled in `onstop`, once the final chunk is in.
    pub async fn finish(self) -> Result<RecordedAudio, MicError> {
        // A track ending because we stop it is not a failure.
        for track in tracks(&self.stream) {
            track.set_onended(None);
        }
        let chunks = Rc::clone(&self.chunks);
        let mime_type = self.mime_type();
        let blob_type = mime_type.clone();
        let recorder = self.recorder.clone();
        let stopped = Promise::new(&mut |resolve, reject| {
            let chunks = Rc::clone(&chunks);
            let blob_type = blob_type.clone();
            let on_stop = Closure::once_into_js(move || {
                let parts: Array = chunks.borrow().iter().collect();
                let options = BlobPropertyBag::new();
                options.set_type(&blob_type);
                match Blob::new_with_blob_sequence_and_options(&parts, &options) {
                    Ok(blob) => resolve.call1(&JsValue::NULL, &blob),
                    Err(error) => reject.call1(&JsValue::NULL, &error),
                }
            });
            recorder.set_onstop(Some(on_stop.unchecked_ref()));
        });
        if recorder.state() != web_sys::RecordingState::Inactive {
            recorder.stop().map_err(|error| MicError::RecorderFailed(js_error_text(&error)))?;
        } else {
            // Already stopped (by an error): `onstop` has fired or will not fire again; use what arrived.
            return Err(MicError::RecorderFailed("the recorder had already stopped".to_owned()));
        }
        let blob: Blob = JsFuture::from(stopped).await.map_err(|error| MicError::RecorderFailed(js_error_text(&error)))?.unchecked_into();
        Ok(RecordedAudio { blob, mime_type })
    }

    /// What the recorder actually produces: the browser's answer wins over our request.
    fn mime_type(&self) -> String {
        let actual = self.recorder.mime_type();
        if !actual.trim().is_empty() {
            return actual;
        }
        if let Some(chunk_type) = self.chunks.borrow().first().map(Blob::type_).filter(|kind| !kind.is_empty()) {
            return chunk_type;
        }
        self.chosen_mime_type.unwrap_or("audio/webm").to_owned()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.recorder.set_ondataavailable(None);
        self.recorder.set_onerror(None);
        for track in tracks(&self.stream) {
            track.set_onended(None);
        }
        if self.recorder.state() != web_sys::RecordingState::Inactive {
            // Stopping an inactive recorder throws; an active one being dropped is a cancelled turn.
            let _ = self.recorder.stop();
        }
        release(&self.stream);
    }
}

/// Asks for the microphone (the browser may prompt), with the browser's echo cancellation, noise suppression
/// and gain control on: the assistant's own voice from the speakers must not reach the server or the hands-free
/// detector as if the user were speaking.
pub(crate) async fn open_microphone() -> Result<MediaStream, MicError> {
    let window = web_sys::window().ok_or(MicError::Unsupported)?;
    if !window.is_secure_context() {
        return Err(MicError::InsecureContext);
    }
    let navigator = window.navigator();
    // Browsers leave `navigator.mediaDevices` undefined rather than throwing when recording is impossible.
    let devices = Reflect::get(&navigator, &JsValue::from_str("mediaDevices")).unwrap_or(JsValue::UNDEFINED);
    if devices.is_undefined() || devices.is_null() {
        return Err(MicError::Unsupported);
    }
    let devices: web_sys::MediaDevices = devices.unchecked_into();

    let audio = js_sys::Object::new();
    for processing in ["echoCancellation", "noiseSuppression", "autoGainControl"] {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&audio, &JsValue::from_str(processing), &JsValue::TRUE);
    }
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&audio);
    let request = devices.get_user_media_with_constraints(&constraints).map_err(get_user_media_error)?;
    Ok(JsFuture::from(request).await.map_err(get_user_media_error)?.unchecked_into())
}

fn has_media_recorder(window: &web_sys::Window) -> bool {
    Reflect::get(window, &JsValue::from_str("MediaRecorder")).is_ok_and(|value| value.is_function())
}

pub(crate) fn tracks(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    stream.get_tracks().iter().map(JsCast::unchecked_into).collect()
}

/// Stops every track, which turns the microphone (and the browser's recording indicator) off.
pub(crate) fn release(stream: &MediaStream) {
    for track in tracks(stream) {
        track.stop();
    }
}

fn get_user_media_error(error: JsValue) -> MicError {
    match error.dyn_ref::<web_sys::DomException>() {
        Some(exception) => MicError::from_get_user_media(&exception.name(), &exception.message()),
        None if error.is_instance_of::<js_sys::TypeError>() => MicError::Unsupported,
        None => MicError::RecorderFailed(js_error_text(&error)),
    }
}

/// A short description of a thrown JS value, for the user-facing sentence and the console.
pub(crate) fn js_error_text(error: &JsValue) -> String {
    let field = |name: &str| Reflect::get(error, &JsValue::from_str(name)).ok().and_then(|value| value.as_string()).unwrap_or_default();
    if let Some(text) = error.as_string() {
        return text;
    }
    describe(&field("name"), &field("message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_in_webm_is_preferred_then_mp4_then_the_default() {
        assert_eq!(choose_mime_type(|_| true), Some("audio/webm;codecs=opus"));
        assert_eq!(choose_mime_type(|mime| mime == "audio/mp4"), Some("audio/mp4"), "Safari");
        assert_eq!(choose_mime_type(|_| false), None, "let the browser pick");
    }

    #[test]
    fn get_user_media_rejections_map_to_clear_reasons() {
        assert_eq!(MicError::from_get_user_media("NotAllowedError", "Permission denied"), MicError::PermissionDenied);
        assert_eq!(MicError::from_get_user_media("NotFoundError", "Requested device not found"), MicError::NoMicrophone);
        assert_eq!(MicError::from_get_user_media("NotReadableError", "Could not start audio source"), MicError::MicrophoneBusy);
        assert_eq!(MicError::from_get_user_media("PermissionDeniedError", ""), MicError::PermissionDenied, "old Chrome");
        assert_eq!(MicError::from_get_user_media("Weird", "it broke"), MicError::RecorderFailed("Weird: it broke".into()));
    }

    #[test]
    fn every_microphone_message_says_typing_still_works() {
        let errors = [
            MicError::InsecureContext,
            MicError::Unsupported,
            MicError::PermissionDenied,
            MicError::NoMicrophone,
            MicError::MicrophoneBusy,
            MicError::RecorderFailed("x".into()),
        ];
        for error in errors {
            assert!(error.to_string().contains("type your question"), "{error}");
        }
    }

    #[test]
    fn file_names_follow_the_container() {
        assert_eq!(file_name_for("audio/webm;codecs=opus"), "question.webm");
        assert_eq!(file_name_for("audio/mp4; codecs=mp4a.40.2"), "question.m4a");
        assert_eq!(file_name_for("audio/ogg;codecs=opus"), "question.ogg");
        assert_eq!(file_name_for(""), "question.audio");
    }
}
