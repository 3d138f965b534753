//! Speech-to-text made to know the user's own words. Whisper tiny.en heard "How long does a tune-up take?" as
//! "How long does it do not take?", and wrote "Oscar" for the "Oskar" of the notes: names, brands and trade
//! words from the notes ("tune-up", "Voltwerk", "derailleur") are exactly what questions about the notes hold
//! and a small recogniser gets wrong. Names heard one letter off are written as the notes spell them; the
//! words can also be given to the recogniser as its prompt (off by default: README).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::knowledge::KnowledgeBase;
use crate::stt::SpeechToText;

/// Words handed to speech-to-text, most used in the notes first.
const WORDS: usize = 40;

pub struct NotesVocabulary {
    knowledge: Arc<KnowledgeBase>,
    /// Whether speech-to-text is told the words (its prompt).
    prompt: bool,
    /// The notes' names, as they spell them.
    names: RwLock<Vec<String>>,
    /// The notes' generation the words were taken from; `u64::MAX` before the first time.
    seen: AtomicU64,
    making: tokio::sync::Mutex<()>,
}

impl NotesVocabulary {
    /// `prompt`: tell speech-to-text the words too, not only write names as the notes do.
    pub fn new(knowledge: Arc<KnowledgeBase>, prompt: bool) -> Self {
        Self { knowledge, prompt, names: RwLock::new(Vec::new()), seen: AtomicU64::new(u64::MAX), making: tokio::sync::Mutex::new(()) }
    }

    /// Takes the notes' words again if the notes changed since (a few ms for a few hundred notes; nothing
    /// otherwise), and hands them to `stt` when it is to be told.
    pub async fn refresh(&self, stt: &dyn SpeechToText) {
        let generation = self.knowledge.generation();
        if self.seen.load(Ordering::Acquire) == generation || !self.knowledge.is_open() {
            return;
        }
        let _making = self.making.lock().await;
        if self.seen.load(Ordering::Acquire) == generation {
            return;
        }
        match self.knowledge.names().await {
            Ok(names) => *self.names.write().unwrap_or_else(PoisonError::into_inner) = names,
            Err(error) => tracing::debug!(%error, "no names from the notes"),
        }
        if self.prompt {
            match self.knowledge.vocabulary(WORDS).await {
                Ok(words) => {
                    tracing::debug!(words = words.len(), "speech-to-text told the notes' vocabulary");
                    stt.expect_words(&words);
                }
                // No notes yet, or the store is unreadable: transcribe without the words (retried once notes change).
                Err(error) => tracing::debug!(%error, "no vocabulary from the notes"),
            }
        }
        self.seen.store(generation, Ordering::Release);
    }

    /// `transcript` with the notes' names written as the notes spell them.
    pub fn respell(&self, transcript: &str) -> String {
        respell(transcript, &self.names.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// `transcript` with each capitalised word after the first that is one letter (an edit or a swap) from exactly
/// one of `names`, and is not one of them, written as that name ("When is Oscar's piano lesson?" -> "Oskar's"
/// when the notes know an Oskar and no Oscar). Only capitalised words: the recogniser writes the names it hears
/// so, and a lower-case word one letter from a name ("lean", "Lena") is an ordinary word.
pub fn respell(transcript: &str, names: &[String]) -> String {
    if names.is_empty() {
        return transcript.to_owned();
    }
    let mut respelled = String::with_capacity(transcript.len());
    for (at, piece) in transcript.split_inclusive(char::is_whitespace).enumerate() {
        // The word without the punctuation and space around it.
        let not_word = |c: char| !c.is_alphanumeric();
        let start = piece.len() - piece.trim_start_matches(not_word).len();
        let end = piece.trim_end_matches(not_word).len().max(start);
        let word = &piece[start..end];
        respelled.push_str(&piece[..start]);
        match (at > 0).then(|| named(word, names)).flatten() {
            Some(name) => respelled.push_str(&name),
            None => respelled.push_str(word),
        }
        respelled.push_str(&piece[end..]);
    }
    respelled
}

/// The name `word` was meant to be, if it is clearly one.
fn named(word: &str, names: &[String]) -> Option<String> {
    if !word.chars().next()?.is_uppercase() {
        return None;
    }
    let (stem, ending) = match word.strip_suffix("'s") {
        Some(stem) => (stem, "'s"),
        None => (word, ""),
    };
    if stem.chars().count() < 4 || !stem.chars().all(char::is_alphabetic) {
        return None;
    }
    let lower = stem.to_lowercase();
    let is_name = |heard: &str| names.iter().any(|name| name.to_lowercase() == heard);
    // A name with an "s" after it ("Kestrels", or "Oskars" for "Oskar's") is spelled right already.
    let singular = lower.strip_suffix('s').filter(|_| ending.is_empty());
    if is_name(&lower) || singular.is_some_and(is_name) {
        return None;
    }
    // "Thursday" for the notes' "Thursdays" is the same word, not a misheard name.
    let one_off = |heard: &str| -> Vec<&String> {
        names
            .iter()
            .map(|name| (name, name.to_lowercase()))
            .filter(|(_, name)| strsim::osa_distance(name, heard) == 1 && *name != format!("{heard}s") && *heard != format!("{name}s"))
            .map(|(name, _)| name)
            .collect()
    };
    let mut found = one_off(&lower);
    let mut ending = ending;
    // "And what about Oscars?": a possessive heard without its apostrophe.
    if found.is_empty()
        && let Some(singular) = singular
    {
        found = one_off(singular);
        ending = "s";
    }
    match found.as_slice() {
        [name] => Some(format!("{name}{ending}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::respell;

    fn names() -> Vec<String> {
        ["Oskar", "Lena", "Marta", "Voltwerk", "Kestrel"].map(String::from).to_vec()
    }

    #[test]
    fn names_heard_one_letter_off_are_written_as_the_notes_spell_them() {
        assert_eq!(respell("When is Oscar's piano lesson?", &names()), "When is Oskar's piano lesson?");
        assert_eq!(respell("And what about Oscars?", &names()), "And what about Oskars?");
        assert_eq!(respell("Is Martha home, and Lina?", &names()), "Is Marta home, and Lena?");
        assert_eq!(respell("Do we send motors to Voltwerg?", &names()), "Do we send motors to Voltwerk?");
    }

    #[test]
    fn other_words_stay_as_heard() {
        let names = names();
        for said in [
            "When is Oskar's piano lesson?",
            "Oscar is the first word.",
            "Is the lean one ready?",
            "What is the capital of France?",
            "Who is Bob?",
            "Is Kestral or Kestrels the one?",
        ] {
            let expected = if said.contains("Kestral") { "Is Kestrel or Kestrels the one?" } else { said };
            assert_eq!(respell(said, &names), expected, "{said}");
        }
        assert_eq!(respell("  Spaces stay,   Oscar.  ", &names), "  Spaces stay,   Oskar.  ");
        assert_eq!(respell("Lena or Lina?", &["Lena".to_owned(), "Line".to_owned()]), "Lena or Lina?", "two names one letter off: unclear");
        assert_eq!(respell("When is Oscar's lesson?", &[]), "When is Oscar's lesson?");
        let days = ["Thursdays".to_owned(), "Monday".to_owned()];
        assert_eq!(respell("Open on Thursday or Mondays?", &days), "Open on Thursday or Mondays?", "a day in the singular or plural");
    }
}
