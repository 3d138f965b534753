//! Conversation memory: the lines of each session, oldest first.

mod lance;
mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parlance_shared::{HistoryTurn, SessionId, SessionSummary};

use crate::access::Caller;

pub use self::lance::LanceSessions;
pub use self::memory::MemorySessions;

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The whole conversation, or `None` when the session does not exist.
    async fn history(&self, id: &SessionId) -> Result<Option<Vec<HistoryTurn>>, SessionError>;
    /// Told of a conversation the server has just made up an id for (see [`new_session_id`]): it has no lines
    /// yet, so a store that keeps conversations in memory can answer its next reads without a query.
    fn started(&self, _id: &SessionId) {}
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
    /// Every stored conversation in brief, in no particular order.
    async fn briefs(&self) -> Result<Vec<SessionBrief>, SessionError>;
    /// Names a conversation; `false` when there is none by that id.
    async fn rename(&self, id: &SessionId, title: &str) -> Result<bool, SessionError>;
}

/// A stored conversation as a listing needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionBrief {
    pub id: SessionId,
    pub owner: Option<String>,
    /// The name its user gave it, if they did.
    pub title: Option<String>,
    pub first_question: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub questions: u32,
}

/// Characters of the first question a conversation without a name is listed under.
const TITLE_FROM_QUESTION_CHARS: usize = 60;

impl SessionBrief {
    pub fn summary(self) -> SessionSummary {
        let title = match self.title {
            Some(title) => title,
            None => shorten(&self.first_question, TITLE_FROM_QUESTION_CHARS),
        };
        SessionSummary { session_id: self.id, title, created_at: self.created_at, updated_at: self.updated_at, turns: self.questions }
    }
}

/// At most `max` characters, cut at a word with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    let at_word = cut.rfind(' ').filter(|at| *at > max / 2).map_or(cut.as_str(), |at| &cut[..at]);
    format!("{}…", at_word.trim_end_matches([',', '.', ';', ':']))
}

/// One page of the conversations `caller` may reach, most recently used first, and how many there are.
pub async fn list(
    store: &dyn SessionStore,
    caller: &Caller,
    offset: usize,
    limit: usize,
) -> Result<(Vec<SessionSummary>, usize), SessionError> {
    Ok(page(store.briefs().await?, caller, offset, limit))
}

fn page(briefs: Vec<SessionBrief>, caller: &Caller, offset: usize, limit: usize) -> (Vec<SessionSummary>, usize) {
    let mut mine: Vec<SessionBrief> = briefs.into_iter().filter(|brief| caller.may_see(brief.owner.as_deref())).collect();
    mine.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| b.id.cmp(&a.id)));
    let total = mine.len();
    (mine.into_iter().skip(offset).take(limit).map(SessionBrief::summary).collect(), total)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone as _;

    use super::*;
    use crate::access::User;

    fn brief(id: &str, owner: Option<&str>, updated_minute: u32) -> SessionBrief {
        let at = |minute| Utc.with_ymd_and_hms(2026, 12, 7, 9, minute, 0).single().unwrap();
        SessionBrief {
            id: SessionId::new(id),
            owner: owner.map(str::to_owned),
            title: None,
            first_question: format!("question of {id}"),
            created_at: at(0),
            updated_at: at(updated_minute),
            questions: 1,
        }
    }

    #[test]
    fn a_page_holds_the_callers_conversations_newest_first() {
        let alice = Caller::User(User { name: Arc::from("alice"), admin: false });
        let briefs = vec![brief("a1", Some("alice"), 5), brief("b1", Some("bob"), 9), brief("a2", Some("alice"), 7), brief("old", None, 8)];
        let (page1, total) = page(briefs.clone(), &alice, 0, 1);
        assert_eq!(total, 2, "bob's and the unowned conversation are not alice's");
        assert_eq!(page1.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["a2"]);
        let (page2, _) = page(briefs.clone(), &alice, 1, 1);
        assert_eq!(page2.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["a1"]);
        let (everything, total) = page(briefs, &Caller::Anyone, 0, 10);
        assert_eq!(total, 4);
        assert_eq!(everything.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["b1", "old", "a2", "a1"]);
    }

    #[test]
    fn a_conversation_without_a_name_is_listed_under_its_first_question() {
        let mut long = brief("x", None, 1);
        long.first_question = "What are the opening hours of the bike shop on Saturdays, and do they repair e-bikes too?".into();
        let title = long.clone().summary().title;
        assert!(title.ends_with('…') && title.chars().count() <= TITLE_FROM_QUESTION_CHARS + 1, "{title}");
        assert!(title.starts_with("What are the opening hours"), "{title}");
        long.title = Some("Bike shop".into());
        assert_eq!(long.summary().title, "Bike shop");
    }
}
