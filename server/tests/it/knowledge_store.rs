//! The database on disk: restarts, re-seeding, deletion that really deletes, concurrent writers.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use parlance_server::access::Caller;
use parlance_server::embeddings::Embedder;
use parlance_server::knowledge::seed::{seed, seed_notes};
use parlance_server::knowledge::{KnowledgeBase, SearchMode};
use parlance_server::sessions::{LanceSessions, SessionStore};
use parlance_server::store::Database;
use parlance_shared::{HistoryTurn, KnowledgeSource, NewNote, Role, SessionId, ToolCallRecord};

fn embedder() -> Arc<dyn Embedder> {
    Arc::new(support::local_embeddings())
}

fn line(role: Role, text: &str) -> HistoryTurn {
    let assistant = role == Role::Assistant;
    HistoryTurn {
        role,
        text: text.to_owned(),
        // The store keeps microseconds.
        created_at: Utc::now().trunc_subsecs(6),
        sources: if assistant {
            vec![KnowledgeSource { id: "n1".into(), title: "Privacy note".into(), snippet: "never leave".into(), score: 0.03 }]
        } else {
            vec![]
        },
        tool_calls: if assistant {
            vec![ToolCallRecord { name: "search_knowledge".into(), arguments: serde_json::json!({"query": "security"}) }]
        } else {
            vec![]
        },
        // Stored and read back like the other fields; a cut-short answer is the only kind marked.
        interrupted: assistant && text.ends_with('…'),
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn conversations_and_notes_survive_a_restart_and_reseeding_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let session = SessionId::new("restart-test");
    let written = vec![line(Role::User, "How does this app handle security?"), line(Role::Assistant, "Everything stays on this machine.")];
    let later = vec![line(Role::User, "Thanks!"), line(Role::Assistant, "You're welcome.")];
    let seeded_count = {
        let database = Arc::new(Database::new(dir.path()));
        let sessions = LanceSessions::new(Arc::clone(&database));
        sessions.append(&session, written.clone()).await.unwrap();
        sessions.append(&session, later.clone()).await.unwrap();
        let knowledge = KnowledgeBase::new(database, Some(embedder()));
        let first = seed(&knowledge).await.unwrap();
        assert_eq!(first.added, seed_notes().len());
        knowledge.count().await.unwrap()
        // Everything is dropped here, as when the server stops.
    };

    let database = Arc::new(Database::new(dir.path()));
    let sessions = LanceSessions::new(Arc::clone(&database));
    let history = sessions.history(&session).await.unwrap().expect("the conversation is still there");
    let expected: Vec<HistoryTurn> = written.into_iter().chain(later).collect();
    assert_eq!(history, expected, "lines, order, sources and tool calls all come back");
    assert_eq!(sessions.history(&SessionId::new("never-existed")).await.unwrap(), None);

    let knowledge = KnowledgeBase::new(database, Some(embedder()));
    let again = seed(&knowledge).await.unwrap();
    assert_eq!((again.added, again.unchanged), (0, seed_notes().len()));
    assert_eq!(knowledge.count().await.unwrap(), seeded_count, "re-seeding stored nothing twice");
    let hits = knowledge.search(&Caller::Anyone, "How does this app handle security?", 3, SearchMode::Hybrid).await.unwrap();
    assert!(hits.iter().any(|hit| hit.title == "Privacy note"), "the reopened index still answers: {hits:?}");
}

#[tokio::test]
async fn deleting_a_conversation_or_a_note_removes_it_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let database = Arc::new(Database::new(dir.path()));
    let sessions = LanceSessions::new(Arc::clone(&database));
    let secret_line = "my locker code is zebra-quokka-8812";
    let kept_line = "the weather is fine today";
    let forget = SessionId::new("forget-me");
    let keep = SessionId::new("keep-me");
    sessions.append(&forget, vec![line(Role::User, secret_line)]).await.unwrap();
    sessions.append(&keep, vec![line(Role::User, kept_line)]).await.unwrap();
    assert!(!files_containing(dir.path(), secret_line).is_empty(), "the test looks in the right place");

    assert!(sessions.delete(&forget).await.unwrap());
    assert!(!sessions.delete(&forget).await.unwrap(), "a second delete finds nothing");
    assert_eq!(sessions.history(&forget).await.unwrap(), None);
    assert_eq!(files_containing(dir.path(), secret_line), Vec::<String>::new(), "deleted text is still on disk");
    assert_eq!(sessions.history(&keep).await.unwrap().unwrap()[0].text, kept_line, "other conversations are untouched");

    let knowledge = KnowledgeBase::new(Arc::clone(&database), Some(embedder()));
    let secret_note = "The alarm code for the shed is 4417-walrus.";
    let added = knowledge.add(vec![NewNote { title: "Shed".into(), text: secret_note.into(), source: None }]).await.unwrap();
    knowledge.delete(&added.notes[0].id, &Caller::Anyone).await.unwrap();
    assert_eq!(files_containing(dir.path(), "4417-walrus"), Vec::<String>::new());
    assert_eq!(knowledge.count().await.unwrap(), 0);

    // And after a restart.
    let reopened = LanceSessions::new(Arc::new(Database::new(dir.path())));
    assert_eq!(reopened.history(&forget).await.unwrap(), None);
    assert!(reopened.history(&keep).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ingestion_and_search_lose_no_notes() {
    const WRITERS: usize = 4;
    const BATCHES: usize = 5;
    const PER_BATCH: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let knowledge = Arc::new(KnowledgeBase::new(Arc::new(Database::new(dir.path())), Some(embedder())));
    seed(&knowledge).await.unwrap();
    let before = knowledge.count().await.unwrap();

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let knowledge = Arc::clone(&knowledge);
        tasks.push(tokio::spawn(async move {
            for batch in 0..BATCHES {
                let notes = (0..PER_BATCH)
                    .map(|i| NewNote {
                        title: format!("Writer {writer} note {batch}.{i}"),
                        text: format!("Parcel tag{writer}x{batch}x{i} is stored on shelf {} in the garage.", writer * 100 + batch * 10 + i),
                        source: None,
                    })
                    .collect();
                let added = knowledge.add(notes).await.expect("concurrent add succeeds");
                assert_eq!(added.added, PER_BATCH);
            }
        }));
    }
    let mut searches = Vec::new();
    for _ in 0..2 {
        let knowledge = Arc::clone(&knowledge);
        searches.push(tokio::spawn(async move {
            for _ in 0..10 {
                let hits = knowledge
                    .search(&Caller::Anyone, "where is the parcel stored", 5, SearchMode::Hybrid)
                    .await
                    .expect("search during writes");
                assert!(!hits.is_empty());
            }
        }));
    }
    for task in tasks.into_iter().chain(searches) {
        task.await.expect("task finished");
    }

    let expected = before + WRITERS * BATCHES * PER_BATCH;
    assert_eq!(knowledge.count().await.unwrap(), expected);
    let (page, total) = knowledge.list(&Caller::Anyone, 0, 1000).await.unwrap();
    assert_eq!((page.len(), total), (expected, expected));
    let mut ids: Vec<&str> = page.iter().map(|n| n.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), expected, "no note appears twice");
    // Each of the 20 appends wrote a data file; ingestion merges them as they pile up (indices remapped).
    let files = knowledge.data_files().await.unwrap();
    assert!(files <= 9, "{files} data files after 20 appends");

    let reopened = KnowledgeBase::new(Arc::new(Database::new(dir.path())), Some(embedder()));
    assert_eq!(reopened.count().await.unwrap(), expected, "the table on disk holds every note");
    let hits = reopened.search(&Caller::Anyone, "tag3x4x5", 3, SearchMode::FullTextOnly).await.unwrap();
    assert_eq!(hits[0].title, "Writer 3 note 4.5");
}

