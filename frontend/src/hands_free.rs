//! The hands-free controls: a switch (the microphone listens and turn-taking follows the voice) and how long a
//! pause ends a question. Both are remembered across visits.

use leptos::prelude::*;

use crate::streaming::vad::SILENCE_MS_RANGE;
use crate::turns::Turns;

#[component]
pub fn HandsFree() -> impl IntoView {
    let turns = expect_context::<Turns>();
    let settings = turns.hands_free_settings();
    let enabled = move || settings.with(|s| s.enabled);
    let silence_ms = move || settings.with(|s| s.silence_ms);

    view! {
        <div class="hands-free">
            <label class="switch">
                <input
                    id="hands-free"
                    type="checkbox"
                    role="switch"
                    prop:checked=enabled
                    on:change=move |event| turns.set_hands_free(event_target_checked(&event))
                />
                <span>"Hands-free"</span>
            </label>
            <Show when=enabled>
                <label class="silence">
                    <span>{move || format!("Pause to finish: {:.1} s", f64::from(silence_ms()) / 1000.0)}</span>
                    <input
                        id="silence"
                        type="range"
                        min=*SILENCE_MS_RANGE.start()
                        max=*SILENCE_MS_RANGE.end()
                        step="100"
                        prop:value=move || silence_ms().to_string()
                        on:input=move |event| {
                            if let Ok(ms) = event_target_value(&event).parse::<u32>() {
                                turns.set_silence_ms(ms);
                            }
                        }
                    />
                </label>
            </Show>
        </div>
    }
}
