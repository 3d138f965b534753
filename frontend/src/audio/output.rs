//! The page's one AudioContext, for playing answers and metering the microphone.
//!
//! It is created and resumed inside the user's first tap or key press: iOS Safari (and Chrome's autoplay
//! policy) only let a context make sound if it was unlocked during a user gesture, and an answer arrives
//! seconds after the gesture that asked for it. Keeping the same context for the whole visit keeps it unlocked.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AudioBuffer, AudioBufferSourceNode, AudioContext, AudioContextState, AudioScheduledSourceNode};

/// Why an answer could not be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybackError {
    #[error("this browser has no Web Audio")]
    NoAudioContext,
    #[error("the audio could not be decoded")]
    Undecodable,
    #[error("the browser refused to play audio")]
    Refused,
}

/// The persistent context. Cheap to clone (all clones share one context).
#[derive(Clone, Default)]
pub struct AudioOutput {
    context: Rc<RefCell<Option<AudioContext>>>,
}

impl AudioOutput {
    /// Call synchronously from a user gesture's event handler: creates the context on first use and resumes
    /// it if the browser suspended it, then plays one silent frame, which is what unlocks audio on iOS.
    pub fn unlock(&self) {
        let Some(context) = self.context() else { return };
        if context.state() == AudioContextState::Suspended {
            // The promise settles later; the call itself, inside the gesture, is what counts.
            let _ = context.resume();
        }
        if let Ok(silence) = context.create_buffer(1, 1, context.sample_rate())
            && let Ok(source) = context.create_buffer_source()
        {
            source.set_buffer(Some(&silence));
            let _ = source.connect_with_audio_node(&context.destination());
            let _ = source.start();
        }
    }

    /// The context, created on first use. `None` only in browsers without Web Audio.
    pub fn context(&self) -> Option<AudioContext> {
        let mut slot = self.context.borrow_mut();
        if slot.is_none() {
            *slot = AudioContext::new().ok();
        }
        slot.clone()
    }

    /// Decodes an encoded clip (WAV, MP3, ...) and starts playing it. `on_ended` runs when it finishes or is
    /// stopped.
    pub async fn play(&self, encoded: &[u8], on_ended: impl FnOnce() + 'static) -> Result<Playback, PlaybackError> {
        let context = self.context().ok_or(PlaybackError::NoAudioContext)?;
        if context.state() == AudioContextState::Suspended
            && let Ok(resuming) = context.resume()
        {
            let _ = JsFuture::from(resuming).await;
        }
        // decodeAudioData takes (and detaches) an ArrayBuffer of its own.
        let bytes = js_sys::Uint8Array::from(encoded);
        let decoding = context.decode_audio_data(&bytes.buffer()).map_err(|_| PlaybackError::Undecodable)?;
        let buffer: AudioBuffer = JsFuture::from(decoding).await.map_err(|_| PlaybackError::Undecodable)?.unchecked_into();

        let source = context.create_buffer_source().map_err(|_| PlaybackError::Refused)?;
        source.set_buffer(Some(&buffer));
        source.connect_with_audio_node(&context.destination()).map_err(|_| PlaybackError::Refused)?;
        let ended = wasm_bindgen::closure::Closure::once_into_js(on_ended);
        AudioScheduledSourceNode::set_onended(&source, Some(ended.unchecked_ref()));
        source.start().map_err(|_| PlaybackError::Refused)?;
        Ok(Playback { source, duration_secs: buffer.duration() })
    }
}

/// A clip that is playing.
pub struct Playback {
    source: AudioBufferSourceNode,
    pub duration_secs: f64,
}

impl Playback {
    /// Stops the clip now; its `on_ended` still runs.
    pub fn stop(&self) {
        // Throws only if the clip was never started, which `play` rules out.
        let _ = AudioScheduledSourceNode::stop(&self.source);
    }

    /// Stops the clip without telling anyone: for when a new turn supersedes it.
    pub fn silence(&self) {
        AudioScheduledSourceNode::set_onended(&self.source, None);
        self.stop();
    }
}
