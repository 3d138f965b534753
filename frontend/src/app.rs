//! The page: the status line, the conversation, and the controls around them.

use leptos::prelude::*;

use crate::composer::Composer;
use crate::conversation::Conversation;
use crate::hands_free::HandsFree;
use crate::mic_button::MicButton;
use crate::panels::{PanelButtons, Panels, Ui};
use crate::sign_in::{SignIn, SignInScreen};
use crate::turns::Turns;
use crate::voice_state::VoiceState;

#[component]
pub fn App() -> impl IntoView {
    let sign_in = crate::sign_in::state();
    // A 401 here (as from any later request) brings up the sign-in screen.
    leptos::task::spawn_local(async {
        if let Err(error) = crate::api::account().await {
            leptos::logging::log!("account check: {error}");
        }
    });
    let turns = Turns::new();
    turns.restore();
    // The controls deep in the page act on the same turns; context spares every component between them the prop.
    provide_context(turns);
    let ui = Ui::new();
    provide_context(ui);
    ui.load_voices();
    let core = turns.core;
    let state = core.state;

    let pending = Signal::derive(move || {
        let partial = core.partial_answer.get();
        let doing = if state.with(|s| *s == VoiceState::Uploading) {
            "Sending your recording…".to_owned()
        } else if let Some(place) = core.queue_place.get() {
            format!("Waiting: {}…", crate::voice_state::queue_words(place))
        } else if partial.is_empty() {
            "Thinking…".to_owned()
        } else {
            // A streamed answer shows as it is written.
            partial
        };
        core.pending.get().map(|question| (question, doing))
    });
    let heard = Signal::derive(move || if state.with(|s| *s == VoiceState::Listening) { core.heard.get() } else { None });
    let hands_free = move || core.hands_free.with(|settings| settings.enabled);
    let status_text = move || {
        if hands_free() && state.with(|s| *s == VoiceState::Listening) {
            "Listening hands-free… just talk; a pause ends your question. Tap the mic to stop listening.".to_owned()
        } else if let Some(place) = core.queue_place.get().filter(|_| state.with(|s| *s == VoiceState::Thinking)) {
            format!("Other questions are being answered first: yours is {}.", crate::voice_state::queue_words(place))
        } else if hands_free() && state.with(|s| *s == VoiceState::Ready) {
            "Hands-free is on. Tap the microphone button (or Space) to start listening.".to_owned()
        } else {
            state.with(VoiceState::status_text)
        }
    };
    let nothing_to_clear = move || {
        state.with(|s| *s == VoiceState::Ready)
            && core.exchanges.with(Vec::is_empty)
            && core.pending.with(Option::is_none)
            && core.session.with(Option::is_none)
    };
    // Hands-free listening waits for speech: typing a question meanwhile is fine.
    let may_type = move || state.with(VoiceState::accepts_new_turn) || (hands_free() && state.with(|s| *s == VoiceState::Listening));
    let busy = Signal::derive(move || !may_type());
    let send = Callback::new(move |text: String| {
        turns.submit_text(text);
    });

    view! {
        <div
            class="app"
            data-state=move || state.with(VoiceState::name)
            data-playback=move || core.playback.get().name()
            data-hands-free=move || hands_free().to_string()
            data-live=move || if core.live_open.get() { "open" } else { "closed" }
            data-panel=move || ui.panel.get().map_or("none", |_| "open")
        >
            <header class="topbar">
                <h1>"Parlance"</h1>
                <PanelButtons />
                <button type="button" class="secondary" on:click=move |_| turns.start_afresh() disabled=nothing_to_clear>
                    "New conversation"
                </button>
                {crate::sign_in::token().map(|_| {
                    view! {
                        <button type="button" class="secondary sign-out" on:click=move |_| crate::sign_in::sign_out()>
                            "Sign out"
                        </button>
                    }
                })}
            </header>
            {move || core.notice.get().map(|notice| view! { <p class="notice" role="alert">{notice}</p> })}
            <main class="main">
                <Conversation exchanges=core.exchanges pending=pending heard=heard />
            </main>
            <footer class="controls">
                <p
                    id="status"
                    class="status"
                    role="status"
                    aria-live="polite"
                    data-state=move || state.with(VoiceState::name)
                >
                    {status_text}
                </p>
                <div class="control-row">
                    <MicButton />
                    <Show when=move || state.with(|s| *s == VoiceState::Speaking)>
                        <button type="button" class="stop" on:click=move |_| turns.stop_playback()>
                            "Stop"
                        </button>
                    </Show>
                </div>
                <HandsFree />
                <Composer busy=busy on_send=send />
            </footer>
            <Panels />
            <Show when=move || matches!(sign_in.get(), SignIn::Needed { .. })>
                <SignInScreen />
            </Show>
        </div>
    }
}
