//! How many turns run at once, and the short line of those waiting. The embedded language model answers one
//! question at a time, so a second turn started beside the first only makes both slow; instead turns take a
//! place in line, first come first served, and learn their place as it changes. A line that is full refuses
//! the turn at once, with a guess of when to try again, instead of letting the wait grow without end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::telemetry::Telemetry;

/// Turns at once, and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Turns that run at the same time (at least 1).
    pub running: usize,
    /// Turns that may wait for one of those places; 0: none wait, a turn that cannot start is refused.
    pub waiting: usize,
}

/// Shared by every turn of the server, HTTP and socket alike.
#[derive(Clone)]
pub struct TurnQueue {
    limits: QueueLimits,
    state: Arc<Mutex<State>>,
    /// Hears the line's length each time it changes.
    telemetry: Option<Arc<Telemetry>>,
}

struct State {
    running: usize,
    waiting: VecDeque<Waiter>,
    next_ticket: u64,
    /// How long a turn holds its place, on average (exponentially weighted): for `Retry-After`.
    mean_turn: Duration,
}

struct Waiter {
    ticket: u64,
    place: watch::Sender<Place>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// 1: the next to start.
    InLine(u32),
    Started,
}

/// The line is full: the turn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// Turns waiting when it was refused.
    pub waiting: usize,
    /// A guess of when a place is likely to be free, in whole seconds (at least 1).
    pub retry_after_secs: u64,
}

/// A running turn's place; the next in line starts when it is dropped.
pub struct RunningPlace {
    queue: TurnQueue,
    since: Instant,
}

/// What a turn guesses before any has finished.
const FIRST_GUESS: Duration = Duration::from_secs(5);
/// `Retry-After` never asks for more than this: the line may move faster than the guess.
const LONGEST_RETRY: u64 = 120;

impl TurnQueue {
    pub fn new(limits: QueueLimits) -> Self {
        let limits = QueueLimits { running: limits.running.max(1), ..limits };
        let state = State { running: 0, waiting: VecDeque::new(), next_ticket: 0, mean_turn: FIRST_GUESS };
        Self { limits, state: Arc::new(Mutex::new(state)), telemetry: None }
    }

    /// Turns running or waiting now.
    pub fn in_flight(&self) -> usize {
        let state = self.lock();
        state.running + state.waiting.len()
    }

