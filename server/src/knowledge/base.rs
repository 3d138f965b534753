//! The knowledge base as the rest of the server sees it: add, list, delete, search.

use std::collections::HashMap;
use std::sync::Arc;

use lancedb::index::Index;
use lancedb::index::scalar::FtsIndexBuilder;
use lancedb::query::{QueryBase, Select};
use lancedb::table::{OptimizeAction, OptimizeOptions};
use parlance_shared::{NewNote, NoteSummary};

use super::ingest::{self, CheckedNote, IngestError};
use super::rows::{self, TEXT_COLUMNS, read_chunks};
use super::search::{self, Hit, SearchMode};
use super::store::{Database, GuardedTable, StoreError, collect, strings};
use crate::embeddings::{EmbedError, Embedder};

/// The full-text index over chunk text; Lance names an index after its column.
const TEXT_INDEX: &str = "text_idx";
/// Rows appended since the last index update are searched without the index; past this many, fold them in.
const UNINDEXED_ROWS_BEFORE_UPDATE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("there is no note {0}")]
    NotFound(String),
    #[error("no embeddings model is set up, so notes cannot be added")]
    NoEmbedder,
    #[error(transparent)]
    Embeddings(#[from] EmbedError),
}

impl From<lancedb::Error> for KnowledgeError {
    fn from(error: lancedb::Error) -> Self {
        Self::Store(StoreError::Lance(error))
    }
}

/// What adding notes did: each note (new or already stored) in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub notes: Vec<NoteSummary>,
    pub added: usize,
    pub unchanged: usize,
}

pub struct KnowledgeBase {
    database: Arc<Database>,
    embedder: Option<Arc<dyn Embedder>>,
}

impl KnowledgeBase {
    pub fn new(database: Arc<Database>, embedder: Option<Arc<dyn Embedder>>) -> Self {
        Self { database, embedder }
    }

    pub fn can_add(&self) -> bool {
        self.embedder.is_some()
    }

    /// Opens the database now rather than at the first request.
    pub async fn open(&self) -> Result<(), StoreError> {
        self.database.tables().await.map(|_| ())
    }

    async fn table(&self) -> Result<&GuardedTable, StoreError> {
        Ok(&self.database.tables().await?.knowledge)
    }

    /// Stores the notes not stored yet (by content), all in one commit: a failure stores none of them.
    pub async fn add(&self, notes: Vec<NewNote>) -> Result<Added, KnowledgeError> {
        let embedder = self.embedder.as_ref().ok_or(KnowledgeError::NoEmbedder)?;
        let checked = ingest::check(notes)?;
        let table = self.table().await?;

        // Known notes cost no embedding; the check is repeated under the lock for notes added meanwhile.
        let known = self.existing(table, &checked).await?;
        let mut fresh: Vec<CheckedNote> = Vec::new();
        for note in &checked {
            if !known.contains_key(&note.content_hash) && !fresh.iter().any(|f| f.content_hash == note.content_hash) {
                fresh.push(note.clone());
            }
        }
        let rows = ingest::embed_notes(embedder.as_ref(), &fresh).await?;

        let lock = table.write_lock().await;
        let known = self.existing(table, &checked).await?;
        let rows: Vec<_> = rows.into_iter().filter(|row| !known.contains_key(&row.content_hash)).collect();
        if !rows.is_empty() {
            table.table.add(rows::to_batch(&rows)?).execute().await?;
            update_text_index(&table.table).await?;
        }
        drop(lock);

        let mut summaries = Vec::with_capacity(checked.len());
        let mut added = 0;
        for note in &checked {
            if let Some(summary) = known.get(&note.content_hash) {
                summaries.push(summary.clone());
            } else if let Some(row) = rows.iter().find(|row| row.content_hash == note.content_hash) {
                if !summaries.iter().any(|s: &NoteSummary| s.id == row.note_id) {
                    added += 1;
                }
                summaries.push(NoteSummary {
                    id: row.note_id.clone(),
                    title: row.title.clone(),
                    source: row.source.clone(),
                    chunks: row.chunk_count,
                    created_at: row.created_at,
                });
            }
        }
        let unchanged = summaries.len() - added;
        tracing::info!(added, unchanged, chunks = rows.len(), "notes stored");
        Ok(Added { notes: summaries, added, unchanged })
    }

    /// Stored notes among these, by content hash.
    async fn existing(&self, table: &GuardedTable, notes: &[CheckedNote]) -> Result<HashMap<String, NoteSummary>, StoreError> {
        if notes.is_empty() {
            return Ok(HashMap::new());
        }
        // Hashes are lowercase hex (made here), so quoting them into SQL is safe.
        let list = notes.iter().map(|n| format!("'{}'", n.content_hash)).collect::<Vec<_>>().join(", ");
        let mut columns = TEXT_COLUMNS.to_vec();
        columns.push("content_hash");
        let query = table.table.query().only_if(format!("chunk_index = 0 AND content_hash IN ({list})")).select(Select::columns(&columns));
        let mut found = HashMap::new();
        for batch in collect(query).await? {
            let hashes = strings(&batch, "content_hash")?;
            for (row, chunk) in read_chunks(&batch)?.into_iter().enumerate() {
                found.insert(hashes.value(row).to_owned(), chunk.summary());
            }
        }
        Ok(found)
    }

