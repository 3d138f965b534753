//! What every model backend tells about itself, for `/health` and the logs, and how briefly a provider is
//! asked whether it answers.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long `/health` waits for a provider to answer before calling its stage unavailable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe's result stands: `/health` may be called every second by a monitor, and must stay cheap
/// for the providers it asks.
pub const PROBE_FOR: Duration = Duration::from_secs(5);

/// A backend's self-description. Never holds secrets: URLs are shown without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `openai` for any OpenAI-compatible API, `local` for models in this process.
    pub kind: &'static str,
    pub model: String,
    /// The provider's base URL or the model file.
    pub location: String,
    /// How long loading took at start-up, for models in this process.
    pub load_ms: Option<u64>,
}

/// The last result of a probe, kept for [`PROBE_FOR`]. Callers that arrive while a probe runs wait for it
/// instead of starting their own.
#[derive(Debug)]
pub struct Probed<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
    keep_for: Duration,
}

impl<T: Clone> Probed<T> {
    pub fn new(keep_for: Duration) -> Self {
        Self { last: tokio::sync::Mutex::new(None), keep_for }
    }

    /// The kept result while it is fresh, else what `probe` finds now (then kept).
    pub async fn get<F: Future<Output = T>>(&self, probe: impl FnOnce() -> F) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < self.keep_for
        {
            return result.clone();
        }
        let result = probe().await;
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_fresh_result_is_reused_and_a_stale_one_probed_again() {
        let probes = AtomicUsize::new(0);
        let probe = || async { probes.fetch_add(1, Ordering::SeqCst) };
        let kept = Probed::new(Duration::from_millis(200));
        assert_eq!(kept.get(probe).await, 0);
        assert_eq!(kept.get(probe).await, 0, "fresh: not asked again");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(kept.get(probe).await, 1, "stale: asked again");
        assert_eq!(probes.load(Ordering::SeqCst), 2);
    }
}
