use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::{Extension, Json};
use parlance_shared::{ErrorBody, SessionId, TurnResponse, VOICE_AUDIO_FIELD, VOICE_RATE_FIELD, VOICE_SESSION_FIELD, VOICE_VOICE_FIELD};

use super::error::ApiError;
use crate::access::Caller;
use crate::audio::AudioUpload;
use crate::events::EventSink;
use crate::sessions::claim;
use crate::state::AppState;
use crate::tts::{Delivery, SpeechRate};

/// `POST /api/voice`: a recorded question as multipart form data (`audio` file, optional `session_id`, `voice` and
/// `speech_rate`).
#[utoipa::path(post, path = "/api/voice", tag = "turns",
    request_body(content = super::openapi::VoiceForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The transcript and the answer", body = TurnResponse),
        (status = 400, description = "No audio, an empty file, a speech_rate out of range or an unknown voice", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
        (status = 413, description = "Upload over the limit (--max-upload-mib), or a recording too long to transcribe", body = ErrorBody),
        (status = 415, description = "Not audio Parlance can read", body = ErrorBody),
        (status = 422, description = "The recording holds no speech (no_speech), or its audio cannot be decoded (invalid_request)", body = ErrorBody),
        (status = 429, description = "Too many turns; see Retry-After", body = ErrorBody),
        (status = 502, description = "A model provider failed", body = ErrorBody),
        (status = 503, description = "A provider is unavailable, a stage is not configured, or as many turns run and wait as may (server_busy; see Retry-After)", body = ErrorBody),
        (status = 504, description = "A model provider did not answer in time", body = ErrorBody),
    ))]
pub async fn voice(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<TurnResponse>, ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::not_a_form(
            &rejection,
            &format!("send the recording as multipart/form-data with a file field named `{VOICE_AUDIO_FIELD}`"),
        )
    })?;

    let mut audio = None;
    let mut session_id = None;
    let (mut voice, mut rate) = (None, None);
    let unreadable = |error| ApiError::upload(error, state.max_upload_bytes);
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some(VOICE_AUDIO_FIELD) => audio = Some(field.bytes().await.map_err(unreadable)?),
            Some(VOICE_SESSION_FIELD) => {
                let id = field.text().await.map_err(unreadable)?;
                let id = id.trim();
                if !id.is_empty() {
                    session_id = Some(SessionId::new(id));
                }
            }
            Some(VOICE_VOICE_FIELD) => voice = Some(field.text().await.map_err(unreadable)?),
            Some(VOICE_RATE_FIELD) => {
                let text = field.text().await.map_err(unreadable)?;
                let parsed = text.trim().parse::<f32>().map_err(|_| {
                    ApiError::InvalidRequest(format!("{VOICE_RATE_FIELD} must be a number from 0.5 to 2 (1 is the voice's own pace)"))
                })?;
                rate = Some(parsed);
            }
            // Unknown fields are skipped, so clients may send extras (e.g. the recorder's MIME type).
            _ => {}
        }
    }
    let audio = audio.ok_or_else(|| {
        ApiError::MissingAudio(format!("the form has no `{VOICE_AUDIO_FIELD}` field; send the recording as a file in it"))
    })?;
    let rate = SpeechRate::from_client(rate).map_err(ApiError::InvalidRequest)?;
    let voice = state.pipeline.choose_voice(voice.as_deref()).map_err(ApiError::InvalidRequest)?;
    let upload = AudioUpload::from_bytes(audio)?;
    let session_id = match session_id {
        Some(id) => Some(super::sessions::own_session(&state, &caller, id).await?),
        None => None,
    };
    let new = session_id.is_none();
    let turn = state.pipeline.voice_turn(session_id, &caller, &upload, Delivery { rate, voice }, &EventSink::none()).await?;
    if new {
        claim(state.sessions.as_ref(), &turn.session_id, &caller).await?;
    }
    Ok(Json(super::turn_response(turn)))
}
