//! Parlance's web app: a Leptos client-side app that scripts/build-web.sh builds for the browser.
//!
//! Talks to the Parlance server on the same origin, using the request and response types of
//! `parlance-shared`. The crate also compiles for the host so `cargo test --workspace` can run the pure
//! parts (the turn state machine, gestures, error wording, formatting); everything that needs a browser only runs inside one.

pub mod api;
mod app;
pub mod audio;
mod composer;
pub mod conversation;
pub mod gesture;
mod hands_free;
pub mod library;
mod mic_button;
mod panels;
pub mod prefs;
mod session_store;
pub mod settings;
pub mod sign_in;
pub mod streaming;
mod turns;
pub mod voice_state;

pub use app::App;
