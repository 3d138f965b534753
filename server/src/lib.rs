//! Parlance's server: a voice assistant's pipeline (speech-to-text -> agent -> text-to-speech) behind an
//! HTTP API, with the web app served from the same port.

pub mod agent;
pub mod audio;
pub mod backend;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod embeddings;
pub mod events;
pub mod knowledge;
pub mod llm;
pub mod models;
pub mod onnx;
pub mod openai;
pub mod pipeline;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod store;
pub mod streaming;
pub mod stt;
pub mod text;
pub mod tts;

use axum::Router;

pub use crate::config::{Config, Settings};
pub use crate::state::{AppState, StartupError};

/// The whole application, ready to serve.
pub fn app(settings: &Settings) -> Result<Router, StartupError> {
    let state = AppState::from_settings(settings)?;
    Ok(routes::router(state, settings))
}

/// The application as `parlance` serves it: like [`app`], but the database is opened first, so a database
/// this version cannot read stops start-up with a message, and the shipped notes are seeded.
pub async fn start(settings: &Settings) -> Result<Router, StartupError> {
    let state = AppState::from_settings(settings)?;
    knowledge::seed::prepare(&state.knowledge).await?;
    Ok(routes::router(state, settings))
}
