//! Stopping in order (SIGTERM, Ctrl-C): first no new connections and no new turns, while the turns being
//! answered finish; sockets close as soon as they have nothing left to answer. At the deadline the turns still
//! running are cut: what their client was sent (the sentences spoken, or the text written) is stored, marked
//! interrupted, as if the user had interrupted. The binary's `main` drives it; the socket and the pipeline
//! listen.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use crate::pipeline::Pipeline;

/// What the server's parts watch: whether it is stopping, and whether its turns are being cut.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    stopping: CancellationToken,
    cutting: CancellationToken,
    /// Every open socket holds a token of it: stopping waits for them to close.
    sockets: TaskTracker,
}

impl Shutdown {
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Resolves once the server is stopping (at once if it is).
    pub async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    /// Resolves once the turns still running are to be cut.
    pub async fn cutting(&self) {
        self.cutting.cancelled().await;
    }

    /// Held by an open socket until it closes.
    pub fn socket_open(&self) -> TaskTrackerToken {
        self.sockets.token()
    }
}

/// How often the turns in flight are counted while the server waits for them to end.
const RECOUNT: Duration = Duration::from_millis(20);

/// The binary's handle on stopping the server [`crate::start`] built.
pub struct Stopper {
    shutdown: Shutdown,
    pipeline: Arc<Pipeline>,
}

impl Stopper {
    pub(crate) fn new(shutdown: Shutdown, pipeline: Arc<Pipeline>) -> Self {
        Self { shutdown, pipeline }
    }

    /// No new turns from now on; idle sockets close.
    pub fn begin(&self) {
        self.shutdown.sockets.close();
        self.shutdown.stopping.cancel();
    }

    /// Resolves when no turn runs or waits and every socket has closed.
    pub async fn finished(&self) {
        while self.pipeline.turns_in_flight() > 0 {
            tokio::time::sleep(RECOUNT).await;
        }
        self.shutdown.sockets.wait().await;
    }

    /// The turns still running are cut, and what their clients were sent is stored (see [`Stopper::finished`]
    /// for when that is done).
    pub fn cut(&self) {
        self.begin();
        self.shutdown.cutting.cancel();
    }
}
