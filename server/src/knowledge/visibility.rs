//! Whose notes a caller reaches: the shared notes, which every user's questions draw on, and the memories the
//! assistant keeps for them alone (what they asked it to remember). Without sign-in there is one user, and
//! every note is theirs to reach.

use crate::access::Caller;

/// The condition a search or a listing for `caller` adds; `None` when every note is theirs to reach.
pub fn filter(caller: &Caller) -> Option<String> {
    caller.owner().map(|name| format!("(owner IS NULL OR owner = {})", sql_string(name)))
}

/// The condition for the notes kept for `owner` (`None`: the shared notes) and the shared ones.
pub fn owned_or_shared(owner: Option<&str>) -> String {
    match owner {
        Some(name) => format!("(owner IS NULL OR owner = {})", sql_string(name)),
        None => "owner IS NULL".to_owned(),
    }
}

/// Whether `caller` reaches a note kept for `owner`.
pub fn reaches(caller: &Caller, owner: Option<&str>) -> bool {
    match (caller.owner(), owner) {
        (None, _) | (_, None) => true,
        (Some(me), Some(owner)) => me == owner,
    }
}

/// `text` as an SQL string literal. User names come from the operator's users file, but a quote in one must
/// still not end the literal.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::access::User;

    fn user(name: &str) -> Caller {
        Caller::User(User { name: Arc::from(name), admin: false })
    }

    #[test]
    fn users_reach_the_shared_notes_and_their_own_memories() {
        assert_eq!(filter(&Caller::Anyone), None);
        assert_eq!(filter(&user("alice")).as_deref(), Some("(owner IS NULL OR owner = 'alice')"));
        assert_eq!(filter(&user("o'brien")).as_deref(), Some("(owner IS NULL OR owner = 'o''brien')"));
        assert!(reaches(&user("alice"), None));
        assert!(reaches(&user("alice"), Some("alice")));
        assert!(!reaches(&user("bob"), Some("alice")));
        assert!(reaches(&Caller::Anyone, Some("alice")));
        assert_eq!(owned_or_shared(None), "owner IS NULL");
    }
}
