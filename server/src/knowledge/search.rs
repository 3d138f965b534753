//! Hybrid retrieval: a vector search (meaning) and a full-text search (exact words, product codes) each rank
//! candidate chunks; a [`Fusion`] merges the two rankings, and each note is returned once, with its best
//! passage.
//!
//! The searches return only row ids and scores. Reading a row's columns costs more than finding it (on
//! 10,000 notes, a vector search for 20 ids took 2.5 ms, the same search reading their text 5 ms), and fusion
//! keeps only a few of the candidates: those few are read once, after fusion. Row ids are addresses in one
//! version of the table (merging data files moves rows), so both searches and the read use the same
//! snapshot.

use std::collections::HashMap;

use arrow_array::{Float32Array, UInt64Array};
use lancedb::Table;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{QueryBase, Select};

use super::rows::{StoredChunk, TEXT_COLUMNS, read_chunks};
use crate::store::{Snapshot, StoreError, collect, column};

/// Each ranking contributes this many candidates per requested hit (chunks of one note compete).
const CANDIDATES_PER_HIT: usize = 4;
const MIN_CANDIDATES: usize = 20;
const SNIPPET_CHARS: usize = 240;
/// Lance's name for a row's address, and the score columns its searches add.
const ROW_ID: &str = "_rowid";
const DISTANCE: &str = "_distance";
const BM25: &str = "_score";

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
    /// Chosen on the held-out tuning questions in tests/it/knowledge_search.rs (`tune_fusion`, run with
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

pub fn candidate_count(k: usize) -> usize {
    (k * CANDIDATES_PER_HIT).max(MIN_CANDIDATES)
}

/// A chunk a search ranked: its row in the snapshot searched, and a score (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub row: u64,
    pub score: f32,
}

/// What each search found for one query, best first; either may be absent (no model, no index, or a mode
/// that leaves it out).
#[derive(Debug, Clone, Default)]
pub struct Rankings {
    pub vector: Option<Vec<Ranked>>,
    pub text: Option<Vec<Ranked>>,
}

/// Rankings with the table version they were made on, where their rows can be read. The snapshot keeps that
/// version's files on disk, so a deletion waits until the candidates are dropped: drop them before waiting
/// for one.
pub struct Candidates {
    pub snapshot: Snapshot,
    pub rankings: Rankings,
}

/// `filter`: an SQL condition rows must meet, applied before the nearest are chosen.
pub async fn by_vector(table: &Table, vector: &[f32], limit: usize, filter: Option<&str>) -> Result<Vec<Ranked>, StoreError> {
    let mut query = table.query().nearest_to(vector)?.limit(limit).select(Select::columns(&[ROW_ID, DISTANCE])).with_row_id();
    if let Some(filter) = filter {
        query = query.only_if(filter);
    }
    cosine_ranked(query).await
}

/// [`by_vector`] comparing every stored vector, without the index: the exact answer the index approximates.
pub async fn by_vector_exact(table: &Table, vector: &[f32], limit: usize) -> Result<Vec<Ranked>, StoreError> {
    let query =
        table.query().nearest_to(vector)?.bypass_vector_index().limit(limit).select(Select::columns(&[ROW_ID, DISTANCE])).with_row_id();
    cosine_ranked(query).await
}

async fn cosine_ranked(query: lancedb::query::VectorQuery) -> Result<Vec<Ranked>, StoreError> {
    // The vectors are unit length, so the default (squared) L2 distance is 2 - 2 cos: turned back into cosine.
    ranked(collect(query).await?, DISTANCE, |distance| 1.0 - distance / 2.0)
}

pub async fn by_text(table: &Table, text: &str, limit: usize, filter: Option<&str>) -> Result<Vec<Ranked>, StoreError> {
    let mut query = table
        .query()
        .full_text_search(FullTextSearchQuery::new(text.to_owned()))
        .limit(limit)
        .select(Select::columns(&[ROW_ID, BM25]))
        .with_row_id();
    if let Some(filter) = filter {
        query = query.only_if(filter);
    }
    ranked(collect(query).await?, BM25, |bm25| bm25)
}

