//! Hybrid retrieval: a vector search (meaning) and a full-text search (exact words, product codes) each rank
//! candidate chunks; a [`Fusion`] merges the two rankings, and each note is returned once, with its best
//! passage.

use std::collections::HashMap;

use arrow_array::Float32Array;
use lancedb::Table;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{QueryBase, Select};

use super::rows::{StoredChunk, TEXT_COLUMNS, read_chunks};
use super::store::{StoreError, collect, column};

/// Each ranking contributes this many candidates per requested hit (chunks of one note compete).
const CANDIDATES_PER_HIT: usize = 4;
const MIN_CANDIDATES: usize = 20;
const SNIPPET_CHARS: usize = 240;

/// How the two rankings are merged. See [`Fusion::TUNED`] for the values shipped and how they were chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Weighted reciprocal rank fusion: each list adds `weight / (k + rank)`; scores are ignored.
    Rank { k: f32, vector_weight: f32, text_weight: f32 },
    /// Each list's scores scaled to 0..1 (cosine similarity as is, BM25 divided by the list's best), then
    /// `vector_weight * similarity + text_weight * bm25`: how much better the first hit is counts too.
    Score { vector_weight: f32, text_weight: f32 },
    /// Like `Score`, but each list min-max scaled (its worst candidate 0, its best 1), as "relative score
    /// fusion" does: the gaps between candidates count, not the similarity's level.
    Relative { vector_weight: f32, text_weight: f32 },
}

impl Fusion {
    /// Chosen on the held-out tuning questions in tests/knowledge_search.rs (`tune_fusion`, run with
    /// `--ignored`), then checked on the separate test questions there. Score fusions beat every rank fusion
    /// tried (k 0-60, full-text weights 0.05-1.5): rank fusion throws away how sure the vector search is, so a
    /// weak full-text match could unseat a clear first choice. Min-max scaled weights 0.35-0.45 scored best
    /// (plain scores 0.2-0.45 a hair behind); 0.4 is the middle of that range rather than its edge.
    pub const TUNED: Fusion = Fusion::Relative { vector_weight: 1.0, text_weight: 0.4 };
}

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

/// A chunk one search found, with that search's score (higher is better).
#[derive(Debug, Clone)]
pub struct Scored {
    pub chunk: StoredChunk,
    pub score: f32,
}

/// What each search found for one query, best first; either may be absent (no model, no index, or a mode
/// that leaves it out). Fused by [`Rankings::fuse`].
#[derive(Debug, Clone, Default)]
pub struct Rankings {
    pub vector: Option<Vec<Scored>>,
    pub text: Option<Vec<Scored>>,
}

pub async fn by_vector(table: &Table, vector: &[f32], limit: usize) -> Result<Vec<Scored>, StoreError> {
    let query = table.query().nearest_to(vector)?.limit(limit).select(Select::columns(&TEXT_COLUMNS));
    cosine_ranked(query).await
}

/// [`by_vector`] comparing every stored vector, without the index: the exact answer the index approximates.
pub async fn by_vector_exact(table: &Table, vector: &[f32], limit: usize) -> Result<Vec<Scored>, StoreError> {
    let query = table.query().nearest_to(vector)?.bypass_vector_index().limit(limit).select(Select::columns(&TEXT_COLUMNS));
    cosine_ranked(query).await
}

async fn cosine_ranked(query: lancedb::query::VectorQuery) -> Result<Vec<Scored>, StoreError> {
    // The vectors are unit length, so the default (squared) L2 distance is 2 - 2 cos: turned back into cosine.
    ranked(collect(query).await?, "_distance", |distance| 1.0 - distance / 2.0)
}

pub async fn by_text(table: &Table, text: &str, limit: usize) -> Result<Vec<Scored>, StoreError> {
    let query =
        table.query().full_text_search(FullTextSearchQuery::new(text.to_owned())).limit(limit).select(Select::columns(&TEXT_COLUMNS));
    ranked(collect(query).await?, "_score", |bm25| bm25)
}

/// Both searches return their batches best first, each row with the search's own score column.
fn ranked(batches: Vec<arrow_array::RecordBatch>, score_column: &str, to_score: fn(f32) -> f32) -> Result<Vec<Scored>, StoreError> {
    let mut found = Vec::new();
    for batch in &batches {
        let scores = column::<Float32Array>(batch, score_column)?;
        for (row, chunk) in read_chunks(batch)?.into_iter().enumerate() {
            found.push(Scored { chunk, score: to_score(scores.value(row)) });
        }
    }
    Ok(found)
}

