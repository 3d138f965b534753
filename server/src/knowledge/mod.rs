//! Knowledge and memory on one embedded LanceDB database: notes split into embedded chunks with a full-text
//! index, searched by hybrid retrieval; the conversations' lines live in the same database (see
//! `sessions::LanceSessions`).

mod base;
pub mod chunking;
mod closeness;
pub mod command;
pub mod document;
mod ingest;
mod rows;
pub mod schema;
mod search;
pub mod seed;
pub mod store;

pub use self::base::{AddTimings, Added, KnowledgeBase, KnowledgeError, SearchTimings};
pub use self::ingest::IngestError;
pub use self::search::{Candidates, Fusion, Hit, Rankings, SearchMode};
pub use self::store::{Database, StoreError};