/// Both searches return their batches best first, each row with the search's own score column.
fn ranked(batches: Vec<arrow_array::RecordBatch>, score_column: &str, to_score: fn(f32) -> f32) -> Result<Vec<Ranked>, StoreError> {
    let mut found = Vec::new();
    for batch in &batches {
        let rows = column::<UInt64Array>(batch, ROW_ID)?;
        let scores = column::<Float32Array>(batch, score_column)?;
        found.extend(rows.values().iter().zip(scores.values()).map(|(&row, &score)| Ranked { row, score: to_score(score) }));
    }
    Ok(found)
}

impl Candidates {
    /// The `k` best notes: both lists fused as `fusion` says, each note once (its best chunk), best first.
    pub async fn hits(&self, fusion: Fusion, k: usize) -> Result<Vec<Hit>, StoreError> {
        let fused = self.rankings.fuse(fusion);
        let mut chunks = HashMap::new();
        let mut read = 0;
        loop {
            // Usually each winner is a different note; when chunks of one note crowd the top, read further.
            let more = (read + k).min(fused.len());
            let rows: Vec<u64> = fused[read..more].iter().map(|ranked| ranked.row).collect();
            chunks.extend(read_rows(&self.snapshot.table, &rows).await?);
            read = more;
            let hits = one_per_note(&fused[..read], &chunks, k);
            if hits.len() >= k || read == fused.len() {
                return Ok(hits);
            }
        }
    }
}

impl Rankings {
    /// Every candidate chunk with its fused score, best first. Ties (equal fused scores) break on the row so
    /// results do not flicker between identical queries.
    pub fn fuse(&self, fusion: Fusion) -> Vec<Ranked> {
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
        let mut scores: HashMap<u64, f32> = HashMap::new();
        for (weight, ranking, (offset, scale)) in lists {
            for (rank, found) in ranking.iter().enumerate() {
                let contribution = match fusion {
                    Fusion::Rank { k, .. } => weight / (k + rank as f32 + 1.0),
                    Fusion::Score { .. } | Fusion::Relative { .. } => weight * (found.score - offset) * scale,
                };
                *scores.entry(found.row).or_insert(0.0) += contribution;
            }
        }
        let mut fused: Vec<Ranked> = scores.into_iter().map(|(row, score)| Ranked { row, score }).collect();
        fused.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.row.cmp(&b.row)));
        fused
    }
}

/// The chunks at these rows, by row.
async fn read_rows(snapshot: &Table, rows: &[u64]) -> Result<HashMap<u64, StoredChunk>, StoreError> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    // Lance's own take, under LanceDB's query layer: LanceDB plans `take_row_ids` as a query, which took
    // twice as long (1.8 vs 0.9 ms for 5 rows).
    let dataset = snapshot.dataset().ok_or_else(|| StoreError::Shape("the knowledge table is not a local table".into()))?.get().await?;
    let projection = dataset.schema().project(&TEXT_COLUMNS).map_err(lancedb::Error::from)?;
    let batch = dataset.take_rows(rows, projection).await.map_err(lancedb::Error::from)?;
    if batch.num_rows() != rows.len() {
        return Err(StoreError::Shape(format!("asked for {} rows, got {}", rows.len(), batch.num_rows())));
    }
    Ok(rows.iter().copied().zip(read_chunks(&batch)?).collect())
}

