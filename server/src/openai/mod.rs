//! The plumbing every OpenAI-compatible backend shares: one HTTP client per endpoint, authentication, time
//! limits and retries, and turning transport failures and error statuses into [`ProviderError`]s that say what
//! happened without repeating anything secret.
//!
//! Every call has a deadline (`--provider-timeout-secs`) and connections one of their own
//! (`--provider-connect-timeout-secs`). Calls that can be repeated without harm (transcription, speech,
//! embeddings: [`OpenAiClient::fetch`]) are tried again a few times when the provider cannot be reached or says
//! it is overloaded; a streamed chat completion ([`OpenAiClient::open_stream`]) only when it never reached the
//! provider, since a started answer cannot be taken back.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::backend::BackendInfo;

/// Where and how to reach one OpenAI-compatible endpoint (`crate::config` builds it from the flags).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub base_url: Url,
    pub api_key: Option<SecretString>,
    pub model: String,
    /// The longest one call may take: all of an idempotent call (retries included), or a stream until its
    /// answer starts and then between two pieces of it.
    pub timeout: Duration,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// How many times an idempotent call is tried again after a failure worth retrying.
    pub retries: u32,
}

/// A provider URL as it may be shown to users and logs: no credentials, no query string.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// How a call to a model provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to {endpoint}")]
    Unreachable { endpoint: String },
    #[error("{endpoint} did not answer in time")]
    TimedOut { endpoint: String },
    #[error("{endpoint} answered {status}")]
    Status {
        endpoint: String,
        status: StatusCode,
        /// The provider's own words, for the server log only: they may echo parts of a key.
        detail: String,
    },
    #[error("{endpoint} sent an answer that could not be read: {reason}")]
    InvalidResponse { endpoint: String, reason: String },
}

impl ProviderError {
    /// Whether trying again later may succeed (the provider is down, overloaded or slow).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::TimedOut { .. } => true,
            Self::Status { status, .. } => {
                matches!(
                    *status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                )
            }
            Self::InvalidResponse { .. } => false,
        }
    }

    /// The provider was reachable but did not answer within the time allowed.
    pub fn timed_out(&self) -> bool {
        matches!(self, Self::TimedOut { .. })
    }

    /// Whether repeating the same request soon may succeed: the provider could not be reached, or said it is
    /// overloaded. A timeout is not retried: the deadline covers the whole call.
    fn worth_retrying(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => matches!(
                *status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
            ),
            Self::TimedOut { .. } | Self::InvalidResponse { .. } => false,
        }
    }

    /// A sentence for the user, naming the endpoint but never a key or the provider's raw message.
    pub fn user_message(&self) -> String {
        match self {
            Self::Unreachable { endpoint } => format!("could not connect to {endpoint}; check that the provider is running"),
            Self::TimedOut { endpoint } => format!("{endpoint} did not answer in time; try again"),
            Self::Status { endpoint, status, .. } if matches!(*status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                format!("{endpoint} refused the request ({status}); check the API key set on the server")
            }
            Self::Status { endpoint, status, .. } => format!("{endpoint} answered {status}"),
            Self::InvalidResponse { endpoint, .. } => format!("{endpoint} sent an answer that could not be read"),
        }
    }
}

/// A whole answer of an idempotent call.
#[derive(Debug)]
pub struct Fetched {
    /// The `Content-Type` the provider declared, if any.
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Fetched {
    pub fn json<T: DeserializeOwned>(&self, endpoint: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| ProviderError::InvalidResponse {
            endpoint: endpoint.to_owned(),
            reason: format!("expected JSON, got {} ({e})", self.content_type.as_deref().unwrap_or("no content type")),
        })
    }
}

/// One try that failed, and whether the provider can have seen the request at all.
/// Which failures a call may be tried again after.
#[derive(Clone, Copy)]
enum Retry {
    /// Any failure worth retrying: the call is idempotent.
    WhenWorthIt,
    /// Only a connection that could not be opened: the provider never saw the request.
    OnlyUnsent,
}

