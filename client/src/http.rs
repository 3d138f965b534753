//! The request-response half of the API: one method per route, each taking and returning `parlance-shared`
//! types.

use std::sync::Arc;
use std::time::Duration;

use parlance_shared::{
    Account, AddNotesRequest, AddNotesResponse, ErrorBody, Health, HealthSummary, KNOWLEDGE_FILE_FIELD, KnowledgeSearchQuery,
    KnowledgeSearchResponse, NotePage, NotePageQuery, SessionHistory, SessionId, TextTurnRequest, TurnResponse, VOICE_AUDIO_FIELD,
    VOICE_SESSION_FIELD, VoiceList,
};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::socket::{Conversation, Reconnect};

/// How much of a non-Parlance error body is quoted in [`ClientError::UnexpectedStatus`].
const QUOTED_BODY_CHARS: usize = 200;

/// A Parlance server: its address, and the sign-in token if it needs one. Cheap to clone (the connection
/// pool is shared).
///
/// ```no_run
/// # async fn run() -> Result<(), parlance_client::ClientError> {
/// use parlance_client::Client;
/// use parlance_shared::TextTurnRequest;
///
/// let client = Client::builder("http://127.0.0.1:8080").token("my-sign-in-token-1234").build()?;
/// let turn = client.chat(&TextTurnRequest { session_id: None, text: "What time is it?".into(), speak: false, speech_rate: None, voice: None }).await?;
/// println!("{}", turn.answer);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so it never shows in `Debug` output.
    authorization: Option<HeaderValue>,
    reconnect: Reconnect,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("server", &self.inner.base.as_str()).field("token", &self.inner.authorization.is_some()).finish()
    }
}

/// Settings for a [`Client`]; from [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    server: String,
    token: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    reconnect: Reconnect,
}

impl ClientBuilder {
    /// The sign-in token: sent as `Authorization: Bearer <token>` on every request and on the socket's
    /// handshake, the way the server reads it (see the README's "Security").
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A limit on each whole request; none by default, since a spoken turn on local models can take a while.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long to wait for a connection (HTTP or the socket). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How a [`Conversation`] reconnects its socket.
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let base = parse_server(&self.server)?;
        let authorization = match self.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut http = reqwest::Client::builder().connect_timeout(self.connect_timeout);
        if let Some(timeout) = self.timeout {
            http = http.timeout(timeout);
        }
        let http = http.build().map_err(|error| ClientError::InvalidUrl(format!("the HTTP client could not be set up: {error}")))?;
        Ok(Client {
            inner: Arc::new(Inner { http, base, authorization, reconnect: self.reconnect, connect_timeout: self.connect_timeout }),
        })
    }
}

fn parse_server(server: &str) -> Result<Url, ClientError> {
    let invalid =
        |why: &str| ClientError::InvalidUrl(format!("{server:?} is not a server address ({why}); use e.g. http://127.0.0.1:8080"));
    let url = Url::parse(server.trim()).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("it must start with http:// or https://"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it may not have a query or a #fragment"));
    }
    Ok(url)
}

impl Client {
    /// A client for the server at `server` (e.g. `http://127.0.0.1:8080`) without a token.
    pub fn new(server: &str) -> Result<Self, ClientError> {
        Self::builder(server).build()
    }

