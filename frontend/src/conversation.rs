//! The conversation so far: each question with its answer (or what went wrong), newest last.

use std::sync::Arc;

use leptos::html;
use leptos::prelude::*;
use parlance_shared::{ErrorBody, HistoryTurn, KnowledgeSource, Role, StageTimings, TurnResponse};

/// One question and what came back for it.
#[derive(Debug, PartialEq)]
pub struct Exchange {
    /// Unique within the page's lifetime; keys the list so earlier answers keep their DOM.
    pub id: u64,
    pub question: String,
    pub reply: Reply,
}

#[derive(Debug, PartialEq)]
pub enum Reply {
    Answer(Answer),
    /// What went wrong, as a sentence for people.
    Failed(String),
}

/// An answer as the page shows it, whether it just arrived or came back with the history after a reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub sources: Vec<KnowledgeSource>,
    /// Only for answers received in this visit: the history does not keep them.
    pub timings: Option<StageTimings>,
    /// Why there is no spoken answer although one was asked for.
    pub speech_note: Option<String>,
    /// The user cut the answer short: `text` is only what was spoken before that.
    pub interrupted: bool,
}

impl Answer {
    pub fn from_response(response: &TurnResponse) -> Self {
        Self {
            text: response.answer.clone(),
            sources: response.sources.clone(),
            timings: Some(response.timings),
            speech_note: response.speech_error.as_ref().map(|error| format!("No spoken answer: {}", error.message)),
            interrupted: false,
        }
    }

    /// A streamed answer as its `done` event reports it.
    pub fn from_done(answer: &str, sources: &[KnowledgeSource], timings: StageTimings, speech_error: Option<&ErrorBody>) -> Self {
        Self {
            text: answer.to_owned(),
            sources: sources.to_vec(),
            timings: Some(timings),
            speech_note: speech_error.map(|error| format!("No spoken answer: {}", error.message)),
            interrupted: false,
        }
    }

    /// What is left of an answer the user interrupted: the part that was played, as the server kept it.
    pub fn interrupted(kept_answer: &str, sources: Vec<KnowledgeSource>, timings: Option<StageTimings>) -> Self {
        Self { text: kept_answer.to_owned(), sources, timings, speech_note: None, interrupted: true }
    }
}

/// Pairs the remembered lines into question-and-answer exchanges, oldest first. A question whose answer was
/// never stored (the turn failed) is shown with a note rather than dropped, so the history reads as it happened.
pub fn exchanges_from_history(turns: &[HistoryTurn]) -> Vec<(String, Reply)> {
    let mut exchanges = Vec::new();
    let mut question: Option<String> = None;
    for turn in turns {
        match turn.role {
            Role::User => {
                if let Some(unanswered) = question.replace(turn.text.clone()) {
                    exchanges.push((unanswered, Reply::Failed(NO_SAVED_ANSWER.to_owned())));
                }
            }
            Role::Assistant => {
                let answer = Answer {
                    text: turn.text.clone(),
                    sources: turn.sources.clone(),
                    timings: None,
                    speech_note: None,
                    interrupted: turn.interrupted,
                };
                exchanges.push((question.take().unwrap_or_default(), Reply::Answer(answer)));
            }
        }
    }
    if let Some(unanswered) = question {
        exchanges.push((unanswered, Reply::Failed(NO_SAVED_ANSWER.to_owned())));
    }
    exchanges
}

const NO_SAVED_ANSWER: &str = "No answer was saved for this question.";

#[component]
pub fn Conversation(
    /// Shared (`Arc`) because the list is cloned on each change.
    #[prop(into)]
    exchanges: Signal<Vec<Arc<Exchange>>>,
    /// The question waiting for its answer, if any, and what is happening to it.
    #[prop(into)]
    pending: Signal<Option<(String, String)>>,
    /// What the server has heard so far while the user is still speaking.
    #[prop(into)]
    heard: Signal<Option<String>>,
) -> impl IntoView {
    let end = NodeRef::<html::Div>::new();
    // Keep the newest line in view on a small screen: the question once sent, then its answer.
    Effect::new(move || {
        exchanges.track();
        pending.track();
        heard.track();
        if let Some(end) = end.get() {
            end.scroll_into_view_with_bool(false);
        }
    });

    let is_empty = move || exchanges.with(Vec::is_empty) && pending.with(Option::is_none) && heard.with(Option::is_none);

    view! {
        <section class="log" role="log" aria-label="Conversation">
            <Show when=is_empty>
                <p class="empty">"Hold the microphone button and ask, or type a question below."</p>
            </Show>
            <For each=move || exchanges.get() key=|exchange| exchange.id let(exchange)>
                {exchange_view(&exchange)}
            </For>
            {move || {
                pending
                    .get()
                    .map(|(question, doing)| {
                        view! {
                            <article class="exchange" aria-busy="true">
                                <p class="bubble user pending">{question}</p>
                                <p class="bubble assistant thinking">{doing}</p>
                            </article>
                        }
                    })
            }}
            {move || {
                heard
                    .get()
                    .map(|text| {
                        view! {
                            <article class="exchange">
                                <p class="bubble user provisional" aria-live="polite">{text}</p>
                            </article>
                        }
                    })
            }}
            <div class="log-end" node_ref=end></div>
        </section>
    }
}

fn exchange_view(exchange: &Exchange) -> impl IntoView + use<> {
    let reply = match &exchange.reply {
        Reply::Answer(answer) => answer_view(answer).into_any(),
        Reply::Failed(message) => view! { <p class="bubble error">{message.clone()}</p> }.into_any(),
    };
    view! {
        <article class="exchange">
            <p class="bubble user">{exchange.question.clone()}</p>
            {reply}
        </article>
    }
}

