//! The opt-in audio archive (`--archive-dir`). Off by default, and then no audio is written anywhere. On, each
//! finished turn that had audio keeps, in a folder of its own:
//!
//! ```text
//! ARCHIVE_DIR/<session id>/<turn id>/question.<webm|ogg|m4a|wav|mp3|flac>   as received (a PCM16 stream as WAV)
//!                                   /answer.wav                              the spoken answer (sentences joined)
//!                                   /transcript.json                         question, answer, times, interrupted
//! ```
//!
//! Folders are 0700 and files 0600. Entries older than the retention are swept (see [`Archive::sweep`]);
//! deleting a conversation deletes its folder. The pipeline writes entries; the edge only lists and serves them.
//! Nothing here logs audio or transcripts: only ids, counts and sizes.

mod files;
mod wav;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use parlance_shared::SessionId;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use self::files::{create_private_dir, write_private};
use crate::audio::AudioUpload;
use crate::tts::SpeechAudio;

const TRANSCRIPT_FILE: &str = "transcript.json";
/// The version of `transcript.json`'s layout.
const TRANSCRIPT_VERSION: u32 = 1;

/// The archive under one folder. Cheap to share: the pipeline writes through it, the sweeper cleans it.
#[derive(Debug)]
pub struct Archive {
    root: PathBuf,
    /// Turns older than this many days are swept; 0 keeps them until their conversation is deleted.
    keep_days: u32,
    /// One write at a time: an answer cut off while its entry is still being written is rewritten only after
    /// that write has finished (the write runs on a blocking thread that outlives a cancelled turn).
    writing: Arc<Mutex<()>>,
}

/// Names one archived turn: the time it was asked (so names sort in order) and a random suffix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(String);

/// What a finished turn leaves in the archive.
#[derive(Debug)]
pub struct NewEntry {
    pub asked_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub question: String,
    pub answer: String,
    pub interrupted: bool,
    /// The question's recording; `None` for a typed question.
    pub question_audio: Option<AudioUpload>,
    pub answer_audio: AnswerAudio,
}

/// How the answer was spoken.
#[derive(Debug, Default)]
pub enum AnswerAudio {
    #[default]
    None,
    /// One recording of the whole answer.
    Whole(SpeechAudio),
    /// The sentences sent one by one (only those played, for an answer cut off): joined into one file.
    Sentences(Vec<SpeechAudio>),
}

impl AnswerAudio {
    pub fn is_none(&self) -> bool {
        match self {
            Self::None => true,
            Self::Whole(_) => false,
            Self::Sentences(pieces) => pieces.is_empty(),
        }
    }
}

/// One archived turn, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: EntryId,
    pub asked_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub question: String,
    pub answer: String,
    pub interrupted: bool,
    pub question_audio: Option<AudioInfo>,
    pub answer_audio: Option<AudioInfo>,
}

/// An archived recording's type and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    pub mime_type: String,
    pub bytes: u64,
}

/// Which recording of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Question,
    Answer,
}

impl Side {
    /// `question` or `answer`, as in the audio's URL.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "question" => Some(Self::Question),
            "answer" => Some(Self::Answer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Question => "question",
            Self::Answer => "answer",
        }
    }
}

/// An archived recording on disk, to be sent as it is.
#[derive(Debug, Clone)]
pub struct AudioFile {
    pub path: PathBuf,
    pub mime_type: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub removed: usize,
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("this server keeps no audio archive (it is off unless started with --archive-dir)")]
    Off,
    #[error("{0}")]
    NotFound(String),
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the archived transcript {} is unreadable: {source}", path.display())]
    Transcript {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the archive's task stopped: {0}")]
    Stopped(String),
}

