//! The notes every Parlance starts with: Markdown files about Parlance itself, compiled into the binary so
//! it needs nothing beside it. Seeding runs at every start and stores only notes not stored yet (by content
//! hash), so it never duplicates and an edited note arrives after an upgrade.

use parlance_shared::NewNote;

use super::base::{Added, KnowledgeBase, KnowledgeError};
use crate::embeddings::EmbedError;

/// (file name, contents) of `knowledge/seed/*.md` at the repository root.
const SEED_FILES: [(&str, &str); 11] = [
    ("what-is-parlance.md", include_str!("../../../knowledge/seed/what-is-parlance.md")),
    ("privacy-note.md", include_str!("../../../knowledge/seed/privacy-note.md")),
    ("where-data-is-kept.md", include_str!("../../../knowledge/seed/where-data-is-kept.md")),
    ("adding-knowledge.md", include_str!("../../../knowledge/seed/adding-knowledge.md")),
    ("supported-browsers.md", include_str!("../../../knowledge/seed/supported-browsers.md")),
    ("audio-formats.md", include_str!("../../../knowledge/seed/audio-formats.md")),
    ("keyboard-shortcuts.md", include_str!("../../../knowledge/seed/keyboard-shortcuts.md")),
    ("microphone-denied.md", include_str!("../../../knowledge/seed/microphone-denied.md")),
    ("models-missing.md", include_str!("../../../knowledge/seed/models-missing.md")),
    ("provider-errors.md", include_str!("../../../knowledge/seed/provider-errors.md")),
    ("conversation-memory.md", include_str!("../../../knowledge/seed/conversation-memory.md")),
];

/// Where seeded notes say they come from.
pub const SEED_SOURCE_PREFIX: &str = "parlance:seed/";

/// The shipped notes, titled by their first `# ` heading.
pub fn seed_notes() -> Vec<NewNote> {
    SEED_FILES.iter().map(|(file, markdown)| note_from_markdown(markdown, file, Some(format!("{SEED_SOURCE_PREFIX}{file}")))).collect()
}

/// A document as a note: the first `# ` heading is the title (else the file name without extension), the
/// rest is the text.
pub fn note_from_markdown(markdown: &str, file_name: &str, source: Option<String>) -> NewNote {
    let mut lines = markdown.lines();
    let first = markdown.lines().find(|line| !line.trim().is_empty()).unwrap_or_default();
    match first.trim().strip_prefix("# ") {
        Some(title) => {
            let text: Vec<&str> = lines.by_ref().skip_while(|line| line.trim().is_empty()).skip(1).collect();
            NewNote { title: title.trim().to_owned(), text: text.join("\n").trim().to_owned(), source }
        }
        None => {
            let stem = std::path::Path::new(file_name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            NewNote { title: stem, text: markdown.trim().to_owned(), source }
        }
    }
}

/// Stores the shipped notes that are not stored yet.
pub async fn seed(knowledge: &KnowledgeBase) -> Result<Added, KnowledgeError> {
    let added = knowledge.add(seed_notes()).await?;
    tracing::info!(added = added.added, already_there = added.unchanged, "knowledge seeded");
    Ok(added)
}

/// Start-up: opens the database (refusing one this version cannot read) and seeds it when an embeddings
/// model is set up. A failing seed (a provider that is down) is logged, not fatal: the next start retries.
/// A model whose vectors do not fit the table is fatal: nothing could be added or searched by meaning.
pub async fn prepare(knowledge: &KnowledgeBase) -> Result<(), KnowledgeError> {
    knowledge.open().await?;
    if !knowledge.can_add() {
        tracing::warn!("no embeddings model: the shipped notes are not seeded and search uses full text only");
        return Ok(());
    }
    match knowledge.check_embedder().await {
        Err(error @ KnowledgeError::Embeddings(EmbedError::Dimensions { .. })) => return Err(error),
        Err(error) => {
            tracing::warn!(%error, "the embeddings model did not answer; seeding is retried at the next start");
            return Ok(());
        }
        Ok(()) => {}
    }
    if let Err(error) = seed(knowledge).await {
        tracing::warn!(%error, "seeding the knowledge base failed; it is retried at the next start");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_note_has_a_title_and_text() {
        let notes = seed_notes();
        assert_eq!(notes.len(), SEED_FILES.len());
        for note in &notes {
            assert!(!note.title.is_empty() && !note.title.starts_with('#'), "{note:?}");
            assert!(note.text.len() > 100, "{} is too thin", note.title);
            assert!(!note.text.starts_with("# "), "{} kept its title line", note.title);
        }
    }

    #[test]
    fn a_document_without_a_heading_is_titled_by_its_file() {
        let note = note_from_markdown("just text\n", "wifi-password.txt", None);
        assert_eq!((note.title.as_str(), note.text.as_str()), ("wifi-password", "just text"));
    }
}
