//! Turning an answer's text into what a voice should read: speakable text, then sentences.

mod sentences;
mod speakable;

pub use self::sentences::{SentenceSplitter, sentence_spans, split_sentences};
pub use self::speakable::speakable;

/// The sentences a voice reads for `text`: markdown and URLs made speakable, then split.
pub fn sentences_to_speak(text: &str) -> Vec<String> {
    split_sentences(&speakable(text))
}
