//! What the server counts and times, for `GET /metrics` in Prometheus' text format. Each server (each
//! [`crate::AppState`]) has a recorder of its own rather than the process-wide one, so two servers in one
//! process (the tests run many) never mix their figures. The pipeline, the line of turns and the edge report
//! here; only the edge renders it.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use parlance_shared::{Stage, StageTimings};

/// Latency buckets, in seconds: from a cached answer to a long spoken turn on a slow machine.
const LATENCY_BUCKETS: [f64; 15] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

const STT_SECONDS: &str = "parlance_stt_seconds";
const FIRST_TOKEN_SECONDS: &str = "parlance_first_token_seconds";
const FIRST_AUDIO_SECONDS: &str = "parlance_first_audio_seconds";
const TURN_SECONDS: &str = "parlance_turn_seconds";
const QUEUE_WAIT_SECONDS: &str = "parlance_queue_wait_seconds";
const TURNS: &str = "parlance_turns_total";
const ERRORS: &str = "parlance_errors_total";
const QUEUE_WAITING: &str = "parlance_queue_waiting";
const TURNS_RUNNING: &str = "parlance_turns_running";
const OPEN_SOCKETS: &str = "parlance_open_sockets";
const MODEL_LOAD_SECONDS: &str = "parlance_model_load_seconds";

/// How a turn ended, for `parlance_turns_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnOutcome {
    /// Answered (its speech may still have failed: the written answer stands).
    Done,
    /// Stopped before its end: the user interrupted, or the client left.
    Interrupted,
    Failed,
    /// The line was full.
    RefusedBusy,
}

impl TurnOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::RefusedBusy => "refused_busy",
        }
    }
}

/// What a finished turn measured, beyond its wire timings.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnFigures {
    /// The question was spoken (so speech-to-text ran).
    pub spoken: bool,
    /// From the model's start to its first piece of answer.
    pub first_token: Option<Duration>,
}

pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        // Histograms with buckets (not the exporter's default summaries): Prometheus can add buckets up across
        // servers and compute any quantile later.
        let recorder = match PrometheusBuilder::new().set_buckets(&LATENCY_BUCKETS) {
            Ok(builder) => builder.build_recorder(),
            // Only an empty bucket list is refused.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let telemetry = Self { recorder, handle };
        telemetry.describe();
        telemetry
    }

    fn with<T>(&self, record: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder as &dyn Recorder, record)
    }

    fn describe(&self) {
        self.with(|| {
            metrics::describe_histogram!(STT_SECONDS, Unit::Seconds, "Speech-to-text of a spoken turn");
            metrics::describe_histogram!(FIRST_TOKEN_SECONDS, Unit::Seconds, "From the model's start to its first piece of answer");
            metrics::describe_histogram!(
                FIRST_AUDIO_SECONDS,
                Unit::Seconds,
                "From the end of the question to the first audio sent (streamed turns)"
            );
            metrics::describe_histogram!(TURN_SECONDS, Unit::Seconds, "A whole answered turn, its wait in line included");
            metrics::describe_histogram!(
                QUEUE_WAIT_SECONDS,
                Unit::Seconds,
                "Time a turn (or a /v1 call) waited in line for a place to run"
            );
            metrics::describe_counter!(TURNS, "Turns by how they ended: done, interrupted, failed, refused_busy");
            metrics::describe_counter!(ERRORS, "Error responses and error events by their code");
            metrics::describe_gauge!(QUEUE_WAITING, "Turns waiting in line now");
            metrics::describe_gauge!(TURNS_RUNNING, "Turns holding a place to run now");
            metrics::describe_gauge!(OPEN_SOCKETS, "Streaming sockets open now");
            metrics::describe_gauge!(MODEL_LOAD_SECONDS, Unit::Seconds, "How long loading each embedded model took at start-up");
        });
    }

    /// Everything recorded, in Prometheus' text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The one place a turn's end is counted and its timings recorded; `timings` only for an answered turn.
    pub fn turn_finished(&self, outcome: TurnOutcome, timings: Option<&StageTimings>, figures: TurnFigures) {
        self.with(|| {
            metrics::counter!(TURNS, "outcome" => outcome.label()).increment(1);
            if let Some(timings) = timings {
                if figures.spoken {
                    metrics::histogram!(STT_SECONDS).record(seconds(timings.stt_ms));
                }
                if let Some(first_token) = figures.first_token {
                    metrics::histogram!(FIRST_TOKEN_SECONDS).record(first_token.as_secs_f64());
                }
                if let Some(first_audio) = timings.first_audio_ms {
                    metrics::histogram!(FIRST_AUDIO_SECONDS).record(seconds(first_audio));
                }
                metrics::histogram!(TURN_SECONDS).record(seconds(timings.total_ms));
            }
        });
        // Histogram samples wait in the recorder until drained: once per turn keeps them bounded even when
        // nobody reads /metrics.
        self.handle.run_upkeep();
    }

    /// A turn (or a `/v1` call) got its place to run after waiting `waited`.
    pub fn waited_in_line(&self, waited: Duration) {
        self.with(|| metrics::histogram!(QUEUE_WAIT_SECONDS).record(waited.as_secs_f64()));
    }

    /// The line now: turns holding a place, and turns waiting for one.
    pub fn line(&self, running: usize, waiting: usize) {
        self.with(|| {
            metrics::gauge!(TURNS_RUNNING).set(running as f64);
            metrics::gauge!(QUEUE_WAITING).set(waiting as f64);
        });
    }

    /// An error response or event went out with this code.
    pub fn error(&self, code: &'static str) {
        self.with(|| metrics::counter!(ERRORS, "code" => code).increment(1));
    }

    /// A model of this process finished loading at start-up.
    pub fn model_loaded(&self, stage: Stage, load_ms: u64) {
        self.with(|| metrics::gauge!(MODEL_LOAD_SECONDS, "stage" => stage_label(stage)).set(seconds(load_ms)));
    }

    /// Counts a socket open until the returned guard is dropped.
    pub fn socket_opened(self: &Arc<Self>) -> OpenSocket {
        self.with(|| metrics::gauge!(OPEN_SOCKETS).increment(1.0));
        OpenSocket { telemetry: Arc::clone(self) }
    }
}

