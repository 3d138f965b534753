//! The HTTP surface: `/health`, the JSON API under `/api`, and the web app for every other path. The edge of
//! the server: handlers read requests, call the pipeline or a store, and answer in the wire's shapes; what a
//! failure looks like to the user is decided in [`error`].

mod bare;
mod chat;
mod docs;
mod error;
mod extract;
mod frontend;
mod guard;
mod health;
mod knowledge;
mod metrics;
mod openapi;
mod rate_limit;
mod sessions;
mod v1;
mod voice;
mod voices;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use parlance_shared::{ServerEvent, TurnResponse};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use self::error::{ApiError, SHORT_ECHO, echo, speech_error_body};
use crate::config::Settings;
use crate::pipeline::Turn;
use crate::state::AppState;

/// JSON requests are questions and ids: far below this.
pub(crate) const JSON_BODY_LIMIT: usize = 256 * 1024;
/// Room for the multipart framing and the session id around the audio file.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

pub fn router(state: AppState, settings: &Settings) -> Router {
    let upload_limit = DefaultBodyLimit::max(settings.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD));
    let mut chat_route = post(chat::chat);
    let mut completions_route = post(v1::chat_completions);
    // The limit goes outside the body limit, so a client over budget is refused before its upload is read.
    let mut voice_route = post(voice::voice).layer(upload_limit);
    if let Some(limit) = rate_limit::turn_limit(settings.turns_per_minute, &settings.access.proxies) {
        chat_route = chat_route.layer(limit.clone());
        completions_route = completions_route.layer(limit.clone());
        voice_route = voice_route.layer(limit);
    }
    let api = Router::new()
        .route("/chat", chat_route)
        .route("/voice", voice_route)
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::history).delete(sessions::delete).patch(sessions::rename))
        .route("/sessions/{id}/archive", get(sessions::archive))
        .route("/sessions/{id}/archive/{turn}/{side}", get(sessions::archived_audio))
        .route("/account", get(sessions::account))
        .route("/voices", get(voices::list))
        .route("/ws", get(ws::socket))
        .route(
            "/knowledge",
            post(knowledge::add).layer(DefaultBodyLimit::max(knowledge::KNOWLEDGE_UPLOAD_LIMIT + MULTIPART_OVERHEAD)).get(knowledge::list),
        )
        .route("/knowledge/search", get(knowledge::search))
        .route("/knowledge/{id}", get(knowledge::read).delete(knowledge::delete))
        .fallback(api_not_found);

    let api = api
        .route("/openapi.json", get(openapi::document))
        .route("/schema/socket.json", get(openapi::socket_schema))
        .merge(docs::routes(&settings.frontend_dir));
    let openai = Router::new()
        .route("/models", get(v1::models))
        .route("/chat/completions", completions_route)
        .route("/audio/transcriptions", post(v1::transcriptions).layer(upload_limit))
        .route("/audio/speech", post(v1::speech))
        .route("/embeddings", post(v1::embeddings))
        .fallback(v1::not_found);
    let app =
        Router::new().route("/health", get(health::health)).route("/metrics", get(metrics::metrics)).nest("/api", api).nest("/v1", openai);
    frontend::serve(app, &settings.frontend_dir)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // Inside the guard, so what it answers carries the security headers too.
        .layer(axum::middleware::from_fn(bare::with_error_bodies))
        // Inside CORS, so a listed site's preflight (which carries no token) is answered first.
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(cors(&settings.cors_origins))
        // Outside everything that answers with an error body, so each one is counted.
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_errors))
        .layer(request_log())
        .with_state(state)
}

/// One INFO line per request when its response starts (and a warning for a server error), in a span naming
/// its method and path, never its query string or body; a turn the request runs adds its id to the span.
fn request_log() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&axum::http::Request<axum::body::Body>) -> tracing::Span + Clone,
    tower_http::trace::DefaultOnRequest,
    tower_http::trace::DefaultOnResponse,
> {
    TraceLayer::new_for_http()
        .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %echo(request.uri().path(), SHORT_ECHO),
                turn_id = tracing::field::Empty,
            )
        })
        .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
}

/// A finished turn as `POST /api/chat` and `POST /api/voice` answer it.
fn turn_response(turn: Turn) -> TurnResponse {
    TurnResponse {
        speech_error: turn.speech_error.as_ref().map(speech_error_body),
        session_id: turn.session_id,
        transcript: turn.transcript,
        answer: turn.answer,
        audio: turn.audio,
        sources: turn.sources,
        tool_calls: turn.tool_calls,
        timings: turn.timings,
    }
}

/// A finished turn as the socket's last event of it.
fn done_event(turn: Turn) -> ServerEvent {
    ServerEvent::Done {
        speech_error: turn.speech_error.as_ref().map(speech_error_body),
        session_id: turn.session_id,
        answer: turn.answer,
        sources: turn.sources,
        timings: turn.timings,
    }
}

/// The path as the client wrote it (the nested router sees it without `/api`).
async fn api_not_found(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> ApiError {
    ApiError::NotFound(format!("there is no API endpoint at {}", echo(uri.path(), SHORT_ECHO)))
}

/// Cross-origin calls only from the listed origins; with none listed, browsers allow only the app itself.
fn cors(origins: &[String]) -> CorsLayer {
    let origins = origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
}
