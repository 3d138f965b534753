//! A turn costs seconds of model time, so each client gets a budget of turns: a burst, then a steady rate.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use axum::response::IntoResponse;
use governor::clock::QuantaInstant;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use super::error::ApiError;
use crate::access::TrustedProxies;

/// Keys clients by their IP address: the peer's, or behind a listed proxy the one it forwarded for. Requests
/// without a peer address (in-process calls) share one budget.
#[derive(Debug, Clone)]
pub struct ClientIp {
    proxies: Arc<TrustedProxies>,
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Ok(client_ip(&self.proxies, peer, request.headers()))
    }
}

/// The client a request comes from, for budgets and logs.
pub fn client_ip(proxies: &TrustedProxies, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let Some(peer) = peer else { return IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
    let forwarded: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
    proxies.client(peer, &forwarded)
}

pub type TurnLimit = GovernorLayer<ClientIp, NoOpMiddleware<QuantaInstant>, axum::body::Body>;

/// `turns_per_minute` turns at once, refilled evenly over a minute; `None` when limiting is off (0).
pub fn turn_limit(turns_per_minute: u32, proxies: &TrustedProxies) -> Option<TurnLimit> {
    let refill = Duration::from_secs(60) / turns_per_minute.max(1);
    let key = ClientIp { proxies: Arc::new(proxies.clone()) };
    let config = GovernorConfigBuilder::default().key_extractor(key).period(refill).burst_size(turns_per_minute).finish()?;
    Some(GovernorLayer::new(Arc::new(config)).error_handler(|error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited { retry_after_secs: wait_time.max(1) }.into_response(),
        other => ApiError::Internal(format!("rate limiter: {other}")).into_response(),
    }))
}
