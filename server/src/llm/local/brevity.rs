//! Spoken answers end early: at a paragraph break, or after a few sentences. The small local model tends to
//! read a whole retrieved passage aloud, headings and all, however the prompt asks; a listener wants the
//! first sentences, and every token not generated is time saved.

use crate::text::SentenceSplitter;

pub struct Brevity {
    splitter: SentenceSplitter,
    sentences: usize,
    max_sentences: usize,
    kept: String,
}

impl Brevity {
    pub fn new(max_sentences: usize) -> Self {
        Self { splitter: SentenceSplitter::new(), sentences: 0, max_sentences: max_sentences.max(1), kept: String::new() }
    }

    /// How much of the next piece of the answer to keep, and whether the answer is complete with it.
    pub fn admit(&mut self, delta: &str) -> (String, bool) {
        let mut keep = delta.to_owned();
        let mut complete = false;

        let so_far = format!("{}{delta}", self.kept);
        // A break after a colon introduces what was asked for ("Here's a joke:"), so it does not end the answer.
        let paragraph_end = so_far.match_indices("\n\n").map(|(at, _)| at).find(|&at| {
            let before = so_far[..at].trim_end();
            !before.is_empty() && !before.ends_with(':')
        });
        if let Some(paragraph_end) = paragraph_end {
            keep = so_far.get(self.kept.len().min(paragraph_end)..paragraph_end).unwrap_or_default().to_owned();
            complete = true;
        }

        self.sentences += self.splitter.push(&keep).len();
        if self.sentences >= self.max_sentences {
            // The splitter has already taken the start of the next sentence: leave it unsaid.
            let next_sentence = self.splitter.pending().len();
            if next_sentence <= keep.len() {
                keep.truncate(keep.len() - next_sentence);
                keep.truncate(keep.trim_end().len());
            }
            complete = true;
        }
        self.kept.push_str(&keep);
        (keep, complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max_sentences: usize, pieces: &[&str]) -> (String, usize) {
        let mut brevity = Brevity::new(max_sentences);
        let mut said = String::new();
        for (index, piece) in pieces.iter().enumerate() {
            let (keep, complete) = brevity.admit(piece);
            said.push_str(&keep);
            if complete {
                return (said, index + 1);
            }
        }
        (said, pieces.len())
    }

    #[test]
    fn the_answer_ends_after_the_last_allowed_sentence_without_the_next_ones_start() {
        let (said, pieces) = run(2, &["Paris is the capital.", " It is on the Seine", ". The", " city is old."]);
        assert_eq!(said, "Paris is the capital. It is on the Seine.");
        assert_eq!(pieces, 3, "generation stops with the piece that completed the second sentence");
    }

    #[test]
    fn abbreviations_and_decimals_do_not_count_as_sentences() {
        let (said, _) = run(2, &["Dr. Smith paid 3.5 euros, e.g. for bread.", " That was all.", " More."]);
        assert_eq!(said, "Dr. Smith paid 3.5 euros, e.g. for bread. That was all.");
    }

    #[test]
    fn a_paragraph_break_ends_the_answer() {
        let (said, pieces) = run(3, &["Chrome and Firefox work.\n", "\nAudio formats\n", "Recordings may be WAV."]);
        assert_eq!(said, "Chrome and Firefox work.\n");
        assert_eq!(pieces, 2);
        let (said, _) = run(3, &["It works.\n\nAudio formats"]);
        assert_eq!(said, "It works.");
    }

    #[test]
    fn a_paragraph_introduced_by_a_colon_is_part_of_the_answer() {
        let (said, _) = run(3, &["Here's a joke:\n\n", "Why did the tomato blush?", " It saw the salad dressing.\n\nMore?"]);
        assert_eq!(said, "Here's a joke:\n\nWhy did the tomato blush? It saw the salad dressing.");
    }

    #[test]
    fn leading_blank_lines_are_not_a_paragraph_break() {
        let (said, pieces) = run(3, &["\n\n", "Hello there."]);
        assert_eq!(said, "\n\nHello there.");
        assert_eq!(pieces, 2);
    }
}
