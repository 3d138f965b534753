//! The browser's audio: recording the question, metering the microphone, playing the answer.

pub mod level;
pub mod output;
pub mod recorder;
