//! The streaming conversation over `GET /api/ws`: the socket and its reconnects, the audio frames sent over it,
//! and the hands-free voice detector. The message types come from `parlance_shared::stream`.

pub mod backoff;
pub mod endpoint;
pub mod frames;
pub mod socket;
pub mod vad;
