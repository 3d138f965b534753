//! Calls to the Parlance server's HTTP API, and what can go wrong with them, in words for people.

use std::fmt;

use gloo_net::http::{Request, RequestBuilder};
use js_sys::Promise;
use leptos::logging;
use parlance_shared::{
    Account, AddNotesRequest, AddNotesResponse, ErrorBody, ErrorCode, Health, KNOWLEDGE_FILE_FIELD, KnowledgeSearchResponse, NewNote, Note,
    NotePage, RenameSession, SessionHistory, SessionId, SessionPage, SessionSummary, TextTurnRequest, TurnResponse, VOICE_AUDIO_FIELD,
    VOICE_RATE_FIELD, VOICE_SESSION_FIELD, VOICE_VOICE_FIELD, VoiceList,
};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, FormData, XmlHttpRequest};

/// Relative, so the app works wherever the server is mounted (behind a reverse proxy too).
const CHAT_URL: &str = "/api/chat";
const VOICE_URL: &str = "/api/voice";
const HEALTH_URL: &str = "/health";
const ACCOUNT_URL: &str = "/api/account";
const KNOWLEDGE_URL: &str = "/api/knowledge";

/// Why a call to the server produced no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No HTTP response at all: the server is down, the network is gone, or the browser blocked the request.
    Unreachable,
    /// The server answered with a non-2xx status.
    Status {
        status: u16,
        /// The reason phrase, e.g. `Bad Gateway`; empty for unknown codes.
        reason: String,
        /// The server's own explanation, when the body was one (a proxy's HTML error page is not).
        body: Option<ErrorBody>,
    },
    /// A 2xx response whose body is not what this version of the app expects.
    Unreadable,
    /// The browser would not even build the request.
    Client(String),
}

impl ApiError {
    /// Builds the error for a non-2xx response from its status line and body.
    pub fn from_response(status: u16, status_text: &str, body: &str) -> Self {
        // HTTP/2 has no reason phrase on the wire, so browsers report an empty `statusText` there.
        let reason = match status_text.trim() {
            "" => http::StatusCode::from_u16(status).ok().and_then(|code| code.canonical_reason()).unwrap_or_default().to_owned(),
            text => text.to_owned(),
        };
        let body = serde_json::from_str::<ErrorBody>(body).ok();
        Self::Status { status, reason, body }
    }

