//! Conversations in the database's `turns` table: they survive restarts, and deleting one removes its rows
//! from disk.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::{BooleanArray, RecordBatch, RecordBatchIterator, StringArray, TimestampMicrosecondArray, UInt32Array};
use async_trait::async_trait;
use chrono::DateTime;
use lancedb::expr::{col, lit};
use lancedb::query::QueryBase;
use parlance_shared::{HistoryTurn, Role, SessionId};
use tokio::sync::oneshot;

use super::{SessionBrief, SessionError, SessionStore};
use crate::store::schema;
use crate::store::{Database, StoreError, collect, column, strings};

pub struct LanceSessions {
    database: Arc<Database>,
    shared: Arc<Shared>,
}

/// Conversations kept in memory as stored, so that a turn does not query the table for its history.
const RECENT_CONVERSATIONS: usize = 1024;
/// Commits between merges of the small files they leave.
const COMMITS_PER_MERGE: u64 = 64;
/// Commits between removals of old versions: each removal holds up the appends for a moment.
const COMMITS_PER_PRUNE: u64 = 512;
/// Rows of a merged file: large enough that reads open few files, small enough that a merge stays cheap.
const ROWS_PER_MERGED_FILE: usize = 4096;

#[derive(Default)]
struct Shared {
    recent: Mutex<Recent>,
    /// Lines waiting for their commit: whoever commits next commits them all at once, so turns ending together
    /// share one commit instead of queueing for one each.
    pending: Mutex<Vec<Pending>>,
    commits: AtomicU64,
}

struct Pending {
    id: SessionId,
    turns: Vec<HistoryTurn>,
    rows: RecordBatch,
    committed: oneshot::Sender<Result<(), String>>,
}

/// The most recently read or written conversations, exactly as a read of the table returns them.
#[derive(Default)]
struct Recent {
    /// An empty list: the conversation is known not to exist (yet).
    conversations: HashMap<String, Vec<HistoryTurn>>,
    /// Oldest first, for forgetting: ids may repeat, or be gone already.
    order: VecDeque<String>,
    /// Conversations being read from the table now, and whether they changed meanwhile (then what was read is
    /// not kept: it may miss the change).
    reading: HashMap<String, bool>,
}

impl Recent {
    fn keep(&mut self, id: &SessionId, lines: Vec<HistoryTurn>) {
        if self.conversations.insert(id.as_str().to_owned(), lines).is_none() {
            self.order.push_back(id.as_str().to_owned());
        }
        while self.conversations.len() > RECENT_CONVERSATIONS {
            let Some(oldest) = self.order.pop_front() else { break };
            self.conversations.remove(&oldest);
        }
    }

    /// A change is committed that this memory cannot follow (a line replaced, a conversation deleted).
    fn forget(&mut self, id: &SessionId) {
        self.conversations.remove(id.as_str());
        if let Some(changed) = self.reading.get_mut(id.as_str()) {
            *changed = true;
        }
    }