/// `transcript.json`: everything but the audio, and the names of the audio files.
#[derive(Debug, Serialize, Deserialize)]
struct Transcript {
    version: u32,
    session_id: String,
    turn_id: String,
    asked_at: DateTime<Utc>,
    answered_at: DateTime<Utc>,
    question: String,
    answer: String,
    #[serde(default)]
    interrupted: bool,
    #[serde(default)]
    question_audio: Option<StoredAudio>,
    #[serde(default)]
    answer_audio: Option<StoredAudio>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredAudio {
    /// A file name in the turn's folder.
    file: String,
    mime_type: String,
    bytes: u64,
}

impl StoredAudio {
    fn info(&self) -> AudioInfo {
        AudioInfo { mime_type: self.mime_type.clone(), bytes: self.bytes }
    }
}

impl EntryId {
    /// A new id for a turn asked at `asked_at`: `20261206T101530123Z-3f9a1c2e`.
    pub fn new(asked_at: DateTime<Utc>) -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("{}-{}", asked_at.format("%Y%m%dT%H%M%S%3fZ"), &random[..8]))
    }

    /// An id from a URL or a folder name; `None` unless it has exactly the shape [`EntryId::new`] makes, so it
    /// can never name anything but a turn's folder.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 28
            && bytes[..8].iter().all(u8::is_ascii_digit)
            && bytes[8] == b'T'
            && bytes[9..18].iter().all(u8::is_ascii_digit)
            && bytes[18] == b'Z'
            && bytes[19] == b'-'
            && bytes[20..].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        shaped.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Session ids become folder names only when they are plain: letters, digits, `-` and `_` (the server's own
/// are UUIDs). Anything else has no archive.
fn session_folder(session: &SessionId) -> Option<&str> {
    let id = session.as_str();
    let plain = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then_some(id)
}

/// Checks the folder `--archive-dir` names, creating it (0700) if it does not exist yet, and that files can
/// be written in it. The reason comes back as a sentence for the start-up message.
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err("it exists and is not a folder".to_owned());
    }
    create_private_dir(dir).map_err(|error| format!("cannot create it: {error}"))?;
    let probe = dir.join(".parlance-write-check");
    write_private(&probe, b"").map_err(|error| format!("cannot write in it: {error}"))?;
    std::fs::remove_file(&probe).map_err(|error| format!("cannot delete files in it: {error}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "the archive folder is readable by other users; chmod 700 it");
        }
    }
    Ok(())
}

impl Archive {
    /// The archive in `root` (checked at start-up by [`prepare_dir`]).
    pub fn new(root: impl Into<PathBuf>, keep_days: u32) -> Self {
        Self { root: root.into(), keep_days, writing: Arc::new(Mutex::new(())) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a turn's entry, or rewrites it (an answer cut off after it was archived keeps only what was
    /// played). The write runs on a blocking thread and finishes even if the turn is cancelled meanwhile.
    pub async fn record(&self, session: &SessionId, id: &EntryId, entry: NewEntry) -> Result<(), ArchiveError> {
        let Some(folder) = session_folder(session) else {
            return Err(ArchiveError::NotFound(format!("the conversation id {session:?} cannot name an archive folder")));
        };
        let dir = self.root.join(folder).join(id.as_str());
        let transcript = Transcript {
            version: TRANSCRIPT_VERSION,
            session_id: session.as_str().to_owned(),
            turn_id: id.as_str().to_owned(),
            asked_at: entry.asked_at,
            answered_at: entry.answered_at,
            question: entry.question,
            answer: entry.answer,
            interrupted: entry.interrupted,
            question_audio: None,
            answer_audio: None,
        };
        let (question_audio, answer_audio) = (entry.question_audio, entry.answer_audio);
        let guard = Arc::clone(&self.writing).lock_owned().await;
        blocking(move || {
            let _one_write_at_a_time = guard;
            write_entry(&dir, transcript, question_audio, answer_audio)
        })
        .await
    }

    /// A conversation's archived turns, oldest first; empty when it has none. A turn whose transcript cannot be
    /// read is left out (and logged by id).
    pub async fn entries(&self, session: &SessionId) -> Result<Vec<Entry>, ArchiveError> {
        let Some(folder) = session_folder(session) else { return Ok(Vec::new()) };
        let dir = self.root.join(folder);
        blocking(move || read_entries(&dir)).await
    }

    /// The question or answer recording of turn `turn`.
    pub async fn audio(&self, session: &SessionId, turn: &str, side: Side) -> Result<AudioFile, ArchiveError> {
        let missing = || ArchiveError::NotFound(format!("this conversation has no archived {} audio for turn {turn:?}", side.as_str()));
        let (Some(folder), Some(id)) = (session_folder(session), EntryId::parse(turn)) else { return Err(missing()) };
        let dir = self.root.join(folder).join(id.as_str());
        let transcript = match blocking(move || read_transcript(&dir).map(|t| (dir, t))).await {
            Ok(found) => found,
            Err(ArchiveError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(error) => return Err(error),
        };
        let (dir, transcript) = transcript;
        let stored = match side {
            Side::Question => transcript.question_audio,
            Side::Answer => transcript.answer_audio,
        };
        let stored = stored.filter(|stored| files::is_plain_file_name(&stored.file)).ok_or_else(missing)?;
        let path = dir.join(&stored.file);
        if !path.is_file() {
            return Err(missing());
        }
        Ok(AudioFile { path, mime_type: stored.mime_type })
    }

    /// Deletes a conversation's archive; `false` when it had none.
    pub async fn remove_session(&self, session: &SessionId) -> Result<bool, ArchiveError> {
        let Some(folder) = session_folder(session) else { return Ok(false) };
        let dir = self.root.join(folder);
        let _no_write_meanwhile = self.writing.lock().await;
        blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(ArchiveError::Io { action: "delete the conversation's archive", path: dir, source }),
        })
        .await
    }

    /// Deletes the turns asked more than the retention's days before now (none when it is 0), and the
    /// conversation folders left empty. A turn's time is the one in its transcript, or its folder's
    /// modification time if the transcript cannot be read. Only folders named like the archive's own are touched.
    pub async fn sweep(&self) -> Result<SweepReport, ArchiveError> {
        if self.keep_days == 0 {
            return Ok(SweepReport::default());
        }
        let cutoff = Utc::now() - TimeDelta::days(i64::from(self.keep_days));
        let root = self.root.clone();
        blocking(move || sweep(&root, cutoff)).await
    }

    /// Sweeps now and then every `period`, in a task of its own, logging what each sweep removed. Nothing to
    /// do (and no task) when the retention is 0.
    pub fn keep_sweeping(self: &Arc<Self>, period: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if self.keep_days == 0 {
            tracing::info!(dir = %self.root.display(), "audio archive on; turns are kept until their conversation is deleted");
            return None;
        }
        tracing::info!(dir = %self.root.display(), keep_days = self.keep_days, "audio archive on");
        let archive = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match archive.sweep().await {
                    Ok(report) => {
                        tracing::info!(removed = report.removed, kept = report.kept, keep_days = archive.keep_days, "audio archive swept");
                    }
                    Err(error) => tracing::warn!(%error, "sweeping the audio archive failed; trying again later"),
                }
            }
        }))
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static) -> Result<T, ArchiveError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| ArchiveError::Stopped(error.to_string()))?
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { action, path, source }
}