    /// The server's machine-readable code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Status { body: Some(body), .. } => Some(body.code),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable => f.write_str("Can't reach the Parlance server."),
            Self::Status { body: Some(body), .. } if !body.message.trim().is_empty() => f.write_str(&body.message),
            Self::Status { status, reason, .. } if reason.is_empty() => write!(f, "The server answered {status}."),
            Self::Status { status, reason, .. } => write!(f, "The server answered {status} {reason}."),
            Self::Unreadable => f.write_str("The server's answer could not be read. The page may be out of date: try reloading it."),
            Self::Client(detail) => write!(f, "The browser could not send the question: {detail}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// Every request carries the sign-in token, when one is kept.
fn signed(builder: RequestBuilder) -> RequestBuilder {
    match crate::sign_in::authorization() {
        Some(value) => builder.header("Authorization", &value),
        None => builder,
    }
}

/// A non-2xx answer; a 401 also brings up the sign-in screen, whatever was being done.
fn refused(status: u16, status_text: &str, body: &str) -> ApiError {
    if status == 401 {
        crate::sign_in::needed();
    }
    ApiError::from_response(status, status_text, body)
}

/// `GET /api/account`: whether the kept token (if any) is accepted; asked once at start-up so a server that
/// needs a token shows the sign-in screen before the first question.
pub async fn account() -> Result<Account, ApiError> {
    fetch_json(signed(Request::get(ACCOUNT_URL)).build().map_err(|err| ApiError::Client(err.to_string()))?, "GET", ACCOUNT_URL).await
}

/// `POST /api/chat`: asks a typed question and waits for the whole answer.
pub async fn send_text_turn(request: &TextTurnRequest) -> Result<TurnResponse, ApiError> {
    let http_request = signed(Request::post(CHAT_URL)).json(request).map_err(|err| ApiError::Client(err.to_string()))?;
    fetch_json(http_request, "POST", CHAT_URL).await
}

/// `GET /api/sessions/{id}`: the conversation so far, to show again after a reload.
pub async fn fetch_history(session: &SessionId) -> Result<SessionHistory, ApiError> {
    let url = session_url(session);
    fetch_json(signed(Request::get(&url)).build().map_err(|err| ApiError::Client(err.to_string()))?, "GET", &url).await
}

/// `DELETE /api/sessions/{id}`: forgets a conversation on the server.
pub async fn delete_session(session: &SessionId) -> Result<(), ApiError> {
    let url = session_url(session);
    let response = signed(Request::delete(&url)).send().await.map_err(|err| unreachable("DELETE", &url, err))?;
    if response.ok() { Ok(()) } else { Err(refused(response.status(), &response.status_text(), "")) }
}

/// `GET /health`: only whether the server answers at all (a degraded server still answers).
pub async fn probe() -> Result<(), ApiError> {
    Request::get(HEALTH_URL).send().await.map(|_| ()).map_err(|err| unreachable("GET", HEALTH_URL, err))
}

/// `GET /health` with the details a signed-in caller gets: each stage's backend, model and readiness.
pub async fn health() -> Result<Health, ApiError> {
    get_json(HEALTH_URL).await
}

/// `GET /api/voices`: the voices answers may be spoken in.
pub async fn voices() -> Result<VoiceList, ApiError> {
    get_json("/api/voices").await
}

/// `GET /api/knowledge?order=newest`: one page of notes, newest first.
pub async fn notes(offset: u64, limit: u32) -> Result<NotePage, ApiError> {
    get_json(&format!("/api/knowledge?order=newest&offset={offset}&limit={limit}")).await
}

/// `GET /api/knowledge/search`: the hybrid search the assistant uses.
pub async fn search_notes(query: &str) -> Result<KnowledgeSearchResponse, ApiError> {
    let query = String::from(js_sys::encode_uri_component(query));
    get_json(&format!("/api/knowledge/search?k=10&q={query}")).await
}

/// `GET /api/knowledge/{id}`: one note's text.
pub async fn note(id: &str) -> Result<Note, ApiError> {
    get_json(&note_url(id)).await
}

/// `POST /api/knowledge` as JSON: a pasted note.
pub async fn add_note(note: NewNote) -> Result<AddNotesResponse, ApiError> {
    let request = AddNotesRequest { notes: vec![note] };
    let http_request = signed(Request::post(KNOWLEDGE_URL)).json(&request).map_err(|err| ApiError::Client(err.to_string()))?;
    fetch_json(http_request, "POST", KNOWLEDGE_URL).await
}

/// `POST /api/knowledge` as a form: one dropped or picked file.
pub async fn upload_note(file: &web_sys::File) -> Result<AddNotesResponse, ApiError> {
    let client = |err: wasm_bindgen::JsValue| ApiError::Client(format!("{err:?}"));
    let form = FormData::new().map_err(client)?;
    form.append_with_blob_and_filename(KNOWLEDGE_FILE_FIELD, file, &file.name()).map_err(client)?;
    let request = signed(Request::post(KNOWLEDGE_URL)).body(form).map_err(|err| ApiError::Client(err.to_string()))?;
    fetch_json(request, "POST", KNOWLEDGE_URL).await
}

/// `DELETE /api/knowledge/{id}`.
pub async fn delete_note(id: &str) -> Result<(), ApiError> {
    delete(&note_url(id)).await
}

/// `GET /api/sessions`: one page of the conversations, most recently used first.
pub async fn sessions(offset: u64, limit: u32) -> Result<SessionPage, ApiError> {
    get_json(&format!("/api/sessions?offset={offset}&limit={limit}")).await
}

/// `PATCH /api/sessions/{id}`: names a conversation.
pub async fn rename_session(session: &SessionId, title: &str) -> Result<SessionSummary, ApiError> {
    let url = session_url(session);
    let request =
        signed(Request::patch(&url)).json(&RenameSession { title: title.to_owned() }).map_err(|err| ApiError::Client(err.to_string()))?;
    fetch_json(request, "PATCH", &url).await
}

async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    fetch_json(signed(Request::get(url)).build().map_err(|err| ApiError::Client(err.to_string()))?, "GET", url).await
}

async fn delete(url: &str) -> Result<(), ApiError> {
    let response = signed(Request::delete(url)).send().await.map_err(|err| unreachable("DELETE", url, err))?;
    let body = response.text().await.unwrap_or_default();
    if response.ok() { Ok(()) } else { Err(refused(response.status(), &response.status_text(), &body)) }
}

fn note_url(id: &str) -> String {
    format!("/api/knowledge/{}", js_sys::encode_uri_component(id))
}

fn session_url(session: &SessionId) -> String {
    // Ids are server-made, but a tampered localStorage must not be able to redirect the request.
    format!("/api/sessions/{}", js_sys::encode_uri_component(session.as_str()))
}

fn unreachable(method: &str, url: &str, err: impl fmt::Display) -> ApiError {
    // The user sees a plain sentence; the browser's own reason is for whoever opens the console.
    logging::warn!("{method} {url} failed: {err}");
    ApiError::Unreachable
}

async fn fetch_json<T: DeserializeOwned>(request: Request, method: &str, url: &str) -> Result<T, ApiError> {
    let response = request.send().await.map_err(|err| unreachable(method, url, err))?;
    let body = response.text().await.map_err(|err| unreachable(method, url, err))?;
    if !response.ok() {
        return Err(refused(response.status(), &response.status_text(), &body));
    }
    serde_json::from_str(&body).map_err(|err| {
        logging::warn!("unexpected answer to {method} {url}: {err}");
        ApiError::Unreadable
    })
}

/// `POST /api/voice`: uploads a recorded question and waits for the answer. Sent with XMLHttpRequest rather
/// than fetch because only XHR reports when the upload is complete: `on_uploaded` runs then, which is when
/// the status moves from "Sending your recording" to "Thinking".
pub async fn send_voice_turn(
    audio: &Blob,
    file_name: &str,
    session: Option<&SessionId>,
    prefs: &crate::prefs::Preferences,
    on_uploaded: impl FnOnce() + 'static,
) -> Result<TurnResponse, ApiError> {
    let client = |err: wasm_bindgen::JsValue| ApiError::Client(format!("{err:?}"));
    let form = FormData::new().map_err(client)?;
    form.append_with_blob_and_filename(VOICE_AUDIO_FIELD, audio, file_name).map_err(client)?;
    if let Some(id) = session {
        form.append_with_str(VOICE_SESSION_FIELD, id.as_str()).map_err(client)?;
    }
    if let Some(voice) = &prefs.voice {
        form.append_with_str(VOICE_VOICE_FIELD, voice).map_err(client)?;
    }
    if let Some(rate) = prefs.rate_to_send() {
        form.append_with_str(VOICE_RATE_FIELD, &rate.to_string()).map_err(client)?;
    }

    let request = XmlHttpRequest::new().map_err(client)?;
    request.open("POST", VOICE_URL).map_err(client)?;
    if let Some(value) = crate::sign_in::authorization() {
        request.set_request_header("Authorization", &value).map_err(client)?;
    }
    let uploaded = wasm_bindgen::closure::Closure::once_into_js(on_uploaded);
    request.upload().map_err(client)?.set_onload(Some(uploaded.unchecked_ref()));
    let finished = Promise::new(&mut |resolve, reject| {
        request.set_onload(Some(&resolve));
        request.set_onerror(Some(&reject));
        request.set_onabort(Some(&reject));
        request.set_ontimeout(Some(&reject));
    });
    request.send_with_opt_form_data(Some(&form)).map_err(client)?;
    JsFuture::from(finished).await.map_err(|err| unreachable("POST", VOICE_URL, format!("{err:?}")))?;

    let status = request.status().map_err(client)?;
    let status_text = request.status_text().unwrap_or_default();
    let body = request.response_text().ok().flatten().unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(refused(status, &status_text, &body));
    }
    serde_json::from_str(&body).map_err(|err| {
        logging::warn!("unexpected answer to POST {VOICE_URL}: {err}");
        ApiError::Unreadable
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_message_is_shown_as_is() {
        let error = ApiError::from_response(
            503,
            "Service Unavailable",
            r#"{"code":"provider_unavailable","message":"The language model did not answer in time."}"#,
        );
        assert_eq!(error.code(), Some(ErrorCode::ProviderUnavailable));
        assert_eq!(error.to_string(), "The language model did not answer in time.");
    }

    #[test]
    fn codes_newer_than_the_app_still_show_their_message() {
        let error = ApiError::from_response(400, "", r#"{"code":"brand_new","message":"Try again."}"#);
        assert_eq!(error.code(), Some(ErrorCode::Unknown));
        assert_eq!(error.to_string(), "Try again.");
    }

    #[test]
    fn a_body_that_is_not_an_error_body_falls_back_to_the_status() {
        let error = ApiError::from_response(502, "Bad Gateway", "<html>nginx</html>");
        assert_eq!(error.code(), None);
        assert_eq!(error.to_string(), "The server answered 502 Bad Gateway.");
    }

    #[test]
    fn an_empty_status_text_uses_the_standard_reason() {
        let error = ApiError::from_response(502, "", "");
        assert_eq!(error.to_string(), "The server answered 502 Bad Gateway.");
    }

    #[test]
    fn an_unknown_status_without_text_shows_the_number() {
        assert_eq!(ApiError::from_response(599, "", "").to_string(), "The server answered 599.");
    }

    #[test]
    fn an_empty_error_message_falls_back_to_the_status() {
        let error = ApiError::from_response(500, "", r#"{"code":"internal","message":" "}"#);
        assert_eq!(error.code(), Some(ErrorCode::Internal));
        assert_eq!(error.to_string(), "The server answered 500 Internal Server Error.");
    }

    #[test]
    fn network_failure_wording() {
        assert_eq!(ApiError::Unreachable.to_string(), "Can't reach the Parlance server.");
    }
}
