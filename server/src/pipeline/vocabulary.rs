//! Speech-to-text told to expect the user's own words. Whisper tiny.en heard "How long does a tune-up take?"
//! as "How long does it do not take?": names, brands and trade words from the notes ("tune-up", "Voltwerk",
//! "derailleur") are exactly what questions about the notes hold and a small recogniser gets wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::knowledge::KnowledgeBase;
use crate::stt::SpeechToText;

/// Words handed to speech-to-text, most used in the notes first.
const WORDS: usize = 40;

pub struct NotesVocabulary {
    knowledge: Arc<KnowledgeBase>,
    /// The notes' generation the words were taken from; `u64::MAX` before the first time.
    seen: AtomicU64,
    making: tokio::sync::Mutex<()>,
}

impl NotesVocabulary {
    pub fn new(knowledge: Arc<KnowledgeBase>) -> Self {
        Self { knowledge, seen: AtomicU64::new(u64::MAX), making: tokio::sync::Mutex::new(()) }
    }

    /// Hands `stt` the notes' words if the notes changed since it was last told (a few ms for a few hundred
    /// notes; nothing otherwise).
    pub async fn refresh(&self, stt: &dyn SpeechToText) {
        let generation = self.knowledge.generation();
        if self.seen.load(Ordering::Acquire) == generation {
            return;
        }
        let _making = self.making.lock().await;
        if self.seen.load(Ordering::Acquire) == generation {
            return;
        }
        match self.knowledge.vocabulary(WORDS).await {
            Ok(words) => {
                tracing::debug!(words = words.len(), "speech-to-text told the notes' vocabulary");
                stt.expect_words(&words);
            }
            // No notes yet, or the store is unreadable: transcribe without the words (retried once notes change).
            Err(error) => tracing::debug!(%error, "no vocabulary from the notes"),
        }
        self.seen.store(generation, Ordering::Release);
    }
}
