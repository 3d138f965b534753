//! Speaking an answer sentence by sentence while the model is still writing it: a task of its own takes
//! sentences in order, synthesizes each, and sends it as an `audio_chunk` the moment it is ready.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use base64::Engine as _;
use parlance_shared::{AudioClip, ServerEvent, TurnState};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use super::{SpeechFailure, TurnEnd, elapsed_ms};
use crate::events::EventSink;
use crate::text::speakable;
use crate::tts::{Delivery, SpeechAudio, TextToSpeech, TtsError};

/// What speaking the answer came to.
#[derive(Debug, Default)]
pub struct SpeechReport {
    /// The text of each chunk sent, in sequence order.
    pub chunks: Vec<String>,
    /// Time spent synthesizing, summed over the sentences.
    pub tts_ms: u64,
    /// When the first chunk was sent.
    pub first_sent: Option<Instant>,
    /// Why speaking stopped early; the sentences after the failure are not spoken.
    pub error: Option<SpeechFailure>,
}

/// Dropping it stops the synthesis at once (a barge-in aborts the turn, and this with it).
pub struct SentenceSpeaker {
    sentences: mpsc::UnboundedSender<String>,
    task: AbortOnDropHandle<SpeechReport>,
}

impl SentenceSpeaker {
    /// `turn_ended` is when the user finished asking (perhaps not known yet): the log's time to first audio
    /// counts from there. Each chunk's audio also goes into `keep`, if given, as it is sent (the archive keeps what was
    /// played of an answer cut off).
    pub fn start(
        tts: Arc<dyn TextToSpeech>,
        delivery: Delivery,
        events: EventSink,
        turn_ended: TurnEnd,
        keep: Option<Arc<Mutex<Vec<SpeechAudio>>>>,
    ) -> Self {
        let (sentences, queue) = mpsc::unbounded_channel();
        let task = AbortOnDropHandle::new(tokio::spawn(speak_in_order(tts, delivery, queue, events, turn_ended, keep).in_current_span()));
        Self { sentences, task }
    }

    /// Queues a sentence as the model wrote it; markup and URLs are made readable first, and a sentence with
    /// nothing left to read is skipped.
    pub fn say(&self, sentence: &str) {
        let readable = speakable(sentence);
        if readable.chars().any(char::is_alphanumeric) {
            // The task ends early only after a synthesis failure, which it reports: the rest is meant to go unsaid.
            let _ = self.sentences.send(readable);
        }
    }

    /// Waits until every queued sentence is spoken.
    pub async fn finish(self) -> SpeechReport {
        let Self { sentences, task } = self;
        drop(sentences);
        task.await.unwrap_or_else(|error| {
            tracing::error!(%error, "the speech task failed");
            SpeechReport { error: Some(SpeechFailure::Stopped(error.to_string())), ..SpeechReport::default() }
        })
    }
}

async fn speak_in_order(
    tts: Arc<dyn TextToSpeech>,
    delivery: Delivery,
    mut queue: mpsc::UnboundedReceiver<String>,
    events: EventSink,
    turn_ended: TurnEnd,
    keep: Option<Arc<Mutex<Vec<SpeechAudio>>>>,
) -> SpeechReport {
    let mut report = SpeechReport::default();
    while let Some(sentence) = queue.recv().await {
        let started = Instant::now();
        let result = tts.synthesize_with(&sentence, &delivery).await;
        report.tts_ms += elapsed_ms(started);
        match result {
            Ok(speech) => {
                let sequence = u32::try_from(report.chunks.len()).unwrap_or(u32::MAX);
                if sequence == 0 {
                    events.emit(ServerEvent::status(TurnState::Speaking));
                }
                let data_base64 = base64::engine::general_purpose::STANDARD.encode(&speech.bytes);
                let mime_type = speech.mime_type.clone();
                if let Some(keep) = &keep {
                    keep.lock().unwrap_or_else(PoisonError::into_inner).push(speech);
                }
                events.emit(ServerEvent::AudioChunk { sequence, text: sentence.clone(), audio: AudioClip { mime_type, data_base64 } });
                if sequence == 0 {
                    report.first_sent = Some(Instant::now());
                    match turn_ended.known() {
                        Some(ended) => tracing::info!(first_audio_ms = elapsed_ms(ended), "first audio sent"),
                        None => tracing::info!("first audio ready before the turn ended"),
                    }
                }
                tracing::debug!(sequence, tts_ms = elapsed_ms(started), chars = sentence.len(), "sentence spoken");
                report.chunks.push(sentence);
            }
            // A "sentence" of only symbols has nothing to read; the rest of the answer still does.
            Err(TtsError::NothingToSay) => continue,
            Err(error) => {
                tracing::warn!(%error, spoken = report.chunks.len(), "speaking a sentence failed; the rest of the answer stays text only");
                report.error = Some(SpeechFailure::Tts(error));
                break;
            }
        }
    }
    report
}
