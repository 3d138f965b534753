//! The streaming conversation over `GET /api/ws`: turns whose events arrive while the server is still working
//! (see `parlance_shared::stream` for the protocol).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use parlance_shared::{AudioEncoding, ClientMessage, PROTOCOL_VERSION, ServerEvent, SessionId, TurnDetection, TurnState};
use reqwest::header::{AUTHORIZATION, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::http::{Client, error_from};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The subprotocol the server accepts on its socket.
const SOCKET_PROTOCOL: &str = "parlance";

/// How a [`Conversation`] reconnects when its socket is gone: before a turn, up to `attempts` times, waiting
/// `first_delay` and then twice as long each time, at most `max_delay`. Only an unreachable server is tried
/// again; a refusal (say, a token no longer accepted) is reported at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self { attempts: 5, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

/// One conversation over the server's socket: typed or spoken turns, one after another, each a [`Turn`]
/// streaming [`ServerEvent`]s. It remembers the conversation's id from each turn's end and sends it with the
/// next, so when the socket is lost (the server restarted, a proxy or the server closed it while idle) the next
/// turn reconnects and the conversation continues where it was.
///
/// A spoken turn sends the recording in pieces, as a microphone would:
///
/// ```no_run
/// # async fn run() -> Result<(), parlance_client::ClientError> {
/// use futures::StreamExt;
/// use parlance_shared::{AudioEncoding, ServerEvent};
///
/// let client = parlance_client::Client::new("http://127.0.0.1:8080")?;
/// let mut conversation = client.conversation().await?;
/// let recording = std::fs::read("question.wav").expect("a recording");
/// let mut upload = conversation.start_audio(AudioEncoding::Wav).await?;
/// for piece in recording.chunks(3200) {
///     upload.send(piece.to_vec()).await?;
/// }
/// let mut turn = upload.end().await?;
/// while let Some(event) = turn.next().await {
///     match event? {
///         ServerEvent::Transcript { text, is_final: true } => println!("You said: {text}"),
///         ServerEvent::AudioChunk { sequence, .. } => println!("sentence {sequence} is ready to play"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Conversation {
    client: Client,
    socket: Option<Socket>,
    session: Option<SessionId>,
    reconnects: u32,
    /// A turn was started and not read to its end: its events would arrive as the next turn's.
    unfinished: bool,
    /// Sent with every turn: how fast and in which voice answers are spoken (`None`: the server's default).
    speech_rate: Option<f32>,
    voice: Option<String>,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("client", &self.client)
            .field("connected", &self.socket.is_some())
            .field("session", &self.session)
            .field("reconnects", &self.reconnects)
            .finish()
    }
}

impl Conversation {
    pub(crate) async fn open(client: Client) -> Result<Self, ClientError> {
        let socket = connect(&client).await?;
        Ok(Self { client, socket: Some(socket), session: None, reconnects: 0, unfinished: false, speech_rate: None, voice: None })
    }

    /// The conversation the turns continue: set by the first turn's end, or by [`Conversation::set_session`].
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// Continue an earlier conversation (its id from a `done` event or `POST /api/chat`) with the next turn.
    pub fn set_session(&mut self, session: SessionId) {
        self.session = Some(session);
    }

    /// How the next turns' answers are spoken: `rate` relative to the voice's own pace (0.5 to 2), `voice` an id
    /// from [`crate::Client::voices`]; `None` for the server's default. A server that refuses one says so in the
    /// next turn's events.
    pub fn set_speech(&mut self, rate: Option<f32>, voice: Option<String>) {
        self.speech_rate = rate;
        self.voice = voice;
    }

