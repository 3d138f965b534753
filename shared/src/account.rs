use serde::{Deserialize, Serialize};

/// `GET /api/account`: who the request's token names. The web app asks on start-up, so a server that needs a
/// token shows its sign-in screen before the first question instead of failing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// The user's name; `None` on a server that needs no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether this user may add and delete the shared notes.
    pub admin: bool,
}
