//! Evidence: the sentences of the best passages that answer a question, best first. A small model handed a
//! whole note reads it aloud or picks the wrong line of it ("Yes, the workshop is open on Mondays" with "It is
//! closed on Mondays" third in the passage); handed the one sentence that answers, it cannot.
//!
//! A sentence is ranked by its embedding's similarity to the question plus how many of the question's own
//! content words it holds (stemmed): meaning finds the right note, the words find the right line of a price
//! list or a list of birthdays, where every line means nearly the same.

use std::collections::HashSet;
use std::sync::LazyLock;

use frostem::{Algorithm, Stemmer};

use super::search::Hit;

/// How much holding all of the question's content words multiplies a sentence's similarity by (1 + this):
/// words pick among sentences close in meaning, but do not lift one about something else ("the account is in
/// Joel's name" for "What's the dog's name?").
const WORD_WEIGHT: f32 = 0.6;
/// What a sentence holding the kind of answer the question asks for gains ("What do you charge..." wants an
/// amount: "Puncture repair: €12" over "we fix it while you wait").
const ANSWER_KIND_BONUS: f32 = 0.3;
/// How much of the sentence before it a sentence that goes on about it takes as its own closeness to the
/// question: "It is about 40 km" means little alone, after "The club ride leaves ..." it answers "How long is
/// the club ride?".
const CONTINUED_SIMILARITY: f32 = 0.9;

/// One sentence (or list item) of a passage, with how well it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceSentence {
    pub text: String,
    /// Which hit (passage) it comes from, an index into [`Evidence::hits`].
    pub hit: usize,
    /// Cosine similarity of its embedding to the question's.
    pub similarity: f32,
    /// The share of the question's content words it holds, 0-1, each weighted by how few sentences hold it;
    /// words no sentence holds are left out.
    pub words: f32,
    pub score: f32,
}

/// What the notes hold for a question.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Cosine similarity of the nearest passage to the question: how much the question is about the notes.
    pub nearest: f32,
    pub hits: Vec<Hit>,
    /// Best first.
    pub sentences: Vec<EvidenceSentence>,
    /// The question's content words (stemmed) that none of the passages found holds: what the notes may not
    /// cover ("helmets" when asked "Do you sell helmets?").
    pub missing: Vec<String>,
}

impl Evidence {
    pub fn best(&self) -> Option<&EvidenceSentence> {
        self.sentences.first()
    }

    pub fn hit_of(&self, sentence: &EvidenceSentence) -> Option<&Hit> {
        self.hits.get(sentence.hit)
    }
}

/// The sentences of a passage: each list item whole (its lines belong together: "Brown bin: the first Monday of
/// the month. It is not collected from December to February."), prose split after `.`, `!` or `?` followed by
/// a capital, headings dropped, list markers removed. "Dr. Rao" stays whole: no split after a title.
pub fn sentences(passage: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in passage.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(item) = line.strip_prefix(['-', '*', '+']) {
            push_sentence(&mut found, item);
            continue;
        }
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            if !matches!(c, '.' | '!' | '?') {
                continue;
            }
            let next_is_capital = matches!(chars.get(i + 1), Some((_, ' '))) && chars.get(i + 2).is_some_and(|(_, c)| c.is_uppercase());
            let word_before = line[start..at].rsplit(|c: char| !c.is_alphanumeric()).next().unwrap_or_default();
            if next_is_capital && !TITLES.contains(&word_before.to_lowercase().as_str()) {
                push_sentence(&mut found, &line[start..=at]);
                start = at + c.len_utf8();
            }
        }
        push_sentence(&mut found, &line[start..]);
    }
    found
}

/// Abbreviations a capitalised name follows.
const TITLES: [&str; 8] = ["dr", "mr", "mrs", "ms", "st", "prof", "mt", "no"];

fn push_sentence(found: &mut Vec<String>, text: &str) {
    let text = text.trim();
    if text.chars().any(char::is_alphanumeric) {
        found.push(text.to_owned());
    }
}

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::new(Algorithm::English));
static STOP_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let mut words: HashSet<&'static str> = stop_words::lookup("en").unwrap_or_default().iter().copied().collect();
    // Words of how a question is asked, not of what it is about.
    words.extend(["much", "many", "long", "tell", "please", "know", "get", "also", "would", "could", "us", "our", "one", "like"]);
    words
});

/// The stemmed content words of `text`: lower case, stop words out ("How much is a basic tune-up?" ->
/// basic, tune, up -> "basic", "tune"; "up" is a stop word).
pub fn content_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let word = word.trim_matches('\'').to_lowercase();
        let word = word.strip_suffix("'s").unwrap_or(&word);
        if word.is_empty() || STOP_WORDS.contains(word) {
            continue;
        }
        let stem = STEMMER.stem(word).into_owned();
        if !words.contains(&stem) {
            words.push(stem);
        }
    }
    words
}