/// The fused chunks as hits, skipping chunks of notes already listed, at most `k`.
fn one_per_note(fused: &[Ranked], chunks: &HashMap<u64, StoredChunk>, k: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for ranked in fused {
        if hits.len() == k {
            break;
        }
        let Some(chunk) = chunks.get(&ranked.row) else { continue };
        if hits.iter().any(|hit| hit.note_id == chunk.note_id) {
            continue;
        }
        hits.push(Hit {
            note_id: chunk.note_id.clone(),
            title: chunk.title.clone(),
            source: chunk.source.clone(),
            text: chunk.text.clone(),
            snippet: snippet(&chunk.text),
            score: ranked.score,
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

    fn chunk(note: &str, row: u64) -> StoredChunk {
        StoredChunk {
            note_id: note.into(),
            title: note.into(),
            text: format!("## Heading\ntext of row {row}"),
            source: None,
            chunk_count: 1,
            created_at: Utc::now(),
            owner: None,
        }
    }

    /// Rows ranked in this order, scores falling evenly from 1.
    fn found(rows: &[u64]) -> Option<Vec<Ranked>> {
        let count = rows.len() as f32;
        Some(rows.iter().enumerate().map(|(rank, &row)| Ranked { row, score: (count - rank as f32) / count }).collect())
    }

    fn order(fused: &[Ranked]) -> Vec<u64> {
        fused.iter().map(|ranked| ranked.row).collect()
    }

    #[test]
    fn agreement_between_rankings_wins() {
        let even = Fusion::Rank { k: 1.0, vector_weight: 1.0, text_weight: 1.0 };
        let rankings = Rankings { vector: found(&[1, 2, 3]), text: found(&[2, 4]) };
        let fused = rankings.fuse(even);
        assert_eq!(order(&fused), [2, 1, 4, 3], "row 2 is in both rankings");
        assert!(fused.windows(2).all(|pair| pair[0].score >= pair[1].score));

        // A weaker list only reorders on agreement: alone, its first choice does not beat the other's.
        let weaker_text = Fusion::Rank { k: 1.0, vector_weight: 1.0, text_weight: 0.7 };
        let fused = Rankings { vector: found(&[7]), text: found(&[8]) }.fuse(weaker_text);
        assert_eq!(order(&fused), [7, 8]);
    }

    #[test]
    fn score_fusion_scales_bm25_to_the_best_match() {
        let fusion = Fusion::Score { vector_weight: 1.0, text_weight: 0.5 };
        // BM25 in the tens does not swamp cosine similarities below one.
        let text = vec![Ranked { row: 2, score: 30.0 }, Ranked { row: 1, score: 15.0 }];
        let fused = Rankings { vector: found(&[1, 2]), text: Some(text) }.fuse(fusion);
        // Row 1: 1.0 + 0.5 * 0.5 = 1.25; row 2: 0.5 + 0.5 * 1.0 = 1.0.
        assert_eq!(order(&fused), [1, 2]);
        assert!((fused[0].score - 1.25).abs() < 1e-6, "{}", fused[0].score);
    }

    #[test]
    fn each_note_is_listed_once_with_its_best_chunk() {
        let fused = found(&[10, 11, 20, 30]).unwrap_or_default();
        let chunks = HashMap::from([(10, chunk("a", 10)), (11, chunk("a", 11)), (20, chunk("b", 20)), (30, chunk("c", 30))]);
        let hits = one_per_note(&fused, &chunks, 5);
        assert_eq!(hits.iter().map(|hit| hit.note_id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(hits[0].snippet, "Heading text of row 10", "the note's best chunk");
        assert_eq!(hits[1].score, fused[2].score);
        assert_eq!(one_per_note(&fused, &chunks, 2).len(), 2);
        // Rows not read (yet) are no hits.
        assert_eq!(one_per_note(&fused, &HashMap::from([(20, chunk("b", 20))]), 5).len(), 1);
    }

    #[test]
    fn long_snippets_are_cut_at_a_word() {
        let long = "word ".repeat(200);
        let cut = snippet(&long);
        assert!(cut.ends_with("word…") && cut.chars().count() <= SNIPPET_CHARS + 1, "{cut}");
    }
}
