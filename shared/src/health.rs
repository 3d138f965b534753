use serde::{Deserialize, Serialize};

/// `GET /health`: whether the server can answer, and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: HealthStatus,
    /// The server's version (its crate version).
    pub version: String,
    /// The protocol version the server speaks (`parlance_shared::PROTOCOL_VERSION`).
    pub protocol: u32,
    /// One entry per model stage, in pipeline order.
    pub stages: Vec<StageHealth>,
}

/// `GET /health` for a caller without the server's token: that it runs, and nothing about how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthSummary {
    pub status: HealthStatus,
    /// The protocol version the server speaks (`parlance_shared::PROTOCOL_VERSION`), so a client can tell before it
    /// signs in whether it can talk to this server.
    pub protocol: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every stage a spoken turn needs is ready.
    Ok,
    /// The server runs, but some stage is not ready: some turns will fail.
    Degraded,
}

/// The model stages of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Stt,
    Llm,
    Tts,
    Embeddings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageHealth {
    pub stage: Stage,
    /// Which implementation serves the stage, e.g. `openai` (any OpenAI-compatible server), `local`, `none`.
    pub backend: String,
    /// The model name or file the stage uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the stage runs: a provider's base URL (never its key) or a local file path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub ready: bool,
    /// How long loading the model took at start-up, for embedded models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u64>,
    /// For people: why the stage is not ready, or other notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
