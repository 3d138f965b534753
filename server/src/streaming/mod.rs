//! The streaming conversation behind `GET /api/ws`: audio frames in, events out as the turn goes, sentence by
//! sentence speech, and barge-in. The protocol types are in `parlance_shared::stream`; the socket itself (its
//! frames, and failures in the wire's words) is the edge's, in `routes/ws.rs`.

mod barge_in;
mod connection;
mod early;
mod pauses;
mod playback;
mod recording;
mod speculation;
mod turn;

pub use self::connection::{Connection, ProtocolError, Reply, SocketError};
pub use self::recording::RecordingError;
