//! `parlance-cli`: Parlance from the terminal, on `parlance-client`. See `parlance-cli --help` and the README's
//! "Clients" section.

mod args;
mod exit;
mod output;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use parlance_client::types::{KnowledgeSearchQuery, NotePageQuery, ServerEvent, SessionId, TurnDetection};
use parlance_client::{Client, ClientError, Turn, TurnSummary};

use crate::args::{Ask, Cli, Command, Encoding, Knowledge, Pace, Talk, TurnOptions};
use crate::output::Output;

/// A piece of a recording as a microphone would send it: a tenth of a second.
const PIECE: Duration = Duration::from_millis(100);
/// When the container does not say how long the recording is: compressed speech (Opus, AAC) runs at about
/// 32 kbit/s, so its bytes are paced as if it did.
const COMPRESSED_BYTES_PER_SECOND: usize = 4_000;
/// Pieces sent with `--pace fast`.
const FAST_PIECE_BYTES: usize = 16 * 1024;

/// Why the command failed, and so its exit code.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    /// A local problem: a file that cannot be read or written.
    Local(String),
    /// The command line is wrong in a way clap cannot see.
    Usage(String),
    /// The user pressed Ctrl-C during a turn.
    Interrupted,
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return output.failure(&Failure::Local(format!("could not start: {error}"))),
    };
    match runtime.block_on(run(cli, &output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => output.failure(&failure),
    }
}

async fn run(cli: Cli, output: &Output) -> Result<(), Failure> {
    let mut builder = Client::builder(cli.server);
    if let Some(token) = cli.token.filter(|token| !token.trim().is_empty()) {
        builder = builder.token(token);
    }
    let client = builder.build()?;
    match cli.command {
        Command::Ask(ask) => ask_question(&client, output, ask).await,
        Command::Talk(talk) => talk_file(&client, output, talk).await,
        Command::History { session } => {
            let history = client.history(&SessionId::new(session)).await?;
            output.history(&history)
        }
        Command::Knowledge(command) => knowledge(&client, output, command).await,
        Command::Voices => output.voices(&client.voices().await?),
    }
}

async fn ask_question(client: &Client, output: &Output, ask: Ask) -> Result<(), Failure> {
    let mut conversation = client.conversation().await?;
    if let Some(session) = &ask.turn.session {
        conversation.set_session(SessionId::new(session.clone()));
    }
    conversation.set_speech(ask.turn.rate, ask.turn.voice.clone());
    let turn = conversation.ask(ask.question.join(" "), ask.turn.save.is_some()).await?;
    let (summary, _) = show_turn(turn, output, None).await?;
    conversation.close().await;
    finish_turn(output, &summary, &ask.turn, None)
}

