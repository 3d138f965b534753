//! How the embedded models share the machine's cores: how many threads they use, and who goes first while an
//! answer is spoken.
//!
//! During a streamed answer the language model writes the next sentences while the voice synthesizes the
//! current one. Both use every core (llama.cpp and ONNX Runtime each run a thread per core and spin while they
//! wait), so side by side both slow down: in one `first_audio` run a 1.5 s first clause took 178 ms to
//! synthesize beside generation, while a 2.3 s sentence after it took 119 ms. Someone is waiting to hear the
//! speech; nobody waits for the model's later sentences yet (the spoken ones take seconds to play). So speech
//! goes first: the model pauses between tokens while a sentence is being synthesized. Over 2 x 8 bench
//! questions the time from the first words to the first audio fell from 5.10 s to 4.62 s in total.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest the model waits behind speech, whatever happens to the synthesis (a stuck or very long
/// sentence must not freeze the answer).
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// Counts the syntheses under way; the model waits for it to fall to zero. The server makes one and hands it
/// to its embedded model and voice (`state::Stages::from_settings`): there is one set of cores.
pub struct SpeechFirst {
    speaking: Mutex<usize>,
    quiet: Condvar,
}

impl SpeechFirst {
    pub const fn new() -> Self {
        Self { speaking: Mutex::new(0), quiet: Condvar::new() }
    }

    /// Held by a synthesis while it runs; the model goes on once every guard is dropped.
    pub fn speaking(&self) -> Speaking<'_> {
        *self.speaking.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Speaking { share: self }
    }

    /// Blocks the calling thread (the model's own, never an async worker) while speech is being synthesized,
    /// at most `limit`. Returns how long it waited.
    pub fn wait_for_speech(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        let speaking = self.speaking.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = self.quiet.wait_timeout_while(speaking, limit, |speaking| *speaking > 0).unwrap_or_else(PoisonError::into_inner);
        started.elapsed()
    }
}

impl Default for SpeechFirst {
    fn default() -> Self {
        Self::new()
    }
}

/// See [`SpeechFirst::speaking`].
pub struct Speaking<'a> {
    share: &'a SpeechFirst,
}

impl Drop for Speaking<'_> {
    fn drop(&mut self) {
        let mut speaking = self.share.speaking.lock().unwrap_or_else(PoisonError::into_inner);
        *speaking = speaking.saturating_sub(1);
        if *speaking == 0 {
            self.share.quiet.notify_all();
        }
    }
}

/// Fixes the number of threads the embedded models use to the machine's physical cores, once.
///
/// candle asks how many threads to use before every matrix product and, unless `RAYON_NUM_THREADS` is set,
/// counts the physical cores by reading `/proc/cpuinfo` each time: that was 40% of embedding a short
/// question (p50 19.1 -> 11.0 ms, `cargo bench --workspace --bench stages --profile dev -- embeddings`).
/// With the variable set it is one lookup. rayon, whose pool candle's matrix products run on, reads the same
/// variable. A value the user set is kept.
///
/// # Safety
/// Changes the process environment, so no other thread may exist yet: call it first thing in `main`.
pub unsafe fn settle_thread_count() {
    const VARIABLE: &str = "RAYON_NUM_THREADS";
    if std::env::var_os(VARIABLE).is_some() {
        return;
    }
    let usable = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = num_cpus::get_physical().clamp(1, usable);
    // SAFETY: the caller guarantees that no other thread is running.
    unsafe { std::env::set_var(VARIABLE, threads.to_string()) };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn nothing_to_wait_for_when_nobody_speaks() {
        let share = SpeechFirst::new();
        assert!(share.wait_for_speech(Duration::from_secs(5)) < Duration::from_secs(1));
    }

    #[test]
    fn the_model_waits_until_the_last_synthesis_ends() {
        let share = Arc::new(SpeechFirst::new());
        let first = share.speaking();
        let second = share.speaking();
        let waiter = {
            let share = Arc::clone(&share);
            std::thread::spawn(move || share.wait_for_speech(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "one synthesis is still running");
        drop(second);
        let waited = waiter.join().unwrap();
        // Counted from when the waiting thread got going, which on a busy machine is a little after the spawn
        // (196 ms was seen): that it was still waiting after the first drop is checked above.
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(5), "{waited:?}");
    }

    #[test]
    fn a_synthesis_that_never_ends_holds_the_model_only_up_to_the_limit() {
        let share = SpeechFirst::new();
        let _stuck = share.speaking();
        let waited = share.wait_for_speech(Duration::from_millis(150));
        assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(5), "{waited:?}");
    }
}