    /// How many times the socket was opened again after it was lost.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// A typed question; `speak` also asks for the answer's audio (`audio_chunk` events, one per sentence).
    pub async fn ask(&mut self, text: impl Into<String>, speak: bool) -> Result<Turn<'_>, ClientError> {
        let message = ClientMessage::Text {
            session_id: self.session.clone(),
            text: text.into(),
            speak,
            speech_rate: self.speech_rate,
            voice: self.voice.clone(),
        };
        self.begin(&message).await?;
        Ok(Turn::new(self))
    }

    /// Starts a spoken turn: send the recording with [`AudioUpload::send`] (pieces of one file in `encoding`, or
    /// raw PCM16 at 16 kHz), then [`AudioUpload::end`] for the answer.
    pub async fn start_audio(&mut self, encoding: AudioEncoding) -> Result<AudioUpload<'_>, ClientError> {
        let message = ClientMessage::Start {
            session_id: self.session.clone(),
            encoding,
            turn_detection: None,
            speech_rate: self.speech_rate,
            voice: self.voice.clone(),
        };
        self.begin(&message).await?;
        Ok(AudioUpload { turn: Turn::new(self) })
    }

    /// Starts a spoken turn that the server ends itself (hands-free): send raw PCM16 at 16 kHz as the microphone
    /// hears it, silence included; the server ends the turn after `detection`'s silence (a short one when the
    /// words sound finished) and says so with `turn_ended` among the turn's events. [`AudioUpload::end`] when
    /// the recording runs out: an `end_turn` that crosses the server's `turn_ended` is ignored by the server.
    pub async fn start_hands_free(&mut self, detection: TurnDetection) -> Result<AudioUpload<'_>, ClientError> {
        let message = ClientMessage::Start {
            session_id: self.session.clone(),
            encoding: AudioEncoding::Pcm16,
            turn_detection: Some(detection),
            speech_rate: self.speech_rate,
            voice: self.voice.clone(),
        };
        self.begin(&message).await?;
        Ok(AudioUpload { turn: Turn::new(self) })
    }

    /// Leaves the conversation: the next turn starts a new one.
    pub async fn new_session(&mut self) -> Result<(), ClientError> {
        self.session = None;
        if self.socket.is_some() {
            // A new socket starts in a new conversation anyway; the open one has to be told.
            self.begin(&ClientMessage::NewSession).await?;
            let mut reply = Turn::new(self);
            reply.ends_on_idle = true;
            while let Some(event) = reply.next().await {
                if let ServerEvent::Error { error } = event? {
                    return Err(ClientError::Turn(error));
                }
            }
        }
        Ok(())
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        if let Some(mut socket) = self.socket.take() {
            // The server may be gone already; there is nothing to do about a failed goodbye.
            let _ = socket.close(None).await;
        }
    }

    /// Sends a turn's first message on a live socket: events left from an earlier turn are dropped, and a socket
    /// found closed (or failing the send) is opened again, once per attempt of the reconnect policy.
    async fn begin(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message).map_err(|error| ClientError::Decode(error.to_string()))?;
        if self.unfinished {
            // The server stops a turn whose socket closes; a new socket starts clean, in the same conversation.
            self.socket = None;
        }
        self.drain();
        if self.socket.is_none() {
            self.reconnect().await?;
        }
        let sent = match self.socket.as_mut() {
            Some(socket) => socket.send(Message::text(text.clone())).await.is_ok(),
            None => false,
        };
        if !sent {
            self.socket = None;
            self.reconnect().await?;
            match self.socket.as_mut() {
                Some(socket) => socket.send(Message::text(text)).await.map_err(|error| ClientError::Disconnected(error.to_string()))?,
                None => return Err(ClientError::Disconnected("the socket could not be opened again".to_owned())),
            }
        }
        self.unfinished = true;
        Ok(())
    }

    /// Reads what already arrived between turns without waiting: stale replies are dropped, and a close (the
    /// server's idle timeout, a restart) leaves the socket to be opened again.
    fn drain(&mut self) {
        while let Some(socket) = self.socket.as_mut() {
            match socket.next().now_or_never() {
                None => return,
                Some(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => self.socket = None,
                Some(Some(Ok(_))) => {}
            }
        }
    }

    async fn reconnect(&mut self) -> Result<(), ClientError> {
        let policy = self.client.reconnect_policy();
        let mut delay = policy.first_delay;
        let mut attempt = 0;
        loop {
            match connect(&self.client).await {
                Ok(socket) => {
                    self.socket = Some(socket);
                    self.reconnects += 1;
                    return Ok(());
                }
                Err(error @ ClientError::Unreachable { .. }) if attempt + 1 < policy.attempts.max(1) => {
                    drop(error);
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Opens the socket with the token as a bearer header (clients that are not browsers can set headers; the
/// browser app offers it as a subprotocol instead).
async fn connect(client: &Client) -> Result<Socket, ClientError> {
    let mut url = client.url(&["api", "ws"])?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    if scheme == "wss" {
        return Err(ClientError::InvalidUrl(
            "the socket over https (wss://) is not supported by this client yet; use the server's http:// address".to_owned(),
        ));
    }
    url.set_scheme(scheme).map_err(|()| ClientError::InvalidUrl(format!("{url} cannot be a socket address")))?;
    let server = client.server().as_str().to_owned();
    let mut request = url.as_str().into_client_request().map_err(|error| ClientError::InvalidUrl(error.to_string()))?;
    request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SOCKET_PROTOCOL));
    if let Some(authorization) = client.authorization() {
        request.headers_mut().insert(AUTHORIZATION, authorization.clone());
    }
    // Without Nagle: a turn's messages are small and each one is waited for (see the server's `without_nagle`).
    let handshake = tokio_tungstenite::connect_async_with_config(request, None, true);
    let socket = match tokio::time::timeout(client.connect_timeout(), handshake).await {
        Err(_) => Err(ClientError::unreachable(&server, "the socket's handshake timed out")),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().as_deref().unwrap_or_default();
            Err(error_from(response.status().as_u16(), body))
        }
        Ok(Err(error @ (tungstenite::Error::Io(_) | tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed))) => {
            Err(ClientError::unreachable(&server, error))
        }
        Ok(Err(error)) => Err(ClientError::Decode(format!("the socket's handshake failed: {error}"))),
    }?;
    greeted(socket, &server, client.connect_timeout()).await
}

/// Reads the socket's first event, the server's `hello`, and refuses a server of another protocol version
/// before a turn is sent to it (README: Versioning).
async fn greeted(mut socket: Socket, server: &str, timeout: Duration) -> Result<Socket, ClientError> {
    let first = loop {
        match tokio::time::timeout(timeout, socket.next()).await {
            Err(_) => return Err(ClientError::unreachable(server, "the socket opened but the server said nothing")),
            Ok(None | Some(Ok(Message::Close(_)))) => return Err(ClientError::unreachable(server, "the socket closed as it opened")),
            Ok(Some(Err(error))) => return Err(ClientError::unreachable(server, error)),
            Ok(Some(Ok(Message::Text(text)))) => break text,
            Ok(Some(Ok(_))) => {}
        }
    };
    match serde_json::from_str::<ServerEvent>(&first) {
        Ok(ServerEvent::Hello { protocol }) if protocol == PROTOCOL_VERSION => Ok(socket),
        Ok(ServerEvent::Hello { protocol }) => Err(ClientError::Protocol { server: protocol, client: PROTOCOL_VERSION }),
        _ => Err(ClientError::Decode(format!(
            "the server's socket did not begin with its protocol version (`hello`), so it is not a Parlance server this client \
             can talk to; it sent: {}",
            first.chars().take(120).collect::<String>()
        ))),
    }
}

/// One turn's events, in order, ending after `done`, `interrupted` or `error` (the stream then yields `None`).
/// The socket's own upkeep (pings) is handled while it is read.
///
/// Events from a newer server that this version of the types does not know are skipped. A turn dropped before
/// its end is abandoned: the next turn opens a new socket (the server stops a turn whose socket closes) in the
/// same conversation, so none of its events can be taken for the next turn's.
pub struct Turn<'a> {
    conversation: &'a mut Conversation,
    finished: bool,
    /// After an interrupt with nothing left to stop, the server answers only `status idle`.
    ends_on_idle: bool,
}

impl<'a> Turn<'a> {
    fn new(conversation: &'a mut Conversation) -> Self {
        Self { conversation, finished: false, ends_on_idle: false }
    }

    /// Stops the turn: generation and speech stop, and the conversation keeps only the answer's audio chunks up
    /// to `played_through` (the `sequence` of the last chunk the user heard to the end; `None` if none was).
    /// Keep reading the stream: it ends with `interrupted` (or `status idle` when the turn had nothing left to
    /// stop). Also valid right after `done`, to cut a finished answer whose audio was not played to the end.
    pub async fn interrupt(&mut self, played_through: Option<u32>) -> Result<(), ClientError> {
        let message =
            serde_json::to_string(&ClientMessage::Interrupt { played_through }).map_err(|error| ClientError::Decode(error.to_string()))?;
        let socket = self.conversation.socket.as_mut().ok_or_else(|| ClientError::Disconnected("the socket is closed".to_owned()))?;
        socket.send(Message::text(message)).await.map_err(|error| ClientError::Disconnected(error.to_string()))?;
        self.finished = false;
        self.ends_on_idle = true;
        self.conversation.unfinished = true;
        Ok(())
    }

    /// Reads the rest of the turn into a [`TurnSummary`]; an `error` event becomes [`ClientError::Turn`].
    pub async fn finish(mut self) -> Result<TurnSummary, ClientError> {
        let mut summary = TurnSummary::default();
        while let Some(event) = self.next().await {
            summary.apply(&event?)?;
        }
        Ok(summary)
    }

    fn ends(&self, event: &ServerEvent) -> bool {
        match event {
            ServerEvent::Done { .. } | ServerEvent::Interrupted { .. } | ServerEvent::Error { .. } => true,
            ServerEvent::Status { state: TurnState::Idle, .. } => self.ends_on_idle,
            _ => false,
        }
    }
}

impl Stream for Turn<'_> {
    type Item = Result<ServerEvent, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            let Some(socket) = this.conversation.socket.as_mut() else {
                this.finished = true;
                return Poll::Ready(Some(Err(ClientError::Disconnected("the socket is closed".to_owned()))));
            };
            let lost = match futures::ready!(socket.poll_next_unpin(cx)) {
                Some(Ok(Message::Text(text))) => {
                    let Ok(event) = serde_json::from_str::<ServerEvent>(text.as_str()) else { continue };
                    match &event {
                        ServerEvent::Done { session_id, .. } | ServerEvent::Interrupted { session_id, .. } => {
                            this.conversation.session = Some(session_id.clone());
                        }
                        _ => {}
                    }
                    this.finished = this.ends(&event);
                    this.conversation.unfinished = !this.finished;
                    return Poll::Ready(Some(Ok(event)));
                }
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(frame) if !frame.reason.is_empty() => format!("the server closed it: {}", frame.reason),
                    _ => "the server closed it".to_owned(),
                },
                Some(Ok(_)) => continue,
                Some(Err(error)) => error.to_string(),
                None => "the connection ended".to_owned(),
            };
            this.conversation.socket = None;
            this.conversation.unfinished = false;
            this.finished = true;
            return Poll::Ready(Some(Err(ClientError::Disconnected(lost))));
        }
    }
}

