//! What every bench binary measures with: medians and tails, milliseconds, and the audio tools that make
//! spoken questions here (espeak-ng, sox, ffmpeg from scripts/setup.sh).

#![allow(dead_code)] // Each bench binary uses a different part of this module.

use std::time::Duration;

/// (p50, p95) of the samples, sorted in place.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Runs a command-line audio tool; a bench cannot go on without its input, so failure ends it.
pub fn tool(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program).args(args).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// `text` spoken by espeak-ng into the WAV file `path`, read back.
pub fn spoken(path: &std::path::Path, text: &str) -> Vec<u8> {
    tool("espeak-ng", &["-w", path.to_str().expect("utf-8 path"), text]);
    std::fs::read(path).expect("recording")
}
