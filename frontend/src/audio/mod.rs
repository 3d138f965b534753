//! The browser's audio: recording the question (whole, or streamed while it is spoken), metering the
//! microphone, playing the answer (whole, or chunk by chunk without gaps).

pub mod capture;
pub mod level;
pub mod output;
pub mod recorder;
pub mod schedule;
pub mod stream_player;
