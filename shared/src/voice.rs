use serde::{Deserialize, Serialize};

/// `GET /api/voices`: the voices answers can be spoken in. A turn names one in `voice` (its `id`); without it
/// the default speaks. Empty when the server speaks no answers at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoiceList {
    pub voices: Vec<VoiceInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoiceInfo {
    /// What a turn sends as `voice`.
    pub id: String,
    /// For people: the voice, its engine and accent.
    pub label: String,
    /// Speaks when a turn names no voice; exactly one voice of a list is the default.
    pub default: bool,
}

/// Longest `voice` a client may send; longer is refused without looking it up.
pub const MAX_VOICE_ID_CHARS: usize = 100;
