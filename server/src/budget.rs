//! A turn costs seconds of model time, so each client gets a budget of turns: a burst, then a steady rate.
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
