//! Any bytes as an upload: recognised (or refused) by their leading bytes, then decoded to 16 kHz samples the
//! way the local speech-to-text does, with its length limit. It must return, never crash or hang.
//!
//! A panic inside the decoders is caught by `decode_speech` and becomes a refusal; run with `fuzz!` instead of
//! `fuzz_nohook!` to count those too (that is how the ones in server/tests/fuzz-crashes were found).

use bytes::Bytes;
use parlance_fuzz::audio::{AudioUpload, decode_speech};

/// The local speech-to-text's limit (`stt::MAX_RECORDING_SECS`).
const MAX_RECORDING_SECS: u64 = 120;

fn main() {
    afl::fuzz_nohook!(|data: &[u8]| {
        if let Ok(upload) = AudioUpload::from_bytes(Bytes::copy_from_slice(data)) {
            if let Ok(samples) = decode_speech(&upload, MAX_RECORDING_SECS) {
                assert!(samples.len() as u64 <= (MAX_RECORDING_SECS + 1) * 16_000, "decoded past the length limit");
            }
        }
    });
}
