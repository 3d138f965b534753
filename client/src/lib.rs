//! A typed async client for [Parlance](https://example.invalid/parlance): the JSON API over HTTP and the
//! streaming conversation over the WebSocket, on the wire types of `parlance-shared` (the same ones the server
//! and the web app use, so a change of the contract is a compile error here).
//!
//! - [`Client`]: one method per HTTP route (`chat`, `voice`, `history`, the knowledge base, `health`), errors
//!   typed from the server's [`ErrorBody`](parlance_shared::ErrorBody) as [`ClientError`].
//! - [`Conversation`]: the socket; each [`Turn`] is a [`Stream`](futures::Stream) of
//!   [`ServerEvent`](parlance_shared::ServerEvent)s (transcript, answer text as it is written, tool calls,
//!   audio per sentence, `done`), can be interrupted, and the socket is reopened when it was lost.
//! - [`audio::join_wav`]: the per-sentence WAVs of an answer as one file.
//!
//! ```no_run
//! # async fn run() -> Result<(), parlance_client::ClientError> {
//! use futures::StreamExt;
//! use parlance_client::Client;
//! use parlance_shared::ServerEvent;
//!
//! // The token as the server printed it (or PARLANCE_TOKEN); leave it out on a server without sign-in.
//! let client = Client::builder("http://127.0.0.1:8080").token("my-sign-in-token-1234").build()?;
//! let mut conversation = client.conversation().await?;
//! let mut turn = conversation.ask("What time is it?", true).await?;
//! while let Some(event) = turn.next().await {
//!     match event? {
//!         ServerEvent::AnswerDelta { text } => print!("{text}"),
//!         // The user started talking over the answer: stop it, keeping what was heard.
//!         ServerEvent::AudioChunk { sequence: 2, .. } => turn.interrupt(Some(1)).await?,
//!         ServerEvent::Interrupted { kept_answer, .. } => println!("\n(kept: {kept_answer})"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod audio;
mod error;
mod http;
mod socket;

pub use error::{BoxError, ClientError, ErrorKind};
pub use http::{Client, ClientBuilder};
pub use socket::{AudioUpload, Conversation, Reconnect, Turn, TurnSummary};

/// The wire types, re-exported so a client needs only this crate.
pub use parlance_shared as types;
