//! Knowledge rows as Arrow batches and back.

use std::sync::Arc;

use arrow_array::Array as _;
use arrow_array::types::Float32Type;
use arrow_array::{FixedSizeListArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array};
use chrono::{DateTime, Utc};
use parlance_shared::NoteSummary;

use crate::store::schema::{self, VECTOR_DIMENSIONS};
use crate::store::{StoreError, column, strings};

/// One stored chunk of a note.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    pub note_id: String,
    pub title: String,
    pub text: String,
    pub source: Option<String>,
    pub chunk_index: u32,
    pub chunk_count: u32,
    pub content_hash: String,
    pub created_at: DateTime<Utc>,
    pub vector: Vec<f32>,
    /// The user whose memory this is; `None` for a shared note.
    pub owner: Option<String>,
}

impl ChunkRow {
    pub fn id(&self) -> String {
        chunk_id(&self.note_id, self.chunk_index)
    }
}

pub fn chunk_id(note_id: &str, index: u32) -> String {
    format!("{note_id}:{index}")
}

/// The columns [`read_chunks`] needs: a listing or a search reads only these (each column read costs).
pub const TEXT_COLUMNS: [&str; 7] = ["note_id", "title", "text", "source", "chunk_count", "created_at", "owner"];

pub fn to_batch(rows: &[ChunkRow]) -> Result<RecordBatch, StoreError> {
    if let Some(bad) = rows.iter().find(|row| row.vector.len() != VECTOR_DIMENSIONS) {
        return Err(StoreError::Shape(format!("a vector has {} dimensions, the table {VECTOR_DIMENSIONS}", bad.vector.len())));
    }
    let text = |pick: fn(&ChunkRow) -> String| Arc::new(StringArray::from_iter_values(rows.iter().map(pick)));
    let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        rows.iter().map(|row| Some(row.vector.iter().copied().map(Some).collect::<Vec<_>>())),
        VECTOR_DIMENSIONS as i32,
    );
    let created =
        TimestampMicrosecondArray::from_iter_values(rows.iter().map(|row| row.created_at.timestamp_micros())).with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema::knowledge(),
        vec![
            text(ChunkRow::id),
            text(|row| row.note_id.clone()),
            text(|row| row.title.clone()),
            text(|row| row.text.clone()),
            Arc::new(rows.iter().map(|row| row.source.clone()).collect::<StringArray>()),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|row| row.chunk_index))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|row| row.chunk_count))),
            text(|row| row.content_hash.clone()),
            Arc::new(created),
            Arc::new(vectors),
            Arc::new(rows.iter().map(|row| row.owner.clone()).collect::<StringArray>()),
        ],
    )?)
}

/// A chunk as read back by a listing or a search.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub note_id: String,
    pub title: String,
    pub text: String,
    pub source: Option<String>,
    pub chunk_count: u32,
    pub created_at: DateTime<Utc>,
    pub owner: Option<String>,
}

impl StoredChunk {
    pub fn summary(&self) -> NoteSummary {
        NoteSummary {
            id: self.note_id.clone(),
            title: self.title.clone(),
            source: self.source.clone(),
            chunks: self.chunk_count,
            created_at: self.created_at,
            owner: self.owner.clone(),
        }
    }
}

pub fn read_chunks(batch: &RecordBatch) -> Result<Vec<StoredChunk>, StoreError> {
    let note_ids = strings(batch, "note_id")?;
    let titles = strings(batch, "title")?;
    let texts = strings(batch, "text")?;
    let sources = strings(batch, "source")?;
    let counts = column::<UInt32Array>(batch, "chunk_count")?;
    let created = column::<TimestampMicrosecondArray>(batch, "created_at")?;
    let owners = strings(batch, "owner")?;
    (0..batch.num_rows())
        .map(|row| {
            Ok(StoredChunk {
                note_id: note_ids.value(row).to_owned(),
                title: titles.value(row).to_owned(),
                text: texts.value(row).to_owned(),
                source: sources.is_valid(row).then(|| sources.value(row).to_owned()),
                chunk_count: counts.value(row),
                created_at: DateTime::from_timestamp_micros(created.value(row))
                    .ok_or_else(|| StoreError::Shape(format!("timestamp {} out of range", created.value(row))))?,
                owner: owners.is_valid(row).then(|| owners.value(row).to_owned()),
            })
        })
        .collect()
}
