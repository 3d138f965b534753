//! Captured audio on its way to the server: small capture frames (20 ms, what the voice detector needs)
//! gathered into binary WebSocket frames of about 100 ms, as signed 16-bit little-endian samples
//! (`AudioEncoding::Pcm16`). Fewer, larger frames cost less per message; much larger ones would delay the end
//! of the turn.

use parlance_shared::AudioEncoding;

/// 100 ms at 16 kHz.
pub const SAMPLES_PER_MESSAGE: usize = AudioEncoding::PCM16_SAMPLE_RATE as usize / 10;

#[derive(Debug, Default)]
pub struct FrameBatcher {
    pending: Vec<u8>,
}

impl FrameBatcher {
    /// Adds samples; returns a message's bytes once about 100 ms have gathered.
    pub fn push(&mut self, samples: &[i16]) -> Option<Vec<u8>> {
        self.pending.extend(samples.iter().flat_map(|sample| sample.to_le_bytes()));
        (self.pending.len() >= SAMPLES_PER_MESSAGE * 2).then(|| std::mem::take(&mut self.pending))
    }

    /// Whatever is left, at the end of the turn.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_ms_frames_leave_in_hundred_ms_messages_little_endian() {
        let mut batcher = FrameBatcher::default();
        let frame: Vec<i16> = (0..320).map(|n| n - 160).collect();
        let sent: Vec<Vec<u8>> = (0..12).filter_map(|_| batcher.push(&frame)).collect();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|message| message.len() == 3200));
        assert_eq!(&sent[0][..4], &[0x60, 0xff, 0x61, 0xff], "-160, -159 as i16 LE");
        assert_eq!(batcher.flush().map(|rest| rest.len()), Some(2 * 320 * 2));
        assert_eq!(batcher.flush(), None);
    }
}
