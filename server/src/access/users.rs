//! The people a server knows, each by a token, and who is asking.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::MIN_TOKEN_CHARS;

/// A person who may use the server. Conversations belong to a user by name; an admin also changes the
/// shared notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: Arc<str>,
    pub admin: bool,
}

/// Who sent a request: anyone (the server needs no token: a personal machine on loopback), or a user who
/// signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anyone,
    User(User),
}

impl Caller {
    /// The name conversations are stored under; `None` when nobody signed in (then nothing is owned).
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::Anyone => None,
            Self::User(user) => Some(&user.name),
        }
    }

    /// Whether the caller may change the shared notes. Without tokens whoever can reach the server may.
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Anyone => true,
            Self::User(user) => user.admin,
        }
    }

    /// Whether a conversation stored under `owner` is this caller's. Conversations from before tokens were
    /// turned on (no owner) belong to the admins; without tokens every conversation is reachable by its id.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        match (self, owner) {
            (Self::Anyone, _) => true,
            (Self::User(user), Some(owner)) => *user.name == *owner,
            (Self::User(user), None) => user.admin,
        }
    }
}

/// The tokens a server accepts. Only their SHA-256 is kept: compared in constant time and of equal length
/// whatever was presented, so neither timing nor a memory dump of this list gives a token away.
#[derive(Clone, Default)]
pub struct Users {
    entries: Vec<([u8; 32], User)>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(_, user)| user)).finish()
    }
}

/// Why a users file or a token cannot be used; names the line, never the token.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("line {line}: write `NAME TOKEN` or `NAME TOKEN admin`")]
    Malformed { line: usize },
    #[error("line {line}: the token of {name:?} is shorter than {MIN_TOKEN_CHARS} characters")]
    ShortToken { line: usize, name: String },
    #[error("line {line}: the user name {name:?} is used twice")]
    DuplicateName { line: usize, name: String },
    #[error("line {line}: {name:?} has the same token as another user")]
    DuplicateToken { line: usize, name: String },
    #[error("no users are listed")]
    Empty,
    #[error("the token is shorter than {MIN_TOKEN_CHARS} characters")]
    ShortSingleToken,
    #[error("line {line}: {word:?} is not a role; the only role is `admin`")]
    UnknownRole { line: usize, word: String },
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Users {
    /// One person with every right: the single-user install's `--token`.
    pub fn single(token: &str) -> Result<Self, UsersError> {
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(UsersError::ShortSingleToken);
        }
        Ok(Self { entries: vec![(digest(token), User { name: Arc::from("owner"), admin: true })] })
    }

    /// The user whose token this is. Every entry is compared, so the time taken does not say which matched.
    pub fn authenticate(&self, presented: &str) -> Option<&User> {
        let presented = digest(presented);
        let mut found = None;
        for (token, user) in &self.entries {
            if bool::from(token.ct_eq(&presented)) {
                found = Some(user);
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A users file: one user a line, `NAME TOKEN` or `NAME TOKEN admin`; blank lines and `#` comments skipped.
pub fn parse_users(text: &str) -> Result<Users, UsersError> {
    let mut entries: Vec<([u8; 32], User)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let words: Vec<&str> = content.split_whitespace().collect();
        let (name, token, admin) = match words.as_slice() {
            [name, token] => (*name, *token, false),
            [name, token, role] if role.eq_ignore_ascii_case("admin") => (*name, *token, true),
            [_, _, role] => return Err(UsersError::UnknownRole { line, word: (*role).to_owned() }),
            _ => return Err(UsersError::Malformed { line }),
        };
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(UsersError::ShortToken { line, name: name.to_owned() });
        }
        if entries.iter().any(|(_, user)| &*user.name == name) {
            return Err(UsersError::DuplicateName { line, name: name.to_owned() });
        }
        let token = digest(token);
        if entries.iter().any(|(existing, _)| *existing == token) {
            return Err(UsersError::DuplicateToken { line, name: name.to_owned() });
        }
        entries.push((token, User { name: Arc::from(name), admin }));
    }
    if entries.is_empty() {
        return Err(UsersError::Empty);
    }
    Ok(Users { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice-token-0123456789";
    const BOB: &str = "bob-token-0123456789ab";

    #[test]
    fn a_users_file_names_each_token_and_its_role() {
        let users = parse_users(&format!("# people\nalice {ALICE} admin\n\nbob {BOB}   # a comment\n")).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users.authenticate(ALICE).map(|u| (&*u.name, u.admin)), Some(("alice", true)));
        assert_eq!(users.authenticate(BOB).map(|u| (&*u.name, u.admin)), Some(("bob", false)));
        assert_eq!(users.authenticate("alice-token-012345678"), None);
        assert_eq!(users.authenticate(""), None);
    }

    #[test]
    fn bad_users_files_are_refused_without_showing_tokens() {
        let short = parse_users("alice short").unwrap_err();
        assert!(matches!(short, UsersError::ShortToken { line: 1, .. }));
        assert!(!short.to_string().contains("short\""));
        assert!(matches!(parse_users(&format!("a {ALICE}\na {BOB}")), Err(UsersError::DuplicateName { line: 2, .. })));
        let twice = parse_users(&format!("a {ALICE}\nb {ALICE}")).unwrap_err();
        assert!(matches!(twice, UsersError::DuplicateToken { line: 2, .. }) && !twice.to_string().contains(ALICE));
        assert!(matches!(parse_users(&format!("a {ALICE} root")), Err(UsersError::UnknownRole { .. })));
        assert!(matches!(parse_users("just-a-name"), Err(UsersError::Malformed { line: 1 })));
        assert!(matches!(parse_users("# nobody\n"), Err(UsersError::Empty)));
        assert!(!format!("{:?}", parse_users(&format!("a {ALICE}")).unwrap()).contains(ALICE));
    }

    #[test]
    fn callers_see_only_their_own_conversations() {
        let alice = Caller::User(User { name: "alice".into(), admin: true });
        let bob = Caller::User(User { name: "bob".into(), admin: false });
        assert!(alice.may_see(Some("alice")) && !alice.may_see(Some("bob")));
        assert!(bob.may_see(Some("bob")) && !bob.may_see(Some("alice")));
        assert!(alice.may_see(None) && !bob.may_see(None), "ownerless conversations belong to admins");
        assert!(Caller::Anyone.may_see(Some("alice")) && Caller::Anyone.is_admin());
        assert!(!bob.is_admin());
    }
}