    /// Reports the number of turns running and waiting to `telemetry` as it changes.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        telemetry.line(0, 0);
        self.telemetry = Some(telemetry);
        self
    }

    fn report(&self, state: &State) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.line(state.running, state.waiting.len());
        }
    }

    /// Waits for a place to run a turn, first come first served. `on_place` hears the place in line each time
    /// it changes (1: next), never when the turn starts at once. Dropping the future leaves the line (or
    /// frees the place just given), so a client that goes away holds nobody up.
    pub async fn enter(&self, mut on_place: impl FnMut(u32)) -> Result<RunningPlace, QueueFull> {
        let (ticket, mut place) = {
            let mut state = self.lock();
            if state.running < self.limits.running && state.waiting.is_empty() {
                state.running += 1;
                self.report(&state);
                return Ok(self.place_now());
            }
            if state.waiting.len() >= self.limits.waiting {
                return Err(QueueFull { waiting: state.waiting.len(), retry_after_secs: self.retry_after(&state) });
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let (sender, receiver) = watch::channel(Place::InLine(count(state.waiting.len() + 1)));
            state.waiting.push_back(Waiter { ticket, place: sender });
            self.report(&state);
            (ticket, receiver)
        };
        let mut leaving = Leaving { queue: self, ticket, started: false };
        loop {
            let now = *place.borrow_and_update();
            match now {
                Place::Started => {
                    leaving.started = true;
                    return Ok(self.place_now());
                }
                Place::InLine(position) => on_place(position),
            }
            if place.changed().await.is_err() {
                // The sender lives in the line until the waiter is started or leaves; neither happened.
                unreachable_place();
            }
        }
    }

    fn place_now(&self) -> RunningPlace {
        RunningPlace { queue: self.clone(), since: Instant::now() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The mean turn times the turns ahead (the whole line and this one), shared by the places.
    fn retry_after(&self, state: &State) -> u64 {
        let ahead = u32::try_from(state.waiting.len() + 1).unwrap_or(u32::MAX);
        let running = u32::try_from(self.limits.running).unwrap_or(u32::MAX);
        let wait = state.mean_turn.saturating_mul(ahead) / running;
        wait.as_secs_f64().ceil().clamp(1.0, LONGEST_RETRY as f64) as u64
    }

    /// A place was given back: the first in line starts, and everyone behind moves up.
    fn release(&self, held: Option<Duration>) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
        if let Some(held) = held {
            // Weighted towards the recent turns: a model warming up or a provider slowing down shows quickly.
            state.mean_turn = (state.mean_turn * 3 + held) / 4;
        }
        Self::start_waiting(&mut state, self.limits.running);
        self.report(&state);
    }

    fn start_waiting(state: &mut State, running: usize) {
        let mut moved = false;
        while state.running < running {
            let Some(next) = state.waiting.pop_front() else { break };
            state.running += 1;
            moved = true;
            // A waiter whose future is gone has already left the line; this one is there, so it listens.
            let _ = next.place.send(Place::Started);
        }
        if moved {
            Self::renumber(state);
        }
    }

    /// Tells each waiter its place, if it changed.
    fn renumber(state: &State) {
        for (index, waiter) in state.waiting.iter().enumerate() {
            let now = Place::InLine(count(index + 1));
            waiter.place.send_if_modified(|place| {
                let changed = *place != now;
                *place = now;
                changed
            });
        }
    }
}

impl Drop for RunningPlace {
    fn drop(&mut self) {
        self.queue.release(Some(self.since.elapsed()));
    }
}

/// Takes a waiting turn out of the line when its future is dropped; gives its place back when it was started
/// but had not yet taken it.
struct Leaving<'a> {
    queue: &'a TurnQueue,
    ticket: u64,
    started: bool,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        let mut state = self.queue.lock();
        if let Some(index) = state.waiting.iter().position(|waiter| waiter.ticket == self.ticket) {
            state.waiting.remove(index);
            TurnQueue::renumber(&state);
            self.queue.report(&state);
        } else {
            // Started in the meantime: the place is this turn's, and nobody will use it.
            drop(state);
            self.queue.release(None);
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cold]
fn unreachable_place() -> ! {
    panic!("a turn waiting in line lost its place without being started")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(running: usize, waiting: usize) -> TurnQueue {
        TurnQueue::new(QueueLimits { running, waiting })
    }

    #[tokio::test]
    async fn turns_start_at_once_while_places_are_free() {
        let queue = queue(2, 0);
        let first = queue.enter(|_| panic!("no wait")).await.unwrap();
        let _second = queue.enter(|_| panic!("no wait")).await.unwrap();
        let refused = queue.enter(|_| {}).await.err().expect("no room to wait");
        assert_eq!(refused.waiting, 0);
        assert!(refused.retry_after_secs >= 1);
        drop(first);
        assert!(queue.enter(|_| {}).await.is_ok(), "a freed place is taken");
    }

    #[tokio::test]
    async fn the_line_is_first_come_first_served_and_everyone_hears_their_place() {
        let queue = queue(1, 3);
        let running = queue.enter(|_| {}).await.unwrap();
        let (started, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut places = Vec::new();
        let mut tasks = Vec::new();
        for name in 0..3 {
            let queue = queue.clone();
            let started = started.clone();
            let (heard, places_heard) = tokio::sync::mpsc::unbounded_channel();
            places.push(places_heard);
            tasks.push(tokio::spawn(async move {
                let place = queue.enter(|position| heard.send(position).unwrap()).await.unwrap();
                started.send(name).unwrap();
                // Holds its place until the test has seen the order.
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(place);
            }));
            // Each is in line before the next arrives.
            assert_eq!(places[name].recv().await, Some(u32::try_from(name).unwrap() + 1));
        }
        assert!(queue.enter(|_| {}).await.is_err(), "three wait: the line is full");
        drop(running);
        for task in tasks {
            task.await.unwrap();
        }
        let mut seen = Vec::new();
        while let Ok(name) = order.try_recv() {
            seen.push(name);
        }
        assert_eq!(seen, [0, 1, 2]);
        // The last one heard 3, then 2, then 1 as the line moved.
        let mut last = Vec::new();
        while let Ok(position) = places[2].try_recv() {
            last.push(position);
        }
        assert_eq!(last, [2, 1]);
    }

    #[tokio::test]
    async fn leaving_the_line_moves_those_behind_up_and_frees_nothing_twice() {
        let queue = queue(1, 2);
        let running = queue.enter(|_| {}).await.unwrap();
        let (first_heard, mut first_places) = tokio::sync::mpsc::unbounded_channel();
        let first = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.enter(|position| first_heard.send(position).unwrap()).await.map(drop) })
        };
        assert_eq!(first_places.recv().await, Some(1));
        let (heard, mut places) = tokio::sync::mpsc::unbounded_channel();
        let second = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let place = queue.enter(|position| heard.send(position).unwrap()).await.unwrap();
                drop(place);
            })
        };
        assert_eq!(places.recv().await, Some(2));
        first.abort();
        assert_eq!(places.recv().await, Some(1), "the one ahead left");
        drop(running);
        second.await.unwrap();
        // Everything was given back: the full capacity is free again.
        let a = queue.enter(|_| panic!("free")).await.unwrap();
        drop(a);
        assert_eq!(queue.lock().running, 0);
        assert!(queue.lock().waiting.is_empty());
    }
}
