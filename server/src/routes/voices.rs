use axum::Json;
use axum::extract::State;
use parlance_shared::{ErrorBody, VoiceList};

use crate::state::AppState;

/// `GET /api/voices`: the voices a turn may ask for (`voice` in `POST /api/chat` and the socket's `start` and
/// `text`); the default speaks when it names none.
#[utoipa::path(get, path = "/api/voices", tag = "turns", operation_id = "list_voices",
    responses(
        (status = 200, description = "The voices, the default among them; none when the server speaks no answers", body = VoiceList),
        (status = 401, description = "No token, or a wrong one", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<VoiceList> {
    Json(VoiceList { voices: state.pipeline.voices() })
}