struct Failed {
    error: ProviderError,
    /// The connection could not be opened: nothing was sent.
    not_sent: bool,
}

/// The pause before trying again: 250 ms, then 500 ms, 1 s, at most 2 s.
fn backoff(tries: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << tries.saturating_sub(1).min(3))).min(Duration::from_secs(2))
}

/// A client for one OpenAI-compatible endpoint, as configured for one stage.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    config: ProviderConfig,
}

impl OpenAiClient {
    pub fn new(config: ProviderConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // Per read rather than in total: a streamed answer may take long but must keep moving. The calls
            // below put a deadline on the whole of what they wait for.
            .read_timeout(config.timeout)
            .user_agent(concat!("parlance/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, config })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    pub fn info(&self) -> BackendInfo {
        BackendInfo { kind: "openai", model: self.config.model.clone(), location: display_url(&self.config.base_url), load_ms: None }
    }

    /// The full URL of an endpoint below the base, e.g. `chat/completions`.
    pub fn url(&self, path: &str) -> Url {
        // The base always ends with '/' (see config), so joining a relative path appends to it.
        self.config.base_url.join(path).unwrap_or_else(|_| self.config.base_url.clone())
    }

    /// An endpoint as it may appear in messages: without credentials.
    pub fn shown(&self, path: &str) -> String {
        display_url(&self.url(path))
    }

    /// Whether the provider answers at all, asked within `within`: `GET models`, which every OpenAI-compatible
    /// server has and which costs no model time. Any answer counts, even 404 from a server without that list,
    /// except a refused key (401, 403), an overloaded provider (429) and a server error.
    pub async fn probe(&self, within: Duration) -> Result<(), ProviderError> {
        let endpoint = self.shown("models");
        let mut request = self.http.get(self.url("models")).timeout(within);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS);
                if refused || status.is_server_error() {
                    Err(ProviderError::Status { endpoint, status, detail: String::new() })
                } else {
                    Ok(())
                }
            }
            Err(error) if error.is_timeout() => Err(ProviderError::TimedOut { endpoint }),
            Err(_) => Err(ProviderError::Unreachable { endpoint }),
        }
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        let request = self.http.post(self.url(path));
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    /// An idempotent call: the request `build` makes (again for each try), and its whole answer, within the
    /// deadline. A failure worth retrying (see [`ProviderError::worth_retrying`]) is tried again up to
    /// `retries` times, after a short pause, while the deadline allows.
    pub async fn fetch(
        &self,
        path: &str,
        build: impl Fn(RequestBuilder) -> Result<RequestBuilder, reqwest::Error>,
    ) -> Result<Fetched, ProviderError> {
        let build = &build;
        self.with_retries(path, Retry::WhenWorthIt, move |endpoint| async move {
            let request = build(self.post(path)).map_err(|e| Failed { error: transport_error(&endpoint, &e), not_sent: true })?;
            let response = send_once(&endpoint, request).await?;
            let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response.bytes().await.map_err(|e| Failed { error: transport_error(&endpoint, &e), not_sent: false })?;
            Ok(Fetched { content_type, body })
        })
        .await
    }

    /// A call that must not be repeated once the provider has it (a streamed chat completion): tried again
    /// only when its connection could not be opened. Its answer must start within the deadline; after that,
    /// the stream may pause at most as long between two pieces (the client's read timeout).
    pub async fn open_stream(
        &self,
        path: &str,
        build: impl Fn(RequestBuilder) -> Result<RequestBuilder, reqwest::Error>,
    ) -> Result<Response, ProviderError> {
        let build = &build;
        self.with_retries(path, Retry::OnlyUnsent, move |endpoint| async move {
            let request = build(self.post(path)).map_err(|e| Failed { error: transport_error(&endpoint, &e), not_sent: true })?;
            send_once(&endpoint, request).await
        })
        .await
    }

