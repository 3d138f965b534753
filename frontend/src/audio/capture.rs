//! Streams the microphone while the user speaks: an AudioWorklet (`pcm-capture.js`, shipped beside the app)
//! turns the microphone into 16 kHz mono PCM16 frames of 20 ms on the audio thread, and each frame is handed to
//! the page as it is made. Runs on the page's one AudioContext, so it needs no gesture of its own.
//!
//! Dropping the [`Capture`] disconnects the worklet and releases the microphone.

use js_sys::Int16Array;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AudioContext, AudioWorkletNode, AudioWorkletNodeOptions, MediaStream, MediaStreamAudioSourceNode, MessageEvent};

use super::recorder::{MicError, js_error_text, open_microphone, release, tracks};

const WORKLET_URL: &str = "/pcm-capture.js";
const PROCESSOR_NAME: &str = "pcm-capture";

pub struct Capture {
    stream: MediaStream,
    source: MediaStreamAudioSourceNode,
    node: AudioWorkletNode,
    // Kept alive for as long as the worklet and the tracks may call them.
    _on_frame: Closure<dyn FnMut(MessageEvent)>,
    _on_track_ended: Closure<dyn FnMut(JsValue)>,
}

impl Capture {
    /// Asks for the microphone and starts streaming it: `on_frame` gets every 20 ms of 16 kHz samples,
    /// `on_failure` hears if the microphone goes away later.
    pub async fn start(
        context: &AudioContext,
        on_frame: impl Fn(Vec<i16>) + 'static,
        on_failure: impl Fn(MicError) + 'static,
    ) -> Result<Self, MicError> {
        let failed = |error: JsValue| MicError::RecorderFailed(js_error_text(&error));
        // AudioWorklet, like the microphone, exists only on secure pages: say that, not "unsupported".
        if !web_sys::window().is_some_and(|window| window.is_secure_context()) {
            return Err(MicError::InsecureContext);
        }
        // Loading the module first: a browser without AudioWorklet fails here, before the permission prompt.
        let has_worklet = js_sys::Reflect::get(context, &JsValue::from_str("audioWorklet")).is_ok_and(|worklet| worklet.is_object());
        if !has_worklet {
            return Err(MicError::Unsupported);
        }
        let worklet = context.audio_worklet().map_err(|_| MicError::Unsupported)?;
        JsFuture::from(worklet.add_module(WORKLET_URL).map_err(failed)?).await.map_err(failed)?;

        let stream = open_microphone().await?;
        let options = AudioWorkletNodeOptions::new();
        // No outputs: the node is a sink, which the browser keeps processing without a path to the speakers
        // (the user must not hear themselves).
        options.set_number_of_outputs(0);
        let node = match AudioWorkletNode::new_with_options(context, PROCESSOR_NAME, &options) {
            Ok(node) => node,
            Err(error) => {
                release(&stream);
                return Err(failed(error));
            }
        };
        let source = match context.create_media_stream_source(&stream) {
            Ok(source) => source,
            Err(error) => {
                release(&stream);
                return Err(failed(error));
            }
        };
        if let Err(error) = source.connect_with_audio_node(&node) {
            release(&stream);
            return Err(failed(error));
        }

        let on_frame = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(samples) = event.data().dyn_ref::<Int16Array>() {
                on_frame(samples.to_vec());
            }
        });
        let port = node.port().map_err(failed)?;
        port.set_onmessage(Some(on_frame.as_ref().unchecked_ref()));
        let on_track_ended = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            on_failure(MicError::RecorderFailed("the microphone was disconnected or its permission revoked".to_owned()));
        });
        for track in tracks(&stream) {
            track.set_onended(Some(on_track_ended.as_ref().unchecked_ref()));
        }
        Ok(Self { stream, source, node, _on_frame: on_frame, _on_track_ended: on_track_ended })
    }

    /// The microphone's stream, for the level meter.
    pub fn stream(&self) -> &MediaStream {
        &self.stream
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(port) = self.node.port() {
            port.set_onmessage(None);
        }
        for track in tracks(&self.stream) {
            track.set_onended(None);
        }
        let _ = self.source.disconnect();
        release(&self.stream);
    }
}
