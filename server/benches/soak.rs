//! A soak: typed turns over real sockets for a while, every turn stored in the real conversation store (LanceDB
//! under a fresh data directory, as `parlance` keeps conversations), with a model that answers at once (the
//! tests' fake stages in the process): what the server itself costs per turn, and whether its memory stays flat.
//! Prints turns per second, the p50/p99 turn latency (question sent to `done` received), the resident memory
//! sampled along the way and its peak (VmHWM), then checks that every turn is in its conversation's history as
//! a new process would read it back from disk.
//!
//!     source scripts/env.sh && cargo bench --workspace --bench soak --profile dev [-- --secs 60] [--sockets 16]
//!
//! The goal: 1,000 turns/s or more, p99 under 20 ms, flat memory. Run it on a quiet machine.

mod common;
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser as _;
use common::ms;
use futures::{SinkExt, StreamExt};
use parlance_server::AppState;
use parlance_server::sessions::{LanceSessions, SessionStore};
use parlance_server::store::Database;
use parlance_shared::{ClientMessage, ServerEvent, SessionId};
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Parser)]
struct Options {
    /// How long to keep asking, in seconds.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Sockets asking at once, each one question after another in its own conversation.
    #[arg(long, default_value_t = 16)]
    sockets: usize,
    /// A new conversation after this many turns (a conversation's history is read on every turn).
    #[arg(long, default_value_t = 20)]
    turns_per_conversation: usize,
    // `cargo bench` passes --bench to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one socket did: each turn's latency, and each conversation with the number of turns it was given.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    conversations: Vec<(SessionId, usize)>,
}

fn main() {
    common::run_bench(soak);
}

async fn soak() {
    let options = Options::parse();
    let data_dir = support::fresh_data_dir();
    // Forgetful: the fakes' own records of every call are not what is measured.
    let fakes = support::fake_stages::FakeStages::new("unused").forgetful();
    let data = data_dir.to_str().expect("utf-8 path").to_owned();
    let settings = fakes.settings(&[
        "--data-dir",
        &data,
        "--turns-per-minute",
        "0",
        "--sockets-per-client",
        "0",
        "--max-concurrent-turns",
        &options.sockets.to_string(),
        "--turn-queue",
        &options.sockets.to_string(),
    ]);
    let app = parlance_server::router(AppState::on_disk(&settings, fakes.stages()), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address").to_string();
    tokio::spawn(async move {
        axum::serve(parlance_server::without_nagle(listener), app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
            .expect("serves");
    });

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sockets: Vec<_> = (0..options.sockets)
        .map(|n| tokio::spawn(ask_until(address.clone(), n, options.turns_per_conversation, Arc::clone(&stop))))
        .collect();
    let mut rss = vec![(0u64, rss_kib("VmRSS"))];
    let period = Duration::from_secs((options.secs / 10).max(1));
    while started.elapsed() < Duration::from_secs(options.secs) {
        tokio::time::sleep(period).await;
        rss.push((started.elapsed().as_secs(), rss_kib("VmRSS")));
    }
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for socket in sockets {
        let done = socket.await.expect("a socket's task");
        tally.latencies.extend(done.latencies);
        tally.conversations.extend(done.conversations);
    }
    let elapsed = started.elapsed();
    let turns = tally.latencies.len();
    tally.latencies.sort();
    let at = |q: f64| tally.latencies[((turns - 1) as f64 * q).round() as usize];
    println!("soak: {turns} typed turns in {:.1} s over {} sockets", elapsed.as_secs_f64(), options.sockets);
    println!("  turns/s      {:.0}", turns as f64 / elapsed.as_secs_f64());
    println!("  latency p50  {:.1} ms", ms(at(0.5)));
    println!("  latency p99  {:.1} ms", ms(at(0.99)));
    println!("  latency max  {:.1} ms", ms(at(1.0)));
    let samples: Vec<String> = rss.iter().map(|(secs, kib)| format!("{secs}s:{} MiB", kib / 1024)).collect();
    println!("  RSS          {}", samples.join("  "));
    println!("  peak RSS     {} MiB (VmHWM)", rss_kib("VmHWM") / 1024);

    // Durably stored: a second store on the same folder (as a restarted server) reads every turn back.
    let checked = Instant::now();
    let reopened = LanceSessions::new(Arc::new(Database::new(&data_dir)));
    let mut missing = 0;
    for (id, asked) in &tally.conversations {
        let lines = reopened.history(id).await.expect("the history reads").map_or(0, |lines| lines.len());
        if lines != 2 * asked {
            missing += 1;
            eprintln!("conversation {id}: {lines} lines stored for {asked} turns");
        }
    }
    println!(
        "  stored       {} conversations read back from disk in {:.1} s, {missing} with lines missing",
        tally.conversations.len(),
        checked.elapsed().as_secs_f64()
    );
    assert_eq!(missing, 0, "turns were answered but not stored");
}

/// One socket asking question after question until `stop`, in a new conversation every `per_conversation` turns.
async fn ask_until(address: String, n: usize, per_conversation: usize, stop: Arc<AtomicBool>) -> Tally {
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{address}/api/ws"), None, true).await.expect("socket opens");
    let mut tally = Tally::default();
    let mut in_conversation = 0;
    while !stop.load(Ordering::Relaxed) {
        if in_conversation == per_conversation {
            socket.send(Message::text(serde_json::to_string(&ClientMessage::NewSession).expect("json"))).await.expect("sends");
            in_conversation = 0;
        }
        let text = format!("Question {} from socket {n}", tally.latencies.len());
        let ask = ClientMessage::Text { session_id: None, text: text.clone(), speak: false, speech_rate: None, voice: None };
        let sent = Instant::now();
        socket.send(Message::text(serde_json::to_string(&ask).expect("json"))).await.expect("sends");
        let session_id = loop {
            let frame = socket.next().await.expect("the socket stays open").expect("the socket reads");
            let Message::Text(frame) = frame else { continue };
            match serde_json::from_str::<ServerEvent>(frame.as_str()).expect("an event") {
                ServerEvent::Done { session_id, answer, .. } => {
                    assert!(answer.contains(&text), "socket {n} got another question's answer: {answer}");
                    break session_id;
                }
                ServerEvent::Error { error } => panic!("socket {n}: a turn failed: {}", error.message),
                _ => {}
            }
        };
        tally.latencies.push(sent.elapsed());
        in_conversation += 1;
        match tally.conversations.last_mut() {
            Some((id, turns)) if *id == session_id => *turns += 1,
            _ => tally.conversations.push((session_id, 1)),
        }
    }
    tally
}

/// A memory figure of this process from /proc/self/status, in KiB (0 where /proc is missing).
fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
