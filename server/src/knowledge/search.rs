//! Hybrid retrieval: a vector search (meaning) and a full-text search (exact words, product codes) each rank
//! candidate chunks; weighted reciprocal rank fusion merges the two rankings without comparing their
//! incomparable scores, and each note is returned once, with its best passage.

use std::collections::HashMap;

use lancedb::Table;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{QueryBase, Select};

use super::rows::{StoredChunk, TEXT_COLUMNS, read_chunks};
use super::store::{StoreError, collect};

/// Rank damping. The textbook 60 flattens ranks so far that any note in both lists beats the vector search's
/// clear first choice; on the evaluation in tests/knowledge_search.rs (paraphrased questions plus exact
/// terms) 1 kept the first ranks decisive and scored best.
const RRF_K: f32 = 1.0;
/// Full-text matches on everyday words are noisier than the embeddings' ranking, so they count for less;
/// exact terms (a package name, a setting) still lift their note, because the vector search misses them.
pub const VECTOR_WEIGHT: f32 = 1.0;
pub const TEXT_WEIGHT: f32 = 0.7;
/// Each ranking contributes this many candidates per requested hit (chunks of one note compete).
const CANDIDATES_PER_HIT: usize = 4;
const MIN_CANDIDATES: usize = 20;
const SNIPPET_CHARS: usize = 240;

/// Which rankings to use; `Hybrid` in the product, the others to measure what fusion adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    Hybrid,
    VectorOnly,
    FullTextOnly,
}

/// A note that matched, with the passage that matched best.
#[derive(Debug, Clone)]
pub struct Hit {
    pub note_id: String,
    pub title: String,
    pub source: Option<String>,
    /// The whole matching chunk, for the agent.
    pub text: String,
    /// A short extract, for people.
    pub snippet: String,
    pub score: f32,
}

pub fn candidates(k: usize) -> usize {
    (k * CANDIDATES_PER_HIT).max(MIN_CANDIDATES)
}

pub async fn by_vector(table: &Table, vector: &[f32], limit: usize) -> Result<Vec<StoredChunk>, StoreError> {
    let query = table.query().nearest_to(vector)?.limit(limit).select(Select::columns(&TEXT_COLUMNS));
    ranked(collect(query).await?)
}

pub async fn by_text(table: &Table, text: &str, limit: usize) -> Result<Vec<StoredChunk>, StoreError> {
    let query =
        table.query().full_text_search(FullTextSearchQuery::new(text.to_owned())).limit(limit).select(Select::columns(&TEXT_COLUMNS));
    ranked(collect(query).await?)
}

/// Both searches return their batches best first.
fn ranked(batches: Vec<arrow_array::RecordBatch>) -> Result<Vec<StoredChunk>, StoreError> {
    let mut chunks = Vec::new();
    for batch in &batches {
        chunks.extend(read_chunks(batch)?);
    }
    Ok(chunks)
}

/// Weighted reciprocal rank fusion of best-first rankings, then one hit per note, best first.
pub fn fuse(rankings: &[(f32, Vec<StoredChunk>)], k: usize) -> Vec<Hit> {
    let mut scores: HashMap<&str, (f32, &StoredChunk)> = HashMap::new();
    for (weight, ranking) in rankings {
        for (rank, chunk) in ranking.iter().enumerate() {
            let contribution = weight / (RRF_K + rank as f32 + 1.0);
            scores.entry(chunk.id.as_str()).or_insert((0.0, chunk)).0 += contribution;
        }
    }
    let mut by_chunk: Vec<(f32, &StoredChunk)> = scores.into_values().collect();
    // Ties (equal fused scores) break on the id so results do not flicker between identical queries.
    by_chunk.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let mut hits: Vec<Hit> = Vec::new();
    for (score, chunk) in by_chunk {
        if hits.len() == k {
            break;
        }
        if hits.iter().any(|hit| hit.note_id == chunk.note_id) {
            continue;
        }
        hits.push(Hit {
            note_id: chunk.note_id.clone(),
            title: chunk.title.clone(),
            source: chunk.source.clone(),
            text: chunk.text.clone(),
            snippet: snippet(&chunk.text),
            score,
        });
    }
    hits
}

/// The chunk without Markdown heading marks and line breaks, cut at a word near [`SNIPPET_CHARS`].
fn snippet(text: &str) -> String {
    let flat = text.split_whitespace().filter(|word| !word.chars().all(|c| c == '#')).collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= SNIPPET_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(SNIPPET_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn chunk(id: &str, note: &str) -> StoredChunk {
        StoredChunk {
            id: id.into(),
            note_id: note.into(),
            title: note.into(),
            text: format!("## Heading\ntext of {id}"),
            source: None,
            chunk_count: 1,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn agreement_between_rankings_wins_and_notes_appear_once() {
        let vector = vec![chunk("a:0", "a"), chunk("b:0", "b"), chunk("a:1", "a")];
        let text = vec![chunk("b:0", "b"), chunk("c:0", "c")];
        let hits = fuse(&[(1.0, vector), (1.0, text)], 5);
        let order: Vec<&str> = hits.iter().map(|h| h.note_id.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"], "b is in both rankings");
        assert!(hits.windows(2).all(|pair| pair[0].score >= pair[1].score));
        assert_eq!(hits[0].snippet, "Heading text of b:0");
        assert_eq!(fuse(&[(1.0, vec![chunk("a:0", "a"), chunk("b:0", "b")])], 1).len(), 1);

        // A weaker list only reorders on agreement: alone, its first choice does not beat the other's.
        let hits = fuse(&[(VECTOR_WEIGHT, vec![chunk("v:0", "v")]), (TEXT_WEIGHT, vec![chunk("t:0", "t")])], 2);
        assert_eq!(hits[0].note_id, "v");
    }

    #[test]
    fn long_snippets_are_cut_at_a_word() {
        let long = "word ".repeat(200);
        let cut = snippet(&long);
        assert!(cut.ends_with("word…") && cut.chars().count() <= SNIPPET_CHARS + 1, "{cut}");
    }
}