async fn talk_file(client: &Client, output: &Output, talk: Talk) -> Result<(), Failure> {
    let mut recording =
        std::fs::read(&talk.file).map_err(|error| Failure::Local(format!("could not read {}: {error}", talk.file.display())))?;
    let encoding = match talk.encoding {
        Some(encoding) => encoding,
        None => talk.file.extension().and_then(|e| e.to_str()).and_then(Encoding::from_extension).ok_or_else(|| {
            Failure::Usage(format!(
                "cannot tell the audio format of {} from its name: name it .wav, .webm, .ogg, .m4a or .pcm, or pass --encoding",
                talk.file.display()
            ))
        })?,
    };
    let encoding = if talk.hands_free {
        recording = hands_free_pcm(&talk, encoding, recording)?;
        Encoding::Pcm16
    } else {
        encoding
    };
    let (piece_bytes, every) = match talk.pace {
        Pace::Fast => (FAST_PIECE_BYTES, None),
        Pace::Realtime => {
            let per_second = bytes_per_second(encoding, &recording);
            let piece = usize::try_from(u128::try_from(per_second).unwrap_or(u128::MAX) * PIECE.as_millis() / 1000).unwrap_or(usize::MAX);
            (piece.max(1), Some(PIECE))
        }
    };

    let mut conversation = client.conversation().await?;
    if let Some(session) = &talk.turn.session {
        conversation.set_session(SessionId::new(session.clone()));
    }
    conversation.set_speech(talk.turn.rate, talk.turn.voice.clone());
    let mut upload = if talk.hands_free {
        let mut detection = TurnDetection::default();
        if let Some(silence_ms) = talk.silence_ms {
            detection.silence_ms = silence_ms;
        }
        conversation.start_hands_free(detection).await?
    } else {
        conversation.start_audio(encoding.into()).await?
    };
    let pieces = recording.chunks(piece_bytes).count();
    let progress = output.progress(pieces as u64, "sending the recording");
    let started = tokio::time::Instant::now();
    for (index, piece) in recording.chunks(piece_bytes).enumerate() {
        if let Some(every) = every {
            tokio::time::sleep_until(started + every * u32::try_from(index).unwrap_or(u32::MAX)).await;
        }
        upload.send(piece.to_vec()).await?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let sent = Instant::now();
    // Hands-free, the server has usually ended the turn during the silence sent: this `end_turn` then crosses
    // its `turn_ended` and is ignored. The wait is timed by the server from the end of the speech instead.
    let turn = upload.end().await?;
    let (summary, first_audio) = show_turn(turn, output, (!talk.hands_free).then_some(sent)).await?;
    conversation.close().await;
    finish_turn(output, &summary, &talk.turn, first_audio)
}

/// Hands-free turns stream raw 16 kHz 16-bit mono audio, which the server listens to as it comes: a `.pcm` file
/// as it is, or the samples of a WAV in that format.
fn hands_free_pcm(talk: &Talk, encoding: Encoding, recording: Vec<u8>) -> Result<Vec<u8>, Failure> {
    let unsuitable = |why: String| {
        Failure::Usage(format!(
            "--hands-free streams raw 16 kHz 16-bit mono audio: {why} (convert it, e.g. `ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`)"
        ))
    };
    match encoding {
        Encoding::Pcm16 => Ok(recording),
        Encoding::Wav => {
            let reader = hound::WavReader::new(std::io::Cursor::new(recording))
                .map_err(|error| unsuitable(format!("{} is not a readable WAV ({error})", talk.file.display())))?;
            let spec = reader.spec();
            if (spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format) != (16_000, 1, 16, hound::SampleFormat::Int) {
                return Err(unsuitable(format!(
                    "{} is {} Hz, {} channel(s), {} bits",
                    talk.file.display(),
                    spec.sample_rate,
                    spec.channels,
                    spec.bits_per_sample
                )));
            }
            let samples = reader.into_samples::<i16>().collect::<Result<Vec<i16>, _>>().map_err(|error| unsuitable(format!("{error}")))?;
            Ok(samples.iter().flat_map(|sample| sample.to_le_bytes()).collect())
        }
        other => Err(unsuitable(format!("{} is {other:?}", talk.file.display()))),
    }
}

/// How many bytes a second of the recording takes: from its length as its container states it, else estimated.
fn bytes_per_second(encoding: Encoding, recording: &[u8]) -> usize {
    match parlance_client::audio::recording_duration(encoding.into(), recording) {
        Some(length) if length >= Duration::from_millis(100) => (recording.len() as f64 / length.as_secs_f64()).ceil() as usize,
        _ => COMPRESSED_BYTES_PER_SECOND,
    }
}

/// Shows a turn's events as they arrive; returns what it said and, when `clock` is given, how long after it the
/// first audio came. Ctrl-C stops the turn on the server (nothing was played, so nothing of the answer is kept)
/// and the command then ends with [`exit::INTERRUPTED`]; a second Ctrl-C ends it at once.
async fn show_turn(mut turn: Turn<'_>, output: &Output, clock: Option<Instant>) -> Result<(TurnSummary, Option<Duration>), Failure> {
    let mut summary = TurnSummary::default();
    let mut first_audio = None;
    let mut stopping = false;
    // One listener for the whole turn: a Ctrl-C between two events is not lost.
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    // False when Ctrl-C cannot be listened for: then it ends the command as usual.
    let mut listening = true;
    loop {
        let next = tokio::select! {
            event = turn.next() => Next::Event(event),
            signal = &mut ctrl_c, if listening => Next::CtrlC(signal.is_ok()),
        };
        let event = match next {
            Next::Event(Some(event)) => event?,
            Next::Event(None) => break,
            Next::CtrlC(true) if !stopping => {
                stopping = true;
                ctrl_c = Box::pin(tokio::signal::ctrl_c());
                output.note("\n[stopping the answer]");
                turn.interrupt(None).await?;
                continue;
            }
            Next::CtrlC(false) => {
                listening = false;
                continue;
            }
            Next::CtrlC(true) => return Err(Failure::Interrupted),
        };
        if first_audio.is_none() && matches!(event, ServerEvent::AudioChunk { .. }) {
            first_audio = clock.map(|clock| clock.elapsed());
        }
        output.event(&event)?;
        summary.apply(&event)?;
    }
    if stopping {
        output.turn_end(&summary, first_audio)?;
        return Err(Failure::Interrupted);
    }
    Ok((summary, first_audio))
}

/// What ended the wait for a turn's next event.
enum Next {
    Event(Option<Result<ServerEvent, ClientError>>),
    /// Ctrl-C; `false` when the signal could not be listened for.
    CtrlC(bool),
}

fn finish_turn(output: &Output, summary: &TurnSummary, options: &TurnOptions, first_audio: Option<Duration>) -> Result<(), Failure> {
    output.turn_end(summary, first_audio)?;
    if let Some(path) = &options.save {
        if summary.audio.is_empty() {
            return Err(match &summary.speech_error {
                Some(error) => Failure::Client(ClientError::Turn(error.clone())),
                None => Failure::Local("the answer came without audio, so nothing was saved".to_owned()),
            });
        }
        let wav = parlance_client::audio::join_wav(&summary.audio)?;
        write_file(path, &wav)?;
        output.note(&format!("Saved the spoken answer to {}", path.display()));
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|error| Failure::Local(format!("could not write {}: {error}", path.display())))
}

async fn knowledge(client: &Client, output: &Output, command: Knowledge) -> Result<(), Failure> {
    match command {
        Knowledge::Add { files } => {
            let progress = output.progress(files.len() as u64, "adding");
            for file in files {
                let bytes = std::fs::read(&file).map_err(|error| Failure::Local(format!("could not read {}: {error}", file.display())))?;
                let name = file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "document.md".to_owned());
                progress.set_message(name.clone());
                let added = client.add_documents(vec![(name, bytes)]).await?;
                progress.suspend(|| output.added(&file, &added))?;
                progress.inc(1);
            }
            progress.finish_and_clear();
            Ok(())
        }
        Knowledge::List { offset, limit } => {
            output.notes(&client.list_notes(NotePageQuery { offset, limit, order: Default::default() }).await?)
        }
        Knowledge::Search { query, k } => output.hits(&client.search(&KnowledgeSearchQuery { q: query, k }).await?),
        Knowledge::Delete { id } => {
            client.delete_note(&id).await?;
            output.deleted(&id)
        }
    }
}

/// Whether progress may be drawn: a person is watching stderr.
fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