    /// Runs `attempt` (given the endpoint as shown in errors) until it succeeds, the deadline passes, or
    /// `retry` says a failure must stand.
    async fn with_retries<T, Attempt>(&self, path: &str, retry: Retry, attempt: impl Fn(String) -> Attempt) -> Result<T, ProviderError>
    where
        Attempt: Future<Output = Result<T, Failed>>,
    {
        let endpoint = self.shown(path);
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            let failed = match tokio::time::timeout_at(deadline, attempt(endpoint.clone())).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(failed)) => failed,
                Err(_) => return Err(self.timed_out(endpoint)),
            };
            let repeatable = match retry {
                Retry::WhenWorthIt => failed.error.worth_retrying(),
                Retry::OnlyUnsent => failed.not_sent,
            };
            let pause = backoff(tries);
            if tries > self.config.retries || !repeatable || tokio::time::Instant::now() + pause >= deadline {
                return Err(failed.error);
            }
            tracing::warn!(%endpoint, tries, error = %failed.error, "provider call failed; trying again");
            tokio::time::sleep(pause).await;
        }
    }

    fn timed_out(&self, endpoint: String) -> ProviderError {
        tracing::warn!(%endpoint, timeout_secs = self.config.timeout.as_secs_f64(), "provider call timed out");
        ProviderError::TimedOut { endpoint }
    }
}

/// Sends a request once; fails on transport errors and non-success statuses.
async fn send_once(endpoint: &str, request: RequestBuilder) -> Result<Response, Failed> {
    let response =
        request.send().await.map_err(|error| Failed { error: transport_error(endpoint, &error), not_sent: error.is_connect() })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let detail: String = body.chars().take(500).collect();
    tracing::warn!(%endpoint, %status, %detail, "provider returned an error");
    Err(Failed { error: ProviderError::Status { endpoint: endpoint.to_owned(), status, detail }, not_sent: false })
}

/// Classifies a reqwest failure without its Display text, which can include the URL's credentials.
pub fn transport_error(endpoint: &str, error: &reqwest::Error) -> ProviderError {
    let endpoint = endpoint.to_owned();
    // A connection that timed out is a provider that could not be reached, not one that was slow to answer.
    if error.is_connect() {
        ProviderError::Unreachable { endpoint }
    } else if error.is_timeout() {
        ProviderError::TimedOut { endpoint }
    } else if error.is_decode() || error.is_body() {
        ProviderError::InvalidResponse { endpoint, reason: "the response body broke off".into() }
    } else {
        ProviderError::Unreachable { endpoint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_never_carry_credentials() {
        let url = Url::parse("https://user:secret@llm.example/v1/?key=abc").unwrap();
        let shown = display_url(&url);
        assert_eq!(shown, "https://llm.example/v1/");
    }

    #[test]
    fn retries_pause_a_little_longer_each_time_but_never_long() {
        let pauses: Vec<u64> = (1..=6).map(|tries| u64::try_from(backoff(tries).as_millis()).unwrap()).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 2000, 2000]);
    }

    #[test]
    fn only_an_unreachable_or_overloaded_provider_is_worth_retrying() {
        let endpoint = || "http://127.0.0.1:1/v1/embeddings".to_owned();
        let status = |status| ProviderError::Status { endpoint: endpoint(), status, detail: String::new() };
        assert!(ProviderError::Unreachable { endpoint: endpoint() }.worth_retrying());
        assert!(status(StatusCode::SERVICE_UNAVAILABLE).worth_retrying());
        assert!(status(StatusCode::TOO_MANY_REQUESTS).worth_retrying());
        assert!(!status(StatusCode::BAD_REQUEST).worth_retrying());
        assert!(!status(StatusCode::INTERNAL_SERVER_ERROR).worth_retrying(), "a bug on the provider's side stays a bug");
        assert!(!ProviderError::TimedOut { endpoint: endpoint() }.worth_retrying(), "the deadline covers the whole call");
    }
}
