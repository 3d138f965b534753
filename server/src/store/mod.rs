//! The one LanceDB database under the data directory, shared by the knowledge base (`knowledge`) and the
//! conversations (`sessions::LanceSessions`): opened (and created, or its version checked) on first use, in
//! whichever runtime uses it first, so building the server stays synchronous.

pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::query::ExecutableQuery;
use lancedb::table::{CompactionOptions, Duration, NewColumnTransform, OptimizeAction, OptimizeStats};
use lancedb::{Connection, Table};
use tokio::sync::{Mutex, MutexGuard, OnceCell, OwnedRwLockReadGuard, RwLock};

use self::schema::{KNOWLEDGE_TABLE, META_TABLE, OWNERS_TABLE, SCHEMA_VERSION_KEY, SchemaError, TITLES_TABLE, TURNS_TABLE, VersionPlan};

/// The database's folder inside the data directory.
const DATABASE_FOLDER: &str = "lancedb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("the data directory {} is not a valid UTF-8 path; choose another --data-dir", .0.display())]
    NonUtf8Path(PathBuf),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("the database failed: {0}")]
    Lance(#[from] lancedb::Error),
    #[error("the database returned data in an unexpected shape: {0}")]
    Shape(String),
}

impl From<arrow_schema::ArrowError> for StoreError {
    fn from(error: arrow_schema::ArrowError) -> Self {
        Self::Shape(error.to_string())
    }
}

/// A table and the lock its writers take. Lance commits concurrent appends safely on its own; the lock is
/// for purging, which deletes files no committed version references and so must not overlap a write.
pub struct GuardedTable {
    pub table: Table,
    writes: Mutex<()>,
    /// Held while small files are merged. Appends do not wait for it (Lance commits a merge beside appends made
    /// meanwhile); purges and rewrites of rows do (see [`GuardedTable::rewrite_lock`]).
    merging: Mutex<()>,
    /// Held by each [`Snapshot`]: purging waits for them, so the files a snapshot reads stay on disk.
    readers: Arc<RwLock<()>>,
}

/// Writers and merges of a table kept out (see [`GuardedTable::rewrite_lock`]).
pub struct RewriteGuard<'a> {
    _writes: MutexGuard<'a, ()>,
    _merging: MutexGuard<'a, ()>,
}

/// The table as it is now, unchanged by later writes: row ids found in it can be read from it later (a
/// merge of data files gives rows new ids in the versions after it).
pub struct Snapshot {
    pub table: Table,
    _files_kept: OwnedRwLockReadGuard<()>,
}

