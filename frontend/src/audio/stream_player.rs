//! Plays a streamed answer sentence by sentence without gaps: each `audio_chunk` is decoded as it arrives and
//! scheduled on the page's one AudioContext to start exactly when the previous one ends, in `sequence` order.
//! [`StreamPlayer::stop`] silences everything at once and says which chunk was heard to its end.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use leptos::logging;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AudioBuffer, AudioBufferSourceNode, AudioContext, AudioScheduledSourceNode};

use super::schedule::{InOrder, Timeline};

/// Room for the main thread to hand a chunk to the audio thread before it must sound; without it the first
/// few milliseconds of a chunk that arrives after the previous one ended would be cut.
const LEAD_SECS: f64 = 0.05;

/// A chunk's node, with the handler that must live as long as it may fire.
type ScheduledSource = (AudioBufferSourceNode, Closure<dyn FnMut()>);

/// `ended` can fire a render quantum before the clock reads past the chunk's end.
const END_TOLERANCE_SECS: f64 = 0.02;

struct Inner {
    context: AudioContext,
    /// `None` stands for a chunk that could not be decoded: it is skipped rather than holding up the rest.
    order: InOrder<Option<AudioBuffer>>,
    timeline: Timeline,
    sources: Vec<ScheduledSource>,
    decoding: u32,
    stopped: bool,
    on_idle: Rc<dyn Fn()>,
}

/// One answer's playback. Cheap to clone.
#[derive(Clone)]
pub struct StreamPlayer {
    inner: Rc<RefCell<Inner>>,
}

impl StreamPlayer {
    /// `on_idle` runs whenever every chunk received so far has been played (more may still come).
    pub fn new(context: AudioContext, on_idle: impl Fn() + 'static) -> Self {
        let inner = Inner {
            context,
            order: InOrder::default(),
            timeline: Timeline::default(),
            sources: Vec::new(),
            decoding: 0,
            stopped: false,
            on_idle: Rc::new(on_idle),
        };
        Self { inner: Rc::new(RefCell::new(inner)) }
    }

    /// Decodes an encoded clip (WAV here) and schedules it after the chunks before it.
    pub fn push(&self, sequence: u32, encoded: &[u8]) {
        let decoding = {
            let mut inner = self.inner.borrow_mut();
            if inner.stopped {
                return;
            }
            // decodeAudioData takes (and detaches) an ArrayBuffer of its own.
            let bytes = js_sys::Uint8Array::from(encoded);
            let decoding = inner.context.decode_audio_data(&bytes.buffer()).ok();
            inner.decoding += 1;
            decoding
        };
        let weak = Rc::downgrade(&self.inner);
        spawn_local(async move {
            let buffer = match decoding {
                Some(promise) => JsFuture::from(promise).await.ok().map(JsCast::unchecked_into::<AudioBuffer>),
                None => None,
            };
            if buffer.is_none() {
                logging::warn!("answer chunk {sequence} could not be decoded; skipping it");
            }
            let Some(inner) = weak.upgrade() else { return };
            inner.borrow_mut().decoding -= 1;
            schedule(&inner, sequence, buffer);
            notify_if_idle(&inner);
        });
    }

    /// Stops every chunk now and forgets the rest of the answer; returns the last sequence heard to its end.
    pub fn stop(&self) -> Option<u32> {
        let mut inner = self.inner.borrow_mut();
        inner.stopped = true;
        let played = inner.timeline.played_through(inner.context.current_time());
        for (source, _) in inner.sources.drain(..) {
            AudioScheduledSourceNode::set_onended(&source, None);
            // Throws only for a source never started; every source here was.
            let _ = AudioScheduledSourceNode::stop(&source);
        }
        played
    }

    /// Whether something was ever scheduled or is still being decoded.
    pub fn has_audio(&self) -> bool {
        let inner = self.inner.borrow();
        !inner.timeline.is_empty() || inner.decoding > 0
    }

    /// Nothing left to play of what has arrived.
    pub fn is_idle(&self) -> bool {
        is_idle(&self.inner.borrow())
    }
}

fn is_idle(inner: &Inner) -> bool {
    inner.decoding == 0
        && !inner.order.is_holding()
        && inner.timeline.end().is_none_or(|end| end <= inner.context.current_time() + END_TOLERANCE_SECS)
}

fn schedule(inner_rc: &Rc<RefCell<Inner>>, sequence: u32, buffer: Option<AudioBuffer>) {
    let weak = Rc::downgrade(inner_rc);
    let mut inner = inner_rc.borrow_mut();
    if inner.stopped {
        return;
    }
    for (sequence, buffer) in inner.order.insert(sequence, buffer) {
        let Some(buffer) = buffer else { continue };
        match start_source(&mut inner, &weak, sequence, &buffer) {
            Ok(entry) => inner.sources.push(entry),
            Err(error) => logging::warn!("answer chunk {sequence} could not be played: {error:?}"),
        }
    }
}

fn start_source(inner: &mut Inner, weak: &Weak<RefCell<Inner>>, sequence: u32, buffer: &AudioBuffer) -> Result<ScheduledSource, JsValue> {
    let source = inner.context.create_buffer_source()?;
    source.set_buffer(Some(buffer));
    source.connect_with_audio_node(&inner.context.destination())?;
    let now = inner.context.current_time();
    let when = inner.timeline.place(sequence, buffer.duration(), now, LEAD_SECS);
    let weak = weak.clone();
    let on_ended = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = weak.upgrade() {
            notify_if_idle(&inner);
        }
    });
    AudioScheduledSourceNode::set_onended(&source, Some(on_ended.as_ref().unchecked_ref()));
    source.start_with_when(when)?;
    Ok((source, on_ended))
}

fn notify_if_idle(inner: &Rc<RefCell<Inner>>) {
    let callback = {
        let Ok(inner) = inner.try_borrow() else { return };
        (!inner.stopped && is_idle(&inner)).then(|| Rc::clone(&inner.on_idle))
    };
    if let Some(callback) = callback {
        callback();
    }
}
