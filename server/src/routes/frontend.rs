//! The built web app, from the same port as the API, so one process is the whole product.
//!
//! Cache headers follow what each file is: scripts/build-web.sh puts a content hash in the script, wasm and CSS names, so
//! those never change and may be cached for a year; the page, the service worker and the manifest keep their
//! names across builds, so browsers must check them every time, or an old page would ask for assets that no
//! longer exist and an old worker would keep serving the old app.

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use tower::ServiceBuilder;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// For content-hashed files: a year, and no revalidation at all.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For files that keep their name across builds: always ask the server (cheap: it answers 304 when unchanged).
pub const REVALIDATE: &str = "no-cache";
/// Icons keep their names but almost never change; a day is a fair trade.
pub const ICONS: &str = "public, max-age=86400";

/// Serves files from `dir`, and `index.html` for any other path so the app's own routes survive a reload.
pub fn serve(app: Router<AppState>, dir: &Path) -> Router<AppState> {
    let index = dir.join("index.html");
    if index.is_file() {
        let files =
            ServiceBuilder::new().layer(middleware::from_fn(cache_headers)).service(ServeDir::new(dir).fallback(ServeFile::new(index)));
        app.fallback_service(files)
    } else {
        tracing::warn!(dir = %dir.display(), "the web app is not built; the API works, the page explains how to build it");
        app.fallback(not_built)
    }
}

async fn cache_headers(request: Request, next: Next) -> Response {
    let policy = cache_policy(request.uri().path());
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    // The types come from the file extensions (wasm, webmanifest, js); browsers must not second-guess them.
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The Cache-Control value for a path of the built app.
pub fn cache_policy(path: &str) -> &'static str {
    let file = path.rsplit('/').next().unwrap_or_default();
    if is_content_hashed(file) {
        IMMUTABLE
    } else if path.starts_with("/icons/") {
        ICONS
    } else {
        // index.html, the service worker, the manifest, and the page served for the app's own routes.
        REVALIDATE
    }
}

/// Content-hashed names: `<name>-<hash>[_bg].<js|wasm|css>`, the hash 8 to 16 hex digits (scripts/build-web.sh
/// writes 16, the start of a SHA-256; Trunk, which built the app before, wrote a 64-bit number without leading zeros).
fn is_content_hashed(file: &str) -> bool {
    let Some((stem, extension)) = file.rsplit_once('.') else { return false };
    if !matches!(extension, "js" | "wasm" | "css") {
        return false;
    }
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-')
        .is_some_and(|(name, hash)| !name.is_empty() && (8..=16).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn not_built() -> (StatusCode, Html<&'static str>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><title>Parlance</title><h1>The Parlance web app is not built</h1>\
             <p>The API is running. Build the app with <code>scripts/run.sh</code> (or <code>scripts/build-web.sh</code>) \
             and restart the server, or point <code>PARLANCE_FRONTEND_DIR</code> at a built copy.</p>",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hashed_assets_are_immutable() {
        assert_eq!(cache_policy("/parlance-frontend-0123456789abcdef_bg.wasm"), IMMUTABLE);
        assert_eq!(cache_policy("/parlance-frontend-0123456789abcdef.js"), IMMUTABLE);
        assert_eq!(cache_policy("/main-fedcba9876543210.css"), IMMUTABLE);
        assert_eq!(cache_policy("/parlance-frontend-3eaaaaa6de4a38d_bg.wasm"), IMMUTABLE, "a hash with a leading zero dropped");
    }

    #[test]
    fn files_that_keep_their_name_are_revalidated() {
        for path in [
            "/",
            "/index.html",
            "/sw.js",
            "/manifest.webmanifest",
            "/some/app/route",
            "/main-notahash.css",
            "/x-0123456789abcdef.png",
            "/short-abc.js",
        ] {
            assert_eq!(cache_policy(path), REVALIDATE, "{path}");
        }
        assert_eq!(cache_policy("/icons/icon-192.png"), ICONS);
    }
}
