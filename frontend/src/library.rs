//! The state behind the notes and conversations panels, kept apart from the browser so it is tested natively:
//! pages of a list loaded one after another, the conversation list as it changes, which files may be added as
//! notes, and the words of a search marked in a passage.

use parlance_shared::{SessionId, SessionSummary};

/// Items per page in the panels.
pub const PAGE_SIZE: u32 = 20;

/// A list loaded a page at a time ("Show more" appends the next page).
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Items on the server in all, as of the last page.
    pub total: u64,
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Self { items: Vec::new(), total: 0 }
    }
}

impl<T> Paged<T> {
    /// Where the next page starts.
    pub fn next_offset(&self) -> u64 {
        self.items.len() as u64
    }

    pub fn has_more(&self) -> bool {
        self.next_offset() < self.total
    }

    /// A page arrived: the first replaces the list, later ones extend it. A page that does not start where the
    /// list ends (the list was reloaded meanwhile) is dropped.
    pub fn receive(&mut self, offset: u64, page: Vec<T>, total: u64) -> bool {
        if offset == 0 {
            self.items = page;
        } else if offset == self.next_offset() {
            self.items.extend(page);
        } else {
            return false;
        }
        self.total = total;
        true
    }

    /// One item is gone on the server.
    pub fn remove(&mut self, matches: impl Fn(&T) -> bool) {
        let before = self.items.len();
        self.items.retain(|item| !matches(item));
        let removed = (before - self.items.len()) as u64;
        self.total = self.total.saturating_sub(removed);
    }
}

/// The conversation list after one was renamed on the server.
pub fn renamed(list: &mut Paged<SessionSummary>, summary: SessionSummary) {
    if let Some(item) = list.items.iter_mut().find(|item| item.session_id == summary.session_id) {
        *item = summary;
    }
}

/// Drops a deleted conversation; `true` when it was the one open (the page then starts a new one).
pub fn forget(list: &mut Paged<SessionSummary>, id: &SessionId, open: Option<&SessionId>) -> bool {
    list.remove(|item| &item.session_id == id);
    open == Some(id)
}

/// Why a dropped or picked file cannot be added as a note, in words for people; `None` when it can.
pub fn refuse_file(name: &str, bytes: f64) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if !(lower.ends_with(".md") || lower.ends_with(".markdown") || lower.ends_with(".txt")) {
        return Some("Only Markdown (.md) and text (.txt) files can be added.".to_owned());
    }
    if bytes > MAX_FILE_BYTES {
        return Some("This file is over 2 MB, the most one upload may be.".to_owned());
    }
    None
}

const MAX_FILE_BYTES: f64 = 2.0 * 1024.0 * 1024.0;

/// `text` cut into pieces, each marked when it is one of the query's words (case and accents as typed are
/// ignored only for ASCII). Words of one or two letters are not marked: they match everywhere.
pub fn highlight(text: &str, query: &str) -> Vec<(String, bool)> {
    let words: Vec<String> =
        query.split(|c: char| !c.is_alphanumeric()).filter(|word| word.chars().count() > 2).map(str::to_lowercase).collect();
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut push = |piece: &str, marked: bool| match pieces.last_mut() {
        Some((last, last_marked)) if *last_marked == marked => last.push_str(piece),
        _ => pieces.push((piece.to_owned(), marked)),
    };
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
        if end == 0 {
            let width = rest.chars().next().map_or(1, char::len_utf8);
            push(&rest[..width], false);
            rest = &rest[width..];
            continue;
        }
        let word = &rest[..end];
        let lower = word.to_lowercase();
        // A word's own forms count: "shelf" marks "shelves" only by its stem, so compare the start.
        let marked = words.iter().any(|wanted| lower == *wanted || (wanted.len() > 4 && lower.starts_with(&wanted[..wanted.len() - 1])));
        push(word, marked);
        rest = &rest[end..];
    }
    pieces
}

/// `2026-12-07`, without chrono's formatter (which would add a lot to the app's download).
pub fn day(at: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Datelike as _;
    format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day())
}

/// `2026-12-07 09:30` (UTC).
pub fn minute(at: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Timelike as _;
    format!("{} {:02}:{:02}", day(at), at.hour(), at.minute())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn summary(id: &str, title: &str) -> SessionSummary {
        SessionSummary {
            session_id: SessionId::new(id),
            title: title.to_owned(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            turns: 1,
        }
    }

    #[test]
    fn dates_read_as_day_and_minute() {
        use chrono::TimeZone as _;
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 10, 10, 0).single().unwrap();
        assert_eq!(minute(&at), "2026-12-07 10:10");
    }

    #[test]
    fn pages_load_one_after_another() {
        let mut list = Paged::default();
        assert!(!list.has_more());
        assert!(list.receive(0, vec![1, 2], 5));
        assert_eq!((list.next_offset(), list.has_more()), (2, true));
        assert!(list.receive(2, vec![3, 4], 5));
        assert!(!list.receive(2, vec![3, 4], 5), "a page that no longer fits is dropped");
        assert!(list.receive(4, vec![5], 5));
        assert_eq!((list.has_more(), list.items), (false, vec![1, 2, 3, 4, 5]));
    }

    #[test]
    fn a_reload_replaces_the_list_and_a_removal_counts() {
        let mut list = Paged::default();
        list.receive(0, vec![1, 2, 3], 3);
        list.remove(|n| *n == 2);
        assert_eq!((list.items.clone(), list.total), (vec![1, 3], 2));
        list.receive(0, vec![9], 1);
        assert_eq!(list.items, vec![9]);
    }

    #[test]
    fn the_conversation_list_follows_renames_and_deletions() {
        let mut list = Paged::default();
        list.receive(0, vec![summary("a", "First"), summary("b", "Second")], 2);
        renamed(&mut list, summary("b", "Bike plans"));
        assert_eq!(list.items[1].title, "Bike plans");
        let open = SessionId::new("a");
        assert!(!forget(&mut list, &SessionId::new("b"), Some(&open)));
        assert!(forget(&mut list, &open, Some(&open)), "the open one was deleted");
        assert_eq!((list.items.len(), list.total), (0, 0));
    }

    #[test]
    fn only_markdown_and_text_files_of_a_sensible_size_are_added() {
        assert_eq!(refuse_file("notes.MD", 10.0), None);
        assert_eq!(refuse_file("hours.txt", 10.0), None);
        assert!(refuse_file("photo.png", 10.0).unwrap().contains(".md"));
        assert!(refuse_file("huge.md", 3.0 * 1024.0 * 1024.0).unwrap().contains("2 MB"));
    }

    #[test]
    fn the_query_words_are_marked() {
        let pieces = highlight("The shelves hold part 303, on Shelf 3.", "which shelf holds part 303?");
        let marked: Vec<&str> = pieces.iter().filter(|(_, m)| *m).map(|(p, _)| p.as_str()).collect();
        assert_eq!(marked, ["shelves", "hold", "part", "303", "Shelf"]);
        assert_eq!(pieces.iter().map(|(p, _)| p.as_str()).collect::<String>(), "The shelves hold part 303, on Shelf 3.");
        assert!(highlight("of an it", "of an it").iter().all(|(_, m)| !m), "short words mark nothing");
    }
}