/// A search reads its winners' rows from the version it ranked them in, while a deletion rewrites data files
/// and removes the old versions' files: the reader must never find its files gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_while_notes_are_deleted_never_fail() {
    const NOTES: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let knowledge = Arc::new(KnowledgeBase::new(Arc::new(Database::new(dir.path())), Some(embedder())));
    seed(&knowledge).await.unwrap();
    let seeded = knowledge.count().await.unwrap();
    let notes = (0..NOTES)
        .map(|i| NewNote { title: format!("Parcel {i}"), text: format!("Parcel number {i} waits at the post office."), source: None })
        .collect();
    let added = knowledge.add(notes).await.unwrap();

    let deleting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut searches = Vec::new();
    for _ in 0..2 {
        let (knowledge, deleting) = (Arc::clone(&knowledge), Arc::clone(&deleting));
        searches.push(tokio::spawn(async move {
            let mut done = 0;
            while deleting.load(std::sync::atomic::Ordering::Acquire) {
                let hits =
                    knowledge.search(&Caller::Anyone, "where is my parcel", 5, SearchMode::Hybrid).await.expect("search during deletions");
                assert!(!hits.is_empty(), "the seed notes are always there");
                done += 1;
            }
            done
        }));
    }
    for note in &added.notes {
        knowledge.delete(&note.id, &Caller::Anyone).await.expect("delete during searches");
    }
    deleting.store(false, std::sync::atomic::Ordering::Release);
    for search in searches {
        assert!(search.await.expect("searches finished") > 0);
    }
    assert_eq!(knowledge.count().await.unwrap(), seeded);
    let hits = knowledge.search(&Caller::Anyone, "parcel at the post office", 5, SearchMode::Hybrid).await.unwrap();
    assert!(hits.iter().all(|hit| !hit.title.starts_with("Parcel ")), "deleted notes are not found: {hits:?}");
}

