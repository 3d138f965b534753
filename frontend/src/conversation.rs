//! The conversation so far: each question with its answer (or what went wrong), newest last.

use std::sync::Arc;

use leptos::html;
use leptos::prelude::*;
use parlance_shared::{AudioClip, KnowledgeSource, StageTimings, TurnResponse};

use crate::api::ApiError;

/// One question and what came back for it.
#[derive(Debug, PartialEq)]
pub struct Exchange {
    /// Unique within the page's lifetime; keys the list so earlier answers keep their DOM (and audio players).
    pub id: u64,
    pub question: String,
    pub outcome: Result<TurnResponse, ApiError>,
}

#[component]
pub fn Conversation(
    /// Shared (`Arc`) because answers can carry seconds of base64 audio and the list is cloned on each change.
    #[prop(into)]
    exchanges: Signal<Vec<Arc<Exchange>>>,
    /// The question waiting for its answer, if any.
    #[prop(into)]
    pending: Signal<Option<String>>,
) -> impl IntoView {
    let end = NodeRef::<html::Div>::new();
    // Keep the newest line in view on a small screen: the question once sent, then its answer.
    Effect::new(move || {
        exchanges.track();
        pending.track();
        if let Some(end) = end.get() {
            end.scroll_into_view_with_bool(false);
        }
    });

    let is_empty = move || exchanges.with(Vec::is_empty) && pending.with(Option::is_none);

    view! {
        <section class="log" role="log" aria-live="polite" aria-label="Conversation">
            <Show when=is_empty>
                <p class="empty">"Ask Parlance anything: type a question below and press Enter."</p>
            </Show>
            <For each=move || exchanges.get() key=|exchange| exchange.id let(exchange)>
                {exchange_view(&exchange)}
            </For>
            {move || {
                pending
                    .get()
                    .map(|question| {
                        view! {
                            <article class="exchange" aria-busy="true">
                                <p class="bubble user">{question}</p>
                                <p class="bubble assistant thinking">"Thinking…"</p>
                            </article>
                        }
                    })
            }}
            <div class="log-end" node_ref=end></div>
        </section>
    }
}

fn exchange_view(exchange: &Exchange) -> impl IntoView + use<> {
    let reply = match &exchange.outcome {
        Ok(response) => answer_view(response).into_any(),
        Err(error) => view! { <p class="bubble error">{error.to_string()}</p> }.into_any(),
    };
    view! {
        <article class="exchange">
            <p class="bubble user">{exchange.question.clone()}</p>
            {reply}
        </article>
    }
}

fn answer_view(response: &TurnResponse) -> impl IntoView + use<> {
    // Only a freshly received answer is ever rendered (the list is keyed), so autoplay speaks each answer once;
    // the user's click or Enter just before counts as the gesture browsers require for sound.
    let audio = response.audio.as_ref().map(|clip| {
        view! { <audio class="answer-audio" controls autoplay src=audio_data_url(clip)></audio> }
    });
    let speech_error = response.speech_error.as_ref().map(|error| {
        view! { <p class="note">"No spoken answer: " {error.message.clone()}</p> }
    });
    let sources = (!response.sources.is_empty()).then(|| sources_view(&response.sources));

    view! {
        <div class="bubble assistant">
            <p class="answer-text">{response.answer.clone()}</p>
            {audio}
            {speech_error}
            {sources}
            <p class="timings">{timings_summary(&response.timings)}</p>
        </div>
    }
}

fn sources_view(sources: &[KnowledgeSource]) -> impl IntoView + use<> {
    let items = sources
        .iter()
        .map(|source| {
            view! {
                <li>
                    <span class="source-title">{source.title.clone()}</span>
                    <span class="source-snippet">{source.snippet.clone()}</span>
                </li>
            }
        })
        .collect_view();
    view! {
        <details class="sources">
            <summary>{format!("Sources ({})", sources.len())}</summary>
            <ul>{items}</ul>
        </details>
    }
}

/// A `data:` URL, so the clip plays without decoding the base64 in Rust or managing object URLs.
fn audio_data_url(clip: &AudioClip) -> String {
    format!("data:{};base64,{}", clip.mime_type, clip.data_base64)
}

/// For example `1.3 s total · LLM 870 ms · TTS 410 ms`. Stages that did not run (0 ms) are left out.
fn timings_summary(timings: &StageTimings) -> String {
    let stages = [("STT", timings.stt_ms), ("LLM", timings.llm_ms), ("TTS", timings.tts_ms)];
    std::iter::once(format!("{} total", duration(timings.total_ms)))
        .chain(stages.into_iter().filter(|&(_, ms)| ms > 0).map(|(stage, ms)| format!("{stage} {}", duration(ms))))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        // Precision to a tenth of a second is all that is readable at a glance; f64 is exact far beyond that.
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(1000), "1.0 s");
        assert_eq!(duration(12_345), "12.3 s");
    }

    #[test]
    fn timings_leave_out_stages_that_did_not_run() {
        let timings = StageTimings { stt_ms: 0, llm_ms: 870, tts_ms: 410, total_ms: 1310, first_audio_ms: None };
        assert_eq!(timings_summary(&timings), "1.3 s total · LLM 870 ms · TTS 410 ms");
    }

    #[test]
    fn audio_becomes_a_data_url() {
        let clip = AudioClip { mime_type: "audio/wav".into(), data_base64: "UklGRg==".into() };
        assert_eq!(audio_data_url(&clip), "data:audio/wav;base64,UklGRg==");
    }
}
