//! Many conversations at once over real sockets: 50 sockets, each asking 20 typed questions in a row, against
//! the real conversation store (LanceDB under a fresh data directory) and a model that answers at once (a fake
//! in the process, `support/fake_stages.rs`, which echoes the question). Every turn must finish, its answer
//! must be to its own question in its own conversation, and each conversation's stored history must hold exactly
//! its 20 questions and answers, in order. How fast it goes is the soak bench's business (`benches/soak.rs`).

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parlance_server::AppState;
use parlance_shared::{ClientMessage, Role, ServerEvent, SessionHistory};
use reqwest::StatusCode;
use support::fake_stages::FakeStages;
use tokio_tungstenite::tungstenite::Message;

const SESSIONS: usize = 50;
const TURNS: usize = 20;
/// The whole run's bound: far more than it needs on two busy cores; a run that takes this long has failed.
const DEADLINE: Duration = Duration::from_secs(50);

/// Parlance on fake, instant stages with its conversations in LanceDB; the `host:port`.
async fn serve() -> String {
    let fakes = FakeStages::new("unused");
    // Room for every socket's turn at once: the line's refusals are `limits.rs`'s subject, not this one's.
    let settings = fakes.settings(&[
        "--turns-per-minute",
        "0",
        "--sockets-per-client",
        "0",
        "--max-concurrent-turns",
        "8",
        "--turn-queue",
        &SESSIONS.to_string(),
    ]);
    let app = parlance_server::router(AppState::on_disk(&settings, fakes.stages()), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    address
}

fn question(session: usize, turn: usize) -> String {
    format!("Question {turn} of conversation {session}")
}

/// One client: a socket, `TURNS` questions one after another; the conversation's id, or what went wrong.
async fn converse(address: String, session: usize) -> Result<String, String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/api/ws")).await.map_err(|e| e.to_string())?;
    let mut id = None;
    for turn in 0..TURNS {
        let ask = ClientMessage::Text { session_id: None, text: question(session, turn), speak: false, speech_rate: None, voice: None };
        socket.send(Message::text(serde_json::to_string(&ask).unwrap())).await.map_err(|e| e.to_string())?;
        let done = loop {
            let frame = socket.next().await.ok_or("the socket closed mid-turn")?.map_err(|e| e.to_string())?;
            let Message::Text(text) = frame else { continue };
            match serde_json::from_str::<ServerEvent>(text.as_str()).map_err(|e| e.to_string())? {
                ServerEvent::Done { session_id, answer, .. } => break (session_id.to_string(), answer),
                ServerEvent::Error { error } => {
                    return Err(format!("turn {turn}: {} {}", serde_json::to_value(error.code).unwrap(), error.message));
                }
                _ => {}
            }
        };
        let (session_id, answer) = done;
        if !answer.contains(&format!("You said: {}.", question(session, turn))) {
            return Err(format!("turn {turn} got another question's answer: {answer}"));
        }
        match &id {
            None => id = Some(session_id),
            Some(id) if *id != session_id => return Err(format!("turn {turn} went to conversation {session_id}, not {id}")),
            Some(_) => {}
        }
    }
    id.ok_or_else(|| "no turn".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_conversations_at_once_each_keep_their_own_twenty_turns() {
    let address = serve().await;
    let clients: Vec<_> = (0..SESSIONS).map(|session| tokio::spawn(converse(address.clone(), session))).collect();
    let results = tokio::time::timeout(DEADLINE, futures::future::join_all(clients)).await.expect("every conversation ends in time");
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    for (session, result) in results.into_iter().enumerate() {
        match result.expect("the client task runs") {
            Ok(id) => ids.push((session, id)),
            Err(error) => errors.push(format!("conversation {session}: {error}")),
        }
    }
    assert!(errors.is_empty(), "{} of {SESSIONS} conversations failed:\n{}", errors.len(), errors.join("\n"));
    let distinct: std::collections::HashSet<_> = ids.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), SESSIONS, "two sockets shared a conversation");

    let http = Arc::new(reqwest::Client::new());
    for (session, id) in ids {
        let response = http.get(format!("http://{address}/api/sessions/{id}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let history: SessionHistory = response.json().await.unwrap();
        assert_eq!(history.turns.len(), 2 * TURNS, "conversation {session} stored {} lines", history.turns.len());
        for (turn, lines) in history.turns.chunks(2).enumerate() {
            let asked = question(session, turn);
            assert_eq!((lines[0].role, lines[0].text.as_str()), (Role::User, asked.as_str()), "conversation {session}, line {}", 2 * turn);
            assert_eq!(lines[1].role, Role::Assistant);
            assert!(lines[1].text.contains(&format!("You said: {asked}.")), "conversation {session}: {}", lines[1].text);
        }
    }
}