    /// Lines are committed: a conversation in memory gets them in the order a read would give them.
    fn appended(&mut self, id: &SessionId, turns: &[HistoryTurn]) {
        if let Some(lines) = self.conversations.get_mut(id.as_str()) {
            lines.extend_from_slice(turns);
            lines.sort_by_key(|line| line.created_at.timestamp_micros());
        }
        if let Some(changed) = self.reading.get_mut(id.as_str()) {
            *changed = true;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // What these locks guard is whole after every statement: a panic elsewhere leaves nothing half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LanceSessions {
    pub fn new(database: Arc<Database>) -> Self {
        Self { database, shared: Arc::default() }
    }

    /// The conversation as a query of the table returns it (sorted as it was spoken).
    async fn read(&self, id: &SessionId) -> Result<Vec<HistoryTurn>, SessionError> {
        // A snapshot: a conversation deleted meanwhile purges old files, which must not vanish mid-read.
        let snapshot = self.database.tables().await?.turns.snapshot().await?;
        // An expression, not SQL text: session ids come from clients.
        let query = snapshot.table.query().only_if_expr(col("session_id").eq(lit(id.as_str())));
        let mut lines = Vec::new();
        for batch in collect(query).await? {
            read_batch(&batch, &mut lines)?;
        }
        lines.sort_by_key(|(micros, line, _)| (*micros, *line));
        Ok(lines.into_iter().map(|(_, _, turn)| turn).collect())
    }
}

/// Commits every pending line in one commit, and tells each waiting append how it went. Runs as a task of its
/// own, so a turn dropped mid-commit (its client left) cannot drop the commit of the others' lines.
async fn commit_pending(database: Arc<Database>, shared: Arc<Shared>) {
    let table = match database.tables().await {
        Ok(tables) => &tables.turns,
        Err(error) => {
            let message = error.to_string();
            for pending in std::mem::take(&mut *lock(&shared.pending)) {
                let _ = pending.committed.send(Err(message.clone()));
            }
            return;
        }
    };
    let held = table.write_lock().await;
    let waiting = std::mem::take(&mut *lock(&shared.pending));
    if waiting.is_empty() {
        // The committer started for a list is the only one that takes it, so this is not expected.
        return;
    }
    let rows: Vec<RecordBatch> = waiting.iter().map(|pending| pending.rows.clone()).collect();
    let result = table.table.add(rows).execute().await.map(|_| ()).map_err(|error| error.to_string());
    if result.is_ok() {
        let mut recent = lock(&shared.recent);
        for pending in &waiting {
            recent.appended(&pending.id, &pending.turns);
        }
    }
    for pending in waiting {
        let _ = pending.committed.send(result.clone());
    }
    let commits = shared.commits.fetch_add(1, Ordering::Relaxed) + 1;
    if commits.is_multiple_of(COMMITS_PER_PRUNE)
        && let Err(error) = table.prune_versions(&held).await
    {
        tracing::warn!(%error, "could not remove the conversations' old versions");
    }
    drop(held);
    if commits.is_multiple_of(COMMITS_PER_MERGE)
        && let Err(error) = table.merge_small_files(ROWS_PER_MERGED_FILE).await
    {
        // Only reads get slower: the lines are committed.
        tracing::warn!(%error, "could not merge the conversations' small files");
    }
}

impl From<StoreError> for SessionError {
    fn from(error: StoreError) -> Self {
        Self::Storage(error.to_string())
    }
}

impl From<lancedb::Error> for SessionError {
    fn from(error: lancedb::Error) -> Self {
        Self::Storage(error.to_string())
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// New rows: each line gets a fresh `turn_id`, and its position among the lines appended with it.
fn to_batch(id: &SessionId, turns: &[HistoryTurn]) -> Result<RecordBatch, SessionError> {
    let turn_ids = turns.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let lines = (0..turns.len()).map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect();
    rows_batch(id, turns, turn_ids, lines)
}

fn rows_batch(id: &SessionId, turns: &[HistoryTurn], turn_ids: Vec<String>, lines: Vec<u32>) -> Result<RecordBatch, SessionError> {
    let json = |value: Result<String, serde_json::Error>| value.map_err(|e| SessionError::Storage(format!("cannot encode a turn: {e}")));
    let tool_calls = turns.iter().map(|t| json(serde_json::to_string(&t.tool_calls))).collect::<Result<Vec<_>, _>>()?;
    let sources = turns.iter().map(|t| json(serde_json::to_string(&t.sources))).collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(
        schema::turns(),
        vec![
            Arc::new(StringArray::from_iter_values(turns.iter().map(|_| id.as_str()))),
            Arc::new(StringArray::from(turn_ids)),
            Arc::new(UInt32Array::from(lines)),
            Arc::new(StringArray::from_iter_values(turns.iter().map(|t| role_name(t.role)))),
            Arc::new(StringArray::from_iter_values(turns.iter().map(|t| t.text.as_str()))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(turns.iter().map(|t| t.created_at.timestamp_micros())).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(tool_calls)),
            Arc::new(StringArray::from(sources)),
            Arc::new(BooleanArray::from_iter(turns.iter().map(|t| Some(t.interrupted)))),
        ],
    )
    .map_err(|e| SessionError::Storage(e.to_string()))
}

fn read_batch(batch: &RecordBatch, into: &mut Vec<(i64, u32, HistoryTurn)>) -> Result<(), SessionError> {
    let roles = strings(batch, "role")?;
    let texts = strings(batch, "text")?;
    let lines = column::<UInt32Array>(batch, "line")?;
    let created = column::<TimestampMicrosecondArray>(batch, "created_at")?;
    let tool_calls = strings(batch, "tool_calls")?;
    let sources = strings(batch, "sources")?;
    let interrupted = column::<BooleanArray>(batch, "interrupted")?;
    let corrupt = |what: String| SessionError::Storage(format!("a stored turn is unreadable: {what}"));
    for row in 0..batch.num_rows() {
        let role = match roles.value(row) {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(corrupt(format!("role {other:?}"))),
        };
        let micros = created.value(row);
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("timestamp {micros}")))?;
        let turn = HistoryTurn {
            role,
            text: texts.value(row).to_owned(),
            created_at,
            tool_calls: serde_json::from_str(tool_calls.value(row)).map_err(|e| corrupt(e.to_string()))?,
            sources: serde_json::from_str(sources.value(row)).map_err(|e| corrupt(e.to_string()))?,
            interrupted: interrupted.value(row),
        };
        into.push((micros, lines.value(row), turn));
    }
    Ok(())
}

#[async_trait]
impl SessionStore for LanceSessions {
    async fn history(&self, id: &SessionId) -> Result<Option<Vec<HistoryTurn>>, SessionError> {
        {
            let mut recent = lock(&self.shared.recent);
            if let Some(lines) = recent.conversations.get(id.as_str()) {
                return Ok(Some(lines.clone()).filter(|lines| !lines.is_empty()));
            }
            recent.reading.insert(id.as_str().to_owned(), false);
        }
        let read = self.read(id).await;
        let mut recent = lock(&self.shared.recent);
        // Another read of the same conversation may have finished first and taken the entry: then keep nothing.
        let changed = recent.reading.remove(id.as_str()).unwrap_or(true);
        let lines = read?;
        if !changed {
            recent.keep(id, lines.clone());
        }
        Ok(Some(lines).filter(|lines| !lines.is_empty()))
    }

    /// Without it, the second turn of every conversation queried the table for the first one's lines: the
    /// slowest turns of the soak bench (a filtered scan of every stored line).
    fn started(&self, id: &SessionId) {
        lock(&self.shared.recent).keep(id, Vec::new());
    }

    async fn append(&self, id: &SessionId, turns: Vec<HistoryTurn>) -> Result<(), SessionError> {
        if turns.is_empty() {
            return Ok(());
        }
        let rows = to_batch(id, &turns)?;
        let (committed, outcome) = oneshot::channel();
        let first = {
            let mut pending = lock(&self.shared.pending);
            pending.push(Pending { id: id.clone(), turns, rows, committed });
            pending.len() == 1
        };
        // One committer per batch: the one started when the list stopped being empty takes the whole list
        // (under the same lock). A committer per line, most of them finding their line already taken, piled up
        // behind the write lock faster than they ended while both cores were busy (the soak's memory grew
        // with every turn).
        if first {
            tokio::spawn(commit_pending(Arc::clone(&self.database), Arc::clone(&self.shared)));
        }
        match outcome.await {
            Ok(result) => result.map_err(SessionError::Storage),
            Err(_) => Err(SessionError::Storage("the commit of these lines stopped before it finished".into())),
        }
    }

    /// One commit that swaps the newest row for the new line (a merge on its `turn_id`), so a reader sees the
    /// conversation either before or after, never without it: the trait's delete-then-append left a window in
    /// which the conversation did not exist, and a page reloaded in it (or a failure between the two steps)
    /// lost the whole conversation. The replaced text stays in Lance's old versions until the next purge (a
    /// conversation's deletion purges every old version), which is fine for text the user was shown anyway.
    async fn replace_last(&self, id: &SessionId, line: HistoryTurn) -> Result<bool, SessionError> {
        let table = &self.database.tables().await?.turns;
        // Held from finding the newest line to replacing it: an append in between would make it not the newest.
        let _lock = table.rewrite_lock().await;
        let query = table.table.query().only_if_expr(col("session_id").eq(lit(id.as_str())));
        let mut newest: Option<((i64, u32), String)> = None;
        for batch in collect(query).await? {
            let turn_ids = strings(&batch, "turn_id")?;
            let lines = column::<UInt32Array>(&batch, "line")?;
            let created = column::<TimestampMicrosecondArray>(&batch, "created_at")?;
            for row in 0..batch.num_rows() {
                // The order `history` reads lines in.
                let key = (created.value(row), lines.value(row));
                if newest.as_ref().is_none_or(|(newest_key, _)| key > *newest_key) {
                    newest = Some((key, turn_ids.value(row).to_owned()));
                }
            }
        }
        let Some(((_, position), turn_id)) = newest else { return Ok(false) };
        let batch = rows_batch(id, std::slice::from_ref(&line), vec![turn_id], vec![position])?;
        let mut merge = table.table.merge_insert(&["turn_id"]);
        merge.when_matched_update_all(None);
        let merged = merge.execute(Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema::turns()))).await;
        lock(&self.shared.recent).forget(id);
        merged?;
        Ok(true)
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, SessionError> {
        let tables = self.database.tables().await?;
        {
            let owners = &tables.owners;
            let _lock = owners.write_lock().await;
            owners.table.delete(&col("session_id").eq(lit(id.as_str()))).await?;
        }
        {
            let titles = &tables.titles;
            let lock = titles.rewrite_lock().await;
            let removed = titles.table.delete(&col("session_id").eq(lit(id.as_str()))).await?;
            if removed.num_deleted_rows > 0 {
                titles.purge_deleted(&lock).await?;
            }
        }
        let table = &tables.turns;
        let held = table.rewrite_lock().await;
        let deleted = table.table.delete(&col("session_id").eq(lit(id.as_str()))).await;
        lock(&self.shared.recent).forget(id);
        let deleted = deleted?;
        if deleted.num_deleted_rows == 0 {
            return Ok(false);
        }
        table.purge_deleted(&held).await?;
        tracing::info!(session_id = %id, lines = deleted.num_deleted_rows, "conversation removed from disk");
        Ok(true)
    }

    async fn owner(&self, id: &SessionId) -> Result<Option<String>, SessionError> {
        let owners = &self.database.tables().await?.owners;
        let query = owners.table.query().only_if_expr(col("session_id").eq(lit(id.as_str())));
        for batch in collect(query).await? {
            let names = strings(&batch, "owner")?;
            if batch.num_rows() > 0 {
                return Ok(Some(names.value(0).to_owned()));
            }
        }
        Ok(None)
    }

    async fn set_owner(&self, id: &SessionId, owner: &str) -> Result<(), SessionError> {
        let owners = &self.database.tables().await?.owners;
        let _lock = owners.write_lock().await;
        // A conversation's owner never changes: the first record stands.
        let query = owners.table.query().only_if_expr(col("session_id").eq(lit(id.as_str())));
        if collect(query).await?.iter().any(|batch| batch.num_rows() > 0) {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            schema::owners(),
            vec![Arc::new(StringArray::from(vec![id.as_str()])), Arc::new(StringArray::from(vec![owner]))],
        )
        .map_err(|e| SessionError::Storage(e.to_string()))?;
        owners.table.add(batch).execute().await?;
        Ok(())
    }

    async fn briefs(&self) -> Result<Vec<SessionBrief>, SessionError> {
        let tables = self.database.tables().await?;
        let owners = pairs(&tables.owners, "owner").await?;
        let titles = pairs(&tables.titles, "title").await?;
        let snapshot = tables.turns.snapshot().await?;
        // The questions alone tell the count, the first words and the times (an answer shares its question's time).
        let query = snapshot.table.query().only_if_expr(col("role").eq(lit("user"))).select(lancedb::query::Select::columns(&[
            "session_id",
            "line",
            "text",
            "created_at",
        ]));
        let mut briefs: HashMap<String, SessionBrief> = HashMap::new();
        let mut first_keys: HashMap<String, (i64, u32)> = HashMap::new();
        for batch in collect(query).await? {
            let ids = strings(&batch, "session_id")?;
            let texts = strings(&batch, "text")?;
            let lines = column::<UInt32Array>(&batch, "line")?;
            let created = column::<TimestampMicrosecondArray>(&batch, "created_at")?;
            for row in 0..batch.num_rows() {
                let micros = created.value(row);
                let at = DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| SessionError::Storage(format!("a stored turn is unreadable: timestamp {micros}")))?;
                let id = ids.value(row);
                let key = (micros, lines.value(row));
                let brief = briefs.entry(id.to_owned()).or_insert_with(|| SessionBrief {
                    id: SessionId::new(id),
                    owner: owners.get(id).cloned(),
                    title: titles.get(id).cloned(),
                    first_question: String::new(),
                    created_at: at,
                    updated_at: at,
                    questions: 0,
                });
                brief.questions = brief.questions.saturating_add(1);
                brief.updated_at = brief.updated_at.max(at);
                let first = first_keys.entry(id.to_owned()).or_insert((i64::MAX, u32::MAX));
                if key < *first {
                    *first = key;
                    brief.created_at = at;
                    brief.first_question = texts.value(row).to_owned();
                }
            }
        }
        Ok(briefs.into_values().collect())
    }

