//! The worker's end of one request's event stream: token bytes in, whole UTF-8 text deltas out (a
//! character may be split over two tokens), and the one place that notices the listener has gone.

use encoding_rs::{Decoder, UTF_8};
use tokio::sync::mpsc;

use crate::llm::{ChatEvent, LlmError};

/// Events waiting for a slow reader before the worker blocks: a few sentences' worth.
pub const BUFFERED_EVENTS: usize = 64;

/// The reader dropped the stream: stop working for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

pub struct Output {
    events: mpsc::Sender<Result<ChatEvent, LlmError>>,
    decoder: Decoder,
}

impl Output {
    pub fn new(events: mpsc::Sender<Result<ChatEvent, LlmError>>) -> Self {
        Self { events, decoder: UTF_8.new_decoder_without_bom_handling() }
    }

    pub fn is_gone(&self) -> bool {
        self.events.is_closed()
    }

    /// Sends the complete characters among `bytes` and whatever was left over before; keeps an incomplete
    /// character's bytes for the next call.
    #[cfg(test)]
    pub fn text(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        let text = self.decode_text(bytes);
        self.send_text(text)
    }

    /// The complete characters among `bytes` and whatever was left over before, without sending them.
    pub fn decode_text(&mut self, bytes: &[u8]) -> String {
        self.decode(bytes, false)
    }

    /// Sends decoded text (nothing if it is empty).
    pub fn send_text(&self, text: String) -> Result<(), Gone> {
        if text.is_empty() { Ok(()) } else { self.send(Ok(ChatEvent::TextDelta(text))) }
    }

    /// Sends what is left of an incomplete character (as U+FFFD), at the end of the answer.
    pub fn finish_text(&mut self) -> Result<(), Gone> {
        let text = self.decode(&[], true);
        if text.is_empty() { Ok(()) } else { self.send(Ok(ChatEvent::TextDelta(text))) }
    }

    pub fn send(&self, event: Result<ChatEvent, LlmError>) -> Result<(), Gone> {
        self.events.blocking_send(event).map_err(|_| Gone)
    }

    fn decode(&mut self, bytes: &[u8], last: bool) -> String {
        let mut text = String::with_capacity(self.decoder.max_utf8_buffer_length(bytes.len()).unwrap_or(bytes.len() * 3 + 4));
        let mut rest = bytes;
        loop {
            let (result, read, _) = self.decoder.decode_to_string(rest, &mut text, last);
            rest = &rest[read..];
            match result {
                encoding_rs::CoderResult::InputEmpty => return text,
                encoding_rs::CoderResult::OutputFull => text.reserve(rest.len() * 3 + 4),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_over_two_tokens_arrives_whole() {
        let (sender, mut receiver) = mpsc::channel(8);
        let mut output = Output::new(sender);
        let euro = "€".as_bytes();
        output.text(b"costs 5").unwrap();
        output.text(&euro[..1]).unwrap();
        output.text(&euro[1..]).unwrap();
        output.text(b"!").unwrap();
        output.finish_text().unwrap();
        drop(output);
        let mut deltas = Vec::new();
        while let Some(Ok(ChatEvent::TextDelta(text))) = receiver.blocking_recv() {
            deltas.push(text);
        }
        assert_eq!(deltas, ["costs 5", "€", "!"]);
    }

    #[test]
    fn a_dangling_half_character_ends_as_a_replacement() {
        let (sender, mut receiver) = mpsc::channel(8);
        let mut output = Output::new(sender);
        output.text(&"é".as_bytes()[..1]).unwrap();
        output.finish_text().unwrap();
        assert!(matches!(receiver.blocking_recv(), Some(Ok(ChatEvent::TextDelta(text))) if text == "\u{FFFD}"));
    }

    #[test]
    fn a_dropped_reader_is_noticed() {
        let (sender, receiver) = mpsc::channel(8);
        let mut output = Output::new(sender);
        drop(receiver);
        assert!(output.is_gone());
        assert_eq!(output.text(b"hello"), Err(Gone));
    }
}
