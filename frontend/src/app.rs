//! The page: the status line, the conversation, and the controls around them.

use leptos::prelude::*;

use crate::composer::Composer;
use crate::conversation::Conversation;
use crate::mic_button::MicButton;
use crate::turns::Turns;
use crate::voice_state::VoiceState;

#[component]
pub fn App() -> impl IntoView {
    let turns = Turns::new();
    turns.restore();
    let state = turns.state;

    let pending = Signal::derive(move || {
        let doing = if state.with(|s| *s == VoiceState::Uploading) { "Sending your recording…" } else { "Thinking…" };
        turns.pending.get().map(|question| (question, doing.to_owned()))
    });
    let nothing_to_clear = move || {
        state.with(|s| *s == VoiceState::Ready)
            && turns.exchanges.with(Vec::is_empty)
            && turns.pending.with(Option::is_none)
            && turns.session.with(Option::is_none)
    };
    let busy = Signal::derive(move || !state.with(VoiceState::accepts_new_turn));
    let send = Callback::new(move |text: String| {
        turns.submit_text(text);
    });

    view! {
        <div
            class="app"
            data-state=move || state.with(VoiceState::name)
            data-playback=move || turns.playback.get().name()
        >
            <header class="topbar">
                <h1>"Parlance"</h1>
                <button type="button" class="secondary" on:click=move |_| turns.new_conversation() disabled=nothing_to_clear>
                    "New conversation"
                </button>
            </header>
            {move || turns.notice.get().map(|notice| view! { <p class="notice" role="alert">{notice}</p> })}
            <main class="main">
                <Conversation exchanges=turns.exchanges pending=pending />
            </main>
            <footer class="controls">
                <p
                    id="status"
                    class="status"
                    role="status"
                    aria-live="polite"
                    data-state=move || state.with(VoiceState::name)
                >
                    {move || state.with(VoiceState::status_text)}
                </p>
                <div class="control-row">
                    <MicButton turns=turns />
                    <Show when=move || state.with(|s| *s == VoiceState::Speaking)>
                        <button type="button" class="stop" on:click=move |_| turns.stop_playback()>
                            "Stop"
                        </button>
                    </Show>
                </div>
                <Composer busy=busy on_send=send />
            </footer>
        </div>
    }
}
