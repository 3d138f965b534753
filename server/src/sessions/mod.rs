//! Conversation memory: the lines of each session, oldest first.

mod lance;
mod memory;

use async_trait::async_trait;
use parlance_shared::{HistoryTurn, SessionId};

use crate::access::Caller;

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
    /// Replaces the newest line (e.g. an answer cut short by the user); `false` when the conversation is empty
    /// or unknown. Stores that can do it in one step should: this default rewrites the whole conversation, and
    /// a reader between its delete and its append finds no conversation at all (a reloaded page then forgets it).
    async fn replace_last(&self, id: &SessionId, line: HistoryTurn) -> Result<bool, SessionError> {
        let Some(mut lines) = self.history(id).await? else { return Ok(false) };
        let Some(last) = lines.last_mut() else { return Ok(false) };
        *last = line;
        self.delete(id).await?;
        self.append(id, lines).await?;
        Ok(true)
    }
    /// The user a conversation belongs to; `None` when it was started without a sign-in (or does not exist).
    async fn owner(&self, id: &SessionId) -> Result<Option<String>, SessionError>;
    /// Records who started a conversation. Done once, when it starts; [`SessionStore::delete`] forgets it too.
    async fn set_owner(&self, id: &SessionId, owner: &str) -> Result<(), SessionError>;
}

/// Whether `caller` may read, continue or delete conversation `id`. A conversation of someone else is
/// answered exactly like one that does not exist, so ids cannot be probed.
pub async fn visible_to(store: &dyn SessionStore, id: &SessionId, caller: &Caller) -> Result<bool, SessionError> {
    if matches!(caller, Caller::Anyone) {
        return Ok(true);
    }
    Ok(caller.may_see(store.owner(id).await?.as_deref()))
}

/// Makes a new conversation the caller's (nothing to record when nobody signed in).
pub async fn claim(store: &dyn SessionStore, id: &SessionId, caller: &Caller) -> Result<(), SessionError> {
    match caller.owner() {
        Some(owner) => store.set_owner(id, owner).await,
        None => Ok(()),
    }
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
