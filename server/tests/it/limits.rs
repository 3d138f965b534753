//! The limits that protect the machine, over a real listener and real sockets: turns wait in one fair line
//! (socket and HTTP alike) and a full line is refused at once; sockets are pinged, closed when idle or silent,
//! capped per client, and a message too large to read gets a clear refusal.
//!
//! The model stages are fakes inside the test process (`support/fake_stages.rs`) whose model writes its answer
//! a word at a time at a set pace, so a turn lasts long enough for others to queue behind it.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_shared::{ClientMessage, ErrorCode, ServerEvent, SessionHistory, SessionId, StageTimings, TurnResponse, TurnState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fake_openai::tone_wav;
use support::fake_stages::FakeStages;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Long enough for anything here on a busy machine; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(30);

/// A model that answers only when the test lets it (`gate.add_permits`), a word every 20 ms.
fn gated_model() -> (FakeStages, Arc<Semaphore>) {
    let provider = FakeStages::new("What time is it?");
    let gate = Arc::new(Semaphore::new(0));
    provider.configure(|fake| {
        fake.answer = Some("One two three four.".into());
        fake.delta_delay = Duration::from_millis(20);
        fake.gate = Some(Arc::clone(&gate));
    });
    (provider, gate)
}

/// A model that takes `words` tenths of a second to answer, without speech.
fn slow_model(words: usize) -> FakeStages {
    let provider = FakeStages::new("What time is it?");
    let answer = (1..=words).map(|n| format!("w{n}")).collect::<Vec<_>>().join(" ");
    provider.configure(|fake| {
        fake.answer = Some(format!("{answer}."));
        fake.delta_delay = Duration::from_millis(100);
    });
    provider
}

fn ask(text: &str) -> ClientMessage {
    ClientMessage::Text { session_id: None, text: text.into(), speak: false, speech_rate: None, voice: None }
}

struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    async fn connect(address: &str) -> Self {
        Self::try_connect(address, None).await.expect("socket opens")
    }

    /// A socket, claiming to be `forwarded_for` (believed only from a trusted proxy); the refusal's status when
    /// it is refused.
    async fn try_connect(address: &str, forwarded_for: Option<&str>) -> Result<Self, u16> {
        let mut request = format!("ws://{address}/api/ws").into_client_request().unwrap();
        if let Some(client) = forwarded_for {
            request.headers_mut().insert("x-forwarded-for", client.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => {
                let mut client = Self { socket };
                assert!(matches!(client.event().await, ServerEvent::Hello { .. }), "the socket starts with hello");
                Ok(client)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("the socket failed otherwise: {other}"),
        }
    }

    async fn send(&mut self, message: &ClientMessage) {
        self.socket.send(Message::text(serde_json::to_string(message).unwrap())).await.expect("socket sends");
    }

    /// The next event (pings are answered and skipped).
    async fn event(&mut self) -> ServerEvent {
        loop {
            match self.frame().await {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("events are ServerEvents"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame from the server: {other:?}"),
            }
        }
    }

    async fn frame(&mut self) -> Message {
        let next = tokio::time::timeout(PATIENCE, self.socket.next()).await.expect("a frame within the patience");
        next.expect("the socket is still open").expect("the socket reads")
    }

    /// Frames up to and including the server's close frame: its code and reason, and how many pings came first.
    async fn until_closed(&mut self) -> (CloseCode, String, usize) {
        let mut pings = 0;
        loop {
            match self.frame().await {
                Message::Close(Some(frame)) => return (frame.code, frame.reason.to_string(), pings),
                Message::Ping(_) => pings += 1,
                Message::Text(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame before the close: {other:?}"),
            }
        }
    }

    /// Events up to and including the turn's last one (`done`, `interrupted` or `error`).
    async fn rest_of_turn(&mut self) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.event().await;
            let last = matches!(event, ServerEvent::Done { .. } | ServerEvent::Interrupted { .. } | ServerEvent::Error { .. });
            events.push(event);
            if last {
                return events;
            }
        }
    }
}

/// The `done` of a turn's events: its session and timings.
fn done(events: &[ServerEvent]) -> (SessionId, StageTimings) {
    match events.last() {
        Some(ServerEvent::Done { session_id, timings, .. }) => (session_id.clone(), *timings),
        _ => panic!("the turn did not end with done: {events:?}"),
    }
}

async fn history(address: &str, session_id: &SessionId) -> Vec<String> {
    let response = reqwest::get(format!("http://{address}/api/sessions/{session_id}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let history: SessionHistory = response.json().await.unwrap();
    history.turns.into_iter().map(|turn| turn.text).collect()
}

/// A socket's opening handshake sent as a plain request, for reading a refusal whole: its status and body.
async fn refused_socket(address: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{address}/api/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

async fn chat(address: &str, text: &str) -> reqwest::Response {
    let client = reqwest::Client::new();
    client.post(format!("http://{address}/api/chat")).json(&json!({"text": text, "speak": false})).send().await.unwrap()
}

#[tokio::test]
async fn turns_wait_in_line_in_order_and_a_full_line_is_refused_with_503_or_an_error_event() {
    // The first answer is held until the line has been tried; nothing here depends on timing.
    let (provider, gate) = gated_model();
    let address = provider.serve(&["--max-concurrent-turns", "1", "--turn-queue", "2"]).await;
    let mut first = Client::connect(&address).await;
    let mut second = Client::connect(&address).await;
    let mut third = Client::connect(&address).await;
    let mut fourth = Client::connect(&address).await;

    first.send(&ask("First")).await;
    assert_eq!(first.event().await, ServerEvent::status(TurnState::Thinking), "the first starts at once, with no place in line");
    second.send(&ask("Second")).await;
    assert_eq!(second.event().await, ServerEvent::queued(1));
    third.send(&ask("Third")).await;
    assert_eq!(third.event().await, ServerEvent::queued(2));

    // The line is full: the socket gets an error event, HTTP a 503, both saying when to come back.
    fourth.send(&ask("Fourth")).await;
    let ServerEvent::Error { error } = fourth.event().await else { panic!("the fourth is refused") };
    assert_eq!(error.code, ErrorCode::ServerBusy, "{}", error.message);
    assert!(error.message.contains("waiting") && error.message.contains("ask again"), "{}", error.message);
    let refused = chat(&address, "Fifth").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    support::assert_error(&refused.json().await.unwrap(), "server_busy");
    gate.add_permits(10);

    // Every accepted turn is answered, in the order it came, each in its own conversation.
    let (first_session, first_timings) = done(&first.rest_of_turn().await);
    let second_events = second.rest_of_turn().await;
    let (second_session, second_timings) = done(&second_events);
    let third_events = third.rest_of_turn().await;
    let (third_session, third_timings) = done(&third_events);
    assert_eq!(third_events[0], ServerEvent::queued(1), "the third moved up when the first finished");
    assert_eq!(third_events[1], ServerEvent::status(TurnState::Thinking));
    assert_eq!(provider.questions(), ["First", "Second", "Third"], "first come, first served; the refused never reach the model");

    assert_eq!(first_timings.queued_ms, 0);
    for timings in [second_timings, third_timings] {
        assert!(timings.queued_ms > 0, "the wait is reported: {timings:?}");
        assert!(timings.total_ms >= timings.queued_ms + timings.llm_ms, "the wait is not part of the model's time: {timings:?}");
    }
    for (session, question) in [(&first_session, "First"), (&second_session, "Second"), (&third_session, "Third")] {
        let lines = history(&address, session).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], question);
    }
    // The line is empty again: a new turn starts at once.
    fourth.send(&ask("Fourth again")).await;
    assert_eq!(fourth.event().await, ServerEvent::status(TurnState::Thinking));
    done(&fourth.rest_of_turn().await);
}

#[tokio::test]
async fn http_turns_wait_in_the_same_line_as_the_socket() {
    let provider = slow_model(30);
    provider.configure(|fake| fake.transcript = "A spoken question".into());
    let address = provider.serve(&["--max-concurrent-turns", "1", "--turn-queue", "2"]).await;
    let mut socket = Client::connect(&address).await;
    socket.send(&ask("First")).await;
    assert_eq!(socket.event().await, ServerEvent::status(TurnState::Thinking));

    let typed = tokio::spawn({
        let address = address.clone();
        async move { chat(&address, "Typed").await }
    });
    let spoken = tokio::spawn({
        let address = address.clone();
        async move {
            let form = reqwest::multipart::Form::new()
                .part("audio", reqwest::multipart::Part::bytes(tone_wav(16_000, 0.5)).file_name("question.wav"));
            reqwest::Client::new().post(format!("http://{address}/api/voice")).multipart(form).send().await.unwrap()
        }
    });
    // Those two wait behind the socket's turn, which holds the model for three seconds; they need not.
    provider.configure(|fake| fake.delta_delay = Duration::ZERO);

    let (_, socket_timings) = done(&socket.rest_of_turn().await);
    assert_eq!(socket_timings.queued_ms, 0);
    for response in [typed.await.unwrap(), spoken.await.unwrap()] {
        assert_eq!(response.status(), StatusCode::OK);
        let answer: TurnResponse = response.json().await.unwrap();
        assert!(answer.timings.queued_ms > 0, "it waited in line: {:?}", answer.timings);
    }
    assert_eq!(provider.questions()[0], "First");
    assert_eq!(provider.questions().len(), 3);
}

#[tokio::test]
async fn a_client_that_leaves_the_line_gives_its_place_up() {
    let (provider, gate) = gated_model();
    let address = provider.serve(&["--max-concurrent-turns", "1", "--turn-queue", "2"]).await;
    let mut first = Client::connect(&address).await;
    let mut leaving = Client::connect(&address).await;
    let mut last = Client::connect(&address).await;

    first.send(&ask("First")).await;
    assert_eq!(first.event().await, ServerEvent::status(TurnState::Thinking));
    leaving.send(&ask("Never mind")).await;
    assert_eq!(leaving.event().await, ServerEvent::queued(1));
    last.send(&ask("Last")).await;
    assert_eq!(last.event().await, ServerEvent::queued(2));
    drop(leaving);
    assert_eq!(last.event().await, ServerEvent::queued(1), "the one ahead left the line");

    gate.add_permits(10);
    done(&first.rest_of_turn().await);
    done(&last.rest_of_turn().await);
    assert_eq!(provider.questions(), ["First", "Last"], "the turn that left never reached the model");
}

#[tokio::test]
async fn an_idle_socket_is_closed_with_its_reason_but_not_while_it_waits_for_an_answer() {
    let (provider, gate) = gated_model();
    let address =
        provider.serve(&["--socket-idle-secs", "1", "--socket-ping-secs", "0", "--max-concurrent-turns", "1", "--turn-queue", "1"]).await;
    let mut busy = Client::connect(&address).await;
    let mut waiting = Client::connect(&address).await;
    busy.send(&ask("Take your time")).await;
    assert_eq!(busy.event().await, ServerEvent::status(TurnState::Thinking));
    // Waiting for an answer, in line or not, the client sends nothing for well over the idle time: that is not
    // idleness.
    waiting.send(&ask("I can wait")).await;
    assert_eq!(waiting.event().await, ServerEvent::queued(1));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    gate.add_permits(10);
    done(&busy.rest_of_turn().await);
    done(&waiting.rest_of_turn().await);

    // Now neither says anything: each is closed, with a reason a person can read.
    for client in [&mut busy, &mut waiting] {
        let (code, reason, _) = client.until_closed().await;
        assert_eq!(code, CloseCode::Normal);
        assert!(reason.contains("idle") && reason.contains("1 s"), "{reason}");
    }
}

#[tokio::test]
async fn the_server_pings_and_closes_a_socket_that_does_not_answer() {
    let provider = FakeStages::new("");
    let address = provider.serve(&["--socket-ping-secs", "1", "--socket-idle-secs", "0"]).await;
    let mut answering = Client::connect(&address).await;
    let mut silent = Client::connect(&address).await;

    // The answering client reads (and so answers each ping with a pong, as browsers do) and stays open.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(3500);
    while let Ok(frame) = tokio::time::timeout_at(deadline, answering.socket.next()).await {
        match frame.expect("still open").expect("reads") {
            Message::Ping(_) => pings += 1,
            other => panic!("only pings come to an idle socket that answers them: {other:?}"),
        }
    }
    assert!(pings >= 2, "pinged every second: {pings}");

    // The silent one read nothing meanwhile, so it answered no ping: it was closed.
    let (code, reason, pings) = silent.until_closed().await;
    assert_eq!(code, CloseCode::Policy, "{reason}");
    assert!(reason.contains("ping"), "{reason}");
    assert!(pings >= 1, "it was pinged before it was closed");

    // The answering one still works.
    answering.send(&ask("Still there?")).await;
    done(&answering.rest_of_turn().await);
}

#[tokio::test]
async fn each_client_may_open_only_so_many_sockets() {
    let provider = FakeStages::new("");
    let address = provider.serve(&["--sockets-per-client", "2"]).await;
    let first = Client::connect(&address).await;
    let _second = Client::connect(&address).await;
    assert_eq!(Client::try_connect(&address, None).await.err(), Some(429), "the third is refused");
    let (status, body) = refused_socket(&address).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    support::assert_error(&body, "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("2 sockets"), "{body}");

    // Closing one frees its place (the server notices the close a moment later).
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut third = loop {
        match Client::try_connect(&address, None).await {
            Ok(client) => break client,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(refused) => panic!("a closed socket's place was not freed: {refused:?}"),
        }
    };
    third.send(&ask("Hello")).await;
    done(&third.rest_of_turn().await);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_socket_cap_counts_the_client_it_names() {
    let provider = FakeStages::new("");
    let address = provider.serve(&["--sockets-per-client", "1", "--trusted-proxies", "127.0.0.1"]).await;
    let _alice = Client::try_connect(&address, Some("203.0.113.1")).await.expect("Alice's first");
    let _bob = Client::try_connect(&address, Some("203.0.113.2")).await.expect("Bob has his own count");
    let refused = Client::try_connect(&address, Some("203.0.113.1")).await.err();
    assert_eq!(refused, Some(429), "Alice's second is refused");

    // Straight from a client the header is not believed: all of these are the one peer, 127.0.0.1.
    let direct = provider.serve(&["--sockets-per-client", "1"]).await;
    let _one = Client::try_connect(&direct, Some("203.0.113.1")).await.expect("the first");
    assert_eq!(Client::try_connect(&direct, Some("203.0.113.2")).await.err(), Some(429));
}

#[tokio::test]
async fn a_100_mb_socket_message_is_refused_with_an_error_event_and_close_1009() {
    let provider = FakeStages::new("");
    let address = provider.serve(&[]).await;
    let client = Client::connect(&address).await;
    let (mut sink, mut stream) = client.socket.split();
    // The upload stops when the server closes; its result does not matter.
    let upload = tokio::spawn(async move { sink.send(Message::binary(vec![0u8; 100 * 1024 * 1024])).await });

    let mut error = None;
    let close = loop {
        let frame = tokio::time::timeout(PATIENCE, stream.next()).await.expect("the server answers");
        match frame {
            Some(Ok(Message::Text(text))) => error = Some(serde_json::from_str::<ServerEvent>(text.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(other)) => panic!("unexpected frame: {other:?}"),
            Some(Err(failure)) => panic!("the connection broke before the close frame: {failure} (error event: {error:?})"),
            None => panic!("closed without a close frame (error event: {error:?})"),
        }
    };
    let Some(ServerEvent::Error { error }) = error else { panic!("no error event before the close") };
    assert_eq!(error.code, ErrorCode::PayloadTooLarge);
    assert!(error.message.contains("25.1 MiB"), "names the limit (the upload limit and room for the framing): {}", error.message);
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Size, "1009, not a protocol error: {close:?}");
    upload.abort();

    // The server is fine: another socket works.
    let mut next = Client::connect(&address).await;
    next.send(&ask("Still up?")).await;
    done(&next.rest_of_turn().await);
}

#[tokio::test]
async fn what_an_error_event_repeats_of_a_huge_message_is_cut_short() {
    let provider = FakeStages::new("");
    let address = provider.serve(&[]).await;
    let mut client = Client::connect(&address).await;
    let huge_type = "x".repeat(100_000);
    client.socket.send(Message::text(format!(r#"{{"type": "{huge_type}"}}"#))).await.unwrap();
    let ServerEvent::Error { error } = client.event().await else { panic!("an error event") };
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(error.message.len() < 1000, "{} bytes", error.message.len());
    assert!(error.message.contains("xxxx") && error.message.contains('…'), "it quotes the start, and says it was cut: {}", error.message);
}
