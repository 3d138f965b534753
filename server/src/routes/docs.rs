//! `GET /api/docs`: the API reference in the browser, served by Parlance itself. The page is Swagger UI,
//! bundled from npm by scripts/build-web.sh into the web app's folder (`api-docs/`), so it needs no CDN and
//! runs under the same Content-Security-Policy as the app: its script and styles are files, none inline.
//! Like the document it shows, it is the same on every server, so it needs no token.

use std::path::Path;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Html;
use tower_http::services::ServeDir;

use crate::state::AppState;

/// Where scripts/build-web.sh puts the page inside the web app's folder.
pub const DOCS_DIR: &str = "api-docs";

/// The page (`/api/docs`) and its files (`/api/docs/...`), or a page saying how to build them.
pub fn routes(frontend_dir: &Path) -> Router<AppState> {
    let dir = frontend_dir.join(DOCS_DIR);
    if dir.join("index.html").is_file() {
        Router::new().nest_service("/docs", ServeDir::new(dir))
    } else {
        Router::new().route("/docs", axum::routing::get(page)).route("/docs/{*file}", axum::routing::get(not_built))
    }
}

/// Documented here; served by the file service when the page is built.
#[utoipa::path(get, path = "/api/docs", tag = "docs",
    responses((status = 200, description = "The API reference page (Swagger UI over `/api/openapi.json`)", content_type = "text/html", body = String),
        (status = 404, description = "The page is not built (scripts/build-web.sh builds it)", content_type = "text/html", body = String)))]
pub async fn page() -> (StatusCode, Html<&'static str>) {
    not_built().await
}

async fn not_built() -> (StatusCode, Html<&'static str>) {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><title>Parlance API</title><h1>The API reference page is not built</h1>\
             <p>The document itself is at <a href=\"/api/openapi.json\">/api/openapi.json</a>. Build the page with \
             <code>scripts/build-web.sh</code> and restart the server.</p>",
        ),
    )
}
