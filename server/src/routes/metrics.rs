//! `GET /metrics`: the server's counters, gauges and latency histograms in Prometheus' text format, behind the
//! same sign-in as `/api` (the guard asks for the token). Which figures there are is `crate::telemetry`'s.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parlance_shared::ErrorCode;

use crate::state::AppState;

/// The exposition format's content type (text format 0.0.4).
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.telemetry.render().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Counts every error response by its code: each one made by [`super::error::ApiError`] carries its code,
/// whichever layer or handler made it.
pub async fn count_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        state.telemetry.error(code.as_str());
    }
    response
}