    /// One page of notes, oldest first, and how many there are.
    pub async fn list(&self, offset: usize, limit: usize) -> Result<(Vec<NoteSummary>, usize), KnowledgeError> {
        let table = &self.table().await?.table;
        let total = table.count_rows(Some("chunk_index = 0".to_owned())).await?;
        let query = table.query().only_if("chunk_index = 0").select(Select::columns(&TEXT_COLUMNS));
        // Lance returns rows in no promised order: sort by age here, which is cheap at knowledge-base sizes.
        let mut notes: Vec<NoteSummary> = Vec::new();
        for batch in collect(query).await? {
            notes.extend(read_chunks(&batch)?.iter().map(|chunk| chunk.summary()));
        }
        notes.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok((notes.into_iter().skip(offset).take(limit).collect(), total))
    }

    pub async fn count(&self) -> Result<usize, KnowledgeError> {
        Ok(self.table().await?.table.count_rows(Some("chunk_index = 0".to_owned())).await?)
    }

    /// Deletes a note (all its chunks) from disk for good.
    pub async fn delete(&self, note_id: &str) -> Result<(), KnowledgeError> {
        // Ids are UUIDs made here; anything else cannot exist and must not reach the SQL filter.
        let id = uuid::Uuid::parse_str(note_id).map_err(|_| KnowledgeError::NotFound(note_id.to_owned()))?;
        let table = self.table().await?;
        let lock = table.write_lock().await;
        let deleted = table.table.delete(format!("note_id = '{id}'").as_str()).await?;
        if deleted.num_deleted_rows == 0 {
            return Err(KnowledgeError::NotFound(note_id.to_owned()));
        }
        table.purge_deleted(&lock).await?;
        tracing::info!(note_id, chunks = deleted.num_deleted_rows, "note deleted");
        Ok(())
    }

    /// The `k` best notes for `query`. Without an embeddings model, full-text search alone.
    pub async fn search(&self, query: &str, k: usize, mode: SearchMode) -> Result<Vec<Hit>, KnowledgeError> {
        let table = &self.table().await?.table;
        let limit = search::candidates(k);
        let use_vector = mode != SearchMode::FullTextOnly && self.embedder.is_some();
        let use_text = mode != SearchMode::VectorOnly || self.embedder.is_none();
        let mut rankings = Vec::with_capacity(2);
        if let (true, Some(embedder)) = (use_vector, &self.embedder) {
            let vector = embedder.embed(&[query.to_owned()]).await?.pop().ok_or(IngestError::VectorCount { asked: 1, got: 0 })?;
            rankings.push((search::VECTOR_WEIGHT, search::by_vector(table, &vector, limit).await?));
        }
        if use_text && has_index(table).await? {
            rankings.push((search::TEXT_WEIGHT, search::by_text(table, query, limit).await?));
        }
        Ok(search::fuse(&rankings, k))
    }

    /// The cosine similarity between `query` and the stored passage nearest to it; `None` without an
    /// embeddings model or without notes.
    pub async fn closeness(&self, query: &str) -> Result<Option<f32>, KnowledgeError> {
        let Some(embedder) = &self.embedder else { return Ok(None) };
        let table = &self.table().await?.table;
        let vector = embedder.embed(&[query.to_owned()]).await?.pop().ok_or(IngestError::VectorCount { asked: 1, got: 0 })?;
        Ok(super::closeness::nearest(table, &vector).await?)
    }

    /// Folds every row into the full-text index (ingestion does it every few hundred rows on its own).
    pub async fn optimize(&self) -> Result<(), KnowledgeError> {
        let table = self.table().await?;
        let _lock = table.write_lock().await;
        if has_index(&table.table).await? {
            table.table.optimize(OptimizeAction::Index(OptimizeOptions::default())).await?;
        }
        Ok(())
    }
}

async fn has_index(table: &lancedb::Table) -> Result<bool, StoreError> {
    Ok(table.list_indices().await?.iter().any(|index| index.name == TEXT_INDEX))
}

/// Creates the full-text index with the first rows, then keeps it from falling far behind.
async fn update_text_index(table: &lancedb::Table) -> Result<(), StoreError> {
    if !has_index(table).await? {
        table.create_index(&["text"], Index::FTS(FtsIndexBuilder::default())).execute().await?;
        return Ok(());
    }
    let unindexed = table.index_stats(TEXT_INDEX).await?.map_or(0, |stats| stats.num_unindexed_rows);
    if unindexed >= UNINDEXED_ROWS_BEFORE_UPDATE {
        table.optimize(OptimizeAction::Index(OptimizeOptions::default())).await?;
    }
    Ok(())
}