/// One open socket, counted in `parlance_open_sockets` while it lives.
pub struct OpenSocket {
    telemetry: Arc<Telemetry>,
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.telemetry.with(|| metrics::gauge!(OPEN_SOCKETS).decrement(1.0));
    }
}

fn seconds(ms: u64) -> f64 {
    Duration::from_millis(ms).as_secs_f64()
}

fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => "stt",
        Stage::Llm => "llm",
        Stage::Tts => "tts",
        Stage::Embeddings => "embeddings",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_counts_only_its_own() {
        let one = Telemetry::new();
        let other = Telemetry::new();
        let timings = StageTimings { stt_ms: 300, total_ms: 1200, first_audio_ms: Some(500), ..StageTimings::default() };
        one.turn_finished(TurnOutcome::Done, Some(&timings), TurnFigures { spoken: true, first_token: Some(Duration::from_millis(80)) });
        one.turn_finished(TurnOutcome::RefusedBusy, None, TurnFigures::default());
        let text = one.render();
        assert!(text.contains("parlance_turns_total{outcome=\"done\"} 1"), "{text}");
        assert!(text.contains("parlance_turns_total{outcome=\"refused_busy\"} 1"), "{text}");
        assert!(text.contains("parlance_stt_seconds_count 1"), "{text}");
        assert!(text.contains("parlance_turn_seconds_sum 1.2"), "{text}");
        assert!(text.contains("parlance_first_audio_seconds_bucket{le=\"0.5\"} 1"), "{text}");
        assert!(!other.render().contains("parlance_turns_total{"), "{}", other.render());
    }

    #[test]
    fn open_sockets_are_counted_while_open() {
        let telemetry = Arc::new(Telemetry::new());
        let first = telemetry.socket_opened();
        let second = telemetry.socket_opened();
        assert!(telemetry.render().contains("parlance_open_sockets 2"), "{}", telemetry.render());
        drop(first);
        drop(second);
        assert!(telemetry.render().contains("parlance_open_sockets 0"), "{}", telemetry.render());
    }
}
