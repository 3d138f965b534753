//! The server's audio module, compiled here as it is there: what the fuzz targets call is the code that reads
//! every upload and every streamed recording.

#[path = "../../server/src/audio/mod.rs"]
pub mod audio;
