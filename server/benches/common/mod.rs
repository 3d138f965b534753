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

/// Settles the thread count as the server does, logs to stderr when RUST_LOG is set (RUST_LOG=parlance_server=debug
/// shows where each turn's time went), and runs the bench on a tokio runtime. The first thing in `main`.
pub fn run_bench<F: std::future::Future<Output = ()>>(bench: impl FnOnce() -> F) {
    // SAFETY: first thing in main, no other thread yet (as the server does).
    unsafe { parlance_server::cpu::settle_thread_count() };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    }
    tokio::runtime::Runtime::new().expect("tokio runtime").block_on(bench());
}

/// The knowledge evaluation's notes (`eval/knowledge/notes`), each uploaded as a user adds a file; how many.
pub async fn add_eval_notes(address: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/knowledge/notes");
    let mut notes: Vec<std::path::PathBuf> =
        std::fs::read_dir(dir).expect("eval/knowledge/notes").map(|entry| entry.expect("a note").path()).collect();
    notes.sort();
    let client = reqwest::Client::new();
    for path in &notes {
        let name = path.file_name().and_then(|n| n.to_str()).expect("a file name").to_owned();
        let part = reqwest::multipart::Part::bytes(std::fs::read(path).expect("a note")).file_name(name.clone());
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = client.post(format!("http://{address}/api/knowledge")).multipart(form).send().await.expect("request");
        assert!(response.status().is_success(), "adding {name} failed: {}", response.status());
    }
    notes.len()
}