/// Writes the audio first and the transcript last, each file whole (written aside, then renamed): a turn is
/// listed only once its transcript exists. Files of an earlier version of the entry that the new one does not
/// have are deleted.
fn write_entry(
    dir: &Path,
    mut transcript: Transcript,
    question_audio: Option<AudioUpload>,
    answer_audio: AnswerAudio,
) -> Result<(), ArchiveError> {
    create_private_dir(dir).map_err(io("create the archive folder", dir))?;
    let mut written = vec![TRANSCRIPT_FILE.to_owned()];
    if let Some(upload) = question_audio {
        let file = format!("question.{}", upload.format.extension());
        write_private(&dir.join(&file), &upload.bytes).map_err(io("write", &dir.join(&file)))?;
        transcript.question_audio =
            Some(StoredAudio { file: file.clone(), mime_type: upload.format.mime_type().to_owned(), bytes: upload.bytes.len() as u64 });
        written.push(file);
    }
    let answer = match answer_audio {
        AnswerAudio::None => None,
        AnswerAudio::Whole(speech) => Some((speech.bytes.to_vec(), speech.mime_type)),
        AnswerAudio::Sentences(pieces) => wav::join(&pieces),
    };
    if let Some((bytes, mime_type)) = answer {
        let file = format!("answer.{}", files::extension_of(&mime_type));
        write_private(&dir.join(&file), &bytes).map_err(io("write", &dir.join(&file)))?;
        transcript.answer_audio = Some(StoredAudio { file: file.clone(), mime_type, bytes: bytes.len() as u64 });
        written.push(file);
    }
    let json =
        serde_json::to_vec_pretty(&transcript).map_err(|source| ArchiveError::Transcript { path: dir.join(TRANSCRIPT_FILE), source })?;
    write_private(&dir.join(TRANSCRIPT_FILE), &json).map_err(io("write", &dir.join(TRANSCRIPT_FILE)))?;
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !written.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(io("delete the stale file", &entry.path()))?;
        }
    }
    tracing::debug!(
        session_id = %transcript.session_id,
        turn_id = %transcript.turn_id,
        question_audio_bytes = transcript.question_audio.as_ref().map(|a| a.bytes),
        answer_audio_bytes = transcript.answer_audio.as_ref().map(|a| a.bytes),
        interrupted = transcript.interrupted,
        "turn archived"
    );
    Ok(())
}