    pub fn builder(server: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            server: server.into(),
            token: None,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
        }
    }

    /// The server's address as given.
    pub fn server(&self) -> &Url {
        &self.inner.base
    }

    /// Opens the streaming socket (`GET /api/ws`): see [`Conversation`]. Connects at once, so an unreachable
    /// server or a refused token shows here.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), parlance_client::ClientError> {
    /// use futures::StreamExt;
    /// use parlance_shared::ServerEvent;
    ///
    /// let client = parlance_client::Client::new("http://127.0.0.1:8080")?;
    /// let mut conversation = client.conversation().await?;
    /// let mut turn = conversation.ask("Tell me a story", false).await?;
    /// while let Some(event) = turn.next().await {
    ///     match event? {
    ///         ServerEvent::AnswerDelta { text } => print!("{text}"),
    ///         ServerEvent::Done { sources, .. } => println!("\n{} sources", sources.len()),
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn conversation(&self) -> Result<Conversation, ClientError> {
        Conversation::open(self.clone()).await
    }

    /// `GET /health` as the server shows it to anyone: whether it is ready.
    pub async fn health_status(&self) -> Result<HealthSummary, ClientError> {
        self.get(&["health"]).await
    }

    /// `GET /health` in full: each stage's backend and readiness. Needs the token on a server that has one
    /// (without it the server sends only the status, and this fails with [`ClientError::Decode`]).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(&["health"]).await
    }

    /// `POST /api/chat`: a typed question, answered whole (use [`Client::conversation`] to stream it).
    pub async fn chat(&self, request: &TextTurnRequest) -> Result<TurnResponse, ClientError> {
        self.send(self.request(Method::POST, &["api", "chat"])?.json(request)).await
    }

    /// `POST /api/voice`: a recorded question as one file (WAV, WebM, Ogg, MP4/M4A, MP3, FLAC), answered whole.
    pub async fn voice(&self, file_name: &str, audio: Vec<u8>, session: Option<&SessionId>) -> Result<TurnResponse, ClientError> {
        let mut form =
            reqwest::multipart::Form::new().part(VOICE_AUDIO_FIELD, reqwest::multipart::Part::bytes(audio).file_name(file_name.to_owned()));
        if let Some(session) = session {
            form = form.text(VOICE_SESSION_FIELD, session.as_str().to_owned());
        }
        self.send(self.request(Method::POST, &["api", "voice"])?.multipart(form)).await
    }

    /// `GET /api/sessions/{id}`: a conversation as remembered.
    pub async fn history(&self, session: &SessionId) -> Result<SessionHistory, ClientError> {
        self.get(&["api", "sessions", session.as_str()]).await
    }

    /// `DELETE /api/sessions/{id}`.
    pub async fn delete_session(&self, session: &SessionId) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::DELETE, &["api", "sessions", session.as_str()])?).await
    }

    /// `GET /api/account`: who the token names.
    pub async fn account(&self) -> Result<Account, ClientError> {
        self.get(&["api", "account"]).await
    }

    /// `GET /api/voices`: the voices a turn may name in `voice`, the default among them.
    pub async fn voices(&self) -> Result<VoiceList, ClientError> {
        self.get(&["api", "voices"]).await
    }

    /// `POST /api/knowledge` with notes as JSON, stored together or not at all.
    pub async fn add_notes(&self, request: &AddNotesRequest) -> Result<AddNotesResponse, ClientError> {
        self.send(self.request(Method::POST, &["api", "knowledge"])?.json(request)).await
    }

    /// `POST /api/knowledge` with documents (`.md` or `.txt`, by file name) as multipart form data.
    pub async fn add_documents(&self, documents: Vec<(String, Vec<u8>)>) -> Result<AddNotesResponse, ClientError> {
        let form = documents.into_iter().fold(reqwest::multipart::Form::new(), |form, (name, bytes)| {
            form.part(KNOWLEDGE_FILE_FIELD, reqwest::multipart::Part::bytes(bytes).file_name(name))
        });
        self.send(self.request(Method::POST, &["api", "knowledge"])?.multipart(form)).await
    }

    /// `GET /api/knowledge`: one page of notes, oldest first.
    pub async fn list_notes(&self, page: NotePageQuery) -> Result<NotePage, ClientError> {
        self.send(self.request(Method::GET, &["api", "knowledge"])?.query(&page)).await
    }

    /// `GET /api/knowledge/search`: the best-matching notes, best first.
    pub async fn search(&self, query: &KnowledgeSearchQuery) -> Result<KnowledgeSearchResponse, ClientError> {
        self.send(self.request(Method::GET, &["api", "knowledge", "search"])?.query(query)).await
    }

    /// `DELETE /api/knowledge/{id}`.
    pub async fn delete_note(&self, id: &str) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::DELETE, &["api", "knowledge", id])?).await
    }

    /// The address of a route under the server's address (which may itself have a path, behind a proxy);
    /// each segment is percent-encoded, so an id cannot reach another route.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::InvalidUrl(format!("{} cannot have a path", self.inner.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.inner.authorization.as_ref()
    }

    pub(crate) fn reconnect_policy(&self) -> Reconnect {
        self.inner.reconnect
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder, ClientError> {
        let mut request = self.inner.http.request(method, self.url(segments)?);
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        Ok(request)
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, segments)?).await
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let body = self.exchange(request).await?;
        serde_json::from_slice(&body).map_err(|error| ClientError::Decode(error.to_string()))
    }

    async fn send_empty(&self, request: RequestBuilder) -> Result<(), ClientError> {
        self.exchange(request).await.map(drop)
    }

    /// Sends the request; the body of a success, or the error the server described.
    async fn exchange(&self, request: RequestBuilder) -> Result<bytes::Bytes, ClientError> {
        let response = request.send().await.map_err(|error| ClientError::unreachable(self.inner.base.as_str(), error))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| ClientError::unreachable(self.inner.base.as_str(), error))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(error_from(status.as_u16(), &body))
    }
}

/// An error status and its body as the typed error: Parlance's [`ErrorBody`] when it is one.
pub(crate) fn error_from(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => ClientError::Api { status, body },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut detail: String = text.trim().chars().take(QUOTED_BODY_CHARS).collect();
            if detail.is_empty() {
                detail = "(no body)".to_owned();
            } else if text.trim().chars().count() > QUOTED_BODY_CHARS {
                detail.push('…');
            }
            ClientError::UnexpectedStatus { status, detail }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_inside_their_path_segment() {
        let client = Client::new("http://127.0.0.1:8080/parlance/").unwrap();
        assert_eq!(
            client.url(&["api", "knowledge", "../sessions/x?y"]).unwrap().as_str(),
            "http://127.0.0.1:8080/parlance/api/knowledge/..%2Fsessions%2Fx%3Fy"
        );
        let client = Client::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(client.url(&["health"]).unwrap().as_str(), "http://127.0.0.1:8080/health");
    }

    #[test]
    fn only_http_addresses_are_servers() {
        for bad in ["127.0.0.1:8080", "ftp://host", "http://", "http://host/?q=1", "not a url"] {
            assert!(matches!(Client::new(bad), Err(ClientError::InvalidUrl(_))), "{bad}");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let client = Client::builder("http://127.0.0.1:8080").token("secret-token-0123456789").build().unwrap();
        assert!(!format!("{client:?}").contains("secret-token"));
    }

    #[test]
    fn error_bodies_become_typed_errors() {
        let error = error_from(401, br#"{"code":"unauthorized","message":"sign in first please"}"#);
        assert_eq!(error.code(), Some(parlance_shared::ErrorCode::Unauthorized));
        let error = error_from(502, &[b'x'; 1000]);
        match error {
            ClientError::UnexpectedStatus { status: 502, detail } => assert_eq!(detail.chars().count(), QUOTED_BODY_CHARS + 1),
            other => panic!("{other:?}"),
        }
    }
}
