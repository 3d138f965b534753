//! Splitting text into sentences, incrementally: text arrives in pieces (an LLM's deltas) and complete
//! sentences come out as soon as they are certain. A boundary is decided from the text before it and the first
//! character after the whitespace that follows it, never from more, so text pushed in any pieces splits
//! exactly as the whole text does.

/// Titles and abbreviations whose full stop never ends a sentence.
const NEVER_FINAL: &[&str] = &["mr", "mrs", "ms", "dr", "prof", "st", "sr", "vs", "e.g", "i.e", "cf", "approx", "fig", "u.s", "u.k"];
/// Abbreviations that end a sentence only when a capital letter follows ("at 5 p.m. Then ...").
const FINAL_BEFORE_CAPITAL: &[&str] = &["etc", "a.m", "p.m"];

/// The fewest words a clause needs to be spoken on its own ahead of its sentence: "To make tea," goes ahead,
/// "Well," or "Yes," does not (spoken alone they sound clipped).
const MIN_CLAUSE_WORDS: usize = 4;

/// Words a spoken phrase often begins with (prepositions, conjunctions, relative words, modal verbs): the
/// first piece may end before one of them, as a speaker may pause there ("Plants make their food | by turning
/// sunlight into sugar."). Never "of", which binds to the word before it ("a cup | of tea" sounds broken).
const PHRASE_OPENERS: &[&str] = &[
    "about", "after", "although", "and", "as", "at", "because", "before", "but", "by", "can", "could", "during", "for", "from", "if", "in",
    "into", "like", "may", "might", "on", "or", "should", "since", "so", "than", "that", "though", "through", "to", "until", "when",
    "where", "which", "while", "who", "will", "with", "without", "would",
];

/// Feed text with [`push`](Self::push), take the sentences it completes, and [`flush`](Self::flush) at the end.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    pending: String,
    /// The first piece may end at a clause (after a comma, colon, semicolon or dash) or before a phrase,
    /// instead of at the end of a sentence.
    clause_first: bool,
    handed_out: bool,
}

impl SentenceSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// For speech sentence by sentence: the first piece ends at the first clause of [`MIN_CLAUSE_WORDS`] or more,
    /// or before the first [phrase opener](PHRASE_OPENERS) after as many words, if that comes before the end
    /// of the first sentence. The listener hears the answer begin while the model is still writing the rest
    /// of that sentence; clause and phrase boundaries are where a speaker may pause anyway.
    pub fn clause_first() -> Self {
        Self { clause_first: true, ..Self::default() }
    }

    /// Adds text and returns the sentences now complete (trimmed, never empty), in order.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut sentences = Vec::new();
        loop {
            let sentence = find_boundary(&self.pending);
            // Clauses are looked for only until the first piece is out: every later push skips the scan.
            let clause =
                if self.clause_first && !self.handed_out { earliest(find_clause(&self.pending), find_phrase(&self.pending)) } else { None };
            let boundary = match clause {
                Some(clause) if sentence.is_none_or(|(end, _)| clause.0 < end) => Some(clause),
                _ => sentence,
            };
            let Some((end, rest)) = boundary else { break };
            let sentence = clean(&self.pending[..end]);
            self.pending.drain(..rest);
            self.handed_out |= sentence.is_some();
            sentences.extend(sentence);
        }
        sentences
    }

    /// The text after the last complete sentence, not yet known to end.
    pub fn pending(&self) -> &str {
        &self.pending
    }

    /// The last sentence, however it ends; the splitter is empty afterwards.
    pub fn flush(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        clean(&rest)
    }
}

/// Every sentence of a complete text.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut splitter = SentenceSplitter::new();
    let mut sentences = splitter.push(text);
    sentences.extend(splitter.flush());
    sentences
}

/// `text` cut after each sentence [`split_sentences`] finds there, each piece with the white space after it:
/// joined, the pieces are `text` again. For text that is stored rather than spoken (chunks of notes), where
/// a line break or a piece with nothing to read aloud (a line of dashes, a closing brace) must survive.
pub fn sentence_spans(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some((_, next)) = find_boundary(rest) {
        let (span, after) = rest.split_at(next);
        spans.push(span);
        rest = after;
    }
    if !rest.is_empty() {
        spans.push(rest);
    }
    spans
}