impl Rankings {
    /// Both lists merged as `fusion` says, then one hit per note (its best chunk), best first.
    pub fn fuse(&self, fusion: Fusion, k: usize) -> Vec<Hit> {
        let (vector_weight, text_weight) = match fusion {
            Fusion::Rank { vector_weight, text_weight, .. }
            | Fusion::Score { vector_weight, text_weight }
            | Fusion::Relative { vector_weight, text_weight } => (vector_weight, text_weight),
        };
        let mut lists = Vec::with_capacity(2);
        if let Some(vector) = &self.vector {
            lists.push((vector_weight, vector, (0.0, 1.0)));
        }
        if let Some(text) = &self.text {
            // BM25 has no fixed range: the list's best match is 1.
            let best = text.iter().map(|s| s.score).fold(0.0f32, f32::max);
            lists.push((text_weight, text, (0.0, if best > 0.0 { 1.0 / best } else { 0.0 })));
        }
        if let Fusion::Relative { .. } = fusion {
            for (_, ranking, (offset, scale)) in &mut lists {
                let low = ranking.iter().map(|s| s.score).fold(f32::INFINITY, f32::min);
                let high = ranking.iter().map(|s| s.score).fold(f32::NEG_INFINITY, f32::max);
                // A single candidate (or all equal) counts fully.
                (*offset, *scale) = if high > low { (low, 1.0 / (high - low)) } else { (low - 1.0, 1.0) };
            }
        }
        let mut scores: HashMap<&str, (f32, &StoredChunk)> = HashMap::new();
        for (weight, ranking, (offset, scale)) in lists {
            for (rank, found) in ranking.iter().enumerate() {
                let contribution = match fusion {
                    Fusion::Rank { k, .. } => weight / (k + rank as f32 + 1.0),
                    Fusion::Score { .. } | Fusion::Relative { .. } => weight * (found.score - offset) * scale,
                };
                scores.entry(found.chunk.id.as_str()).or_insert((0.0, &found.chunk)).0 += contribution;
            }
        }
        best_per_note(scores, k)
    }
}

fn best_per_note(scores: HashMap<&str, (f32, &StoredChunk)>, k: usize) -> Vec<Hit> {
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

    fn found(ids: &[&str]) -> Option<Vec<Scored>> {
        let count = ids.len() as f32;
        Some(
            ids.iter()
                .enumerate()
                .map(|(rank, id)| Scored { chunk: chunk(id, id.split(':').next().unwrap()), score: (count - rank as f32) / count })
                .collect(),
        )
    }

    #[test]
    fn agreement_between_rankings_wins_and_notes_appear_once() {
        let even = Fusion::Rank { k: 1.0, vector_weight: 1.0, text_weight: 1.0 };
        let rankings = Rankings { vector: found(&["a:0", "b:0", "a:1"]), text: found(&["b:0", "c:0"]) };
        let hits = rankings.fuse(even, 5);
        let order: Vec<&str> = hits.iter().map(|h| h.note_id.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"], "b is in both rankings");
        assert!(hits.windows(2).all(|pair| pair[0].score >= pair[1].score));
        assert_eq!(hits[0].snippet, "Heading text of b:0");
        assert_eq!(Rankings { vector: found(&["a:0", "b:0"]), text: None }.fuse(even, 1).len(), 1);

        // A weaker list only reorders on agreement: alone, its first choice does not beat the other's.
        let weaker_text = Fusion::Rank { k: 1.0, vector_weight: 1.0, text_weight: 0.7 };
        let hits = Rankings { vector: found(&["v:0"]), text: found(&["t:0"]) }.fuse(weaker_text, 2);
        assert_eq!(hits[0].note_id, "v");
    }

    #[test]
    fn score_fusion_scales_bm25_to_the_best_match() {
        let fusion = Fusion::Score { vector_weight: 1.0, text_weight: 0.5 };
        // BM25 in the tens does not swamp cosine similarities below one.
        let mut text = found(&["t:0", "v:0"]).unwrap();
        text[0].score = 30.0;
        text[1].score = 15.0;
        let rankings = Rankings { vector: found(&["v:0", "t:0"]), text: Some(text) };
        let hits = rankings.fuse(fusion, 2);
        // v: 1.0 + 0.5 * 0.5 = 1.25; t: 0.5 + 0.5 * 1.0 = 1.0.
        assert_eq!(hits.iter().map(|h| h.note_id.as_str()).collect::<Vec<_>>(), ["v", "t"]);
        assert!((hits[0].score - 1.25).abs() < 1e-6, "{}", hits[0].score);
    }

    #[test]
    fn long_snippets_are_cut_at_a_word() {
        let long = "word ".repeat(200);
        let cut = snippet(&long);
        assert!(cut.ends_with("word…") && cut.chars().count() <= SNIPPET_CHARS + 1, "{cut}");
    }
}
