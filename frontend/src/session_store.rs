//! The conversation's id in localStorage, so a reload (or reopening the installed app) continues it.
//! Storage can be unavailable (private modes, disabled cookies): then the app simply starts fresh each time.

use parlance_shared::SessionId;

const KEY: &str = "parlance.session_id";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn load() -> Option<SessionId> {
    let id = storage()?.get_item(KEY).ok().flatten()?;
    let id = id.trim();
    (!id.is_empty()).then(|| SessionId::new(id))
}

pub fn save(session: Option<&SessionId>) {
    let Some(storage) = storage() else { return };
    // A full or blocked storage only costs continuity across reloads; nothing to tell the user mid-answer.
    let _ = match session {
        Some(id) => storage.set_item(KEY, id.as_str()),
        None => storage.remove_item(KEY),
    };
}
