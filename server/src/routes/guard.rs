//! Every request passes here first: is it for this server (its `Host`), may its page change anything (its
//! `Origin`), and who sent it (its token). Every response leaves with the security headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, OpenAiApiError, SHORT_ECHO, echo};
use crate::access::{self, Caller};
use crate::state::AppState;

/// What a request without the token is told; the same whatever was (or was not) sent.
const SIGN_IN: &str =
    "this Parlance server needs a sign-in token: open the sign-in link the server printed, or send `Authorization: Bearer <token>`";

pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let host = request_host(&request);
    let response = match check(&state, &mut request, host.as_deref()) {
        Ok(()) => next.run(request).await,
        // OpenAI's clients read only their own error shape.
        Err(error) if is_openai(request.uri().path()) => OpenAiApiError(error).into_response(),
        Err(error) => error.into_response(),
    };
    with_security_headers(response, host.as_deref())
}

fn check(state: &AppState, request: &mut Request, host: Option<&str>) -> Result<(), ApiError> {
    let policy = &state.access.hosts;
    if let Some(host) = host
        && !policy.host_allowed(host)
    {
        tracing::info!(host = %echo(host, SHORT_ECHO), "refused a request for a host name this server does not answer to");
        return Err(ApiError::Forbidden(format!(
            "this server does not answer to the name {:?}; if it is yours, add it to PARLANCE_ALLOWED_HOSTS (--allowed-hosts)",
            echo(host, SHORT_ECHO)
        )));
    }
    if changes_state(request.method()) && !same_site(request.headers(), host, policy) {
        tracing::info!(method = %request.method(), path = request.uri().path(), "refused a request from another site's page");
        return Err(ApiError::Forbidden(
            "another site's page may not change anything here; to allow a site, add its origin to PARLANCE_CORS_ORIGINS".into(),
        ));
    }
    let caller = match &state.access.users {
        None => Some(Caller::Anyone),
        Some(users) => presented_token(request).and_then(|token| users.authenticate(token)).cloned().map(Caller::User),
    };
    match caller {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            Ok(())
        }
        None if needs_token(request.uri().path()) => Err(ApiError::Unauthorized(SIGN_IN)),
        // The app's own files and /health answer anyone; /health then tells nothing about the setup.
        None => Ok(()),
    }
}

fn needs_token(path: &str) -> bool {
    // The API's description is the same on every server and says nothing about this one.
    let public = path == "/api/openapi.json" || path == "/api/docs" || path.starts_with("/api/docs/") || path.starts_with("/api/schema/");
    !public
        && (path == "/api"
            || path.starts_with("/api/")
            || path == "/v1"
            || path.starts_with("/v1/")
            || path == "/metrics"
            || path.starts_with("/metrics/"))
}

fn is_openai(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Browsers send `Origin` with every request that can change something; its absence means a client that is
/// not a browser page (curl, the tests, another server), which cross-site rules are not about. Browsers old
/// enough to omit it still send `Sec-Fetch-Site`.
pub fn same_site(headers: &HeaderMap, host: Option<&str>, policy: &access::HostPolicy) -> bool {
    match headers.get(header::ORIGIN) {
        Some(origin) => origin.to_str().is_ok_and(|origin| policy.origin_allowed(origin, host)),
        None => headers
            .get(HeaderName::from_static("sec-fetch-site"))
            .and_then(|value| value.to_str().ok())
            .is_none_or(|site| matches!(site, "same-origin" | "none")),
    }
}

/// The host a request is for: `Host` (HTTP/1.1), else the URI's authority (HTTP/2).
pub fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|authority| authority.as_str().to_owned()))
}

/// The token of a request: `Authorization: Bearer`, or on the socket, the subprotocol browsers can set.
fn presented_token(request: &Request) -> Option<&str> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        return value.to_str().ok().and_then(access::bearer);
    }
    if request.uri().path() == "/api/ws" {
        return request.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).and_then(access::socket_protocol_token);
    }
    None
}

/// The page may run only its own script and wasm, connect only to its own server (and its socket), and be
/// framed by nobody; no response is sniffed into another type; no address leaves in a Referer.
fn with_security_headers(mut response: Response, host: Option<&str>) -> Response {
    // The socket is named by its host: `'self'` does not cover ws:// in every browser Parlance supports.
    let sockets = host.filter(|host| host.bytes().all(|b| b.is_ascii_graphic())).map(|host| format!(" ws://{host} wss://{host}"));
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob: data:; connect-src 'self'{}; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        sockets.unwrap_or_default()
    );
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_and_metrics_need_the_token() {
        for path in ["/api", "/api/chat", "/api/ws", "/api/docsx", "/api/schemax", "/metrics", "/v1/models", "/v1/chat/completions"] {
            assert!(needs_token(path), "{path}");
        }
        for path in [
            "/",
            "/health",
            "/index.html",
            "/apix",
            "/v1x",
            "/sw.js",
            "/api/openapi.json",
            "/api/docs",
            "/api/docs/docs.js",
            "/api/schema/socket.json",
        ] {
            assert!(!needs_token(path), "{path}");
        }
    }

    #[test]
    fn requests_without_origin_count_by_fetch_metadata() {
        let policy = access::HostPolicy::default();
        let mut headers = HeaderMap::new();
        assert!(same_site(&headers, Some("127.0.0.1:8080"), &policy), "not a browser");
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_site(&headers, Some("127.0.0.1:8080"), &policy));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_site(&headers, Some("127.0.0.1:8080"), &policy));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_site(&headers, Some("127.0.0.1:8080"), &policy), "Origin decides when present");
    }
}