/// A sentence as it is handed out, or nothing if it holds nothing to read (only spaces or punctuation).
fn clean(sentence: &str) -> Option<String> {
    let sentence = sentence.trim();
    sentence.chars().any(char::is_alphanumeric).then(|| sentence.to_owned())
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

/// The first certain boundary: (end of the sentence, start of the rest), as byte offsets. `None` when there is
/// none yet, including when the text stops where the decision needs the next character.
fn find_boundary(text: &str) -> Option<(usize, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |index: usize| chars.get(index).map_or(text.len(), |(byte, _)| *byte);
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k].1;
        if c == '\n' {
            return Some((byte_at(k), byte_at(k + 1)));
        }
        if !is_terminator(c) {
            k += 1;
            continue;
        }
        let mut last = k;
        while chars.get(last + 1).is_some_and(|(_, c)| is_terminator(*c)) {
            last += 1;
        }
        let run_end = last;
        while chars.get(last + 1).is_some_and(|(_, c)| is_closer(*c)) {
            last += 1;
        }
        let end = byte_at(last + 1);
        match chars.get(last + 1) {
            None => return None,
            Some((_, '\n')) => return Some((end, byte_at(last + 2))),
            Some((_, after)) if !after.is_whitespace() => {
                // "3.5", "U.S.A", "e.g.," : not the end of anything.
                k = last + 1;
                continue;
            }
            Some(_) => {}
        }
        let mut next = last + 1;
        while chars.get(next).is_some_and(|(_, c)| c.is_whitespace() && *c != '\n') {
            next += 1;
        }
        let (_, next_char) = chars.get(next)?;
        let run: String = chars[k..=run_end].iter().map(|(_, c)| c).collect();
        if *next_char == '\n' || ends_sentence(&text[..byte_at(k)], &run, *next_char) {
            return Some((end, byte_at(next)));
        }
        k = last + 1;
    }
    None
}

/// The end of the first clause of [`MIN_CLAUSE_WORDS`] words or more, before the first sentence terminator:
/// (end of the clause, start of the rest). A comma must be followed by whitespace ("384,000" is a number).
fn find_clause(text: &str) -> Option<(usize, usize)> {
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if is_terminator(c) || c == '\n' {
            return None;
        }
        if !matches!(c, ',' | ';' | ':' | '—' | '–') {
            continue;
        }
        let end = at + c.len_utf8();
        let (_, after) = chars.peek().copied()?;
        if !after.is_whitespace() {
            continue;
        }
        if text[..at].split_whitespace().count() >= MIN_CLAUSE_WORDS {
            let rest = text[end..].len() - text[end..].trim_start().len();
            // Only once what follows has begun: the whitespace may still be growing.
            return (end + rest < text.len()).then_some((end, end + rest));
        }
    }
    None
}

/// The end of the words before the first [phrase opener](PHRASE_OPENERS) that has [`MIN_CLAUSE_WORDS`] or more
/// before it, before the first sentence terminator: (end of those words, start of the opener). The opener must
/// be complete (followed by whitespace): "so" may still grow into "some".
fn find_phrase(text: &str) -> Option<(usize, usize)> {
    let mut previous_end = None;
    // Offsets from the slices themselves: each word is a part of `text`.
    let words = text.split_whitespace().map(|word| (word.as_ptr() as usize - text.as_ptr() as usize, word));
    for (words_before, (start, word)) in words.enumerate() {
        if word.chars().any(|c| is_terminator(c) || c == '\n') {
            return None;
        }
        let end = start + word.len();
        if words_before >= MIN_CLAUSE_WORDS && end < text.len() && PHRASE_OPENERS.contains(&word.to_lowercase().as_str()) {
            return previous_end.map(|previous_end| (previous_end, start));
        }
        previous_end = Some(end);
    }
    None
}

