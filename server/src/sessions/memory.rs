use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use parlance_shared::{HistoryTurn, SessionId};

use super::{SessionError, SessionStore};

/// Conversations kept in memory: lost when the server stops.
#[derive(Default)]
pub struct MemorySessions {
    sessions: RwLock<HashMap<SessionId, Vec<HistoryTurn>>>,
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn history(&self, id: &SessionId) -> Result<Option<Vec<HistoryTurn>>, SessionError> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.get(id).cloned())
    }

    async fn append(&self, id: &SessionId, turns: Vec<HistoryTurn>) -> Result<(), SessionError> {
        let mut sessions = self.sessions.write().unwrap_or_else(PoisonError::into_inner);
        sessions.entry(id.clone()).or_default().extend(turns);
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, SessionError> {
        let mut sessions = self.sessions.write().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.remove(id).is_some())
    }

    async fn replace_last(&self, id: &SessionId, line: HistoryTurn) -> Result<bool, SessionError> {
        let mut sessions = self.sessions.write().unwrap_or_else(PoisonError::into_inner);
        match sessions.get_mut(id).and_then(|lines| lines.last_mut()) {
            Some(last) => {
                *last = line;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