fn read_transcript(dir: &Path) -> Result<Transcript, ArchiveError> {
    let path = dir.join(TRANSCRIPT_FILE);
    let bytes = std::fs::read(&path).map_err(io("read", &path))?;
    serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Transcript { path, source })
}

fn read_entries(session_dir: &Path) -> Result<Vec<Entry>, ArchiveError> {
    let listing = match std::fs::read_dir(session_dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ArchiveError::Io { action: "read", path: session_dir.to_path_buf(), source }),
    };
    let mut entries = Vec::new();
    for item in listing.flatten() {
        let Some(id) = item.file_name().to_str().and_then(EntryId::parse) else { continue };
        match read_transcript(&item.path()) {
            Ok(transcript) => entries.push(Entry {
                id,
                asked_at: transcript.asked_at,
                answered_at: transcript.answered_at,
                question_audio: transcript.question_audio.as_ref().map(StoredAudio::info),
                answer_audio: transcript.answer_audio.as_ref().map(StoredAudio::info),
                question: transcript.question,
                answer: transcript.answer,
                interrupted: transcript.interrupted,
            }),
            // Being written right now, or damaged: not listed.
            Err(ArchiveError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(turn_id = %id, %error, "an archived turn is unreadable; it is not listed"),
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

fn sweep(root: &Path, cutoff: DateTime<Utc>) -> Result<SweepReport, ArchiveError> {
    let mut report = SweepReport::default();
    let sessions = match std::fs::read_dir(root) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(source) => return Err(ArchiveError::Io { action: "read", path: root.to_path_buf(), source }),
    };
    for session in sessions.flatten() {
        let session_dir = session.path();
        let is_ours = session.file_type().is_ok_and(|t| t.is_dir())
            && session.file_name().to_str().is_some_and(|name| session_folder(&SessionId::new(name)).is_some());
        if !is_ours {
            continue;
        }
        for turn in std::fs::read_dir(&session_dir).map_err(io("read", &session_dir))?.flatten() {
            if !turn.file_type().is_ok_and(|t| t.is_dir()) || turn.file_name().to_str().and_then(EntryId::parse).is_none() {
                continue;
            }
            let turn_dir = turn.path();
            let asked_at = match read_transcript(&turn_dir) {
                Ok(transcript) => Some(transcript.asked_at),
                Err(_) => turn.metadata().and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from),
            };
            if asked_at.is_some_and(|at| at < cutoff) {
                std::fs::remove_dir_all(&turn_dir).map_err(io("delete the old archived turn", &turn_dir))?;
                report.removed += 1;
            } else {
                report.kept += 1;
            }
        }
        // Only an empty folder goes; a turn being written into it meanwhile keeps it.
        let _ = std::fs::remove_dir(&session_dir);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_sort_by_time_and_only_their_own_shape_parses() {
        let early = EntryId::new("2026-12-06T10:15:30.123Z".parse().unwrap());
        let later = EntryId::new("2026-12-06T10:15:31.004Z".parse().unwrap());
        assert!(early.as_str().starts_with("20261206T101530123Z-"), "{early}");
        assert!(early < later);
        assert_eq!(EntryId::parse(early.as_str()), Some(early.clone()));
        for bad in ["", "..", "../x", "20261206T101530123Z-3f9a1c2", "20261206T101530123Z-3f9a1c2e/", "20261206T101530123Z-3F9A1C2E"] {
            assert_eq!(EntryId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_plain_session_ids_name_folders() {
        assert_eq!(session_folder(&SessionId::new("2b1f0c5e-7d4a-4c11-9e0b-3a6f5d2c8b71")), Some("2b1f0c5e-7d4a-4c11-9e0b-3a6f5d2c8b71"));
        for bad in ["", "..", "a/b", "a\\b", ".hidden", "x y"] {
            assert_eq!(session_folder(&SessionId::new(bad)), None, "{bad:?}");
        }
    }
}