/// Whichever boundary comes first.
fn earliest(a: Option<(usize, usize)>, b: Option<(usize, usize)>) -> Option<(usize, usize)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether `run` (terminators) after `before` ends the sentence, given the first character of what follows.
fn ends_sentence(before: &str, run: &str, next: char) -> bool {
    if run.contains(['!', '?']) {
        return true;
    }
    let is_ellipsis = run.contains('…') || run.len() > 1;
    if is_ellipsis {
        // "Well... maybe" trails on; "I see... Then" starts anew.
        return !next.is_lowercase();
    }
    let word = before.rsplit(char::is_whitespace).next().unwrap_or_default();
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    let lower = word.to_lowercase();
    if word.is_empty() {
        return true;
    }
    if NEVER_FINAL.contains(&lower.as_str()) {
        return false;
    }
    if FINAL_BEFORE_CAPITAL.contains(&lower.as_str()) {
        return next.is_uppercase();
    }
    let mut letters = word.chars();
    if let (Some(initial), None) = (letters.next(), letters.next())
        && initial.is_uppercase()
    {
        return false; // "J. R. R. Tolkien"
    }
    let starts_the_sentence = before.trim() == word;
    if starts_the_sentence && word.chars().all(|c| c.is_ascii_digit()) {
        return false; // a numbered list item: "1. Open the app"
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_the_sentences_with_nothing_dropped() {
        let text = "Dr. Smith came at 5 p.m. Then he left.\n---\nThe end is near!  Or is it?";
        let spans = sentence_spans(text);
        assert_eq!(spans.concat(), text);
        let trimmed: Vec<&str> = spans.iter().map(|span| span.trim()).filter(|span| !span.is_empty()).collect();
        assert_eq!(trimmed, ["Dr. Smith came at 5 p.m.", "Then he left.", "---", "The end is near!", "Or is it?"]);
        let spoken = split_sentences(text);
        assert_eq!(spoken, ["Dr. Smith came at 5 p.m.", "Then he left.", "The end is near!", "Or is it?"], "speech skips the dashes");
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        let text =
            "Dr. Smith met Mr. Jones in the U.S. last year. They talked, e.g. about work, i.e. nothing new. J. R. R. Tolkien wrote it.";
        assert_eq!(
            split_sentences(text),
            [
                "Dr. Smith met Mr. Jones in the U.S. last year.",
                "They talked, e.g. about work, i.e. nothing new.",
                "J. R. R. Tolkien wrote it."
            ]
        );
    }

    #[test]
    fn decimals_and_ellipses() {
        assert_eq!(split_sentences("It costs 3.5 dollars. Version 2.0.1 is out!"), ["It costs 3.5 dollars.", "Version 2.0.1 is out!"]);
        assert_eq!(split_sentences("Well... maybe. I see… Then we go."), ["Well... maybe.", "I see…", "Then we go."]);
        assert_eq!(
            split_sentences("We met at 5 p.m. and talked. It ended at 9 p.m. Then we left."),
            ["We met at 5 p.m. and talked.", "It ended at 9 p.m.", "Then we left."]
        );
    }

    #[test]
    fn lists_and_newlines_split_and_no_sentence_is_empty() {
        let text =
            "Here is the plan:\n\n1. Open the app. It loads fast\n2. Ask a question\n- a bullet\n\n---\n  \nDone?! \"Yes.\" (Really.)";
        assert_eq!(
            split_sentences(text),
            [
                "Here is the plan:",
                "1. Open the app.",
                "It loads fast",
                "2. Ask a question",
                "- a bullet",
                "Done?!",
                "\"Yes.\"",
                "(Really.)"
            ]
        );
        assert!(split_sentences("  \n . ! \n").is_empty());
        assert!(split_sentences("").is_empty());
    }

    #[test]
    fn the_answer_is_42_ends_a_sentence_but_a_leading_number_does_not() {
        assert_eq!(split_sentences("The answer is 42. Next one."), ["The answer is 42.", "Next one."]);
    }

    #[test]
    fn text_pushed_in_small_pieces_splits_like_the_whole_text() {
        let text = "Dr. Smith paid 3.5 dollars, e.g. cash... Then he left! Was it 9 p.m. or 10 p.m. already?\n1. First item\n2. Second \
                    item. Ends here… and goes on. The U.S. team won. \"Great.\" Last one without a stop";
        let whole = split_sentences(text);
        for piece_len in 1..=7 {
            let mut splitter = SentenceSplitter::new();
            let mut pieces = Vec::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(piece_len) {
                pieces.extend(splitter.push(&piece.iter().collect::<String>()));
            }
            pieces.extend(splitter.flush());
            assert_eq!(pieces, whole, "pieces of {piece_len} characters");
        }
        assert_eq!(whole.len(), 9, "{whole:#?}");
    }

    #[test]
    fn spoken_answers_may_begin_with_a_clause() {
        let answer = "To make a good cup of tea, warm the pot first. Then add the leaves, one spoon each, and wait.";
        let pieces = |piece_len: usize| {
            let mut splitter = SentenceSplitter::clause_first();
            let chars: Vec<char> = answer.chars().collect();
            let mut pieces: Vec<String> =
                chars.chunks(piece_len).flat_map(|piece| splitter.push(&piece.iter().collect::<String>())).collect();
            pieces.extend(splitter.flush());
            pieces
        };
        for piece_len in [1, 3, 200] {
            assert_eq!(
                pieces(piece_len),
                ["To make a good cup of tea,", "warm the pot first.", "Then add the leaves, one spoon each, and wait."],
                "pieces of {piece_len}: only the first sentence is cut at a clause"
            );
        }
        let split = |text: &str| {
            let mut splitter = SentenceSplitter::clause_first();
            let mut pieces = splitter.push(text);
            pieces.extend(splitter.flush());
            pieces
        };
        assert_eq!(split("Yes, Paris is the capital. It is big."), ["Yes, Paris is the capital.", "It is big."], "too short a clause");
        assert_eq!(
            split("The moon is about 384,000 kilometres away. Far."),
            ["The moon is about 384,000 kilometres away.", "Far."],
            "a number's comma"
        );
        assert_eq!(split("Here is how it works: you speak, it answers."), ["Here is how it works:", "you speak, it answers."]);
        let mut splitter = SentenceSplitter::clause_first();
        assert!(splitter.push("To make a good cup of tea,").is_empty(), "a comma at the end may be a number's");
        assert!(splitter.push(" ").is_empty());
        assert_eq!(splitter.push("warm"), ["To make a good cup of tea,"]);
    }

    #[test]
    fn spoken_answers_may_begin_with_a_phrase() {
        let split = |text: &str, piece_len: usize| {
            let mut splitter = SentenceSplitter::clause_first();
            let chars: Vec<char> = text.chars().collect();
            let mut pieces: Vec<String> =
                chars.chunks(piece_len).flat_map(|piece| splitter.push(&piece.iter().collect::<String>())).collect();
            pieces.extend(splitter.flush());
            pieces
        };
        for piece_len in [1, 2, 5, 500] {
            assert_eq!(
                split("Plants make their food by turning sunlight into sugar. They need water to do it.", piece_len),
                ["Plants make their food", "by turning sunlight into sugar.", "They need water to do it."],
                "pieces of {piece_len}: only the first sentence is cut before a phrase"
            );
            assert_eq!(
                split("A good name for a cart could be Rolling Thunder.", piece_len),
                ["A good name for a cart", "could be Rolling Thunder."],
                "pieces of {piece_len}: \"for\" comes after only three words"
            );
            assert_eq!(
                split("Paris is the capital of France.", piece_len),
                ["Paris is the capital of France."],
                "pieces of {piece_len}: never before \"of\""
            );
            assert_eq!(
                split("I am sorry to hear that.", piece_len),
                ["I am sorry to hear that."],
                "pieces of {piece_len}: three words are too few"
            );
        }
        let mut splitter = SentenceSplitter::clause_first();
        assert!(splitter.push("The moon is far so").is_empty(), "\"so\" may still become \"some\"");
        assert!(splitter.push("me").is_empty());
        assert_eq!(splitter.push(" people say."), Vec::<String>::new(), "the sentence's end is not yet certain");
        assert_eq!(splitter.flush().as_deref(), Some("The moon is far some people say."));
        let mut splitter = SentenceSplitter::clause_first();
        assert_eq!(splitter.push("It is a long way from"), Vec::<String>::new());
        assert_eq!(splitter.push(" here"), ["It is a long way"]);
    }

    #[test]
    fn a_sentence_comes_out_as_soon_as_it_is_certain() {
        let mut splitter = SentenceSplitter::new();
        assert!(splitter.push("Hello there.").is_empty(), "the next character decides");
        assert!(splitter.push(" ").is_empty());
        assert_eq!(splitter.push("How"), ["Hello there."]);
        assert!(splitter.push(" are you").is_empty());
        assert_eq!(splitter.flush().as_deref(), Some("How are you"));
        assert_eq!(splitter.flush(), None);
    }
}