/// A spoken turn while its recording is sent; from [`Conversation::start_audio`].
pub struct AudioUpload<'a> {
    turn: Turn<'a>,
}

impl<'a> AudioUpload<'a> {
    /// Sends the next piece of the recording (one binary frame). A server that refuses the recording (too large,
    /// say) says so in the turn's events, read after [`AudioUpload::end`].
    pub async fn send(&mut self, piece: impl Into<Bytes>) -> Result<(), ClientError> {
        let socket = self.turn.conversation.socket.as_mut().ok_or_else(|| ClientError::Disconnected("the socket is closed".to_owned()))?;
        socket.send(Message::Binary(piece.into())).await.map_err(|error| ClientError::Disconnected(error.to_string()))
    }

    /// The recording is complete: the server transcribes it and answers, in the returned turn's events.
    pub async fn end(self) -> Result<Turn<'a>, ClientError> {
        let mut turn = self.turn;
        let message = serde_json::to_string(&ClientMessage::EndTurn).map_err(|error| ClientError::Decode(error.to_string()))?;
        let socket = turn.conversation.socket.as_mut().ok_or_else(|| ClientError::Disconnected("the socket is closed".to_owned()))?;
        socket.send(Message::text(message)).await.map_err(|error| ClientError::Disconnected(error.to_string()))?;
        // A recording the server abandoned (one over its size limit, reported as it arrived) is answered with
        // `status idle` instead of an answer.
        turn.ends_on_idle = true;
        Ok(turn)
    }

    /// Drops the recording: the server answers `status idle`, which ends the returned turn.
    pub async fn cancel(self) -> Result<Turn<'a>, ClientError> {
        let mut turn = self.turn;
        turn.interrupt(None).await?;
        Ok(turn)
    }
}

