//! What the CLI prints: for people, the answer on stdout and notes on stderr; with `--json`, one JSON object
//! per line on stdout, in the wire's shapes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use parlance_client::ClientError;
use parlance_client::TurnSummary;
use parlance_client::types::{
    AddNotesResponse, ErrorCode, KnowledgeSearchResponse, NotePage, Role, ServerEvent, SessionHistory, TurnState, VoiceList,
};
use serde::Serialize;
use serde_json::json;

use crate::{Failure, exit, stderr_is_terminal};

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    fn line(&self, value: &impl Serialize) -> Result<(), Failure> {
        let text = serde_json::to_string(value).map_err(|error| Failure::Local(format!("could not write JSON: {error}")))?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}").and_then(|()| stdout.flush()).map_err(stdout_failed)
    }

    fn print(&self, text: &str) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(stdout_failed)
    }

    /// A remark for the person at the terminal (stderr), never mixed into the answer or the JSON.
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// A progress bar on stderr while a person watches; hidden in scripts and with `--json`.
    pub fn progress(&self, steps: u64, what: &str) -> ProgressBar {
        if self.json || !stderr_is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(steps).with_prefix(what.to_owned());
        if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    pub fn event(&self, event: &ServerEvent) -> Result<(), Failure> {
        if self.json {
            return self.line(event);
        }
        match event {
            ServerEvent::Transcript { text, is_final: true } => self.print(&format!("You said: {text}\n"))?,
            ServerEvent::AnswerDelta { text } => self.print(text)?,
            ServerEvent::ToolCall { call } => self.note(&format!("[used {}]", call.name)),
            ServerEvent::TurnEnded { speech_end_ms, silence_ms, .. } => {
                self.note(&format!(
                    "[the server ended the question after {silence_ms} ms of silence, at {speech_end_ms} ms into the recording]"
                ));
            }
            ServerEvent::Status { state: TurnState::Queued, position } => {
                self.note(&format!("[waiting in line{}]", position.map(|p| format!(": {p}")).unwrap_or_default()));
            }
            _ => {}
        }
        Ok(())
    }

    /// After the last event: the answer's end, its sources, the time to first audio, the conversation's id.
    pub fn turn_end(&self, summary: &TurnSummary, first_audio: Option<Duration>) -> Result<(), Failure> {
        if self.json {
            return Ok(());
        }
        let mut text = String::from("\n");
        if summary.interrupted {
            text.push_str("(interrupted)\n");
        }
        if !summary.sources.is_empty() {
            text.push_str("Sources:\n");
            for source in &summary.sources {
                text.push_str(&format!("  - {} ({})\n", source.title, source.id));
            }
        }
        if let Some(elapsed) = first_audio {
            let server = summary.timings.and_then(|t| t.first_audio_ms).map(|ms| format!(" (server: {ms} ms)")).unwrap_or_default();
            text.push_str(&format!("First audio: {} ms after the recording was sent{server}\n", elapsed.as_millis()));
        } else if let Some(ms) = summary.timings.and_then(|t| t.first_audio_from_speech_end_ms) {
            // Hands-free: the server heard where the speech stopped, which is when the user starts waiting.
            text.push_str(&format!("First audio: {ms} ms after the speech ended (measured by the server)\n"));
        }
        self.print(&text)?;
        if let Some(error) = &summary.speech_error {
            self.note(&format!("The answer was not spoken: {}", error.message));
        }
        if let Some(session) = &summary.session_id {
            self.note(&format!("Session: {session} (continue with --session {session})"));
        }
        Ok(())
    }

    pub fn history(&self, history: &SessionHistory) -> Result<(), Failure> {
        if self.json {
            return self.line(history);
        }
        let mut text = String::new();
        for turn in &history.turns {
            let who = match turn.role {
                Role::User => "you",
                Role::Assistant => "parlance",
            };
            let cut = if turn.interrupted { " (interrupted)" } else { "" };
            text.push_str(&format!("[{}] {who}: {}{cut}\n", turn.created_at.format("%Y-%m-%d %H:%M:%S"), turn.text));
            for source in &turn.sources {
                text.push_str(&format!("    source: {} ({})\n", source.title, source.id));
            }
        }
        self.print(&text)
    }

    pub fn added(&self, file: &Path, added: &AddNotesResponse) -> Result<(), Failure> {
        if self.json {
            return self.line(added);
        }
        let state = if added.added > 0 { "added" } else { "already stored" };
        let ids: Vec<&str> = added.notes.iter().map(|note| note.id.as_str()).collect();
        self.print(&format!("{}: {state} ({})\n", file.display(), ids.join(", ")))
    }

    pub fn notes(&self, page: &NotePage) -> Result<(), Failure> {
        if self.json {
            return self.line(page);
        }
        let mut text = String::new();
        for note in &page.notes {
            let source = note.source.as_deref().map(|s| format!(", from {s}")).unwrap_or_default();
            text.push_str(&format!("{}  {}  ({} chunks{source})\n", note.id, note.title, note.chunks));
        }
        let shown = page.notes.len() as u64;
        text.push_str(&format!("{} to {} of {} notes\n", page.offset + u64::from(shown > 0), page.offset + shown, page.total));
        self.print(&text)
    }

    pub fn hits(&self, found: &KnowledgeSearchResponse) -> Result<(), Failure> {
        if self.json {
            return self.line(found);
        }
        if found.hits.is_empty() {
            return self.print("No matching notes.\n");
        }
        let mut text = String::new();
        for hit in &found.hits {
            text.push_str(&format!("{:.3}  {}  ({})\n       {}\n", hit.score, hit.title, hit.id, hit.snippet.replace('\n', " ")));
        }
        self.print(&text)
    }

    pub fn voices(&self, list: &VoiceList) -> Result<(), Failure> {
        if self.json {
            return self.line(list);
        }
        if list.voices.is_empty() {
            return self.print("This server speaks no answers (it has no voice set up).\n");
        }
        let mut text = String::new();
        for voice in &list.voices {
            let default = if voice.default { "  (default)" } else { "" };
            text.push_str(&format!("{}  {}{default}\n", voice.id, voice.label));
        }
        self.print(&text)
    }

    pub fn deleted(&self, id: &str) -> Result<(), Failure> {
        if self.json {
            return self.line(&json!({ "deleted": id }));
        }
        self.print(&format!("Deleted {id}.\n"))
    }

    /// Reports a failure (stderr for people, a JSON line on stdout with `--json`) and chooses the exit code.
    pub fn failure(&self, failure: &Failure) -> ExitCode {
        let (code, message, exit) = match failure {
            Failure::Client(error) => (wire_code(error), error.to_string(), exit::code(error)),
            Failure::Local(message) => ("local".to_owned(), message.clone(), ExitCode::from(exit::LOCAL)),
            Failure::Usage(message) => ("usage".to_owned(), message.clone(), ExitCode::from(exit::USAGE)),
            Failure::Interrupted => ("interrupted".to_owned(), "stopped with Ctrl-C".to_owned(), ExitCode::from(exit::INTERRUPTED)),
        };
        if self.json {
            // Nothing more can be done if even this cannot be written.
            let _ = self.line(&json!({ "error": { "code": code, "message": message } }));
        } else {
            eprintln!("parlance-cli: {message}");
            if let Failure::Client(error) = failure
                && error.code() == Some(ErrorCode::Unauthorized)
            {
                eprintln!("parlance-cli: pass the server's sign-in token with --token or PARLANCE_TOKEN");
            }
        }
        exit
    }
}

/// The code a script switches on: the server's own when it sent one, else what happened here.
fn wire_code(error: &ClientError) -> String {
    match error {
        ClientError::Api { body, .. } | ClientError::Turn(body) => body.code.as_str().to_owned(),
        ClientError::Unreachable { .. } => "unreachable".to_owned(),
        ClientError::Disconnected(_) => "disconnected".to_owned(),
        ClientError::UnexpectedStatus { .. } => "unexpected_status".to_owned(),
        ClientError::Decode(_) => "unreadable_answer".to_owned(),
        ClientError::Protocol { .. } => "protocol_mismatch".to_owned(),
        ClientError::InvalidUrl(_) | ClientError::InvalidToken | ClientError::Audio(_) => "local".to_owned(),
    }
}

fn stdout_failed(error: std::io::Error) -> Failure {
    Failure::Local(format!("could not write to stdout: {error}"))
}
