use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use parlance_shared::{Health, HealthStatus, HealthSummary, Stage, StageHealth};

use crate::access::Caller;
use crate::backend::BackendInfo;
use crate::state::AppState;

/// `GET /health`: which backend serves each stage, and whether a spoken turn can work. Without the token (on
/// a server that needs one) only whether it runs: models, paths and URLs say too much about a setup.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "The whole `Health` with the token (or on a server without one); only a `HealthSummary` without it", body = Health)))]
pub async fn health(State(state): State<AppState>, caller: Option<Extension<Caller>>) -> Response {
    let health = details(&state);
    match caller {
        Some(_) => Json(health).into_response(),
        None => Json(HealthSummary { status: health.status }).into_response(),
    }
}

fn details(state: &AppState) -> Health {
    let turn_stages = state.pipeline.stages().into_iter();
    let embeddings = (Stage::Embeddings, state.embedder.as_ref().map(|e| e.info()));
    let stages: Vec<StageHealth> = turn_stages.chain([embeddings]).map(|(name, info)| stage(name, info)).collect();
    let needed_for_a_turn = [Stage::Stt, Stage::Llm, Stage::Tts];
    let all_ready = stages.iter().filter(|s| needed_for_a_turn.contains(&s.stage)).all(|s| s.ready);
    Health {
        status: if all_ready { HealthStatus::Ok } else { HealthStatus::Degraded },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        stages,
    }
}

fn stage(stage: Stage, info: Option<BackendInfo>) -> StageHealth {
    match info {
        Some(info) => StageHealth {
            stage,
            backend: info.kind.to_owned(),
            model: Some(info.model),
            location: Some(info.location),
            ready: true,
            load_ms: info.load_ms,
            detail: None,
        },
        None => StageHealth {
            stage,
            backend: "none".to_owned(),
            model: None,
            location: None,
            ready: false,
            load_ms: None,
            detail: Some(super::error::ApiError::NotConfigured(stage).to_string()),
        },
    }
}
