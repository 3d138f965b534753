use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use parlance_shared::{HistoryTurn, Role, SessionId};

use super::{SessionBrief, SessionError, SessionStore};

/// Conversations kept in memory: lost when the server stops.
#[derive(Default)]
pub struct MemorySessions {
    sessions: RwLock<HashMap<SessionId, Vec<HistoryTurn>>>,
    owners: RwLock<HashMap<SessionId, String>>,
    titles: RwLock<HashMap<SessionId, String>>,
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
        self.owners.write().unwrap_or_else(PoisonError::into_inner).remove(id);
        self.titles.write().unwrap_or_else(PoisonError::into_inner).remove(id);
        Ok(sessions.remove(id).is_some())
    }

    async fn owner(&self, id: &SessionId) -> Result<Option<String>, SessionError> {
        Ok(self.owners.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned())
    }

    async fn set_owner(&self, id: &SessionId, owner: &str) -> Result<(), SessionError> {
        self.owners.write().unwrap_or_else(PoisonError::into_inner).entry(id.clone()).or_insert_with(|| owner.to_owned());
        Ok(())
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

    async fn briefs(&self) -> Result<Vec<SessionBrief>, SessionError> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let owners = self.owners.read().unwrap_or_else(PoisonError::into_inner);
        let titles = self.titles.read().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions
            .iter()
            .filter_map(|(id, lines)| {
                let questions: Vec<&HistoryTurn> = lines.iter().filter(|line| line.role == Role::User).collect();
                let first = questions.first()?;
                let last = lines.last()?;
                Some(SessionBrief {
                    id: id.clone(),
                    owner: owners.get(id).cloned(),
                    title: titles.get(id).cloned(),
                    first_question: first.text.clone(),
                    created_at: first.created_at,
                    updated_at: last.created_at,
                    questions: u32::try_from(questions.len()).unwrap_or(u32::MAX),
                })
            })
            .collect())
    }

    async fn rename(&self, id: &SessionId, title: &str) -> Result<bool, SessionError> {
        if !self.sessions.read().unwrap_or_else(PoisonError::into_inner).contains_key(id) {
            return Ok(false);
        }
        self.titles.write().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), title.to_owned());
        Ok(true)
    }
}
