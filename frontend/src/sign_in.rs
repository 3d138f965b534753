//! The sign-in token. The server prints a link ending in `#token=...`: the fragment never reaches the server
//! or its logs. The app takes the token from it once, keeps it in localStorage, and removes it from the
//! address bar (and so from the history and from bookmarks). Every request then carries it, and the socket
//! offers it as a subprotocol (a socket cannot carry headers, and a query string would land in logs).

use std::cell::Cell;

use leptos::prelude::*;

const KEY: &str = "parlance.token";
/// The subprotocol the server accepts; the token rides in a second one (see server/src/access/mod.rs).
pub const SOCKET_PROTOCOL: &str = "parlance";
pub const SOCKET_TOKEN_PREFIX: &str = "parlance.bearer.";

thread_local! {
    static NEEDED: Cell<Option<RwSignal<SignIn>>> = const { Cell::new(None) };
}

/// Whether the app must ask for a token before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// The server accepted the request (or has not refused one yet).
    NotNeeded,
    /// The server answered 401: no token is kept, or the kept one is not accepted any more.
    Needed { had_token: bool },
}

/// The app's sign-in state, one per page.
pub fn state() -> RwSignal<SignIn> {
    NEEDED.with(|cell| {
        cell.get().unwrap_or_else(|| {
            let signal = RwSignal::new(SignIn::NotNeeded);
            cell.set(Some(signal));
            signal
        })
    })
}

/// A request was refused for want of a (valid) token.
pub fn needed() {
    let had_token = token().is_some();
    state().set(SignIn::Needed { had_token });
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn token() -> Option<String> {
    storage()?.get_item(KEY).ok().flatten().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Keeps a token (typed into the sign-in screen, or from the link).
pub fn save(token: &str) {
    if let Some(storage) = storage() {
        // Without storage the token lasts until the page is closed: it is still in memory for this visit.
        let _ = storage.set_item(KEY, token.trim());
    }
}

/// Forgets the token and this browser's conversation (it is the signed-in user's), then starts afresh: on a
/// shared device the next person starts at the sign-in screen.
pub fn sign_out() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(KEY);
    }
    crate::session_store::save(None);
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}

/// `Authorization` header value, when a token is kept.
pub fn authorization() -> Option<String> {
    token().map(|token| format!("Bearer {token}"))
}

/// The token in a fragment such as `#token=abc` (or `#a=b&token=abc`), percent-decoded.
pub fn token_in_fragment(fragment: &str) -> Option<String> {
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    let raw = fragment.split('&').find_map(|pair| pair.strip_prefix("token="))?;
    let decoded = js_decode(raw).unwrap_or_else(|| raw.to_owned());
    let decoded = decoded.trim();
    (!decoded.is_empty()).then(|| decoded.to_owned())
}

#[cfg(target_arch = "wasm32")]
fn js_decode(raw: &str) -> Option<String> {
    js_sys::decode_uri_component(raw).ok().and_then(|s| s.as_string())
}

#[cfg(not(target_arch = "wasm32"))]
fn js_decode(raw: &str) -> Option<String> {
    Some(raw.to_owned())
}

/// Takes the token from the sign-in link, once, and removes it from the address bar. Runs before the app
/// makes its first request.
pub fn take_from_link() {
    let Some(window) = web_sys::window() else { return };
    let location = window.location();
    let Some(token) = location.hash().ok().as_deref().and_then(token_in_fragment) else { return };
    save(&token);
    let clean = format!("{}{}", location.pathname().unwrap_or_else(|_| "/".into()), location.search().unwrap_or_default());
    // `history.replaceState` through Reflect: the History binding is not among the web-sys features built.
    let replaced = js_sys::Reflect::get(&window, &"history".into()).ok().and_then(|history| {
        let replace = js_sys::Reflect::get(&history, &"replaceState".into()).ok()?;
        let replace: &js_sys::Function = wasm_bindgen::JsCast::dyn_ref(&replace)?;
        replace.call3(&history, &wasm_bindgen::JsValue::NULL, &"".into(), &clean.into()).ok()
    });
    if replaced.is_none() {
        // Without the History API, at least empty the fragment.
        let _ = location.set_hash("");
    }
}

/// The screen shown instead of failing turns when the server wants a token.
#[component]
pub fn SignInScreen() -> impl IntoView {
    let typed = RwSignal::new(String::new());
    let had_token = move || matches!(state().get(), SignIn::Needed { had_token: true });
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let token = typed.get_untracked();
        if token.trim().is_empty() {
            return;
        }
        save(&token);
        // A fresh start opens the socket and reloads the conversation with the token.
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    };
    view! {
        <div class="sign-in" role="dialog" aria-modal="true" aria-labelledby="sign-in-title">
            <form class="sign-in-card" on:submit=submit>
                <h2 id="sign-in-title">"Sign in to Parlance"</h2>
                <p>
                    {move || if had_token() {
                        "The saved sign-in token was not accepted (it may have changed). Paste the current one."
                    } else {
                        "This Parlance server needs a sign-in token. Open the sign-in link the server printed when it started, or paste the token here."
                    }}
                </p>
                <label for="sign-in-token">"Token"</label>
                <input
                    id="sign-in-token"
                    type="password"
                    autocomplete="current-password"
                    spellcheck="false"
                    prop:value=move || typed.get()
                    on:input=move |event| typed.set(event_target_value(&event))
                />
                <button type="submit">"Sign in"</button>
            </form>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_the_fragment() {
        assert_eq!(token_in_fragment("#token=abc123").as_deref(), Some("abc123"));
        assert_eq!(token_in_fragment("#x=1&token=abc").as_deref(), Some("abc"));
        assert_eq!(token_in_fragment("#token="), None);
        assert_eq!(token_in_fragment("#other=1"), None);
        assert_eq!(token_in_fragment(""), None);
    }
}