fn answer_view(answer: &Answer) -> impl IntoView + use<> {
    let speech_note = answer.speech_note.clone().map(|note| view! { <p class="note">{note}</p> });
    let sources = (!answer.sources.is_empty()).then(|| sources_view(&answer.sources));
    let timings = answer.timings.map(|timings| view! { <p class="timings">{timings_summary(&timings)}</p> });
    let interrupted =
        answer.interrupted.then(|| view! { <p class="note interrupted-note">"Interrupted: only the part you heard is kept."</p> });

    view! {
        <div class="bubble assistant" class:interrupted=answer.interrupted>
            <p class="answer-text">{answer.text.clone()}</p>
            {interrupted}
            {speech_note}
            {sources}
            {timings}
        </div>
    }
}

fn sources_view(sources: &[KnowledgeSource]) -> impl IntoView + use<> {
    let items = sources
        .iter()
        .map(|source| {
            let id = source.id.clone();
            let open = move |_| {
                if let Some(ui) = use_context::<crate::panels::Ui>() {
                    ui.open_note(id.clone());
                }
            };
            view! {
                <li>
                    <button type="button" class="link source-title" on:click=open>{source.title.clone()}</button>
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

/// For example `1.3 s total · first audio 640 ms · LLM 870 ms · TTS 410 ms`. Stages that did not run (0 ms) are
/// left out, and so is the wait in line when there was none; time to first audio only exists for streamed
/// turns, where it is the figure that matters.
fn timings_summary(timings: &StageTimings) -> String {
    let stages = [("queued", timings.queued_ms), ("STT", timings.stt_ms), ("LLM", timings.llm_ms), ("TTS", timings.tts_ms)];
    std::iter::once(format!("{} total", duration(timings.total_ms)))
        .chain(timings.first_audio_ms.map(|ms| format!("first audio {}", duration(ms))))
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
        let timings = StageTimings {
            queued_ms: 0,
            stt_ms: 0,
            llm_ms: 870,
            tts_ms: 410,
            total_ms: 1310,
            first_audio_ms: None,
            first_audio_from_speech_end_ms: None,
        };
        assert_eq!(timings_summary(&timings), "1.3 s total · LLM 870 ms · TTS 410 ms");
    }

    #[test]
    fn streamed_timings_show_the_time_to_first_audio() {
        let timings = StageTimings {
            queued_ms: 0,
            stt_ms: 420,
            llm_ms: 900,
            tts_ms: 300,
            total_ms: 1600,
            first_audio_ms: Some(640),
            first_audio_from_speech_end_ms: None,
        };
        assert_eq!(timings_summary(&timings), "1.6 s total · first audio 640 ms · STT 420 ms · LLM 900 ms · TTS 300 ms");
    }

    #[test]
    fn a_wait_in_line_is_shown_apart_from_the_model() {
        let timings = StageTimings { queued_ms: 2400, llm_ms: 900, total_ms: 3300, ..StageTimings::default() };
        assert_eq!(timings_summary(&timings), "3.3 s total · queued 2.4 s · LLM 900 ms");
    }

    #[test]
    fn an_interrupted_answer_in_the_history_stays_marked() {
        let cut = HistoryTurn { interrupted: true, ..line(Role::Assistant, "One.") };
        let exchanges = exchanges_from_history(&[line(Role::User, "Story?"), cut]);
        assert!(matches!(&exchanges[0].1, Reply::Answer(answer) if answer.interrupted && answer.text == "One."));
    }

    fn line(role: Role, text: &str) -> HistoryTurn {
        HistoryTurn {
            role,
            text: text.into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            sources: Vec::new(),
            tool_calls: Vec::new(),
            interrupted: false,
        }
    }

    #[test]
    fn history_lines_pair_into_exchanges() {
        let turns = [line(Role::User, "Hi"), line(Role::Assistant, "Hello!"), line(Role::User, "Time?"), line(Role::Assistant, "Noon.")];
        let exchanges = exchanges_from_history(&turns);
        assert_eq!(exchanges.len(), 2);
        assert_eq!(exchanges[1].0, "Time?");
        assert!(matches!(&exchanges[1].1, Reply::Answer(answer) if answer.text == "Noon." && answer.timings.is_none()));
    }

    #[test]
    fn an_unanswered_question_in_the_history_is_kept_with_a_note() {
        let exchanges = exchanges_from_history(&[line(Role::User, "One"), line(Role::User, "Two"), line(Role::Assistant, "Two!")]);
        assert_eq!(exchanges.len(), 2);
        assert_eq!(exchanges[0], ("One".to_owned(), Reply::Failed(NO_SAVED_ANSWER.to_owned())));
        assert!(matches!(&exchanges[1].1, Reply::Answer(answer) if answer.text == "Two!"));
        assert_eq!(exchanges_from_history(&[line(Role::User, "Last")]).len(), 1);
    }

    #[test]
    fn a_speech_error_becomes_a_note_and_timings_are_kept() {
        let response = TurnResponse {
            session_id: parlance_shared::SessionId::new("s"),
            transcript: "q".into(),
            answer: "a".into(),
            audio: None,
            speech_error: Some(parlance_shared::ErrorBody {
                code: parlance_shared::ErrorCode::ProviderUnavailable,
                message: "TTS is down.".into(),
            }),
            sources: Vec::new(),
            tool_calls: Vec::new(),
            timings: StageTimings { total_ms: 5, ..StageTimings::default() },
        };
        let answer = Answer::from_response(&response);
        assert_eq!(answer.speech_note.as_deref(), Some("No spoken answer: TTS is down."));
        assert_eq!(answer.timings.map(|t| t.total_ms), Some(5));
    }
}
