//! Knowledge: notes split into embedded chunks with a full-text index, searched by hybrid retrieval. They live
//! in the database of `crate::store`, beside the conversations' lines.

mod base;
pub mod chunking;
mod closeness;
pub mod document;
pub mod evidence;
mod ingest;
mod rows;
mod search;
pub mod seed;
mod visibility;

pub use self::base::{AddTimings, Added, KnowledgeBase, KnowledgeError, SearchTimings};
pub use self::evidence::{Evidence, EvidenceSentence};
pub use self::ingest::IngestError;
pub use self::search::{Candidates, Fusion, Hit, Rankings, SearchMode};
