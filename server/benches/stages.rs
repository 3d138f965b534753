//! Speed of the embedded model stages, printed as figures (not a pass/fail test).
//!
//!     source scripts/env.sh && cargo bench -p parlance-server --bench stages --profile dev [-- SECTION...]
//!
//! With section names (`embeddings`, `knowledge`) only those run.
//! Uses the models in PARLANCE_MODELS_DIR (`parlance models` installs them). Run it on a quiet machine:
//! two cores shared with a build give meaningless numbers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parlance_server::embeddings::{Embedder, LocalEmbeddings};
use parlance_server::models::{Installer, catalog};

fn main() {
    let models_dir = std::env::var_os("PARLANCE_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("models"));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // `cargo bench` passes `--bench`; everything else names sections.
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runs = |section: &str| wanted.is_empty() || wanted.iter().any(|w| section.contains(w.as_str()));
    if runs("embeddings") {
        runtime.block_on(embeddings(&models_dir));
    }
    if runs("knowledge") {
        runtime.block_on(knowledge::run(&models_dir));
    }
}

async fn embeddings(models_dir: &std::path::Path) {
    let installer = Installer::new(models_dir);
    if !installer.is_installed(&catalog::MINILM_L6_V2) {
        eprintln!("embeddings: not installed in {}; run `parlance models`", models_dir.display());
        return;
    }
    let started = Instant::now();
    let embedder = LocalEmbeddings::load(&installer.model_dir(&catalog::MINILM_L6_V2)).expect("model loads");
    println!("embeddings  load                 {:>8.1} ms", ms(started.elapsed()));

    let sentence = "How do I add my own notes to the assistant's knowledge?".to_owned();
    embedder.embed(std::slice::from_ref(&sentence)).await.expect("warm-up");
    let mut single = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        embedder.embed(std::slice::from_ref(&sentence)).await.expect("embeds");
        single.push(started.elapsed());
    }
    let (p50, p95) = percentiles(&mut single);
    println!("embeddings  one sentence         p50 {:>6.1} ms   p95 {:>6.1} ms   (n=30)", ms(p50), ms(p95));

    // Note-sized texts of varied length, as ingestion sees them.
    let notes: Vec<String> = (0..256)
        .map(|i| {
            format!(
                "Note {i}: {}",
                "Parlance keeps conversations and knowledge on this machine; nothing is sent elsewhere. ".repeat(1 + i % 4)
            )
        })
        .collect();
    let started = Instant::now();
    let vectors = embedder.embed(&notes).await.expect("embeds");
    let elapsed = started.elapsed();
    assert_eq!(vectors.len(), notes.len());
    println!(
        "embeddings  batch of {}          {:>8.1} texts/s ({:.2} s)",
        notes.len(),
        notes.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

/// Knowledge base on LanceDB with real embeddings: ingestion rate, then search latency over 10,000 notes.
mod knowledge {
    use std::sync::Arc;
    use std::time::Instant;

    use parlance_server::embeddings::{Embedder, LocalEmbeddings};
    use parlance_server::knowledge::{Database, KnowledgeBase, SearchMode};
    use parlance_server::models::{Installer, catalog};
    use parlance_shared::NewNote;

    use super::{ms, percentiles};

    const NOTES: usize = 10_000;
    const BATCH: usize = 250;

    const TOPICS: [&str; 20] = [
        "the garden",
        "the boiler",
        "my bike",
        "the car",
        "the printer",
        "the router",
        "the dentist",
        "the school run",
        "the tax return",
        "the insurance",
        "the holiday",
        "the kitchen tap",
        "the heating",
        "the laptop",
        "the phone plan",
        "the gym",
        "the library books",
        "the recycling",
        "the passport",
        "the smoke alarm",
    ];
    const FACTS: [&str; 12] = [
        "needs checking every spring before the weather turns",
        "was serviced by a technician who left a card on the shelf",
        "has a warranty that ends in March and the receipt is in the blue folder",
        "is booked for Tuesday morning at nine, reschedule by phone",
        "uses the spare key hidden under the third flower pot",
        "costs about forty euros a month and renews automatically",
        "must be reset by holding the small button for ten seconds",
        "is handled by the neighbour while we are away",
        "had a fault last winter that the manual calls error E4",
        "gets cleaned with the soft brush, never with water",
        "is documented in the folder on the second shelf of the study",
        "should be replaced after about five years of use",
    ];

    /// Distinct note-sized texts (one to four sentences), like a household's notes.
    fn note(i: usize) -> NewNote {
        let topic = TOPICS[i % TOPICS.len()];
        let sentences: Vec<String> =
            (0..1 + i % 4).map(|s| format!("Note {i}: {topic} {}.", FACTS[(i / TOPICS.len() + s * 5) % FACTS.len()])).collect();
        NewNote { title: format!("About {topic} ({i})"), text: sentences.join(" "), source: Some("bench".into()) }
    }

    pub async fn run(models_dir: &std::path::Path) {
        let installer = Installer::new(models_dir);
        if !installer.is_installed(&catalog::MINILM_L6_V2) {
            eprintln!("knowledge: embeddings not installed in {}; run `parlance models`", models_dir.display());
            return;
        }
        let embedder: Arc<dyn Embedder> =
            Arc::new(LocalEmbeddings::load(&installer.model_dir(&catalog::MINILM_L6_V2)).expect("model loads"));
        let dir = tempfile::tempdir().expect("temporary directory");
        let knowledge = KnowledgeBase::new(Arc::new(Database::new(dir.path())), Some(Arc::clone(&embedder)));
        knowledge.open().await.expect("database opens");

        let started = Instant::now();
        for first in (0..NOTES).step_by(BATCH) {
            let notes = (first..(first + BATCH).min(NOTES)).map(note).collect();
            knowledge.add(notes).await.expect("notes stored");
            if first == 0 || (first + BATCH) % 2000 == 0 {
                let done = first + BATCH;
                println!("knowledge   ingested {done:>6}      {:>8.1} notes/s so far", done as f64 / started.elapsed().as_secs_f64());
            }
        }
        let ingest = started.elapsed();
        println!(
            "knowledge   ingestion {NOTES} notes   {:>8.1} notes/s ({:.1} s, embeddings included, batches of {BATCH})",
            NOTES as f64 / ingest.as_secs_f64(),
            ingest.as_secs_f64()
        );
        let started = Instant::now();
        knowledge.optimize().await.expect("index updated");
        println!("knowledge   index update         {:>8.1} ms", ms(started.elapsed()));
        assert_eq!(knowledge.count().await.expect("counted"), NOTES);

        let questions = [
            "when is the dentist appointment",
            "where is the spare key",
            "what does error E4 mean",
            "how do I reset the router",
            "who looks after things while we travel",
            "when does the warranty end",
        ];
        // The query's embedding is part of every hybrid and vector search: shown on its own to separate the two.
        let mut embedding = Vec::new();
        for round in 0..30 {
            let started = Instant::now();
            embedder.embed(&[questions[round % questions.len()].to_owned()]).await.expect("embeds");
            embedding.push(started.elapsed());
        }
        let (p50, p95) = percentiles(&mut embedding);
        println!("knowledge   query embedding only      p50 {:>6.1} ms   p95 {:>6.1} ms   (n=30)", ms(p50), ms(p95));
        for (label, mode) in [("hybrid", SearchMode::Hybrid), ("vector", SearchMode::VectorOnly), ("full-text", SearchMode::FullTextOnly)] {
            knowledge.search(questions[0], 5, mode).await.expect("warm-up");
            let mut samples = Vec::new();
            for round in 0..60 {
                let started = Instant::now();
                let hits = knowledge.search(questions[round % questions.len()], 5, mode).await.expect("search");
                samples.push(started.elapsed());
                // Full text alone finds nothing for a question made only of common words; the others always answer.
                assert!(mode == SearchMode::FullTextOnly || !hits.is_empty());
            }
            let (p50, p95) = percentiles(&mut samples);
            let embeds = if mode == SearchMode::FullTextOnly { "no embedding" } else { "query embedding included" };
            println!("knowledge   search {label:<9} 10k  p50 {:>6.1} ms   p95 {:>6.1} ms   (n=60, k=5, {embeds})", ms(p50), ms(p95));
        }
    }
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