/// A sentence to rank: which hit (passage) it comes from, its text, its note's title and its embedding.
pub struct Candidate {
    pub hit: usize,
    pub text: String,
    pub title: String,
    pub vector: Vec<f32>,
}

/// How much a sentence gains from its passage's place in the search, best first: the search weighs the whole
/// passage, words and meaning, which a sentence alone cannot.
const PASSAGE_PRIOR: [f32; 3] = [0.1, 0.05, 0.0];

/// Ranks `candidates` for a question with embedding `question` and content words `focus`, best first. A
/// sentence holds its note title's words too ("Biscuit, our dog"). A word counts the less the more of the
/// sentences hold it: asked "Are you open on Mondays?", "Mondays" (one sentence) tells the lines of the
/// opening hours apart, "open" (three of them) hardly does.
pub fn rank(question: &[f32], asked: &str, focus: &[String], candidates: Vec<Candidate>) -> Vec<EvidenceSentence> {
    let wanted = AnswerKind::asked_for(asked);
    let focus = &with_implied_days(focus);
    let mut words: Vec<Vec<String>> = candidates.iter().map(|c| content_words(&format!("{} {}", c.title, c.text))).collect();
    let mut similarities: Vec<f32> = candidates.iter().map(|c| cosine(question, &c.vector)).collect();
    // A sentence that goes on about the one before it ("The club ride leaves ... It is about 40 km") is about
    // what that one names, though it does not name it again.
    for i in 1..candidates.len() {
        if candidates[i].hit == candidates[i - 1].hit && continues(&candidates[i].text) {
            let before = words[i - 1].clone();
            words[i].extend(before);
            similarities[i] = similarities[i].max(similarities[i - 1] * CONTINUED_SIMILARITY);
        }
    }
    let weights: Vec<f32> = focus
        .iter()
        .map(|word| match words.iter().filter(|held| held.contains(word)).count() {
            // No sentence holds it: it tells none apart (the decline decides about such words).
            0 => 0.0,
            holding => 1.0 / holding as f32,
        })
        .collect();
    let total: f32 = weights.iter().sum();
    let mut ranked: Vec<EvidenceSentence> = candidates
        .into_iter()
        .zip(words)
        .zip(similarities)
        .map(|((candidate, held), similarity)| {
            let found: f32 = focus.iter().zip(&weights).filter(|(word, _)| held.contains(word)).map(|(_, weight)| weight).sum();
            let words = if total > 0.0 { found / total } else { 0.0 };
            let prior = PASSAGE_PRIOR.get(candidate.hit).copied().unwrap_or_default();
            let kind = if wanted.is_some_and(|kind| kind.found_in(&candidate.text)) { ANSWER_KIND_BONUS } else { 0.0 };
            let score = similarity * (1.0 + WORD_WEIGHT * words) + prior + kind;
            EvidenceSentence { text: candidate.text, hit: candidate.hit, similarity, words, score }
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked
}

/// Whether a sentence starts by pointing back at the one before it.
fn continues(sentence: &str) -> bool {
    const POINTING: [&str; 11] = ["it", "its", "it's", "they", "their", "he", "his", "she", "her", "this", "these"];
    let first = sentence.split_whitespace().next().unwrap_or_default().trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
    POINTING.contains(&first.to_lowercase().as_str())
}

/// `focus` with the days that "weekdays" and "weekend" stand for: notes name the days ("Tuesday to Friday").
fn with_implied_days(focus: &[String]) -> Vec<String> {
    let mut expanded = focus.to_vec();
    let [weekday, weekend] = ["weekdays", "weekend"].map(|word| content_words(word).pop().unwrap_or_default());
    if focus.contains(&weekday) {
        expanded.extend(content_words("monday tuesday wednesday thursday friday"));
    }
    if focus.contains(&weekend) {
        expanded.extend(content_words("saturday sunday"));
    }
    expanded
}

/// The kind of answer a question asks for, told by how it is asked: the classic first step of question
/// answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// "How much", "what do you charge", "what does it cost", "rate", "price".
    Amount,
    /// "How long": hours, days, weeks, months, years, km.
    Duration,
    /// "When", "what time", "what day".
    Time,
}

impl AnswerKind {
    pub fn asked_for(question: &str) -> Option<Self> {
        let lower = question.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|word| lower.split(|c: char| !c.is_alphanumeric()).any(|w| w == *word));
        if lower.contains("how much") || has(&["charge", "cost", "costs", "price", "rate", "fee", "deposit"]) {
            Some(Self::Amount)
        } else if lower.contains("how long") {
            Some(Self::Duration)
        } else if lower.starts_with("when") || lower.contains("what time") || lower.contains("what day") {
            Some(Self::Time)
        } else {
            None
        }
    }

    fn found_in(self, text: &str) -> bool {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
        let has = |list: &[&str]| list.iter().any(|word| words.contains(word));
        match self {
            Self::Amount => text.contains(['€', '$', '£', '%']) || has(&["euros", "euro", "dollars", "pounds", "grams", "percent"]),
            Self::Duration => has(&[
                "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months", "year", "years", "km", "miles",
            ]),
            Self::Time => {
                text.contains(':')
                    || has(&["am", "pm", "noon", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
                    || has(&["mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays"])
                    || has(&[
                        "january",
                        "february",
                        "march",
                        "april",
                        "may",
                        "june",
                        "july",
                        "august",
                        "september",
                        "october",
                        "november",
                        "december",
                    ])
            }
        }
    }
}

/// The focus words no passage holds (nor its title).
pub fn missing(focus: &[String], hits: &[Hit]) -> Vec<String> {
    let held: HashSet<String> = hits.iter().flat_map(|hit| content_words(&format!("{} {}", hit.title, hit.text))).collect();
    focus.iter().filter(|word| !held.contains(*word)).cloned().collect()
}

/// The names in `texts` as they are spelled there: capitalised words of four letters or more that are never
/// written in lower case ("Oskar", "Kestrel", "Voltwerk"; not "Boiler" at the start of a line when "boiler"
/// appears too), in the order first seen.
pub fn names(texts: &[String]) -> Vec<String> {
    let mut capitalised: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut lower: HashSet<String> = HashSet::new();
    for text in texts {
        for raw in text.split(|c: char| !c.is_alphanumeric() && c != '\'') {
            let word = raw.trim_matches('\'');
            let word = word.strip_suffix("'s").unwrap_or(word);
            if word.chars().count() < 4 || !word.chars().all(char::is_alphabetic) {
                continue;
            }
            if word.chars().next().is_some_and(char::is_uppercase) {
                if seen.insert(word.to_owned()) {
                    capitalised.push(word.to_owned());
                }
            } else {
                lower.insert(word.to_lowercase());
            }
        }
    }
    capitalised.retain(|word| {
        let word = word.to_lowercase();
        !lower.contains(&word) && !STOP_WORDS.contains(word.as_str())
    });
    capitalised
}

/// The words of `texts` a speech recogniser may not expect: names and brands (capitalised inside a sentence,
/// then counted wherever they appear) and words joining letters with a hyphen or digits ("tune-up", "A17");
/// most used first, at most `limit`.
pub fn vocabulary(texts: &[String], limit: usize) -> Vec<String> {
    let words_of = |text: &str| -> Vec<Vec<String>> {
        text.split(['.', '!', '?', '\n', ':', ';', '(', ')'])
            .map(|sentence| {
                sentence
                    .split_whitespace()
                    .map(|raw| raw.trim_matches(|c: char| !c.is_alphanumeric()).trim_end_matches("'s").to_owned())
                    .filter(|word| word.chars().any(char::is_alphanumeric))
                    .collect()
            })
            .collect()
    };
    let mut first_seen: Vec<String> = Vec::new();
    for text in texts {
        for sentence in words_of(text) {
            for (at, word) in sentence.iter().enumerate() {
                let lower = word.to_lowercase();
                if word.chars().count() < 3 || STOP_WORDS.contains(lower.as_str()) || word.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                let capitalised = at > 0 && word.chars().next().is_some_and(char::is_uppercase);
                let mixed = word.contains('-') || (word.chars().any(|c| c.is_ascii_digit()) && word.chars().any(char::is_alphabetic));
                if (capitalised || mixed) && !first_seen.contains(word) {
                    first_seen.push(word.clone());
                }
            }
        }
    }
    let mut counts = vec![0usize; first_seen.len()];
    for text in texts {
        for word in words_of(text).into_iter().flatten() {
            if let Some(at) = first_seen.iter().position(|known| *known == word) {
                counts[at] += 1;
            }
        }
    }
    let mut ranked: Vec<(usize, String)> = counts.into_iter().zip(first_seen).collect();
    // Most used first; among equals, in the order the notes hold them (a stable sort).
    ranked.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
    ranked.into_iter().take(limit).map(|(_, word)| word).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    if norms > 0.0 { dot / norms } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prose_lists_and_keeps_abbreviations_and_times() {
        let passage = "# Hours\n\nThe workshop is open Tuesday to Friday from 8:30 am to 6 pm. It is closed on Mondays.\n\n\
                       - Basic tune-up: €45\n- Full service: €95\n\nOur vet is Dr. Anjali Rao at Millbrook Vets.";
        assert_eq!(
            sentences(passage),
            [
                "The workshop is open Tuesday to Friday from 8:30 am to 6 pm.",
                "It is closed on Mondays.",
                "Basic tune-up: €45",
                "Full service: €95",
                "Our vet is Dr. Anjali Rao at Millbrook Vets."
            ]
        );
    }

    #[test]
    fn names_are_capitalised_words_never_written_in_lower_case() {
        let texts = [
            "# Children\nOskar: piano with Mrs Lindqvist on Thursdays.\nLena's birthday is in June.".to_owned(),
            "Boiler: in the loft. The boiler is serviced in October. Our dog is called Biscuit. Dev is here.".to_owned(),
        ];
        assert_eq!(names(&texts), ["Children", "Oskar", "Lindqvist", "Thursdays", "Lena", "June", "October", "Biscuit"]);
    }

    #[test]
    fn the_vocabulary_is_the_words_a_recogniser_may_not_know() {
        let notes = ["# Prices\n- Basic tune-up: €45\n- Derailleur adjustment: €15\nOur partner Voltwerk repairs motors. \
                      Voltwerk is in Harbour Street. If the boiler shows error A17, call Colin."
            .to_owned()];
        let words = vocabulary(&notes, 10);
        assert_eq!(words[0], "Voltwerk", "{words:?}");
        for expected in ["tune-up", "A17", "Harbour", "Street", "Colin"] {
            assert!(words.iter().any(|w| w == expected), "{expected} missing from {words:?}");
        }
        assert!(!words.iter().any(|w| w == "Our" || w == "If" || w == "Prices" || w == "45"), "{words:?}");
    }

    #[test]
    fn the_kind_of_answer_asked_for() {
        assert_eq!(AnswerKind::asked_for("What do you charge to fix a puncture?"), Some(AnswerKind::Amount));
        assert_eq!(AnswerKind::asked_for("How long does a tune-up take?"), Some(AnswerKind::Duration));
        assert_eq!(AnswerKind::asked_for("When is Lena's birthday?"), Some(AnswerKind::Time));
        assert_eq!(AnswerKind::asked_for("Who is our vet?"), None);
        assert!(AnswerKind::Amount.found_in("Puncture repair: €12 per wheel"));
        assert!(!AnswerKind::Amount.found_in("We fix it while you wait."));
        assert!(AnswerKind::Duration.found_in("It is about 40 km at an easy pace."));
    }

    #[test]
    fn content_words_are_stemmed_without_stop_words() {
        assert_eq!(content_words("Do you sell helmets?"), ["sell", "helmet"]);
        assert_eq!(content_words("When is Lena's birthday?"), ["lena", "birthday"]);
        assert_eq!(content_words("Do you do tubeless conversions?"), content_words("Tubeless conversion: €25 per wheel")[..2]);
    }

    #[test]
    fn a_sentence_going_on_about_the_one_before_answers_for_it() {
        let question = "How long is the club ride?";
        let ranked = rank(
            &[1.0, 0.0],
            question,
            &content_words(question),
            vec![
                Candidate {
                    hit: 0,
                    text: "The club ride leaves every Wednesday at 6:30 pm.".into(),
                    title: "Club".into(),
                    vector: vec![0.8, 0.6],
                },
                Candidate { hit: 0, text: "It is about 40 km at an easy pace.".into(), title: "Club".into(), vector: vec![0.3, 0.95] },
                Candidate { hit: 1, text: "It takes two days.".into(), title: "Repairs".into(), vector: vec![0.3, 0.95] },
            ],
        );
        assert_eq!(ranked[0].text, "It is about 40 km at an easy pace.", "{ranked:?}");
        assert!(ranked[0].words > 0.9, "it holds the words of the sentence before: {ranked:?}");
        assert_eq!(ranked[2].text, "It takes two days.", "a sentence of another passage takes nothing from it: {ranked:?}");
    }

    #[test]
    fn weekdays_stand_for_the_days_they_are() {
        let focus = with_implied_days(&content_words("What time do you open on weekdays?"));
        for day in ["tuesday", "friday"] {
            assert!(focus.contains(&content_words(day)[0]), "{focus:?}");
        }
        assert!(!focus.contains(&content_words("saturday")[0]), "{focus:?}");
    }

    #[test]
    fn the_sentence_holding_the_questions_rarer_words_wins_among_similar_ones() {
        let focus = content_words("Are you open on Mondays?");
        let same = vec![1.0, 0.0];
        let candidate = |text: &str| Candidate { hit: 0, text: text.into(), title: "Opening hours".into(), vector: same.clone() };
        let ranked = rank(
            &[1.0, 0.0],
            "Are you open on Mondays?",
            &focus,
            vec![
                candidate("The workshop is open Tuesday to Friday."),
                candidate("Closed on Mondays."),
                candidate("On Saturdays we open from 9 am."),
            ],
        );
        assert_eq!(ranked[0].text, "Closed on Mondays.");
    }
}
