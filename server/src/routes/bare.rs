//! The edges of every request that no handler sees: an address or headers longer than the server reads are
//! refused here with the error body, and any error response made without one (the router's 405, the file
//! service's refusals, an extractor's plain-text rejection) leaves with one. hyper itself refuses what is
//! beyond its own limits (an address over 64 KiB, over 100 headers or about 400 KB of them) before any of this
//! runs, with a bare status: these limits sit below those, so a client almost always gets the body. Under
//! `/v1` the body is OpenAI's error shape, as the rest of that API's errors.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, OpenAiApiError};

/// The longest path and query read: browsers and proxies stop near here too.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes read (names, values and their separators).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

pub async fn with_error_bodies(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let openai = path == "/v1" || path.starts_with("/v1/");
    let answer = |error: ApiError| if openai { OpenAiApiError(error).into_response() } else { error.into_response() };
    if let Some(refused) = too_large(&request) {
        tracing::info!(status = %refused.status(), "refused a request larger than the server reads");
        return answer(refused);
    }
    let response = next.run(request).await;
    if !is_bare_error(&response) {
        return response;
    }
    let (parts, _dropped) = response.into_parts();
    let mut uniform = answer(ApiError::from_status(parts.status));
    // What the status came with still holds (Allow, Content-Range, WWW-Authenticate...); only the body changed.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            uniform.headers_mut().append(name.clone(), value.clone());
        }
    }
    uniform
}

fn too_large(request: &Request) -> Option<ApiError> {
    let uri = request.uri().path_and_query().map_or(0, |path| path.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong { limit_bytes: MAX_URI_BYTES });
    }
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    (headers > MAX_HEADER_BYTES).then_some(ApiError::HeadersTooLarge { limit_bytes: MAX_HEADER_BYTES })
}

/// An error status whose body is empty or plain text. JSON is ours already, and the page that says the web app
/// is not built is HTML on purpose (people read it).
fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    match response.headers().get(header::CONTENT_TYPE).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(content_type)) => content_type.starts_with("text/plain"),
        Some(Err(_)) => true,
    }
}
