//! Parlance's server: a voice assistant's pipeline (speech-to-text -> agent -> text-to-speech) behind an
//! HTTP API, with the web app served from the same port.

// The public modules are what the binary, the benches and the tests use: the stages, the stores and their
// plumbing, and the commands. The turn (`pipeline`), the edge (`routes`, `streaming`) and the assembly
// (`state`) are reached only through `app`, `start` and `AppState`.
pub mod access;
pub mod agent;
pub mod archive;
pub mod audio;
pub mod backend;
mod budget;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod embeddings;
pub mod events;
pub mod exit;
pub mod knowledge;
pub mod llm;
pub mod models;
pub mod onnx;
pub mod openai;
mod pipeline;
mod routes;
pub mod sessions;
mod shutdown;
mod state;
pub mod store;
mod streaming;
pub mod stt;
mod telemetry;
pub mod text;
pub mod tts;
pub mod vad;

use axum::Router;

pub use crate::config::{Config, Settings};
pub use crate::state::{AppState, Stages, StartupError, Stopper};

/// The whole application, ready to serve.
pub fn app(settings: &Settings) -> Result<Router, StartupError> {
    let state = AppState::from_settings(settings)?;
    Ok(routes::router(state, settings))
}

/// The application on a state built by hand (see [`AppState::new`]); the settings give its limits, allowed
/// origins and web app folder.
pub fn router(state: AppState, settings: &Settings) -> Router {
    routes::router(state, settings)
}

/// `listener` with Nagle's algorithm off on every connection it accepts. A turn sends several small frames in a
/// row (status, text, `done`); with Nagle on, each one after the first waits for the client's delayed ACK (up to
/// 40 ms on Linux), a floor under every turn whatever the load (see the soak bench in the README).
pub fn without_nagle(listener: tokio::net::TcpListener) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(no_delay)
}

fn no_delay(connection: &mut tokio::net::TcpStream) {
    if let Err(error) = connection.set_nodelay(true) {
        tracing::debug!(%error, "could not turn Nagle's algorithm off on a connection");
    }
}

/// How often the audio archive is swept of turns past their retention (and once at start-up).
const ARCHIVE_SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The application as `parlance` serves it: like [`app`], but the database is opened first, so a database
/// this version cannot read stops start-up with a message, and the shipped notes are seeded; the audio archive,
/// if on, is swept now and every hour by a task of its own.
pub async fn start(settings: &Settings) -> Result<Router, StartupError> {
    Ok(start_stoppable(settings).await?.0)
}

/// [`start`], with the handle that stops the server in order (see [`Stopper`]).
pub async fn start_stoppable(settings: &Settings) -> Result<(Router, Stopper), StartupError> {
    let state = AppState::from_settings(settings)?;
    knowledge::seed::prepare(&state.knowledge).await?;
    if let Some(archive) = &state.archive {
        archive.keep_sweeping(ARCHIVE_SWEEP_PERIOD);
    }
    // Without it the first hands-free question waited out the long silence: judging its end of turn needed the
    // whole prompt read first, over 2 s on two cores.
    state.pipeline.warm_up();
    let stopper = Stopper::new(state.shutdown.clone(), std::sync::Arc::clone(&state.pipeline));
    Ok((routes::router(state, settings), stopper))
}
