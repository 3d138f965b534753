//! What each client may use of the server. A turn costs seconds of model time, so each client gets a budget of
//! turns: a burst, then a steady rate; and each may hold only so many sockets open.
//! HTTP turns are counted by a layer on their routes (`routes/rate_limit.rs`); turns asked over the socket,
//! where there is no request per turn to put a layer on, take from this.

use std::net::IpAddr;
use std::sync::Arc;

/// `turns_per_minute` turns per client, shared by every socket of the server.
#[derive(Clone)]
pub struct TurnBudget(Option<Arc<governor::DefaultKeyedRateLimiter<IpAddr>>>);

impl TurnBudget {
    /// Off when `turns_per_minute` is 0.
    pub fn new(turns_per_minute: u32) -> Self {
        Self(std::num::NonZeroU32::new(turns_per_minute).map(|n| Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n)))))
    }

    /// Takes one turn from `client`'s budget, or says in how many seconds one is available.
    pub fn take(&self, client: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter.check_key(&client).map_err(|not_until| {
            use governor::clock::Clock as _;
            not_until.wait_time_from(governor::clock::DefaultClock::default().now()).as_secs().max(1)
        })
    }
}

/// Open sockets per client: each open socket holds a [`SocketSlot`] of its client's; the next one past the
/// limit is refused. A socket costs a task, buffers and possibly a recording in memory for as long as it is
/// open, so one client cannot pile them up.
#[derive(Clone)]
pub struct SocketSlots {
    per_client: Option<usize>,
    open: Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>,
}

/// One open socket of a client; given back when dropped.
pub struct SocketSlot {
    client: IpAddr,
    open: Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>,
}

impl SocketSlots {
    /// `None`: no limit (the sockets are still counted).
    pub fn new(per_client: Option<usize>) -> Self {
        Self { per_client, open: Arc::default() }
    }

    pub fn limit(&self) -> Option<usize> {
        self.per_client
    }

    /// A slot for another socket of `client`, or `None` when it has as many open as it may.
    pub fn take(&self, client: IpAddr) -> Option<SocketSlot> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if self.per_client.is_some_and(|limit| *count >= limit) {
            return None;
        }
        *count += 1;
        Some(SocketSlot { client, open: Arc::clone(&self.open) })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_sockets_and_a_closed_one_frees_its_slot() {
        let slots = SocketSlots::new(Some(2));
        let alice: IpAddr = [192, 0, 2, 1].into();
        let bob: IpAddr = [192, 0, 2, 2].into();
        let first = slots.take(alice).unwrap();
        let _second = slots.take(alice).unwrap();
        assert!(slots.take(alice).is_none(), "the third is refused");
        assert!(slots.take(bob).is_some(), "another client is not affected");
        drop(first);
        let _third = slots.take(alice).expect("a closed socket frees its slot");
        assert!(slots.take(alice).is_none(), "and only its own");
        assert!(SocketSlots::new(None).take(alice).is_some());
    }
}
