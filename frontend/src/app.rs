//! The page: conversation state, the request that answers a question, and the layout around them.

use std::sync::Arc;

use leptos::prelude::*;
use parlance_shared::{ErrorCode, SessionId, TextTurnRequest};

use crate::api;
use crate::composer::Composer;
use crate::conversation::{Conversation, Exchange};

#[component]
pub fn App() -> impl IntoView {
    // Issued by the server with the first answer; sent back so it keeps the conversation's context.
    let session = RwSignal::new(None::<SessionId>);
    let exchanges = RwSignal::new(Vec::<Arc<Exchange>>::new());
    let next_id = StoredValue::new(0_u64);
    let in_flight = StoredValue::new(None::<ActionAbortHandle>);

    let ask = Action::new_local(move |request: &TextTurnRequest| {
        let request = request.clone();
        async move {
            let outcome = api::send_text_turn(&request).await;
            match &outcome {
                Ok(response) => session.set(Some(response.session_id.clone())),
                // The server has forgotten the conversation (restarted, or expired it): without this, every
                // later question would fail the same way until the user found "New conversation".
                Err(error) if error.code() == Some(ErrorCode::SessionNotFound) => session.set(None),
                Err(_) => {}
            }
            let id = next_id.get_value();
            next_id.set_value(id + 1);
            exchanges.update(|list| list.push(Arc::new(Exchange { id, question: request.text, outcome })));
        }
    });
    let busy = ask.pending();
    // The action holds its input exactly while the request is in flight: that is the question to show.
    let pending_question = Signal::derive(move || ask.input().get().map(|request| request.text));

    let send = Callback::new(move |text: String| {
        if busy.get_untracked() {
            return;
        }
        // This page plays the answer, so it always asks for speech.
        let request = TextTurnRequest { session_id: session.get_untracked(), text, speak: true };
        in_flight.set_value(Some(ask.dispatch(request)));
    });

    let new_conversation = move |_| {
        // Aborting drops the pending future, so a late answer cannot land in the fresh conversation.
        if let Some(handle) = in_flight.try_update_value(Option::take).flatten() {
            handle.abort();
        }
        session.set(None);
        exchanges.set(Vec::new());
    };
    let nothing_to_clear = move || exchanges.with(Vec::is_empty) && !busy.get();

    view! {
        <header class="topbar">
            <h1>"Parlance"</h1>
            <button type="button" class="secondary" on:click=new_conversation disabled=nothing_to_clear>
                "New conversation"
            </button>
        </header>
        <main class="main">
            <Conversation exchanges=exchanges pending=pending_question />
        </main>
        <Composer busy=busy on_send=send />
    }
}
