//! The built web app, from the same port as the API, so one process is the whole product.

use std::path::Path;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Html;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// Serves files from `dir`, and `index.html` for any other path so the app's own routes survive a reload.
pub fn serve(app: Router<AppState>, dir: &Path) -> Router<AppState> {
    let index = dir.join("index.html");
    if index.is_file() {
        app.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
    } else {
        tracing::warn!(dir = %dir.display(), "the web app is not built; the API works, the page explains how to build it");
        app.fallback(not_built)
    }
}

async fn not_built() -> (StatusCode, Html<&'static str>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><title>Parlance</title><h1>The Parlance web app is not built</h1>\
             <p>The API is running. Build the app with <code>scripts/run.sh</code> (or <code>trunk build --release</code>) \
             and restart the server, or point <code>PARLANCE_FRONTEND_DIR</code> at a built copy.</p>",
        ),
    )
}
