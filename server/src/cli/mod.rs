//! The commands besides serving (`parlance models`, `parlance ingest`): the binary's other entry points, at the
//! top beside `main.rs`. Their flags are declared with the others in `crate::config`.

mod ingest;
mod models;

pub use self::ingest::{IngestCommandError, IngestReport, ingest_paths, run_ingest_command};
pub use self::models::{ModelsCommandError, run_models_command};
