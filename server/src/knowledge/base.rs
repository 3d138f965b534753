//! The knowledge base as the rest of the server sees it: add, list, delete, search.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_array::UInt32Array;
use lancedb::index::Index;
use lancedb::index::scalar::FtsIndexBuilder;
use lancedb::index::vector::IvfFlatIndexBuilder;
use lancedb::query::{QueryBase, Select};
use lancedb::table::{CompactionOptions, OptimizeAction, OptimizeOptions};
use parlance_shared::{NewNote, Note, NoteOrder, NoteSummary};

use super::evidence::{self, Evidence};
use super::ingest::{self, CheckedNote, IngestError};
use super::rows::{self, TEXT_COLUMNS, read_chunks};
use super::search::{self, Candidates, Fusion, Hit, Rankings, SearchMode};
use super::visibility;
use crate::access::Caller;
use crate::embeddings::{EmbedError, Embedder};
use crate::store::{Database, GuardedTable, StoreError, collect, column, strings};

/// The full-text index over chunk text; Lance names an index after its column.
const TEXT_INDEX: &str = "text_idx";
/// Rows appended since the last index update are searched without the index; past this many, fold them in.
const UNINDEXED_ROWS_BEFORE_UPDATE: usize = 512;
/// The vector index, named after its column like the full-text one.
const VECTOR_INDEX: &str = "vector_idx";
/// Below this many chunks a brute-force vector search is fast enough and exact. Above it, an IVF index
/// (the vectors clustered into partitions, a query reading only the nearest ones) is built. Lance's default
/// aims at about 8,192 rows per partition, so at 10,000 rows a query still compares every vector (LanceDB's
/// `analyze_plan`); sqrt(rows) partitions were tried and were no faster there, while building took 3.5x as
/// long. IVF_FLAT keeps the vectors whole, so the distances fusion uses stay exact; only a match outside the
/// probed partitions can be missed.
const VECTOR_INDEX_MIN_ROWS: usize = 5_000;
/// Every append writes its own data file (a fragment), and a search opens each file its hits live in: with
/// 10,000 notes added 250 at a time (40 fragments), opening files was most of a search. Merged into one, a
/// vector search took 28 -> 17 ms and a full-text one 21 -> 10 ms (p50, LanceDB queries on the knowledge
/// bench's table).
/// Past this many small fragments, ingestion merges them.
const SMALL_FRAGMENTS_BEFORE_COMPACTION: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("there is no note {0}")]
    NotFound(String),
    #[error("the note {0} is shared by every user: only an admin may delete it")]
    Shared(String),
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
    text_index_known: AtomicBool,
    /// The last query and its vector: the agent's closeness check and the search that follows it ask for the
    /// same question, and embedding it twice costs a turn ~20 ms.
    last_query: std::sync::Mutex<Option<(String, Arc<[f32]>)>>,
    /// Sentences of passages already embedded for evidence: the same few notes answer most questions.
    sentence_vectors: std::sync::Mutex<HashMap<String, Arc<[f32]>>>,
    generation: std::sync::atomic::AtomicU64,
}

/// Sentence vectors kept before the cache starts over (384 floats each: about 6 MB).
const SENTENCE_CACHE: usize = 4_096;
/// Passages read for the vocabulary: enough for every note of a household's or a small business's notes.
const VOCABULARY_CHUNKS: usize = 5_000;
/// Passages whose sentences are weighed as evidence.
const EVIDENCE_PASSAGES: usize = 3;

/// Where one search's time went. The vector and full-text searches run side by side (after the embedding), so
/// the parts add up to more than the total.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchTimings {
    /// Pinning the (already opened) table's current version for this search.
    pub open: Duration,
    pub embed: Duration,
    pub vector: Duration,
    pub text: Duration,
    /// Fusing the rankings and reading the winners' rows.
    pub read: Duration,
    pub total: Duration,
}

