//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use parlance_client::types::AudioEncoding;

use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "parlance-cli",
    version,
    about = "Talk to a Parlance server from the terminal: ask, talk, read a conversation, manage the knowledge base.",
    after_help = exit::HELP
)]
pub struct Cli {
    /// The server's address.
    #[arg(long, global = true, env = "PARLANCE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,

    /// The sign-in token, for a server that needs one (the one it printed, or its DATA_DIR/token).
    #[arg(long, global = true, env = "PARLANCE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// For scripts: one JSON object per line on stdout (each socket event as the server sent it, or the
    /// route's response), and errors as {"error": {"code", "message"}}.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask a typed question; the answer is printed as it is written.
    Ask(Ask),
    /// Ask a recorded question: the file is streamed over the socket as a microphone would send it; prints
    /// the transcript, the answer, its sources and the time to the first audio.
    Talk(Talk),
    /// Print a conversation as remembered.
    History {
        /// The conversation's id (printed after each `ask` and `talk`).
        session: String,
    },
    /// The knowledge base: add documents, list, search, delete notes.
    #[command(subcommand)]
    Knowledge(Knowledge),
    /// The voices answers can be spoken in (for `--voice`), the default marked.
    Voices,
}

#[derive(Debug, Args)]
pub struct Ask {
    /// The question (several words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    pub question: Vec<String>,
    #[command(flatten)]
    pub turn: TurnOptions,
}

#[derive(Debug, Args)]
pub struct Talk {
    /// The recording: .wav, .webm, .ogg/.opus, .m4a/.mp4, or raw 16 kHz 16-bit mono .pcm.
    pub file: PathBuf,
    /// The recording's format, when its name does not tell.
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// How fast to send it: `realtime` as a microphone would (over the length its container states), `fast`
    /// as fast as the connection allows.
    #[arg(long, value_enum, default_value_t = Pace::Realtime)]
    pub pace: Pace,
    /// Let the server hear when the question is over, as the web app's hands-free mode does: the recording
    /// (raw .pcm, or a 16 kHz mono 16-bit .wav) is streamed as it is, silence included, and the turn ends
    /// after a pause (shorter when the words sound finished) instead of at the end of the file.
    #[arg(long)]
    pub hands_free: bool,
    /// With --hands-free: how long a pause ends a question that sounds unfinished, in milliseconds.
    #[arg(long, value_name = "MS", requires = "hands_free", value_parser = clap::value_parser!(u32).range(200..=5000))]
    pub silence_ms: Option<u32>,
    #[command(flatten)]
    pub turn: TurnOptions,
}

#[derive(Debug, Args)]
pub struct TurnOptions {
    /// Continue this conversation instead of starting a new one.
    #[arg(long)]
    pub session: Option<String>,
    /// Write the spoken answer to this WAV file (its sentences joined). Nothing is played.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// The voice of the spoken answer (an id from `parlance-cli voices`) instead of the server's default; `ask`
    /// asks for speech only with --save.
    #[arg(long, value_name = "ID")]
    pub voice: Option<String>,
    /// Speak the answer this much faster (2) or slower (0.5) than the voice's own pace.
    #[arg(long, value_name = "RATE", value_parser = speech_rate)]
    pub rate: Option<f32>,
}

fn speech_rate(text: &str) -> Result<f32, String> {
    let range = parlance_client::types::SPEECH_RATE_RANGE;
    match text.trim().parse::<f32>() {
        Ok(rate) if range.contains(&rate) => Ok(rate),
        _ => Err(format!("a number from {} to {} (1 is the voice's own pace)", range.start(), range.end())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pace {
    Realtime,
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    Wav,
    Webm,
    Ogg,
    Mp4,
    Pcm16,
}

impl From<Encoding> for AudioEncoding {
    fn from(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Wav => Self::Wav,
            Encoding::Webm => Self::Webm,
            Encoding::Ogg => Self::Ogg,
            Encoding::Mp4 => Self::Mp4,
            Encoding::Pcm16 => Self::Pcm16,
        }
    }
}

impl Encoding {
    /// The format a file's extension names, if any.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "wav" | "wave" => Some(Self::Wav),
            "webm" | "weba" => Some(Self::Webm),
            "ogg" | "oga" | "opus" => Some(Self::Ogg),
            "m4a" | "mp4" => Some(Self::Mp4),
            "pcm" | "raw" => Some(Self::Pcm16),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Knowledge {
    /// Add documents (.md or .txt); a document already stored is not stored twice.
    Add {
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// List the notes, oldest first.
    List {
        /// Notes to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Notes to show, 1 to 100.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Find the notes that best match a question or phrase.
    Search {
        query: String,
        /// How many notes, 1 to 50.
        #[arg(short, long, default_value_t = 5)]
        k: u32,
    },
    /// Delete a note by its id (from `list` or `search`).
    Delete { id: String },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
