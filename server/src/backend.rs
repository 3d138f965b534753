//! What every model backend tells about itself, for `/health` and the logs.

/// A backend's self-description. Never holds secrets: URLs are shown without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `openai` for any OpenAI-compatible API, `local` for models in this process.
    pub kind: &'static str,
    pub model: String,
    /// The provider's base URL or the model file.
    pub location: String,
    /// How long loading took at start-up, for models in this process.
    pub load_ms: Option<u64>,
}
