//! `GET /metrics` after real turns: Parlance on a real port, its stages on a fake provider that speaks the
//! OpenAI wire protocol (`support/fake_openai.rs`), a spoken turn over HTTP, spoken and interrupted turns over
//! the socket, a turn refused because the line is full, and errors; then the Prometheus text is parsed and
//! every counter and histogram count is checked against what was done.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_shared::{ClientMessage, ServerEvent, TurnResponse};
use reqwest::StatusCode;
use serde_json::json;
use support::fake_openai::{FakeOpenAi, tone_wav};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "metrics-test-token-5d1c0b7a9e";
const PATIENCE: Duration = Duration::from_secs(30);

/// Parlance on the fake provider, signed in with [`TOKEN`], one turn at a time and none waiting; its `host:port`.
async fn serve(provider: &FakeOpenAi) -> String {
    let settings = support::settings_for_provider(
        &provider.base_url,
        &["--token", TOKEN, "--max-concurrent-turns", "1", "--turn-queue", "0", "--turns-per-minute", "0"],
    );
    let app = parlance_server::app(&settings).expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    address.to_string()
}

/// The samples of a Prometheus text exposition: `name{labels}` -> value. Comment lines must be `# HELP` or
/// `# TYPE`, and every sample line must parse: a malformed exposition fails the test.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(comment.starts_with("HELP ") || comment.starts_with("TYPE "), "unexpected comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        assert!(samples.insert(series.to_owned(), value).is_none(), "a series twice: {series}");
    }
    samples
}

async fn scrape(address: &str) -> HashMap<String, f64> {
    let response = reqwest::Client::new().get(format!("http://{address}/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse(&response.text().await.unwrap())
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let mut known: Vec<_> = samples.keys().collect();
        known.sort();
        panic!("no series {series} in {known:#?}")
    })
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(address: &str) -> Socket {
    let mut request = format!("ws://{address}/api/ws").into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("socket opens").0
}

async fn send(socket: &mut Socket, message: &ClientMessage) {
    socket.send(Message::text(serde_json::to_string(message).unwrap())).await.unwrap();
}

async fn next_event(socket: &mut Socket) -> ServerEvent {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next()).await.expect("an event in time").expect("open").expect("reads");
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame: {other:?}"),
        }
    }
}

async fn until(socket: &mut Socket, last: impl Fn(&ServerEvent) -> bool) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_event(socket).await;
        let end = last(&event);
        events.push(event);
        if end {
            return events;
        }
    }
}

