//! Stopping in order (SIGTERM, Ctrl-C): first no new connections and no new turns, while the turns being
//! answered finish; sockets close as soon as they have nothing left to answer. At the deadline the turns still
//! running are cut: what their client was sent (the sentences spoken, or the text written) is stored, marked
//! interrupted, as if the user had interrupted. The binary's `main` drives it through `crate::state::Stopper`;
//! the socket and the pipeline listen here.

use tokio_util::sync::CancellationToken;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

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

    /// No new turns from now on; idle sockets close.
    pub fn begin(&self) {
        self.sockets.close();
        self.stopping.cancel();
    }

    /// The turns still running are to be cut.
    pub fn cut(&self) {
        self.begin();
        self.cutting.cancel();
    }

    /// Resolves when every socket has closed (after [`Shutdown::begin`]).
    pub async fn sockets_closed(&self) {
        self.sockets.wait().await;
    }
}
