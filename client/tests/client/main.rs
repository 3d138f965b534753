//! The client crate and `parlance-cli` against the real server, started in this process on a random port
//! (as the server's own tests start it): fake model stages where the model is not the point, real embeddings
//! for the knowledge base, and every local model for a spoken question.

// The server's test helpers (fake stages speaking the real protocols, the model installer, espeak-ng audio).
#[path = "../../../server/tests/it/support/mod.rs"]
mod support;

mod audio;
mod cli;
mod local_models;
mod servers;
mod turns;
