use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use parlance_shared::{Health, HealthStatus, HealthSummary, PROTOCOL_VERSION, Stage, StageHealth};

use crate::access::Caller;
use crate::backend::BackendInfo;
use crate::state::AppState;

/// `GET /health`: which backend serves each stage, whether each answers now, and whether a spoken turn can
/// work. A stage on a provider is asked (briefly, and at most every few seconds: see `crate::backend`); a model
/// in this process is ready once loaded. Always 200 while the server runs: `status` says `degraded` when a
/// stage a turn needs is not ready (restarting the server would not bring a provider back). Without the token
/// (on a server that needs one) only the status: models, paths and URLs say too much about a setup; on a server
/// without a token, a local model's file is named without its folder.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "The whole `Health` with the token (or on a server without one); only a `HealthSummary` without it", body = Health)))]
pub async fn health(State(state): State<AppState>, caller: Option<Extension<Caller>>) -> Response {
    let unreachable = state.unreachable.get(|| unreachable(&state)).await;
    let health = details(&state, &unreachable);
    match caller {
        Some(Extension(Caller::User(_))) => Json(health).into_response(),
        Some(Extension(Caller::Anyone)) => Json(without_folders(health)).into_response(),
        None => Json(HealthSummary { status: health.status, protocol: health.protocol }).into_response(),
    }
}

/// The stages whose provider does not answer, with why, for people.
async fn unreachable(state: &AppState) -> Vec<(Stage, String)> {
    let embeddings = async {
        match &state.embedder {
            Some(embedder) => embedder.reachable().await,
            None => Ok(()),
        }
    };
    let (turn, embeddings) = tokio::join!(state.pipeline.reachable(), embeddings);
    turn.into_iter()
        .chain([(Stage::Embeddings, embeddings)])
        .filter_map(|(stage, result)| {
            let error = result.err()?;
            tracing::warn!(?stage, %error, "a stage's provider does not answer");
            Some((stage, format!("the provider does not answer: {}", error.user_message())))
        })
        .collect()
}

fn details(state: &AppState, unreachable: &[(Stage, String)]) -> Health {
    let turn_stages = state.pipeline.stages().into_iter();
    let embeddings = (Stage::Embeddings, state.embedder.as_ref().map(|e| e.info()));
    let stages: Vec<StageHealth> = turn_stages
        .chain([embeddings])
        .map(|(name, info)| {
            let why = unreachable.iter().find(|(stage, _)| *stage == name).map(|(_, why)| why.clone());
            stage(name, info, why)
        })
        .collect();
    let needed_for_a_turn = [Stage::Stt, Stage::Llm, Stage::Tts];
    let all_ready = stages.iter().filter(|s| needed_for_a_turn.contains(&s.stage)).all(|s| s.ready);
    Health {
        status: if all_ready { HealthStatus::Ok } else { HealthStatus::Degraded },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        stages,
    }
}

fn stage(stage: Stage, info: Option<BackendInfo>, unreachable: Option<String>) -> StageHealth {
    match info {
        Some(info) => StageHealth {
            stage,
            backend: info.kind.to_owned(),
            model: Some(info.model),
            location: Some(info.location),
            ready: unreachable.is_none(),
            load_ms: info.load_ms,
            detail: unreachable,
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

/// A local model's file without the folders it is in (which name users and the machine's layout).
fn without_folders(mut health: Health) -> Health {
    for stage in &mut health.stages {
        if stage.backend == "local"
            && let Some(location) = &mut stage.location
            && let Some(name) = std::path::Path::new(location.as_str()).file_name()
        {
            *location = name.to_string_lossy().into_owned();
        }
    }
    health
}
