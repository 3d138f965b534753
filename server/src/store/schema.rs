//! The tables' layout and the database's schema version. A database records the version that wrote it; a
//! version this build cannot read is refused at start-up with a message saying what to do.

use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Bump when a table's layout changes, and teach [`plan`] the step from the previous version. Version 2 added
/// the notes' `owner` (a memory kept for one user).
pub const SCHEMA_VERSION: u32 = 2;
/// The vectors' length: all-MiniLM-L6-v2's output (and what OpenAI-compatible models must be asked for).
pub const VECTOR_DIMENSIONS: usize = 384;

pub const KNOWLEDGE_TABLE: &str = "knowledge";
pub const TURNS_TABLE: &str = "turns";
pub const META_TABLE: &str = "meta";
/// Who started each conversation. Added after schema version 1 without a new version: a database without
/// it simply gets it (nothing in it is owned yet), and an older Parlance ignores it.
pub const OWNERS_TABLE: &str = "session_owners";
/// The names users gave their conversations. Added like [`OWNERS_TABLE`]: created when missing, no new version.
pub const TITLES_TABLE: &str = "session_titles";
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database in {location} was written by a newer Parlance (schema version {found}; this one knows up to \
         {SCHEMA_VERSION}): upgrade Parlance, or start with another --data-dir"
    )]
    Newer { location: String, found: u32 },
    #[error(
        "the database in {location} has tables ({tables}) but no schema version, so it was not written by Parlance or \
         was damaged: move that folder away (Parlance then starts a fresh one and re-seeds its notes) or choose another --data-dir"
    )]
    Unversioned { location: String, tables: String },
    #[error("the database in {location} records schema version {found:?}, which is not a version number: {hint}")]
    Unreadable { location: String, found: String, hint: &'static str },
    #[error(
        "the database in {location} has schema version {found}, and this Parlance has no migration from it: export \
         your notes with an older Parlance, or move the folder away to start afresh"
    )]
    NoMigration { location: String, found: u32 },
}

/// What opening a database has to do, decided from the version it records and the tables it has.
#[derive(Debug, PartialEq, Eq)]
pub enum VersionPlan {
    /// An empty folder: create every table.
    Create,
    Current,
    /// Version 1: the knowledge table gets its `owner` column (empty: every note so far is shared).
    AddNoteOwners,
}

pub fn plan(location: &str, recorded: Option<&str>, existing_tables: &[String]) -> Result<VersionPlan, SchemaError> {
    let Some(recorded) = recorded else {
        if existing_tables.is_empty() {
            return Ok(VersionPlan::Create);
        }
        return Err(SchemaError::Unversioned { location: location.to_owned(), tables: existing_tables.join(", ") });
    };
    let found: u32 = recorded.trim().parse().map_err(|_| SchemaError::Unreadable {
        location: location.to_owned(),
        found: recorded.to_owned(),
        hint: "move that folder away or choose another --data-dir",
    })?;
    if found == SCHEMA_VERSION {
        return Ok(VersionPlan::Current);
    }
    if found > SCHEMA_VERSION {
        return Err(SchemaError::Newer { location: location.to_owned(), found });
    }
    if found == 1 {
        return Ok(VersionPlan::AddNoteOwners);
    }
    Err(SchemaError::NoMigration { location: location.to_owned(), found })
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// One row per chunk; the chunks of a note share its `note_id`, title, source and content hash.
pub fn knowledge() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("note_id", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, true),
        Field::new("chunk_index", DataType::UInt32, false),
        Field::new("chunk_count", DataType::UInt32, false),
        // SHA-256 of the note's title and text: the same note is never stored twice.
        Field::new("content_hash", DataType::Utf8, false),
        Field::new("created_at", timestamp(), false),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), VECTOR_DIMENSIONS as i32),
            false,
        ),
        note_owner(),
    ]))
}

/// Whose memory a note is: the user who asked the assistant to remember it. Empty for the shared notes.
pub fn note_owner() -> Field {
    Field::new("owner", DataType::Utf8, true)
}

/// One row per line of a conversation.
pub fn turns() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("session_id", DataType::Utf8, false),
        Field::new("turn_id", DataType::Utf8, false),
        // Position within the lines appended together (a question and its answer share `created_at`).
        Field::new("line", DataType::UInt32, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("created_at", timestamp(), false),
        // JSON arrays of the shared types, read back with serde.
        Field::new("tool_calls", DataType::Utf8, false),
        Field::new("sources", DataType::Utf8, false),
        // An answer cut short by the user (barge-in): the text holds only what was played.
        Field::new("interrupted", DataType::Boolean, false),
    ]))
}

pub fn owners() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("session_id", DataType::Utf8, false), Field::new("owner", DataType::Utf8, false)]))
}

pub fn titles() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("session_id", DataType::Utf8, false), Field::new("title", DataType::Utf8, false)]))
}

pub fn meta() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Utf8, false)]))
}

pub fn version_row() -> Result<RecordBatch, arrow_schema::ArrowError> {
    RecordBatch::try_new(
        meta(),
        vec![Arc::new(StringArray::from(vec![SCHEMA_VERSION_KEY])), Arc::new(StringArray::from(vec![SCHEMA_VERSION.to_string()]))],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_planned_or_refused_with_a_way_out() {
        assert_eq!(plan("db", None, &[]).unwrap(), VersionPlan::Create);
        assert_eq!(plan("db", Some("2"), &["meta".into()]).unwrap(), VersionPlan::Current);
        assert_eq!(plan("db", Some("1"), &["meta".into()]).unwrap(), VersionPlan::AddNoteOwners);

        let newer = plan("db", Some("7"), &["meta".into()]).unwrap_err();
        assert!(matches!(newer, SchemaError::Newer { found: 7, .. }));
        assert!(newer.to_string().contains("upgrade Parlance"), "{newer}");

        let foreign = plan("db", None, &["vectors".into()]).unwrap_err();
        assert!(foreign.to_string().contains("move that folder away"), "{foreign}");

        let garbage = plan("db", Some("one"), &["meta".into()]).unwrap_err();
        assert!(matches!(garbage, SchemaError::Unreadable { .. }));

        let ancient = plan("db", Some("0"), &["meta".into()]).unwrap_err();
        assert!(matches!(ancient, SchemaError::NoMigration { found: 0, .. }), "{ancient}");
    }
}
