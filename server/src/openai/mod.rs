//! The plumbing every OpenAI-compatible backend shares: one HTTP client per endpoint, authentication, and
//! turning transport failures and error statuses into [`ProviderError`]s that say what happened without
//! repeating anything secret.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::BackendInfo;

/// Where and how to reach one OpenAI-compatible endpoint (`crate::config` builds it from the flags).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub base_url: Url,
    pub api_key: Option<SecretString>,
    pub model: String,
    pub timeout: Duration,
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

/// A client for one OpenAI-compatible endpoint, as configured for one stage.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    config: ProviderConfig,
}

impl OpenAiClient {
    pub fn new(config: ProviderConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            // Per read rather than in total: a streamed answer may take long but must keep moving.
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

    pub fn post(&self, path: &str) -> RequestBuilder {
        let request = self.http.post(self.url(path));
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    /// Sends a request and fails on transport errors and non-success statuses.
    pub async fn send(&self, path: &str, request: RequestBuilder) -> Result<Response, ProviderError> {
        let endpoint = self.shown(path);
        let response = request.send().await.map_err(|error| transport_error(&endpoint, &error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.chars().take(500).collect();
        tracing::warn!(%endpoint, %status, %detail, "provider returned an error");
        Err(ProviderError::Status { endpoint, status, detail })
    }

    pub async fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ProviderError> {
        let response = self.send(path, self.post(path).json(body)).await?;
        read_json(&self.shown(path), response).await
    }
}

/// Classifies a reqwest failure without its Display text, which can include the URL's credentials.
pub fn transport_error(endpoint: &str, error: &reqwest::Error) -> ProviderError {
    let endpoint = endpoint.to_owned();
    if error.is_timeout() {
        ProviderError::TimedOut { endpoint }
    } else if error.is_decode() || error.is_body() {
        ProviderError::InvalidResponse { endpoint, reason: "the response body broke off".into() }
    } else {
        ProviderError::Unreachable { endpoint }
    }
}

pub async fn read_json<T: DeserializeOwned>(endpoint: &str, response: Response) -> Result<T, ProviderError> {
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = response.bytes().await.map_err(|e| transport_error(endpoint, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::InvalidResponse {
        endpoint: endpoint.to_owned(),
        reason: format!("expected JSON, got {} ({e})", if content_type.is_empty() { "no content type" } else { &content_type }),
    })
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
}