#[tokio::test]
async fn ingesting_a_folder_twice_stores_each_document_once_and_skips_what_is_not_text() {
    use parlance_server::cli::ingest_paths;

    let docs = tempfile::tempdir().unwrap();
    std::fs::create_dir(docs.path().join("nested")).unwrap();
    std::fs::write(docs.path().join("boiler.md"), "# Boiler\n\nThe boiler is serviced every October by Hansen & Sons.").unwrap();
    std::fs::write(docs.path().join("nested/wifi.txt"), "The guest Wi-Fi is called Meadow.").unwrap();
    std::fs::write(docs.path().join("scan.txt"), b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").unwrap();
    std::fs::write(docs.path().join("photo.jpg"), b"\xff\xd8\xff\xe0").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let knowledge = KnowledgeBase::new(Arc::new(Database::new(dir.path())), Some(embedder()));
    let first = ingest_paths(&knowledge, &[docs.path().to_owned()], false).await.unwrap();
    assert_eq!((first.added, first.unchanged), (2, 0));
    assert_eq!(first.skipped.len(), 1, "the PDF named .txt is skipped with a reason: {:?}", first.skipped);
    assert!(first.skipped[0].contains("scan.txt") && first.skipped[0].contains("application/pdf"), "{:?}", first.skipped);

    let second = ingest_paths(&knowledge, &[docs.path().to_owned()], false).await.unwrap();
    assert_eq!((second.added, second.unchanged), (0, 2));
    let (notes, total) = knowledge.list(&Caller::Anyone, 0, 10).await.unwrap();
    assert_eq!(total, 2);
    let titles: Vec<&str> = notes.iter().map(|n| n.title.as_str()).collect();
    assert!(titles.contains(&"Boiler") && titles.contains(&"wifi"), "{titles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_newest_line_never_hides_the_conversation_from_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = Arc::new(LanceSessions::new(Arc::new(Database::new(dir.path()))));
    let session = SessionId::new("barge-in");
    let first = vec![line(Role::User, "Tell me a story."), line(Role::Assistant, "Once upon a time… there was a knight.")];
    let full_answer = "Paris is the capital. It lies on the Seine. unspoken-tail-7731";
    let second = vec![line(Role::User, "And France?"), line(Role::Assistant, full_answer)];
    sessions.append(&session, first.clone()).await.unwrap();
    sessions.append(&session, second.clone()).await.unwrap();

    // What a page reloading while the answer is cut reads, again and again.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn({
        let (sessions, session, done) = (Arc::clone(&sessions), session.clone(), Arc::clone(&done));
        async move {
            let mut reads = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                reads.push(sessions.history(&session).await.unwrap().map(|lines| lines.len()));
                // A read from memory never waits, so without this the loop never gives its worker up: a task
                // the replacement needs could sit in that worker's queue for ever (the test hung 2 runs in 15).
                tokio::task::yield_now().await;
            }
            reads
        }
    });
    let cut = HistoryTurn { text: "Paris is the capital.".into(), interrupted: true, ..second[1].clone() };
    for _ in 0..3 {
        assert!(sessions.replace_last(&session, cut.clone()).await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.await.unwrap();
    assert!(!reads.is_empty());
    assert!(reads.iter().all(|read| *read == Some(4)), "a reader saw the conversation missing or changed in size: {reads:?}");

    let history = sessions.history(&session).await.unwrap().unwrap();
    let expected: Vec<HistoryTurn> = first.into_iter().chain([second[0].clone(), cut]).collect();
    assert_eq!(history, expected, "only the newest line changed, and it kept its place");
    assert!(!sessions.replace_last(&SessionId::new("never-existed"), line(Role::Assistant, "x")).await.unwrap());

    // The cut-off words linger only in old versions, and deleting the conversation removes those too.
    assert!(sessions.delete(&session).await.unwrap());
    assert_eq!(files_containing(dir.path(), "unspoken-tail-7731"), Vec::<String>::new());
}

/// Files under `dir` in folders named `folder` (e.g. every Lance version's manifest under `_versions`).
fn files_in_folders_named(dir: &Path, folder: &str) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        if !path.is_dir() {
            continue;
        }
        let inside = path.file_name().is_some_and(|name| name == folder);
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap().path();
            count += usize::from(inside && entry.is_file());
            pending.push(entry);
        }
    }
    count
}

