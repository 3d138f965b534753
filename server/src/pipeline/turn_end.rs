//! When the user's turn ended, as a turn learns it. Most turns start after it: the time is known. A turn begun
//! during the user's pause, before anyone knows whether they have finished (the socket's speculative answer),
//! learns it later: it is answered and spoken meanwhile, but waits before anything is stored or counted, and
//! is dropped unheard if the user goes on speaking.

use std::time::Instant;

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub enum TurnEnd {
    At(Instant),
    /// Set once the turn is confirmed; the sender dropped means it never will be.
    Later(watch::Receiver<Option<Instant>>),
}

/// Confirms a turn begun early: the user's turn ended, at the given time. Dropping it unconfirmed abandons
/// the turn's wait (the turn itself is stopped by whoever runs it).
#[derive(Debug)]
pub struct EndSignal(watch::Sender<Option<Instant>>);

impl EndSignal {
    pub fn ended(&self, at: Instant) {
        self.0.send_replace(Some(at));
    }
}

impl TurnEnd {
    /// A turn whose end is not known yet, and the signal that will tell it.
    pub fn later() -> (EndSignal, Self) {
        let (sender, receiver) = watch::channel(None);
        (EndSignal(sender), Self::Later(receiver))
    }

    /// When the turn ended, if that is known yet.
    pub fn known(&self) -> Option<Instant> {
        match self {
            Self::At(at) => Some(*at),
            Self::Later(receiver) => *receiver.borrow(),
        }
    }

    /// Waits until the turn is confirmed; forever if it never will be (its runner then drops the turn).
    pub async fn confirmed(&mut self) -> Instant {
        match self {
            Self::At(at) => *at,
            Self::Later(receiver) => {
                // The guard is let go before waiting on: it must not be held across an await.
                let confirmed = receiver.wait_for(Option::is_some).await.ok().and_then(|at| *at);
                match confirmed {
                    Some(at) => at,
                    None => std::future::pending().await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_turn_begun_early_waits_for_its_end_and_keeps_its_time() {
        let (signal, mut end) = TurnEnd::later();
        assert_eq!(end.known(), None);
        let waiting = tokio::time::timeout(Duration::from_millis(20), end.confirmed()).await;
        assert!(waiting.is_err(), "an unconfirmed turn must not go on to be stored");
        let at = Instant::now();
        signal.ended(at);
        assert_eq!(end.confirmed().await, at);
        assert_eq!(end.known(), Some(at));
    }

    #[tokio::test]
    async fn an_abandoned_turn_never_confirms() {
        let (signal, mut end) = TurnEnd::later();
        drop(signal);
        let waiting = tokio::time::timeout(Duration::from_millis(20), end.confirmed()).await;
        assert!(waiting.is_err());
        assert_eq!(end.known(), None);
    }
}
