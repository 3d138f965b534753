//! Where the user types a question: the fallback to talking, and always usable, even without a microphone.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

#[component]
pub fn Composer(
    /// A turn is in progress (recording, sending or thinking): sending another now would race it for the session.
    #[prop(into)]
    busy: Signal<bool>,
    /// Receives the trimmed, non-empty question.
    on_send: Callback<String>,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let blank = move || draft.with(|text| text.trim().is_empty());

    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        // The disabled button already blocks Enter; this guards any other way a submit event could arrive.
        if busy.get_untracked() || draft.with_untracked(|text| text.trim().is_empty()) {
            return;
        }
        let question = draft.get_untracked().trim().to_owned();
        draft.set(String::new());
        on_send.run(question);
    };

    view! {
        <form class="composer" on:submit=submit aria-busy=move || busy.get().to_string()>
            <label class="visually-hidden" for="question">
                "Your question"
            </label>
            // Read-only rather than disabled while busy: disabling would drop focus and close a phone's
            // keyboard after every question.
            <input
                id="question"
                type="text"
                name="question"
                autocomplete="off"
                enterkeyhint="send"
                placeholder="Or type a question…"
                readonly=move || busy.get()
                bind:value=draft
            />
            <button type="submit" disabled=move || busy.get() || blank()>
                "Send"
            </button>
        </form>
    }
}