/// A server that runs for long commits tens of thousands of times: each commit is a Lance version and leaves a
/// small data file. Merges of those files run beside the appends (not under their lock), while cut answers and
/// deleted conversations rewrite rows: every line must survive that; and old versions are removed now and then,
/// so the versions and files on disk stay few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_commits_beside_merges_lose_nothing_and_leave_few_versions() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = Arc::new(LanceSessions::new(Arc::new(Database::new(dir.path()))));
    let writers = 6;
    let turns = 30;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let sessions = Arc::clone(&sessions);
            tokio::spawn(async move {
                let session = SessionId::new(format!("writer-{writer}"));
                for turn in 0..turns {
                    let lines = vec![
                        line(Role::User, &format!("question {turn} of {writer}")),
                        line(Role::Assistant, &format!("answer {turn} of {writer}")),
                    ];
                    sessions.append(&session, lines).await.unwrap();
                    if turn % 10 == 9 {
                        // A cut answer rewrites a stored row while other writers append and merges run.
                        let cut = HistoryTurn {
                            text: format!("answer {turn} of {writer} (cut)"),
                            interrupted: true,
                            ..line(Role::Assistant, "")
                        };
                        assert!(sessions.replace_last(&session, cut).await.unwrap());
                    }
                    if turn == 15 {
                        let doomed = SessionId::new(format!("doomed-{writer}"));
                        sessions.append(&doomed, vec![line(Role::User, "forget me")]).await.unwrap();
                        assert!(sessions.delete(&doomed).await.unwrap());
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // One after another, so each is a commit of its own: well past the commits between two removals of old
    // versions (a deletion removes them too, so none comes here).
    let appends = 700;
    let long = SessionId::new("long");
    for turn in 0..appends {
        sessions.append(&long, vec![line(Role::User, &format!("line {turn}"))]).await.unwrap();
    }

    // As a restarted server reads them.
    let reopened = LanceSessions::new(Arc::new(Database::new(dir.path())));
    for writer in 0..writers {
        let history = reopened.history(&SessionId::new(format!("writer-{writer}"))).await.unwrap().unwrap();
        assert_eq!(history.len(), 2 * turns, "writer {writer}");
        for (turn, pair) in history.chunks(2).enumerate() {
            assert_eq!(pair[0].text, format!("question {turn} of {writer}"));
            let answer = format!("answer {turn} of {writer}");
            let expected = if turn % 10 == 9 { format!("{answer} (cut)") } else { answer };
            assert_eq!(pair[1].text, expected, "writer {writer}, turn {turn}");
        }
        assert_eq!(reopened.history(&SessionId::new(format!("doomed-{writer}"))).await.unwrap(), None);
    }
    let long_history = reopened.history(&long).await.unwrap().unwrap();
    assert_eq!(
        long_history.iter().map(|line| line.text.clone()).collect::<Vec<_>>(),
        (0..appends).map(|turn| format!("line {turn}")).collect::<Vec<_>>()
    );
    let versions = files_in_folders_named(dir.path(), "_versions");
    let data_files = files_in_folders_named(dir.path(), "data");
    eprintln!("{versions} versions and {data_files} data files kept after {appends} appends one by one");
    assert!(versions < appends / 2, "{versions} versions kept after {appends} appends");
    assert!(data_files < appends / 2, "{data_files} data files kept after {appends} appends");
}