impl GuardedTable {
    fn new(table: Table) -> Self {
        Self { table, writes: Mutex::new(()), merging: Mutex::new(()), readers: Arc::new(RwLock::new(())) }
    }

    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let files_kept = Arc::clone(&self.readers).read_owned().await;
        Ok(Snapshot { table: self.table.checkout_current().await?, _files_kept: files_kept })
    }

    pub async fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// For a writer that changes or removes rows already stored (a merge-insert, a delete, a purge): the write
    /// lock, once no merge of small files is running. A merge rewrites the files those rows are in, so one of
    /// the two commits would fail; and a purge would delete the files a running merge has not committed yet.
    pub async fn rewrite_lock(&self) -> RewriteGuard<'_> {
        let writes = self.writes.lock().await;
        let merging = self.merging.lock().await;
        RewriteGuard { _writes: writes, _merging: merging }
    }

    /// Merges the small data files that many small appends leave (one per commit) into files of up to
    /// `target_rows` rows, leaving larger files alone: a query reads every data file, so without this each read
    /// of the table grows slower with every write. Old versions keep the merged files until they are removed
    /// ([`GuardedTable::prune_versions`], [`GuardedTable::purge_deleted`]). Does not hold the write lock, so
    /// appends go on meanwhile (holding it stalled the commit that ran it, the soak bench's slowest turns).
    /// Returns at once when a merge is already running.
    pub async fn merge_small_files(&self, target_rows: usize) -> Result<(), StoreError> {
        let Ok(_merging) = self.merging.try_lock() else {
            tracing::debug!("a merge of small files is running already");
            return Ok(());
        };
        let started = Instant::now();
        let options = CompactionOptions { target_rows_per_fragment: target_rows, ..CompactionOptions::default() };
        let stats = self.table.optimize(OptimizeAction::Compact { options, remap_options: None }).await?;
        if let Some(merged) = stats.compaction {
            tracing::debug!(
                files_removed = merged.fragments_removed,
                files_added = merged.fragments_added,
                ms = started.elapsed().as_millis(),
                "small files merged"
            );
        }
        Ok(())
    }

    /// Removes every version but the newest, and the files only they used (the small files merged away).
    /// Lance keeps every version otherwise, and commits grow slower with their number (see the soak bench in
    /// the README). Holds the write lock (a write under way starts from a version that must stay) and waits for
    /// a running merge (its new files are in no version yet).
    pub async fn prune_versions(&self, _held: &MutexGuard<'_, ()>) -> Result<(), StoreError> {
        let started = Instant::now();
        let _quiet = self.merging.lock().await;
        // Files no version references may be a write's not yet committed: left alone.
        let stats = self.remove_old_versions(false).await?;
        tracing::debug!(
            versions_removed = stats.prune.as_ref().map_or(0, |pruned| pruned.old_versions),
            ms = started.elapsed().as_millis(),
            "old versions pruned"
        );
        Ok(())
    }

    /// Makes deleted rows really gone from disk: rewrites the files that held them and removes every older
    /// version (Lance otherwise keeps them for time travel).
    pub async fn purge_deleted(&self, _held: &RewriteGuard<'_>) -> Result<(), StoreError> {
        let options = CompactionOptions { materialize_deletions_threshold: 0.0, ..CompactionOptions::default() };
        self.table.optimize(OptimizeAction::Compact { options, remap_options: None }).await?;
        // No write or merge is under way, so no file is awaiting its commit: every file no version uses goes.
        self.remove_old_versions(true).await?;
        Ok(())
    }

    /// Every version but the newest, once no snapshot is being read (it may be reading an old one).
    async fn remove_old_versions(&self, delete_unreferenced: bool) -> Result<OptimizeStats, StoreError> {
        let _no_snapshots = self.readers.write().await;
        let stats = self
            .table
            .optimize(OptimizeAction::Prune {
                older_than: Some(Duration::zero()),
                delete_unverified: Some(delete_unreferenced),
                error_if_tagged_old_versions: Some(false),
            })
            .await?;
        Ok(stats)
    }
}

pub struct Tables {
    pub knowledge: GuardedTable,
    pub turns: GuardedTable,
    pub owners: GuardedTable,
    pub titles: GuardedTable,
}

/// LanceDB's caches of the indexes read and of file metadata. Its defaults (6 GiB and 1 GiB) let the memory of
/// a long-running server grow with every write until they fill: each commit is a version whose metadata is
/// cached. These hold every index of a large knowledge base and the recent versions.
const INDEX_CACHE_BYTES: usize = 256 * 1024 * 1024;
const METADATA_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The database, opened on first use. Cloning shares it.
pub struct Database {
    dir: PathBuf,
    opened: OnceCell<Tables>,
}

impl Database {
    /// Nothing is touched on disk until the first call to [`Database::tables`].
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join(DATABASE_FOLDER), opened: OnceCell::new() }
    }

    pub fn location(&self) -> &Path {
        &self.dir
    }

    /// Whether [`Database::tables`] has opened the database (and so created it if it was missing).
    pub fn is_open(&self) -> bool {
        self.opened.initialized()
    }

    pub async fn tables(&self) -> Result<&Tables, StoreError> {
        self.opened.get_or_try_init(|| open(&self.dir)).await
    }
}