    async fn rename(&self, id: &SessionId, title: &str) -> Result<bool, SessionError> {
        let tables = self.database.tables().await?;
        let turns = tables.turns.snapshot().await?;
        let query = turns
            .table
            .query()
            .only_if_expr(col("session_id").eq(lit(id.as_str())))
            .select(lancedb::query::Select::columns(&["session_id"]))
            .limit(1);
        if !collect(query).await?.iter().any(|batch| batch.num_rows() > 0) {
            return Ok(false);
        }
        let titles = &tables.titles;
        let _lock = titles.write_lock().await;
        let batch = RecordBatch::try_new(
            schema::titles(),
            vec![Arc::new(StringArray::from(vec![id.as_str()])), Arc::new(StringArray::from(vec![title]))],
        )
        .map_err(|e| SessionError::Storage(e.to_string()))?;
        let mut merge = titles.table.merge_insert(&["session_id"]);
        merge.when_matched_update_all(None).when_not_matched_insert_all();
        merge.execute(Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema::titles()))).await?;
        Ok(true)
    }
}

/// `session_id` -> `value` of a two-column table (owners, titles).
async fn pairs(table: &crate::store::GuardedTable, value: &str) -> Result<HashMap<String, String>, SessionError> {
    let snapshot = table.snapshot().await?;
    let mut found = HashMap::new();
    for batch in collect(snapshot.table.query()).await? {
        let ids = strings(&batch, "session_id")?;
        let values = strings(&batch, value)?;
        for row in 0..batch.num_rows() {
            found.insert(ids.value(row).to_owned(), values.value(row).to_owned());
        }
    }
    Ok(found)
}
