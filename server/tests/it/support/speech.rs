//! Spoken test audio made here (espeak-ng, sox, ffmpeg from scripts/setup.sh), and judging speech recognition
//! the way it is usually reported.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command-line audio tool, failing the test with its error output if it fails.
pub fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} could not start: {e}"));
    assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// `text` spoken by espeak-ng into `dir/name.wav`.
pub fn speak(dir: &Path, name: &str, text: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.wav"));
    run("espeak-ng", &["-w", wav.to_str().expect("utf-8 path"), text]);
    wav
}

/// Word error rate of the transcript against the reference: (substitutions + insertions + deletions) / words,
/// after lower-casing and dropping punctuation, as WER is usually reported.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let words = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>().to_lowercase())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (reference, hypothesis) = (words(reference), words(hypothesis));
    strsim::generic_levenshtein(&reference, &hypothesis) as f64 / reference.len().max(1) as f64
}