/// Where adding notes spent its time.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddTimings {
    /// Validating and looking up which notes are stored already.
    pub check: Duration,
    pub embed: Duration,
    /// The second lookup under the lock and the append.
    pub write: Duration,
    /// Creating or updating the full-text index, and merging data files.
    pub index: Duration,
    pub total: Duration,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl KnowledgeBase {
    pub fn new(database: Arc<Database>, embedder: Option<Arc<dyn Embedder>>) -> Self {
        Self {
            database,
            embedder,
            text_index_known: AtomicBool::new(false),
            last_query: std::sync::Mutex::new(None),
            sentence_vectors: std::sync::Mutex::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn can_add(&self) -> bool {
        self.embedder.is_some()
    }

    /// Opens the database now rather than at the first request.
    pub async fn open(&self) -> Result<(), StoreError> {
        self.database.tables().await.map(|_| ())
    }

    /// Embeds one short text to learn the model's vector length, so a model whose vectors the table cannot
    /// hold is named at start-up rather than at the first note or search.
    pub async fn check_embedder(&self) -> Result<(), KnowledgeError> {
        let embedder = self.embedder.as_ref().ok_or(KnowledgeError::NoEmbedder)?;
        let vectors = embedder.embed(&["Parlance".to_owned()]).await?;
        ingest::check_dimensions(embedder.as_ref(), &vectors)?;
        Ok(())
    }

    async fn table(&self) -> Result<&GuardedTable, StoreError> {
        Ok(&self.database.tables().await?.knowledge)
    }

    /// Stores the shared notes not stored yet (by content), all in one commit: a failure stores none of them.
    pub async fn add(&self, notes: Vec<NewNote>) -> Result<Added, KnowledgeError> {
        Ok(self.add_timed(notes).await?.0)
    }

    /// Keeps a memory for whoever asked (a shared note when nobody signed in): only they find it afterwards.
    pub async fn remember(&self, note: NewNote, caller: &Caller) -> Result<Added, KnowledgeError> {
        Ok(self.store(vec![note], caller.owner()).await?.0)
    }

    /// [`KnowledgeBase::add`] with where its time went (for the log and the benchmark).
    pub async fn add_timed(&self, notes: Vec<NewNote>) -> Result<(Added, AddTimings), KnowledgeError> {
        self.store(notes, None).await
    }

    /// Stores notes kept for `owner`, or shared ones. A note counts as stored already when the same content is
    /// among the notes that owner reaches.
    async fn store(&self, notes: Vec<NewNote>, owner: Option<&str>) -> Result<(Added, AddTimings), KnowledgeError> {
        let started = Instant::now();
        let mut timings = AddTimings::default();
        let embedder = self.embedder.as_ref().ok_or(KnowledgeError::NoEmbedder)?;
        let checked = ingest::check(notes)?;
        let table = self.table().await?;

        // Known notes cost no embedding; the check is repeated under the lock for notes added meanwhile.
        let known = self.existing(&table.snapshot().await?.table, &checked, owner).await?;
        let mut fresh: Vec<CheckedNote> = Vec::new();
        for note in &checked {
            if !known.contains_key(&note.content_hash) && !fresh.iter().any(|f| f.content_hash == note.content_hash) {
                fresh.push(note.clone());
            }
        }
        timings.check = started.elapsed();
        let embedding = Instant::now();
        let rows = ingest::embed_notes(embedder.as_ref(), &fresh, owner).await?;
        timings.embed = embedding.elapsed();

        let writing = Instant::now();
        let lock = table.write_lock().await;
        // No snapshot needed under the lock: purging, which removes files, takes the same lock.
        let known = self.existing(&table.table, &checked, owner).await?;
        let rows: Vec<_> = rows.into_iter().filter(|row| !known.contains_key(&row.content_hash)).collect();
        if !rows.is_empty() {
            table.table.add(rows::to_batch(&rows)?).execute().await?;
            timings.write = writing.elapsed();
            let indexing = Instant::now();
            update_text_index(&table.table).await?;
            compact_if_fragmented(&table.table, SMALL_FRAGMENTS_BEFORE_COMPACTION).await?;
            timings.index = indexing.elapsed();
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
                    owner: row.owner.clone(),
                });
            }
        }
        let unchanged = summaries.len() - added;
        timings.total = started.elapsed();
        tracing::info!(
            added,
            unchanged,
            chunks = rows.len(),
            total_ms = ms(timings.total),
            embed_ms = ms(timings.embed),
            write_ms = ms(timings.write),
            index_ms = ms(timings.index),
            "notes stored"
        );
        if added > 0 {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok((Added { notes: summaries, added, unchanged }, timings))
    }

    /// Stored notes among these that `owner` reaches, by content hash.
    async fn existing(
        &self,
        table: &lancedb::Table,
        notes: &[CheckedNote],
        owner: Option<&str>,
    ) -> Result<HashMap<String, NoteSummary>, StoreError> {
        if notes.is_empty() {
            return Ok(HashMap::new());
        }
        // Hashes are lowercase hex (made here), so quoting them into SQL is safe.
        let list = notes.iter().map(|n| format!("'{}'", n.content_hash)).collect::<Vec<_>>().join(", ");
        let mut columns = TEXT_COLUMNS.to_vec();
        columns.push("content_hash");
        let reached = visibility::owned_or_shared(owner);
        let query =
            table.query().only_if(format!("chunk_index = 0 AND content_hash IN ({list}) AND {reached}")).select(Select::columns(&columns));
        let mut found = HashMap::new();
        for batch in collect(query).await? {
            let hashes = strings(&batch, "content_hash")?;
            for (row, chunk) in read_chunks(&batch)?.into_iter().enumerate() {
                found.insert(hashes.value(row).to_owned(), chunk.summary());
            }
        }
        Ok(found)
    }

    /// One page of the notes `caller` reaches, oldest first, and how many there are.
    pub async fn list(&self, caller: &Caller, offset: usize, limit: usize) -> Result<(Vec<NoteSummary>, usize), KnowledgeError> {
        self.list_in(caller, offset, limit, NoteOrder::Oldest).await
    }

    /// One page of the notes `caller` reaches, in `order`, and how many there are.
    pub async fn list_in(
        &self,
        caller: &Caller,
        offset: usize,
        limit: usize,
        order: NoteOrder,
    ) -> Result<(Vec<NoteSummary>, usize), KnowledgeError> {
        // Read from one snapshot: the count and the page agree, and a deletion's purge cannot remove the files.
        let snapshot = self.table().await?.snapshot().await?;
        let table = &snapshot.table;
        let condition = match visibility::filter(caller) {
            Some(reached) => format!("chunk_index = 0 AND {reached}"),
            None => "chunk_index = 0".to_owned(),
        };
        let total = table.count_rows(Some(condition.clone())).await?;
        let query = table.query().only_if(condition).select(Select::columns(&TEXT_COLUMNS));
        // Lance returns rows in no promised order: sort by age here, which is cheap at knowledge-base sizes.
        let mut notes: Vec<NoteSummary> = Vec::new();
        for batch in collect(query).await? {
            notes.extend(read_chunks(&batch)?.iter().map(|chunk| chunk.summary()));
        }
        notes.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        if order == NoteOrder::Newest {
            notes.reverse();
        }
        Ok((notes.into_iter().skip(offset).take(limit).collect(), total))
    }

    /// One note `caller` reaches, with its passages in order; someone else's memory is answered as not found.
    pub async fn get(&self, note_id: &str, caller: &Caller) -> Result<Note, KnowledgeError> {
        // Ids are UUIDs made here; anything else cannot exist and must not reach the SQL filter.
        let id = uuid::Uuid::parse_str(note_id).map_err(|_| KnowledgeError::NotFound(note_id.to_owned()))?;
        let snapshot = self.table().await?.snapshot().await?;
        let mut columns = TEXT_COLUMNS.to_vec();
        columns.push("chunk_index");
        let query = snapshot.table.query().only_if(format!("note_id = '{id}'")).select(Select::columns(&columns));
        let mut chunks = Vec::new();
        for batch in collect(query).await? {
            let indexes = column::<UInt32Array>(&batch, "chunk_index")?;
            for (row, chunk) in read_chunks(&batch)?.into_iter().enumerate() {
                chunks.push((indexes.value(row), chunk));
            }
        }
        chunks.sort_by_key(|(index, _)| *index);
        match chunks.first() {
            Some((_, first)) if visibility::reaches(caller, first.owner.as_deref()) => {
                Ok(Note { note: first.summary(), passages: chunks.into_iter().map(|(_, chunk)| chunk.text).collect() })
            }
            _ => Err(KnowledgeError::NotFound(note_id.to_owned())),
        }
    }

    /// The shared notes' own words a recogniser may not know (names, brands, "tune-up", "A17"), most used first,
    /// at most `limit`: what speech-to-text is told to expect (see [`evidence::vocabulary`]). Reads at most
    /// [`VOCABULARY_CHUNKS`] passages. One user's memories stay out: every user's speech is biased by it.
    pub async fn vocabulary(&self, limit: usize) -> Result<Vec<String>, KnowledgeError> {
        Ok(evidence::vocabulary(&self.shared_texts().await?, limit))
    }

    /// The shared notes' names as they spell them (see [`evidence::names`]), from the same passages.
    pub async fn names(&self) -> Result<Vec<String>, KnowledgeError> {
        Ok(evidence::names(&self.shared_texts().await?))
    }

    /// The titles and texts of at most [`VOCABULARY_CHUNKS`] shared passages.
    async fn shared_texts(&self) -> Result<Vec<String>, KnowledgeError> {
        let snapshot = self.table().await?.snapshot().await?;
        let query = snapshot
            .table
            .query()
            .only_if(visibility::owned_or_shared(None))
            .select(Select::columns(&TEXT_COLUMNS))
            .limit(VOCABULARY_CHUNKS);
        let mut texts = Vec::new();
        for batch in collect(query).await? {
            texts.extend(read_chunks(&batch)?.into_iter().map(|chunk| format!("{}\n{}", chunk.title, chunk.text)));
        }
        Ok(texts)
    }

    /// Whether the notes' store is open: reading the notes' words must not create it (a server that never
    /// stores anything leaves no files).
    pub fn is_open(&self) -> bool {
        self.database.is_open()
    }

    /// Changes each time notes are added or deleted through this process: whoever keeps something made from
    /// the notes (the vocabulary) knows when to make it again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub async fn count(&self) -> Result<usize, KnowledgeError> {
        Ok(self.table().await?.snapshot().await?.table.count_rows(Some("chunk_index = 0".to_owned())).await?)
    }

    /// How many data files (Lance fragments) hold the notes: ingestion merges them when they pile up.
    pub async fn data_files(&self) -> Result<usize, KnowledgeError> {
        Ok(self.table().await?.table.stats().await?.fragment_stats.num_fragments)
    }

    /// Deletes a note (all its chunks) from disk for good. A user deletes their own memories; only an admin
    /// deletes a shared note; someone else's memory is answered as not found.
    pub async fn delete(&self, note_id: &str, caller: &Caller) -> Result<(), KnowledgeError> {
        // Ids are UUIDs made here; anything else cannot exist and must not reach the SQL filter.
        let id = uuid::Uuid::parse_str(note_id).map_err(|_| KnowledgeError::NotFound(note_id.to_owned()))?;
        let table = self.table().await?;
        let lock = table.rewrite_lock().await;
        let query = table.table.query().only_if(format!("note_id = '{id}' AND chunk_index = 0")).select(Select::columns(&TEXT_COLUMNS));
        let mut owners = Vec::new();
        for batch in collect(query).await? {
            owners.extend(read_chunks(&batch)?.into_iter().map(|chunk| chunk.owner));
        }
        match owners.first() {
            Some(owner) if visibility::reaches(caller, owner.as_deref()) => {
                if owner.is_none() && !caller.is_admin() {
                    return Err(KnowledgeError::Shared(note_id.to_owned()));
                }
            }
            _ => return Err(KnowledgeError::NotFound(note_id.to_owned())),
        }
        let deleted = table.table.delete(format!("note_id = '{id}'").as_str()).await?;
        if deleted.num_deleted_rows == 0 {
            return Err(KnowledgeError::NotFound(note_id.to_owned()));
        }
        table.purge_deleted(&lock).await?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(note_id, chunks = deleted.num_deleted_rows, "note deleted");
        Ok(())
    }

    /// The `k` best notes for `query` among those `caller` reaches. Without an embeddings model, full-text
    /// search alone.
    pub async fn search(&self, caller: &Caller, query: &str, k: usize, mode: SearchMode) -> Result<Vec<Hit>, KnowledgeError> {
        Ok(self.search_timed(caller, query, k, mode).await?.0)
    }

    /// [`KnowledgeBase::search`] with where its time went (for the log and the benchmark).
    pub async fn search_timed(
        &self,
        caller: &Caller,
        query: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<(Vec<Hit>, SearchTimings), KnowledgeError> {
        let (candidates, mut timings) = self.candidates(caller, query, k, mode).await?;
        let reading = Instant::now();
        let hits = candidates.hits(Fusion::TUNED, k).await?;
        timings.read = reading.elapsed();
        timings.total += timings.read;
        tracing::debug!(
            hits = hits.len(),
            total_ms = ms(timings.total),
            embed_ms = ms(timings.embed),
            vector_ms = ms(timings.vector),
            text_ms = ms(timings.text),
            read_ms = ms(timings.read),
            "knowledge searched"
        );
        Ok((hits, timings))
    }

    /// Each search's own ranking of candidates for `k` hits, before fusion (the evaluation fuses them in
    /// several ways).
    pub async fn candidates(
        &self,
        caller: &Caller,
        query: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<(Candidates, SearchTimings), KnowledgeError> {
        let started = Instant::now();
        let filter = visibility::filter(caller);
        let limit = search::candidate_count(k);
        let embedder = self.embedder.as_ref().filter(|_| mode != SearchMode::FullTextOnly);
        let use_text = mode != SearchMode::VectorOnly || self.embedder.is_none();

        // The query is embedded before either search starts: the model uses every core, and with the full-text
        // search beside it the embedding took half as long again (3 -> 4.5 ms on 2 cores). The full-text search
        // then runs beside the vector search, which takes longer, so it costs nothing.
        let embedding = Instant::now();
        let vector = match embedder {
            Some(embedder) => Some(self.query_vector(embedder.as_ref(), query).await?),
            None => None,
        };
        let embed = embedding.elapsed();
        // Pinned only now: a search waiting for the model (busy with an ingestion's batch) would otherwise hold
        // the snapshot's files, and with them a deletion's purge and every reader queued behind it.
        let pinning = Instant::now();
        let snapshot = self.table().await?.snapshot().await?;
        let table = &snapshot.table;
        let open = pinning.elapsed();
        let by_meaning = async {
            let Some(vector) = &vector else { return Ok::<_, KnowledgeError>(None) };
            let started = Instant::now();
            let ranking = search::by_vector(table, vector, limit, filter.as_deref()).await?;
            Ok(Some((ranking, started.elapsed())))
        };
        let by_words = async {
            if !use_text || !self.text_index_ready(table).await? {
                return Ok::<_, KnowledgeError>(None);
            }
            let started = Instant::now();
            let ranking = search::by_text(table, query, limit, filter.as_deref()).await?;
            Ok(Some((ranking, started.elapsed())))
        };
        let (by_meaning, by_words) = futures::future::join(by_meaning, by_words).await;
        let (by_meaning, by_words) = (by_meaning?, by_words?);

        let mut timings = SearchTimings { open, embed, ..SearchTimings::default() };
        let mut rankings = Rankings::default();
        if let Some((ranking, vector)) = by_meaning {
            timings.vector = vector;
            rankings.vector = Some(ranking);
        }
        if let Some((ranking, text)) = by_words {
            timings.text = text;
            rankings.text = Some(ranking);
        }
        timings.total = started.elapsed();
        Ok((Candidates { snapshot, rankings }, timings))
    }

    /// The share of the `k` chunks nearest to `query` (every vector compared) that the vector search also
    /// returns: what the vector index trades for speed (1.0 before there is one). `None` without embeddings.
    pub async fn vector_recall(&self, query: &str, k: usize) -> Result<Option<f32>, KnowledgeError> {
        let Some(embedder) = &self.embedder else { return Ok(None) };
        let vector = self.query_vector(embedder.as_ref(), query).await?;
        let snapshot = self.table().await?.snapshot().await?;
        let found = search::by_vector(&snapshot.table, &vector, k, None).await?;
        let exact = search::by_vector_exact(&snapshot.table, &vector, k).await?;
        if exact.is_empty() {
            return Ok(Some(1.0));
        }
        let also_found = exact.iter().filter(|nearest| found.iter().any(|hit| hit.row == nearest.row)).count();
        Ok(Some(also_found as f32 / exact.len() as f32))
    }

    /// Whether the full-text index exists yet (it is created with the first notes and never dropped, so a
    /// yes is remembered and later searches skip listing the indices).
    async fn text_index_ready(&self, table: &lancedb::Table) -> Result<bool, StoreError> {
        if self.text_index_known.load(Ordering::Acquire) {
            return Ok(true);
        }
        let ready = has_index(table).await?;
        if ready {
            self.text_index_known.store(true, Ordering::Release);
        }
        Ok(ready)
    }

    /// The cosine similarity between `query` and the passage nearest to it that `caller` reaches; `None`
    /// without an embeddings model or without notes.
    pub async fn closeness(&self, caller: &Caller, query: &str) -> Result<Option<f32>, KnowledgeError> {
        let Some(embedder) = &self.embedder else { return Ok(None) };
        let vector = self.query_vector(embedder.as_ref(), query).await?;
        let snapshot = self.table().await?.snapshot().await?;
        Ok(super::closeness::nearest(&snapshot.table, &vector, visibility::filter(caller).as_deref()).await?)
    }

    /// What the notes hold for a question: the nearest passages to `query` and their sentences ranked against
    /// it, the words of `focus` (the question itself; `query` may add the turn before it) weighing in. `None`
    /// without an embeddings model or without notes.
    pub async fn evidence(&self, caller: &Caller, query: &str, focus: &str) -> Result<Option<Evidence>, KnowledgeError> {
        let Some(embedder) = &self.embedder else { return Ok(None) };
        let started = Instant::now();
        let vector = self.query_vector(embedder.as_ref(), query).await?;
        let Some(nearest) = self.closeness(caller, query).await? else { return Ok(None) };
        let hits = self.search(caller, query, EVIDENCE_PASSAGES, SearchMode::Hybrid).await?;
        let mut sentences = Vec::new();
        for (index, hit) in hits.iter().enumerate() {
            sentences.extend(evidence::sentences(&hit.text).into_iter().map(|sentence| (index, sentence)));
        }
        let vectors = self.sentence_vectors(embedder.as_ref(), sentences.iter().map(|(_, text)| text.as_str())).await?;
        let focus_text = focus;
        let focus = evidence::content_words(focus);
        let with_vectors = sentences
            .into_iter()
            .zip(vectors)
            .map(|((hit, text), vector)| evidence::Candidate {
                hit,
                text,
                title: hits.get(hit).map(|h| h.title.clone()).unwrap_or_default(),
                vector: vector.to_vec(),
            })
            .collect();
        let ranked = evidence::rank(&vector, focus_text, &focus, with_vectors);
        let missing = evidence::missing(&focus, &hits);
        tracing::debug!(
            ms = ms(started.elapsed()),
            nearest,
            best = ?ranked.iter().take(3).map(|s| format!("{:.2}+{:.2} {}", s.similarity, s.words, s.text)).collect::<Vec<_>>(),
            ?missing,
            "evidence gathered"
        );
        Ok(Some(Evidence { nearest, hits, sentences: ranked, missing }))
    }

    /// Each text's vector, from the cache or embedded in one batch.
    async fn sentence_vectors<'a>(
        &self,
        embedder: &dyn Embedder,
        texts: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<Arc<[f32]>>, KnowledgeError> {
        let texts: Vec<&str> = texts.collect();
        let cached: Vec<Option<Arc<[f32]>>> = {
            let cache = self.sentence_vectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            texts.iter().map(|text| cache.get(*text).cloned()).collect()
        };
        let new: Vec<String> = texts.iter().zip(&cached).filter(|(_, v)| v.is_none()).map(|(t, _)| (*t).to_owned()).collect();
        let mut made = if new.is_empty() { Vec::new() } else { embedder.embed(&new).await? }.into_iter();
        if made.len() != new.len() {
            return Err(IngestError::VectorCount { asked: new.len(), got: made.len() }.into());
        }
        let mut cache = self.sentence_vectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() + new.len() > SENTENCE_CACHE {
            cache.clear();
        }
        let mut vectors = Vec::with_capacity(texts.len());
        for (text, cached) in texts.iter().zip(cached) {
            let vector = match cached {
                Some(vector) => vector,
                None => {
                    let vector: Arc<[f32]> = made.next().unwrap_or_default().into();
                    cache.insert((*text).to_owned(), Arc::clone(&vector));
                    vector
                }
            };
            vectors.push(vector);
        }
        Ok(vectors)
    }

    /// Embeds `query` into the one-query cache, so a search or closeness check for it that follows skips the
    /// model. Nothing without an embeddings model.
    pub async fn embed_query(&self, query: &str) -> Result<(), KnowledgeError> {
        if let Some(embedder) = &self.embedder {
            self.query_vector(embedder.as_ref(), query).await?;
        }
        Ok(())
    }

    /// `query` embedded and checked against the table's dimension, from the one-query cache when it was the
    /// last one asked.
    async fn query_vector(&self, embedder: &dyn Embedder, query: &str) -> Result<Arc<[f32]>, KnowledgeError> {
        let cached =
            self.last_query.lock().ok().and_then(|last| last.as_ref().filter(|(text, _)| text == query).map(|(_, v)| Arc::clone(v)));
        if let Some(vector) = cached {
            return Ok(vector);
        }
        let vector = embedder.embed(&[query.to_owned()]).await?.pop().ok_or(IngestError::VectorCount { asked: 1, got: 0 })?;
        ingest::check_dimensions(embedder, std::slice::from_ref(&vector))?;
        let vector: Arc<[f32]> = vector.into();
        if let Ok(mut last) = self.last_query.lock() {
            *last = Some((query.to_owned(), Arc::clone(&vector)));
        }
        Ok(vector)
    }

    /// Folds every row into the full-text index (ingestion does it every few hundred rows on its own) and
    /// merges the data files ingestion wrote into one. Also creates the vector index once the table is large
    /// enough to need one.
    pub async fn optimize(&self) -> Result<(), KnowledgeError> {
        let table = self.table().await?;
        let _lock = table.write_lock().await;
        compact_if_fragmented(&table.table, 1).await?;
        let has_vector_index = table.table.list_indices().await?.iter().any(|index| index.name == VECTOR_INDEX);
        if !has_vector_index && table.table.count_rows(None).await? >= VECTOR_INDEX_MIN_ROWS {
            let started = Instant::now();
            table.table.create_index(&["vector"], Index::IvfFlat(IvfFlatIndexBuilder::default())).execute().await?;
            tracing::info!(ms = ms(started.elapsed()), "vector index created");
        }
        if self.text_index_ready(&table.table).await? {
            // Folds the rows added since into both indices.
            table.table.optimize(OptimizeAction::Index(OptimizeOptions::default())).await?;
        }
        Ok(())
    }
}

async fn has_index(table: &lancedb::Table) -> Result<bool, StoreError> {
    Ok(table.list_indices().await?.iter().any(|index| index.name == TEXT_INDEX))
}

/// Merges the table's small data files once there are more than `most` of them. Lance rewrites the indices'
/// row addresses as part of the merge, so searches stay correct throughout.
async fn compact_if_fragmented(table: &lancedb::Table, most: usize) -> Result<(), StoreError> {
    let small = table.stats().await?.fragment_stats.num_small_fragments;
    if small <= most {
        return Ok(());
    }
    let started = Instant::now();
    table.optimize(OptimizeAction::Compact { options: CompactionOptions::default(), remap_options: None }).await?;
    tracing::info!(fragments = small, ms = ms(started.elapsed()), "knowledge data files merged");
    Ok(())
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
