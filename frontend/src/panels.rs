//! The panels beside the conversation: the notes the assistant answers from, the past conversations, and the
//! settings with the server's status. One is open at a time; Escape or its close button closes it, and on a
//! phone it covers the page.

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use parlance_shared::{
    Health, KnowledgeSource, NewNote, Note, NoteSummary, SPEECH_RATE_RANGE, SessionSummary, Stage, StageHealth, VoiceInfo,
};
use wasm_bindgen::JsCast;

use crate::api;
use crate::library::{PAGE_SIZE, Paged, forget, highlight, refuse_file, renamed};
use crate::prefs::{self, Preferences, Theme};
use crate::turns::Turns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Notes,
    Conversations,
    Settings,
}

impl Panel {
    fn title(self) -> &'static str {
        match self {
            Self::Notes => "Notes",
            Self::Conversations => "Conversations",
            Self::Settings => "Settings",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Notes => "notes",
            Self::Conversations => "conversations",
            Self::Settings => "settings",
        }
    }
}

/// What the page around the panels shares with them (through context).
#[derive(Clone, Copy)]
pub struct Ui {
    pub panel: RwSignal<Option<Panel>>,
    /// The note shown in the notes panel, by id.
    pub note: RwSignal<Option<String>>,
    pub prefs: RwSignal<Preferences>,
    /// The server's voices, the default among them (empty until asked, or when it speaks no answers).
    pub voices: RwSignal<Vec<VoiceInfo>>,
}

impl Ui {
    pub fn new() -> Self {
        let loaded = prefs::load();
        prefs::apply_theme(loaded.theme);
        Self { panel: RwSignal::new(None), note: RwSignal::new(None), prefs: RwSignal::new(loaded), voices: RwSignal::new(Vec::new()) }
    }

    /// Asks the server for its voices; a chosen voice it no longer has is forgotten, or every turn would be
    /// refused for it. At start-up and whenever the settings open.
    pub fn load_voices(self) {
        spawn_local(async move {
            if let Ok(list) = api::voices().await {
                if self.prefs.get_untracked().keep_voice_among(&list.voices) {
                    self.change(|p| p.voice = None);
                }
                self.voices.set(list.voices);
            }
        });
    }

    pub fn toggle(self, panel: Panel) {
        self.panel.update(|open| *open = if *open == Some(panel) { None } else { Some(panel) });
    }

    /// From an answer's sources: the note it came from.
    pub fn open_note(self, id: String) {
        self.note.set(Some(id));
        self.panel.set(Some(Panel::Notes));
    }

    fn change(self, change: impl FnOnce(&mut Preferences)) {
        self.prefs.update(change);
        let now = self.prefs.get_untracked();
        prefs::save(&now);
        prefs::apply_theme(now.theme);
    }
}

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}

/// The buttons that open the panels.
#[component]
pub fn PanelButtons() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let button = move |panel: Panel| {
        view! {
            <button
                type="button"
                class="secondary panel-button"
                id=format!("open-{}", panel.name())
                aria-expanded=move || (ui.panel.get() == Some(panel)).to_string()
                aria-controls="panel"
                on:click=move |_| ui.toggle(panel)
            >
                {panel.title()}
            </button>
        }
    };
    view! { <nav class="panel-buttons" aria-label="Panels">{button(Panel::Notes)} {button(Panel::Conversations)} {button(Panel::Settings)}</nav> }
}

/// The open panel, if any.
#[component]
pub fn Panels() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let close = NodeRef::<html::Button>::new();
    // Keyboard users land in the panel they opened.
    Effect::new(move || {
        if ui.panel.get().is_some()
            && let Some(button) = close.get()
        {
            let _ = button.focus();
        }
    });
    let on_key = move |event: leptos::ev::KeyboardEvent| {
        if event.key() == "Escape" {
            event.stop_propagation();
            ui.panel.set(None);
            focus_by_id("question");
        }
    };
    move || {
        ui.panel.get().map(|panel| {
            let body = match panel {
                Panel::Notes => view! { <NotesPanel /> }.into_any(),
                Panel::Conversations => view! { <ConversationsPanel /> }.into_any(),
                Panel::Settings => view! { <SettingsPanel /> }.into_any(),
            };
            view! {
                <aside
                    id="panel"
                    class="panel"
                    data-panel=panel.name()
                    role="dialog"
                    aria-modal="false"
                    aria-labelledby="panel-title"
                    on:keydown=on_key
                >
                    <header class="panel-head">
                        <h2 id="panel-title">{panel.title()}</h2>
                        <button type="button" class="secondary close" node_ref=close on:click=move |_| ui.panel.set(None)>
                            "Close"
                        </button>
                    </header>
                    <div class="panel-body">{body}</div>
                </aside>
            }
        })
    }
}