async fn open(dir: &Path) -> Result<Tables, StoreError> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })?;
    let uri = dir.to_str().ok_or_else(|| StoreError::NonUtf8Path(dir.to_owned()))?;
    let session = lancedb::Session::new(INDEX_CACHE_BYTES, METADATA_CACHE_BYTES, Arc::new(lancedb::ObjectStoreRegistry::default()));
    let connection = lancedb::connect(uri).session(Arc::new(session)).execute().await?;
    let names = connection.table_names().execute().await?;
    let recorded = if names.iter().any(|name| name == META_TABLE) { read_version(&connection).await? } else { None };
    let plan = schema::plan(uri, recorded.as_deref(), &names)?;
    let tables = match plan {
        VersionPlan::Create => {
            let knowledge = connection.create_empty_table(KNOWLEDGE_TABLE, schema::knowledge()).execute().await?;
            let turns = connection.create_empty_table(TURNS_TABLE, schema::turns()).execute().await?;
            // Written last: a folder with tables but no version is one whose creation did not finish.
            connection.create_table(META_TABLE, schema::version_row()?).execute().await?;
            tracing::info!(location = %dir.display(), version = schema::SCHEMA_VERSION, "created the database");
            let owners = connection.create_empty_table(OWNERS_TABLE, schema::owners()).execute().await?;
            let titles = connection.create_empty_table(TITLES_TABLE, schema::titles()).execute().await?;
            Tables {
                knowledge: GuardedTable::new(knowledge),
                turns: GuardedTable::new(turns),
                owners: GuardedTable::new(owners),
                titles: GuardedTable::new(titles),
            }
        }
        VersionPlan::Current | VersionPlan::AddNoteOwners => {
            let knowledge = connection.open_table(KNOWLEDGE_TABLE).execute().await?;
            if plan == VersionPlan::AddNoteOwners {
                add_note_owners(&connection, &knowledge).await?;
                tracing::info!(location = %dir.display(), from = 1, to = schema::SCHEMA_VERSION, "database migrated");
            }
            let turns = connection.open_table(TURNS_TABLE).execute().await?;
            let owners = if names.iter().any(|name| name == OWNERS_TABLE) {
                connection.open_table(OWNERS_TABLE).execute().await?
            } else {
                connection.create_empty_table(OWNERS_TABLE, schema::owners()).execute().await?
            };
            let titles = if names.iter().any(|name| name == TITLES_TABLE) {
                connection.open_table(TITLES_TABLE).execute().await?
            } else {
                connection.create_empty_table(TITLES_TABLE, schema::titles()).execute().await?
            };
            Tables {
                knowledge: GuardedTable::new(knowledge),
                turns: GuardedTable::new(turns),
                owners: GuardedTable::new(owners),
                titles: GuardedTable::new(titles),
            }
        }
    };
    let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(location = %dir.display(), load_ms, "database open");
    Ok(tables)
}

/// Version 1 -> 2: every stored note is shared (no owner). The column comes first and the version after it, so
/// a migration cut short is simply done again (a column already there is not added twice).
async fn add_note_owners(connection: &Connection, knowledge: &Table) -> Result<(), StoreError> {
    let has_owner = knowledge.schema().await?.field_with_name(schema::note_owner().name()).is_ok();
    if !has_owner {
        let owner = arrow_schema::Schema::new(vec![schema::note_owner()]);
        knowledge.add_columns().transform(NewColumnTransform::AllNulls(Arc::new(owner))).execute().await?;
    }
    let meta = connection.open_table(META_TABLE).execute().await?;
    // One commit: the version is never missing, even if the process dies here.
    meta.update()
        .only_if(format!("key = '{SCHEMA_VERSION_KEY}'"))
        .column("value", format!("'{}'", schema::SCHEMA_VERSION))
        .execute()
        .await?;
    Ok(())
}

async fn read_version(connection: &Connection) -> Result<Option<String>, StoreError> {
    let meta = connection.open_table(META_TABLE).execute().await?;
    let batches: Vec<RecordBatch> = meta.query().execute().await?.try_collect().await?;
    for batch in &batches {
        let keys = strings(batch, "key")?;
        let values = strings(batch, "value")?;
        for row in 0..batch.num_rows() {
            if keys.value(row) == SCHEMA_VERSION_KEY {
                return Ok(Some(values.value(row).to_owned()));
            }
        }
    }
    Ok(None)
}

/// A text column of a result batch.
pub fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, StoreError> {
    column(batch, name)
}

/// A column of a result batch as its concrete Arrow type.
pub fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, StoreError> {
    batch.column_by_name(name).ok_or_else(|| StoreError::Shape(format!("no column {name}")))?.as_any().downcast_ref::<T>().ok_or_else(
        || {
            StoreError::Shape(format!(
                "column {name} has type {}",
                batch.schema().field_with_name(name).map(|f| f.data_type().to_string()).unwrap_or_default()
            ))
        },
    )
}