/// What a turn said, gathered from its events: see [`Turn::finish`], or feed events to
/// [`TurnSummary::apply`] while showing them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnSummary {
    /// The final transcript of a spoken turn.
    pub transcript: Option<String>,
    /// The answer text as streamed; replaced by the whole answer from `done` (or the kept part after an
    /// interrupt).
    pub answer: String,
    pub tool_calls: Vec<parlance_shared::ToolCallRecord>,
    /// The answer's audio, one clip per sentence, in `sequence` order.
    pub audio: Vec<parlance_shared::AudioClip>,
    pub sources: Vec<parlance_shared::KnowledgeSource>,
    pub timings: Option<parlance_shared::StageTimings>,
    pub session_id: Option<SessionId>,
    /// Why the answer was not (all) spoken although speech was asked for.
    pub speech_error: Option<parlance_shared::ErrorBody>,
    pub interrupted: bool,
}

impl TurnSummary {
    /// Adds one event; an `error` event is returned as [`ClientError::Turn`].
    pub fn apply(&mut self, event: &ServerEvent) -> Result<(), ClientError> {
        match event {
            ServerEvent::Transcript { text, is_final: true } => self.transcript = Some(text.clone()),
            ServerEvent::AnswerDelta { text } => self.answer.push_str(text),
            ServerEvent::ToolCall { call } => self.tool_calls.push(call.clone()),
            ServerEvent::AudioChunk { sequence, audio, .. } => {
                let at = usize::try_from(*sequence).unwrap_or(usize::MAX).min(self.audio.len());
                self.audio.insert(at, audio.clone());
            }
            ServerEvent::Done { session_id, answer, sources, timings, speech_error } => {
                self.session_id = Some(session_id.clone());
                self.answer.clone_from(answer);
                self.sources.clone_from(sources);
                self.timings = Some(*timings);
                self.speech_error.clone_from(speech_error);
            }
            ServerEvent::Interrupted { session_id, kept_answer } => {
                self.session_id = Some(session_id.clone());
                self.answer.clone_from(kept_answer);
                self.interrupted = true;
            }
            ServerEvent::Error { error } => return Err(ClientError::Turn(error.clone())),
            // The socket's first event, read when it opens (`greeted`): never part of a turn.
            ServerEvent::Hello { .. }
            | ServerEvent::Transcript { is_final: false, .. }
            | ServerEvent::Status { .. }
            | ServerEvent::SpeechStarted { .. }
            | ServerEvent::SpeechStopped { .. }
            | ServerEvent::SpeechIgnored { .. }
            | ServerEvent::TurnEnded { .. } => {}
        }
        Ok(())
    }
}