#[tokio::test]
async fn real_turns_move_the_counters_and_histograms() {
    let provider = FakeOpenAi::start("what time is it").await;
    provider.configure(|fake| fake.answer = Some("It is noon. The sun is high.".into()));
    let address = serve(&provider).await;
    let client = reqwest::Client::new();

    // Without the token, /metrics is refused like the API.
    let refused = client.get(format!("http://{address}/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = refused.json().await.unwrap();
    support::assert_error(&body, "unauthorized");

    let before = scrape(&address).await;
    assert_eq!(value(&before, "parlance_queue_waiting"), 0.0);
    assert_eq!(value(&before, "parlance_turns_running"), 0.0);
    assert!(!before.keys().any(|series| series.starts_with("parlance_turns_total")), "no turn yet: {before:?}");

    // A spoken turn over HTTP.
    let form = reqwest::multipart::Form::new()
        .part("audio", reqwest::multipart::Part::bytes(tone_wav(16_000, 1.0)).file_name("q.wav").mime_str("audio/wav").unwrap());
    let response = client.post(format!("http://{address}/api/voice")).bearer_auth(TOKEN).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let spoken: TurnResponse = response.json().await.unwrap();

    // A typed turn over the socket, spoken sentence by sentence.
    let mut socket = connect(&address).await;
    send(
        &mut socket,
        &ClientMessage::Text { session_id: None, text: "what time is it".into(), speak: true, speech_rate: None, voice: None },
    )
    .await;
    let events = until(&mut socket, |event| matches!(event, ServerEvent::Done { .. })).await;
    let Some(ServerEvent::Done { timings: streamed, .. }) = events.last() else { unreachable!() };
    let first_audio = streamed.first_audio_ms.expect("the streamed turn had audio");

    // A slow answer holds the one place: an HTTP turn meanwhile is refused, then the answer is interrupted.
    provider.configure(|fake| fake.delta_delay = Duration::from_millis(200));
    send(
        &mut socket,
        &ClientMessage::Text { session_id: None, text: "tell me a long story".into(), speak: false, speech_rate: None, voice: None },
    )
    .await;
    until(&mut socket, |event| matches!(event, ServerEvent::AnswerDelta { .. })).await;
    let busy = client.post(format!("http://{address}/api/chat")).bearer_auth(TOKEN).json(&json!({"text": "hello?"})).send().await.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    let during = scrape(&address).await;
    assert_eq!(value(&during, "parlance_turns_running"), 1.0, "the slow answer holds the place");
    assert_eq!(value(&during, "parlance_open_sockets"), 1.0);
    send(&mut socket, &ClientMessage::Interrupt { played_through: None }).await;
    until(&mut socket, |event| matches!(event, ServerEvent::Interrupted { .. })).await;

    // And a request for a conversation that does not exist.
    let missing = client
        .post(format!("http://{address}/api/chat"))
        .bearer_auth(TOKEN)
        .json(&json!({"text": "hi", "session_id": "00000000-0000-4000-8000-000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let after = scrape(&address).await;
    assert_eq!(value(&after, r#"parlance_turns_total{outcome="done"}"#), 2.0);
    assert_eq!(value(&after, r#"parlance_turns_total{outcome="interrupted"}"#), 1.0);
    assert_eq!(value(&after, r#"parlance_turns_total{outcome="refused_busy"}"#), 1.0);
    assert!(!after.contains_key(r#"parlance_turns_total{outcome="failed"}"#), "nothing failed");
    // Only the answered turns are timed; only the spoken one went through speech-to-text.
    assert_eq!(value(&after, "parlance_turn_seconds_count"), 2.0);
    let total_seconds = (spoken.timings.total_ms + streamed.total_ms) as f64 / 1000.0;
    assert!((value(&after, "parlance_turn_seconds_sum") - total_seconds).abs() < 1e-6, "the sum is the turns' total_ms");
    assert_eq!(value(&after, "parlance_stt_seconds_count"), 1.0);
    assert!((value(&after, "parlance_stt_seconds_sum") - spoken.timings.stt_ms as f64 / 1000.0).abs() < 1e-6);
    assert_eq!(value(&after, "parlance_first_token_seconds_count"), 2.0);
    assert_eq!(value(&after, "parlance_first_audio_seconds_count"), 1.0);
    assert!((value(&after, "parlance_first_audio_seconds_sum") - first_audio as f64 / 1000.0).abs() < 1e-6);
    // Buckets are cumulative and end with every sample.
    assert_eq!(value(&after, r#"parlance_turn_seconds_bucket{le="+Inf"}"#), 2.0);
    assert!(value(&after, r#"parlance_turn_seconds_bucket{le="0.005"}"#) <= value(&after, r#"parlance_turn_seconds_bucket{le="120"}"#));
    // Three turns got a place (the refused one never did).
    assert_eq!(value(&after, "parlance_queue_wait_seconds_count"), 3.0);
    assert_eq!(value(&after, "parlance_turns_running"), 0.0);
    assert_eq!(value(&after, "parlance_queue_waiting"), 0.0);
    assert_eq!(value(&after, r#"parlance_errors_total{code="unauthorized"}"#), 1.0);
    assert_eq!(value(&after, r#"parlance_errors_total{code="server_busy"}"#), 1.0);
    assert_eq!(value(&after, r#"parlance_errors_total{code="session_not_found"}"#), 1.0);

    // The socket is counted until it closes.
    socket.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while value(&scrape(&address).await, "parlance_open_sockets") != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the closed socket is still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
