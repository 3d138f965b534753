//! The microphone button and the Space bar: hold to talk, or tap to start and tap again to stop. Shows the
//! level meter while listening.

use leptos::ev;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::turns::Turns;
use crate::voice_state::{MicLook, VoiceState};

const MIC_ID: &str = "mic";

#[component]
pub fn MicButton() -> impl IntoView {
    let turns = expect_context::<Turns>();
    let state = turns.core.state;
    // Space is push-to-talk anywhere except where it types or presses something else.
    let space_down = window_event_listener(ev::keydown, move |event| {
        if is_space(&event) && space_is_for_the_mic(&event) {
            event.prevent_default();
            if !event.repeat() {
                turns.press();
            }
        }
    });
    let space_up = window_event_listener(ev::keyup, move |event| {
        if is_space(&event) && space_is_for_the_mic(&event) {
            // Also stops the focused mic button from treating the key-up as a click.
            event.prevent_default();
            turns.release();
        }
    });
    on_cleanup(move || {
        space_down.remove();
        space_up.remove();
    });

    let on_pointer_down = move |event: ev::PointerEvent| {
        if event.button() != 0 {
            return;
        }
        // No text selection, no long-press menu, and the release arrives here even if the finger slides off.
        event.prevent_default();
        if let Some(button) = event.current_target().and_then(|target| target.dyn_into::<web_sys::Element>().ok()) {
            let _ = button.set_pointer_capture(event.pointer_id());
        }
        turns.press();
    };
    let on_click = move |event: ev::MouseEvent| {
        // `detail` is 0 for a click made with the keyboard (Enter): treat it as a tap. Pointer clicks were
        // already handled by pointerdown/pointerup.
        if event.detail() == 0 {
            turns.press();
            turns.release();
        }
    };

    let look = move || state.with(VoiceState::mic_look);
    let level = turns.core.level;

    view! {
        <div class="mic-area">
            <button
                id=MIC_ID
                type="button"
                class=move || look().class()
                aria-label=move || state.with(VoiceState::mic_label)
                aria-pressed=move || (look() == MicLook::Recording).to_string()
                aria-disabled=move || state.with(VoiceState::in_flight).to_string()
                on:pointerdown=on_pointer_down
                on:pointerup=move |_| turns.release()
                on:pointercancel=move |_| turns.release()
                on:contextmenu=|event: ev::MouseEvent| event.prevent_default()
                on:click=on_click
            >
                <svg class="mic-icon" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z" />
                </svg>
            </button>
            <div class="level" aria-hidden="true" class:active=move || look() == MicLook::Recording>
                <div class="level-bar" style:transform=move || format!("scaleX({:.3})", level.get())></div>
            </div>
        </div>
    }
}

fn is_space(event: &web_sys::KeyboardEvent) -> bool {
    event.code() == "Space" && !event.ctrl_key() && !event.alt_key() && !event.meta_key()
}

/// Space belongs to the mic on the page itself and on the mic button, not in the text box or on other controls.
fn space_is_for_the_mic(event: &web_sys::KeyboardEvent) -> bool {
    let Some(element) = event.target().and_then(|target| target.dyn_into::<web_sys::Element>().ok()) else { return true };
    if element.id() == MIC_ID {
        return true;
    }
    let tag = element.tag_name().to_ascii_lowercase();
    let interactive = matches!(tag.as_str(), "input" | "textarea" | "select" | "button" | "a" | "summary");
    !interactive && element.get_attribute("contenteditable").is_none()
}
