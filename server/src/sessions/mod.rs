//! Conversation memory: the lines of each session, oldest first.

mod lance;
mod memory;

use async_trait::async_trait;
use parlance_shared::{HistoryTurn, SessionId};

pub use self::lance::LanceSessions;
pub use self::memory::MemorySessions;

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The whole conversation, or `None` when the session does not exist.
    async fn history(&self, id: &SessionId) -> Result<Option<Vec<HistoryTurn>>, SessionError>;
    /// Adds lines to a conversation, creating it if it is new.
    async fn append(&self, id: &SessionId, turns: Vec<HistoryTurn>) -> Result<(), SessionError>;
    /// Forgets a conversation; `false` when there was none.
    async fn delete(&self, id: &SessionId) -> Result<bool, SessionError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("conversation storage failed: {0}")]
    Storage(String),
}

/// A new, unguessable session id.
pub fn new_session_id() -> SessionId {
    SessionId::new(uuid::Uuid::new_v4().to_string())
}