fn focus_by_id(id: &str) {
    if let Some(element) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id))
        && let Ok(element) = element.dyn_into::<web_sys::HtmlElement>()
    {
        let _ = element.focus();
    }
}

/// A file being added, and how it went.
#[derive(Debug, Clone, PartialEq)]
struct Upload {
    id: u32,
    name: String,
    state: UploadState,
}

#[derive(Debug, Clone, PartialEq)]
enum UploadState {
    Sending,
    Added(String),
    Failed(String),
}

impl UploadState {
    fn name(&self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Added(_) => "added",
            Self::Failed(_) => "failed",
        }
    }
}

#[component]
fn NotesPanel() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let list = RwSignal::new(Paged::<NoteSummary>::default());
    let problem = RwSignal::new(None::<String>);
    let load = move |offset: u64| {
        spawn_local(async move {
            match api::notes(offset, PAGE_SIZE).await {
                Ok(page) => {
                    list.update(|list| {
                        list.receive(offset, page.notes, page.total);
                    });
                }
                Err(error) => problem.set(Some(error.to_string())),
            }
        });
    };
    load(0);

    let query = RwSignal::new(String::new());
    let results = RwSignal::new(None::<(String, Vec<KnowledgeSource>)>);
    let search = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let text = query.get_untracked().trim().to_owned();
        if text.is_empty() {
            results.set(None);
            return;
        }
        spawn_local(async move {
            match api::search_notes(&text).await {
                Ok(found) => results.set(Some((found.query, found.hits))),
                Err(error) => problem.set(Some(error.to_string())),
            }
        });
    };

    let title = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let paste_state = RwSignal::new(None::<String>);
    let add_pasted = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let body = text.get_untracked();
        if body.trim().is_empty() {
            paste_state.set(Some("Paste the note's text first.".into()));
            return;
        }
        let note_title = title.get_untracked();
        paste_state.set(Some("Adding…".into()));
        spawn_local(async move {
            match api::add_note(NewNote { title: note_title, text: body, source: Some("pasted".into()) }).await {
                Ok(added) => {
                    let what = added.notes.first().map(|n| n.title.clone()).unwrap_or_default();
                    let word = if added.added > 0 { "Added" } else { "Already kept" };
                    paste_state.set(Some(format!("{word}: {what}")));
                    title.set(String::new());
                    text.set(String::new());
                    load(0);
                }
                Err(error) => paste_state.set(Some(error.to_string())),
            }
        });
    };

    let uploads = RwSignal::new(Vec::<Upload>::new());
    let next_upload = StoredValue::new(0u32);
    let send_files = move |files: web_sys::FileList| {
        for index in 0..files.length() {
            let Some(file) = files.item(index) else { continue };
            let id = next_upload.get_value();
            next_upload.set_value(id + 1);
            let refused = refuse_file(&file.name(), file.size());
            let state = refused.clone().map_or(UploadState::Sending, UploadState::Failed);
            uploads.update(|list| list.push(Upload { id, name: file.name(), state }));
            if refused.is_some() {
                continue;
            }
            spawn_local(async move {
                let state = match api::upload_note(&file).await {
                    Ok(added) => {
                        load(0);
                        UploadState::Added(added.notes.first().map(|n| n.title.clone()).unwrap_or_default())
                    }
                    Err(error) => UploadState::Failed(error.to_string()),
                };
                uploads.update(|list| {
                    if let Some(upload) = list.iter_mut().find(|u| u.id == id) {
                        upload.state = state;
                    }
                });
            });
        }
    };
    let dragging = RwSignal::new(false);
    let on_drop = move |event: leptos::ev::DragEvent| {
        event.prevent_default();
        dragging.set(false);
        if let Some(files) = event.data_transfer().and_then(|transfer| transfer.files()) {
            send_files(files);
        }
    };
    let on_pick = move |event: leptos::ev::Event| {
        let input: Option<web_sys::HtmlInputElement> = event.target().and_then(|t| t.dyn_into().ok());
        if let Some(input) = input {
            if let Some(files) = input.files() {
                send_files(files);
            }
            input.set_value("");
        }
    };

    let confirming = RwSignal::new(None::<String>);
    let delete = move |id: String| {
        spawn_local(async move {
            match api::delete_note(&id).await {
                Ok(()) => {
                    list.update(|list| list.remove(|note| note.id == id));
                    results.update(|found| {
                        if let Some((_, hits)) = found {
                            hits.retain(|hit| hit.id != id);
                        }
                    });
                    if ui.note.get_untracked().as_deref() == Some(id.as_str()) {
                        ui.note.set(None);
                    }
                    confirming.set(None);
                }
                Err(error) => problem.set(Some(error.to_string())),
            }
        });
    };

    let note_row = move |note: NoteSummary| {
        let id = note.id.clone();
        let open_id = id.clone();
        let delete_id = id.clone();
        let asking = {
            let id = id.clone();
            move || confirming.get().as_deref() == Some(id.as_str())
        };
        let date = crate::library::day(&note.created_at);
        let source = note.source.clone().unwrap_or_default();
        let row_id = id.clone();
        view! {
            <li class="note-row" data-note-id=row_id>
                <button type="button" class="link note-open" on:click=move |_| ui.note.set(Some(open_id.clone()))>
                    {note.title.clone()}
                </button>
                <span class="meta">{format!("{date} · {source}")}</span>
                <Show
                    when=asking.clone()
                    fallback=move || {
                        let id = id.clone();
                        view! {
                            <button type="button" class="secondary small note-delete" on:click=move |_| confirming.set(Some(id.clone()))>
                                "Delete"
                            </button>
                        }
                    }
                >
                    {
                        let delete_id = delete_id.clone();
                        view! {
                            <span class="confirm" role="group" aria-label="Confirm deletion">
                                "Delete for good? "
                                <button type="button" class="danger small confirm-delete" on:click={
                                    let id = delete_id.clone();
                                    move |_| delete(id.clone())
                                }>
                                    "Delete"
                                </button>
                                <button type="button" class="secondary small" on:click=move |_| confirming.set(None)>
                                    "Keep"
                                </button>
                            </span>
                        }
                    }
                </Show>
            </li>
        }
    };

    view! {
        <div class="notes">
            {move || problem.get().map(|message| view! { <p class="bubble error" role="alert">{message}</p> })}
            <NoteView />
            <form class="search" role="search" on:submit=search>
                <label for="note-search">"Search the notes"</label>
                <div class="row">
                    <input id="note-search" type="search" bind:value=query placeholder="A question or a word" />
                    <button type="submit">"Search"</button>
                </div>
            </form>
            {move || {
                results.get().map(|(asked, hits)| {
                    let rows = hits
                        .into_iter()
                        .map(|hit| {
                            let id = hit.id.clone();
                            let pieces = highlight(&hit.snippet, &asked)
                                .into_iter()
                                .map(|(piece, marked)| if marked { view! { <mark>{piece}</mark> }.into_any() } else { piece.into_any() })
                                .collect_view();
                            view! {
                                <li class="hit">
                                    <button type="button" class="link" on:click=move |_| ui.note.set(Some(id.clone()))>{hit.title.clone()}</button>
                                    <p class="snippet">{pieces}</p>
                                </li>
                            }
                        })
                        .collect_view();
                    view! {
                        <section class="results" aria-live="polite">
                            <h3>"Found"</h3>
                            <ul>{rows}</ul>
                        </section>
                    }
                })
            }}
            <section class="add">
                <h3>"Add notes"</h3>
                <div
                    class="dropzone"
                    class:dragging=move || dragging.get()
                    on:dragover=move |event: leptos::ev::DragEvent| {
                        event.prevent_default();
                        dragging.set(true);
                    }
                    on:dragleave=move |_| dragging.set(false)
                    on:drop=on_drop
                >
                    <p>"Drop .md or .txt files here, or "</p>
                    <label class="file-pick">
                        "choose files"
                        <input id="note-files" type="file" multiple accept=".md,.markdown,.txt,text/markdown,text/plain" on:change=on_pick />
                    </label>
                </div>
                <ul class="uploads" aria-live="polite">
                    {move || {
                        uploads
                            .get()
                            .into_iter()
                            .map(|upload| {
                                let outcome = match &upload.state {
                                    UploadState::Sending => "Adding…".to_owned(),
                                    UploadState::Added(title) => format!("Added: {title}"),
                                    UploadState::Failed(message) => message.clone(),
                                };
                                view! {
                                    <li class="upload" data-state=upload.state.name() data-file=upload.name.clone()>
                                        {format!("{}: {outcome}", upload.name)}
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
                <form class="paste" on:submit=add_pasted>
                    <label for="paste-title">"Title"</label>
                    <input id="paste-title" type="text" bind:value=title placeholder="Optional: the first line is used" />
                    <label for="paste-text">"Text"</label>
                    <textarea id="paste-text" rows="4" bind:value=text placeholder="Paste a note"></textarea>
                    <button type="submit">"Add note"</button>
                    <p class="meta paste-state" aria-live="polite">{move || paste_state.get()}</p>
                </form>
            </section>
            <section class="list">
                <h3>{move || format!("All notes ({})", list.with(|l| l.total))}</h3>
                <ul class="note-list">
                    {move || list.get().items.into_iter().map(note_row).collect_view()}
                </ul>
                <Show when=move || list.with(Paged::has_more)>
                    <button type="button" class="secondary" on:click=move |_| load(list.with_untracked(Paged::next_offset))>
                        "Show more"
                    </button>
                </Show>
            </section>
        </div>
    }
}

/// The note chosen from the list, a search or an answer's sources, in full.
#[component]
fn NoteView() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let shown = RwSignal::new(None::<Result<Note, String>>);
    Effect::new(move || {
        let Some(id) = ui.note.get() else {
            shown.set(None);
            return;
        };
        spawn_local(async move {
            let result = api::note(&id).await.map_err(|error| error.to_string());
            if ui.note.get_untracked().as_deref() == Some(id.as_str()) {
                shown.set(Some(result));
            }
        });
    });
    move || {
        shown.get().map(|note| match note {
            Ok(note) => {
                let passages = note.passages.into_iter().map(|passage| view! { <p>{passage}</p> }).collect_view();
                view! {
                    <article class="note-view" aria-labelledby="note-title" data-note-id=note.note.id.clone()>
                        <h3 id="note-title">{note.note.title.clone()}</h3>
                        <p class="meta">{note.note.source.clone().unwrap_or_default()}</p>
                        <div class="passages">{passages}</div>
                        <button type="button" class="secondary small" on:click=move |_| ui.note.set(None)>"Close note"</button>
                    </article>
                }
                .into_any()
            }
            Err(message) => view! { <p class="bubble error" role="alert">{message}</p> }.into_any(),
        })
    }
}

#[component]
fn ConversationsPanel() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let turns = expect_context::<Turns>();
    let list = RwSignal::new(Paged::<SessionSummary>::default());
    let problem = RwSignal::new(None::<String>);
    let load = move |offset: u64| {
        spawn_local(async move {
            match api::sessions(offset, PAGE_SIZE).await {
                Ok(page) => {
                    list.update(|list| {
                        list.receive(offset, page.sessions, page.total);
                    });
                }
                Err(error) => problem.set(Some(error.to_string())),
            }
        });
    };
    load(0);
    let renaming = RwSignal::new(None::<(String, String)>);
    let confirming = RwSignal::new(None::<String>);

    let row = move |summary: SessionSummary| {
        let id = summary.session_id.clone();
        let key = id.as_str().to_owned();
        let open_id = id.clone();
        let is_open = {
            let id = id.clone();
            move || turns.core.session.get().as_ref() == Some(&id)
        };
        let when = crate::library::minute(&summary.updated_at);
        let turns_text = if summary.turns == 1 { "1 question".to_owned() } else { format!("{} questions", summary.turns) };
        let editing = {
            let key = key.clone();
            move || renaming.with(|r| r.as_ref().is_some_and(|(id, _)| *id == key))
        };
        let asking = {
            let key = key.clone();
            move || confirming.get().as_deref() == Some(key.as_str())
        };
        let save_id = id.clone();
        let save = move |event: leptos::ev::SubmitEvent| {
            event.prevent_default();
            let Some((_, title)) = renaming.get_untracked() else { return };
            let id = save_id.clone();
            spawn_local(async move {
                match api::rename_session(&id, title.trim()).await {
                    Ok(summary) => {
                        list.update(|list| renamed(list, summary));
                        renaming.set(None);
                    }
                    Err(error) => problem.set(Some(error.to_string())),
                }
            });
        };
        let delete_id = id.clone();
        let delete = move |_| {
            let id = delete_id.clone();
            spawn_local(async move {
                match api::delete_session(&id).await {
                    Ok(()) => {
                        let open = turns.core.session.get_untracked();
                        if list.try_update(|list| forget(list, &id, open.as_ref())).unwrap_or(false) {
                            turns.start_afresh();
                        }
                        confirming.set(None);
                    }
                    Err(error) => problem.set(Some(error.to_string())),
                }
            });
        };
        let title = summary.title.clone();
        let rename_key = key.clone();
        let confirm_key = key.clone();
        view! {
            <li class="conversation-row" class:current=is_open data-session-id=key.clone()>
                <Show
                    when=editing
                    fallback=move || {
                        let open_id = open_id.clone();
                        view! {
                            <button type="button" class="link conversation-open" on:click=move |_| {
                                turns.open_conversation(open_id.clone());
                                ui.panel.set(None);
                            }>
                                {title.clone()}
                            </button>
                        }
                    }
                >
                    <form class="rename" on:submit=save.clone()>
                        <label class="visually-hidden" for="rename-title">"New name"</label>
                        <input
                            id="rename-title"
                            type="text"
                            maxlength="200"
                            prop:value=move || renaming.with(|r| r.as_ref().map(|(_, t)| t.clone()).unwrap_or_default())
                            on:input=move |event| {
                                let typed = event_target_value(&event);
                                renaming.update(|r| if let Some((_, title)) = r { *title = typed });
                            }
                        />
                        <button type="submit" class="small">"Save"</button>
                        <button type="button" class="secondary small" on:click=move |_| renaming.set(None)>"Cancel"</button>
                    </form>
                </Show>
                <span class="meta">{format!("{when} · {turns_text}")}</span>
                <span class="actions">
                    <button type="button" class="secondary small conversation-rename" on:click={
                        let title = summary.title.clone();
                        move |_| renaming.set(Some((rename_key.clone(), title.clone())))
                    }>"Rename"</button>
                    <Show
                        when=asking
                        fallback=move || {
                            let key = confirm_key.clone();
                            view! {
                                <button type="button" class="secondary small conversation-delete" on:click=move |_| confirming.set(Some(key.clone()))>
                                    "Delete"
                                </button>
                            }
                        }
                    >
                        <span class="confirm" role="group" aria-label="Confirm deletion">
                            "Delete for good? "
                            <button type="button" class="danger small confirm-delete" on:click=delete.clone()>"Delete"</button>
                            <button type="button" class="secondary small" on:click=move |_| confirming.set(None)>"Keep"</button>
                        </span>
                    </Show>
                </span>
            </li>
        }
    };

    view! {
        <div class="conversations">
            <button type="button" id="panel-new-conversation" on:click=move |_| {
                turns.start_afresh();
                ui.panel.set(None);
            }>"New conversation"</button>
            {move || problem.get().map(|message| view! { <p class="bubble error" role="alert">{message}</p> })}
            <Show when=move || list.with(|l| l.items.is_empty())>
                <p class="meta">"No conversations yet."</p>
            </Show>
            <ul class="conversation-list">
                {move || list.get().items.into_iter().map(row).collect_view()}
            </ul>
            <Show when=move || list.with(Paged::has_more)>
                <button type="button" class="secondary" on:click=move |_| load(list.with_untracked(Paged::next_offset))>"Show more"</button>
            </Show>
        </div>
    }
}

#[component]
fn SettingsPanel() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let rate = move || ui.prefs.with(|p| p.speech_rate);
    let health = RwSignal::new(None::<Result<Health, String>>);
    spawn_local(async move {
        health.set(Some(api::health().await.map_err(|error| error.to_string())));
    });
    // The choice appears only when there is one to make.
    let voices = ui.voices;
    ui.load_voices();
    view! {
        <div class="settings">
            <section>
                <h3>"Listening"</h3>
                <p class="meta">
                    "Hands-free (the microphone listens and a pause ends your question) and how long that pause is are set under the microphone button, and kept in this browser."
                </p>
            </section>
            <section>
                <h3>"Speaking"</h3>
                <label class="switch">
                    <input
                        id="speak-answers"
                        type="checkbox"
                        role="switch"
                        prop:checked=move || ui.prefs.with(|p| p.speak_answers)
                        on:change=move |event| ui.change(|p| p.speak_answers = event_target_checked(&event))
                    />
                    <span>"Speak the answers"</span>
                </label>
                <label class="rate">
                    <span>{move || format!("Speaking rate: {:.1}×", rate())}</span>
                    <input
                        id="speech-rate"
                        type="range"
                        min=*SPEECH_RATE_RANGE.start()
                        max=*SPEECH_RATE_RANGE.end()
                        step="0.1"
                        prop:value=move || format!("{:.1}", rate())
                        on:input=move |event| {
                            if let Ok(value) = event_target_value(&event).parse::<f32>() {
                                ui.change(|p| p.speech_rate = value);
                            }
                        }
                    />
                </label>
                <Show when=move || voices.with(|v| v.len() > 1)>
                    <label for="voice">"Voice"</label>
                    <select
                        id="voice"
                        on:change=move |event| {
                            // The default is kept as no choice, so it follows the server's default.
                            let chosen = event_target_value(&event);
                            let default = voices.with_untracked(|v| v.iter().any(|voice| voice.default && voice.id == chosen));
                            ui.change(|p| p.voice = (!default).then_some(chosen));
                        }
                    >
                        {move || {
                            voices
                                .get()
                                .into_iter()
                                .map(|voice| {
                                    let chosen = ui.prefs.with_untracked(|p| match &p.voice {
                                        Some(id) => *id == voice.id,
                                        None => voice.default,
                                    });
                                    view! { <option value=voice.id prop:selected=chosen>{voice.label}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </Show>
            </section>
            <section>
                <h3>"Look"</h3>
                <label for="theme">"Theme"</label>
                <select
                    id="theme"
                    prop:value=move || ui.prefs.with(|p| p.theme.name())
                    on:change=move |event| ui.change(|p| p.theme = Theme::parse(&event_target_value(&event)))
                >
                    <option value="system">"Like the system"</option>
                    <option value="light">"Light"</option>
                    <option value="dark">"Dark"</option>
                </select>
            </section>
            <section class="server-status" aria-live="polite">
                <h3>"Server status"</h3>
                {move || match health.get() {
                    None => view! { <p class="meta">"Asking the server…"</p> }.into_any(),
                    Some(Err(message)) => view! { <p class="bubble error" role="alert">{message}</p> }.into_any(),
                    Some(Ok(health)) => {
                        let stages = health.stages.into_iter().map(stage_view).collect_view();
                        view! {
                            <p class="meta">{format!("Parlance {}", health.version)}</p>
                            <ul class="stages">{stages}</ul>
                        }
                        .into_any()
                    }
                }}
            </section>
        </div>
    }
}

fn stage_view(stage: StageHealth) -> impl IntoView {
    let name = stage_name(stage.stage);
    let model = stage.model.clone().unwrap_or_default();
    let trouble = (!stage.ready).then(|| {
        let detail = stage.detail.clone().unwrap_or_else(|| "It is not set up.".to_owned());
        view! {
            <p class="stage-problem" role="alert">{detail}</p>
            <p class="stage-fix">{stage_fix(stage.stage)}</p>
        }
    });
    view! {
        <li class="stage" data-stage=format!("{:?}", stage.stage).to_lowercase() data-ready=stage.ready.to_string()>
            <span class="stage-name">{name}</span>
            <span class="stage-state">{if stage.ready { "Ready" } else { "Not ready" }}</span>
            <span class="meta">{format!("{} {}", stage.backend, model)}</span>
            {trouble}
        </li>
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => "Speech recognition",
        Stage::Llm => "Language model",
        Stage::Tts => "Voice",
        Stage::Embeddings => "Note search",
    }
}

/// What the person running the server can do about a stage that is not ready.
fn stage_fix(stage: Stage) -> &'static str {
    match stage {
        Stage::Stt => "Fix: run `parlance models` on the server to install the speech model, or point --stt-backend at a provider.",
        Stage::Llm => "Fix: run `parlance models` to install the language model, or set --openai-base-url and --llm-model.",
        Stage::Tts => "Fix: run `parlance models` to install the voice, or point --tts-backend at a provider. Answers still come as text.",
        Stage::Embeddings => "Fix: run `parlance models` to install the embeddings model; until then notes cannot be added.",
    }
}
