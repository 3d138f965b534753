//! `parlance ingest PATH...`: adds documents from disk to the knowledge base, with a progress bar.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use parlance_shared::NewNote;

use crate::config::{IngestArgs, Settings};
use crate::knowledge::document::{self, has_document_extension};
use crate::knowledge::{KnowledgeBase, KnowledgeError};
use crate::state::{StartupError, embedder};
use crate::store::Database;

/// Documents embedded and stored per commit: a failure loses at most this many, and the bar moves.
const FILES_PER_BATCH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum IngestCommandError {
    #[error("no embeddings model is set up: run `parlance models`, or set PARLANCE_EMBEDDINGS_BASE_URL")]
    NoEmbedder,
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("found no .md or .txt files in {0}")]
    NothingFound(String),
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
}

/// What an ingest run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub added: usize,
    pub unchanged: usize,
    /// Files that could not be used, with the reason.
    pub skipped: Vec<String>,
}

pub async fn run_ingest_command(settings: &Settings, args: &IngestArgs) -> Result<IngestReport, IngestCommandError> {
    let embedder = embedder(settings)?.ok_or(IngestCommandError::NoEmbedder)?;
    let knowledge = KnowledgeBase::new(Arc::new(Database::new(&settings.data_dir)), Some(embedder));
    knowledge.open().await.map_err(KnowledgeError::from)?;
    ingest_paths(&knowledge, &args.paths, true).await
}

/// Adds every document under `paths`; `show_progress` draws the bar on the terminal.
pub async fn ingest_paths(knowledge: &KnowledgeBase, paths: &[PathBuf], show_progress: bool) -> Result<IngestReport, IngestCommandError> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    if files.is_empty() {
        let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(IngestCommandError::NothingFound(shown));
    }
    let bar = if show_progress { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut report = IngestReport::default();
    for batch in files.chunks(FILES_PER_BATCH) {
        let mut notes: Vec<NewNote> = Vec::new();
        for path in batch {
            match read_file(path) {
                Ok(note) => notes.push(note),
                Err(reason) => {
                    bar.println(format!("skipped {reason}"));
                    report.skipped.push(reason);
                }
            }
        }
        if !notes.is_empty() {
            let added = knowledge.add(notes).await?;
            report.added += added.added;
            report.unchanged += added.unchanged;
        }
        bar.inc(batch.len() as u64);
        bar.set_message(format!("{} new", report.added));
    }
    knowledge.optimize().await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(added = report.added, unchanged = report.unchanged, skipped = report.skipped.len(), seconds, "ingested");
    Ok(report)
}

fn read_file(path: &Path) -> Result<NewNote, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    document::read(&name, &bytes, Some(path.display().to_string())).map_err(|e| format!("{}: {e}", path.display()))
}

/// Documents in `path` (a file, or a folder searched recursively), in a stable order.
fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), IngestCommandError> {
    let read_error = |source| IngestCommandError::Read { path: path.to_owned(), source };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.is_file() {
        // A file named explicitly is read whatever its name; `document::read` says why if it cannot be used.
        files.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path).map_err(read_error)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect_files(&entry, files)?;
        } else if entry.file_name().and_then(|n| n.to_str()).is_some_and(has_document_extension) {
            files.push(entry);
        }
    }
    Ok(())
}