/// Runs a query to the end.
pub async fn collect(query: impl ExecutableQuery) -> Result<Vec<RecordBatch>, StoreError> {
    Ok(query.execute().await?.try_collect().await?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_database_from_a_newer_parlance_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::new(dir.path());
        database.tables().await.unwrap();

        // As a later Parlance would leave it.
        let connection = lancedb::connect(database.location().to_str().unwrap()).execute().await.unwrap();
        let meta = connection.open_table(META_TABLE).execute().await.unwrap();
        meta.delete("true").await.unwrap();
        let newer = RecordBatch::try_new(
            schema::meta(),
            vec![Arc::new(StringArray::from(vec![SCHEMA_VERSION_KEY])), Arc::new(StringArray::from(vec!["99"]))],
        )
        .unwrap();
        meta.add(newer).execute().await.unwrap();

        let error = Database::new(dir.path()).tables().await.err().expect("a newer database is refused");
        let message = error.to_string();
        assert!(matches!(error, StoreError::Schema(SchemaError::Newer { found: 99, .. })), "{message}");
        assert!(message.contains("upgrade Parlance") && message.contains("--data-dir"), "{message}");
    }

    #[tokio::test]
    async fn a_folder_with_foreign_tables_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join(DATABASE_FOLDER);
        std::fs::create_dir_all(&location).unwrap();
        let connection = lancedb::connect(location.to_str().unwrap()).execute().await.unwrap();
        connection.create_empty_table("vectors", schema::meta()).execute().await.unwrap();

        let error = Database::new(dir.path()).tables().await.err().expect("refused");
        assert!(matches!(error, StoreError::Schema(SchemaError::Unversioned { .. })), "{error}");
        assert_eq!(connection.table_names().execute().await.unwrap(), ["vectors"], "nothing was created beside it");
    }

    #[tokio::test]
    async fn a_version_1_database_keeps_its_notes_as_shared_ones() {
        use arrow_array::types::Float32Type;
        use arrow_array::{FixedSizeListArray, TimestampMicrosecondArray, UInt32Array};

        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join(DATABASE_FOLDER);
        std::fs::create_dir_all(&location).unwrap();
        let connection = lancedb::connect(location.to_str().unwrap()).execute().await.unwrap();
        // The knowledge table as version 1 wrote it: every column but `owner`, and one note in it.
        let full = schema::knowledge();
        let v1 = Arc::new(arrow_schema::Schema::new(full.fields().iter().filter(|f| f.name() != "owner").cloned().collect::<Vec<_>>()));
        let text = |value: &str| Arc::new(StringArray::from(vec![value])) as Arc<dyn Array>;
        let vector = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            [Some(vec![Some(0.05f32); schema::VECTOR_DIMENSIONS])],
            schema::VECTOR_DIMENSIONS as i32,
        );
        let row = RecordBatch::try_new(
            Arc::clone(&v1),
            vec![
                text("n:0"),
                text("n"),
                text("Opening hours"),
                text("Closed on Mondays."),
                Arc::new(StringArray::from(vec![None::<&str>])),
                Arc::new(UInt32Array::from(vec![0])),
                Arc::new(UInt32Array::from(vec![1])),
                text("hash"),
                Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
                Arc::new(vector),
            ],
        )
        .unwrap();
        connection.create_table(KNOWLEDGE_TABLE, row).execute().await.unwrap();
        connection.create_empty_table(TURNS_TABLE, schema::turns()).execute().await.unwrap();
        let version_1 = RecordBatch::try_new(
            schema::meta(),
            vec![Arc::new(StringArray::from(vec![SCHEMA_VERSION_KEY])), Arc::new(StringArray::from(vec!["1"]))],
        )
        .unwrap();
        connection.create_table(META_TABLE, version_1).execute().await.unwrap();

        let tables = Database::new(dir.path()).tables().await.unwrap().knowledge.table.clone();
        assert!(tables.schema().await.unwrap().field_with_name("owner").is_ok(), "the column was added");
        assert_eq!(tables.count_rows(Some("owner IS NULL".into())).await.unwrap(), 1, "the old note is kept, shared");
        assert_eq!(read_version(&connection).await.unwrap().as_deref(), Some(schema::SCHEMA_VERSION.to_string().as_str()));
        // Opening again finds the current version and migrates nothing.
        let again = Database::new(dir.path());
        assert_eq!(again.tables().await.unwrap().knowledge.table.count_rows(None).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn reopening_finds_the_recorded_version() {
        let dir = tempfile::tempdir().unwrap();
        Database::new(dir.path()).tables().await.unwrap();
        let reopened = Database::new(dir.path());
        let tables = reopened.tables().await.unwrap();
        assert_eq!(tables.knowledge.table.count_rows(None).await.unwrap(), 0);
    }
}
