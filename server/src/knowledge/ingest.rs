//! Turning notes into stored chunks: validate, hash, chunk, embed in batches.

use chrono::Utc;
use parlance_shared::NewNote;
use sha2::{Digest, Sha256};

use super::chunking::chunk;
use super::rows::ChunkRow;
use crate::embeddings::{EmbedError, Embedder};
use crate::store::schema::VECTOR_DIMENSIONS;

/// Titles are shown in lists and hits; a longer one is a mistake (the text went into the title).
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("note {position}: {problem}")]
    InvalidNote { position: usize, problem: String },
    #[error("there are no notes to add; send at least one with a title and some text")]
    NoNotes,
    #[error(transparent)]
    Embeddings(#[from] EmbedError),
    #[error("the embeddings model returned {got} vectors for {asked} texts")]
    VectorCount { asked: usize, got: usize },
}

/// A note that passed validation, with the hash that identifies its content.
#[derive(Debug, Clone)]
pub struct CheckedNote {
    pub title: String,
    pub text: String,
    pub source: Option<String>,
    pub content_hash: String,
}

/// Checks every note before anything is stored, so a bad note in a batch stores none of them.
pub fn check(notes: Vec<NewNote>) -> Result<Vec<CheckedNote>, IngestError> {
    if notes.is_empty() {
        return Err(IngestError::NoNotes);
    }
    notes
        .into_iter()
        .enumerate()
        .map(|(index, note)| {
            let position = index + 1;
            let invalid = |problem: &str| IngestError::InvalidNote { position, problem: problem.to_owned() };
            let title = note.title.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = note.text.trim().to_owned();
            if title.is_empty() {
                return Err(invalid("the title is empty"));
            }
            if title.chars().count() > MAX_TITLE_CHARS {
                return Err(invalid(&format!("the title is longer than {MAX_TITLE_CHARS} characters")));
            }
            if text.is_empty() {
                return Err(invalid("the text is empty"));
            }
            let source = note.source.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
            let content_hash = content_hash(&title, &text);
            Ok(CheckedNote { title, text, source, content_hash })
        })
        .collect()
}

/// Identifies a note by what it says, so the same note sent twice (or seeded twice) is stored once.
pub fn content_hash(title: &str, text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(title.as_bytes());
    hasher.update([0]);
    hasher.update(text.as_bytes());
    format!("{:x}", hasher.finalize())
}

/// What the embedding model reads for a chunk: the title gives a passage from the middle its subject.
pub fn embedding_text(title: &str, chunk: &str) -> String {
    format!("{title}\n{chunk}")
}

/// Chunks and embeds notes (all chunks in one call: the embedder batches them).
/// `owner`: the user whose memories these are (`None`: shared notes).
pub async fn embed_notes(embedder: &dyn Embedder, notes: &[CheckedNote], owner: Option<&str>) -> Result<Vec<ChunkRow>, IngestError> {
    let created_at = Utc::now();
    let mut rows = Vec::new();
    for note in notes {
        let note_id = uuid::Uuid::new_v4().to_string();
        let chunks = chunk(&note.text);
        let chunk_count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        for (index, text) in chunks.into_iter().enumerate() {
            rows.push(ChunkRow {
                note_id: note_id.clone(),
                title: note.title.clone(),
                text,
                source: note.source.clone(),
                chunk_index: u32::try_from(index).unwrap_or(u32::MAX),
                chunk_count,
                content_hash: note.content_hash.clone(),
                created_at,
                vector: Vec::new(),
                owner: owner.map(str::to_owned),
            });
        }
    }
    let texts: Vec<String> = rows.iter().map(|row| embedding_text(&row.title, &row.text)).collect();
    let vectors = embedder.embed(&texts).await?;
    if vectors.len() != rows.len() {
        return Err(IngestError::VectorCount { asked: rows.len(), got: vectors.len() });
    }
    check_dimensions(embedder, &vectors)?;
    for (row, vector) in rows.iter_mut().zip(vectors) {
        row.vector = vector;
    }
    Ok(rows)
}

/// Every vector must have the table's length: another model's vectors could neither be stored nor searched,
/// and the database would only say so with an error about Arrow list sizes.
pub fn check_dimensions(embedder: &dyn Embedder, vectors: &[Vec<f32>]) -> Result<(), EmbedError> {
    match vectors.iter().find(|vector| vector.len() != VECTOR_DIMENSIONS) {
        Some(bad) => Err(EmbedError::Dimensions { model: embedder.info().model, got: bad.len(), expected: VECTOR_DIMENSIONS }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(title: &str, text: &str) -> NewNote {
        NewNote { title: title.into(), text: text.into(), source: None }
    }

    #[test]
    fn one_bad_note_rejects_the_batch_and_says_which() {
        let error = check(vec![note("Fine", "text"), note("Empty", "  \n ")]).unwrap_err();
        assert_eq!(error.to_string(), "note 2: the text is empty");
        assert!(matches!(check(vec![note(" ", "text")]), Err(IngestError::InvalidNote { position: 1, .. })));
        assert!(matches!(check(vec![]), Err(IngestError::NoNotes)));
    }

    #[test]
    fn the_hash_follows_the_content_not_the_white_space_around_it() {
        let a = check(vec![note("  My   bike ", "It is a Trek.\n")]).unwrap();
        let b = check(vec![note("My bike", "It is a Trek.")]).unwrap();
        let c = check(vec![note("My bike", "It is a Cube.")]).unwrap();
        assert_eq!(a[0].content_hash, b[0].content_hash);
        assert_ne!(a[0].content_hash, c[0].content_hash);
    }
}
