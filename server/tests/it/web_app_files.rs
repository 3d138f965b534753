//! The built web app is served with the right types and cache headers: hashed assets cached for good, the
//! page, the service worker and the manifest revalidated, the app's own routes answered with the page, and
//! the API never shadowed by it. Requests go through the router with `oneshot`, over a directory laid out as
//! `scripts/build-web.sh` leaves it.

use crate::support;

use std::fs;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use support::{app, settings};
use tower::ServiceExt;

const INDEX: &str =
    "<!doctype html><title>Parlance</title><script type=\"module\">import init from '/parlance-frontend-0123456789abcdef.js';</script>";

struct Served {
    status: StatusCode,
    content_type: String,
    cache_control: String,
    nosniff: bool,
    body: Vec<u8>,
}

async fn get(app: &axum::Router, path: &str) -> Served {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.expect("router never fails");
    let header_text = |name| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, content_type, cache_control) = (response.status(), header_text(header::CONTENT_TYPE), header_text(header::CACHE_CONTROL));
    let nosniff = header_text(header::X_CONTENT_TYPE_OPTIONS) == "nosniff";
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Served { status, content_type, cache_control, nosniff, body }
}

fn built_app_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, bytes: &[u8]| {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    };
    write("index.html", INDEX.as_bytes());
    write("parlance-frontend-0123456789abcdef.js", b"export default function init() {}");
    write("parlance-frontend-0123456789abcdef_bg.wasm", b"\0asm\x01\0\0\0");
    write("main-fedcba9876543210.css", b"body{}");
    write("sw.js", b"self.addEventListener('fetch', () => {});");
    write("manifest.webmanifest", br#"{"name":"Parlance"}"#);
    write("icons/icon-192.png", b"\x89PNG\r\n\x1a\n");
    write("icons/icon.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    dir
}

fn app_serving(dir: &tempfile::TempDir) -> axum::Router {
    app(&settings(&["--frontend-dir", dir.path().to_str().unwrap()]))
}

#[tokio::test]
async fn hashed_assets_are_immutable_with_their_real_types() {
    let dir = built_app_dir();
    let app = app_serving(&dir);
    for (path, mime) in [
        ("/parlance-frontend-0123456789abcdef_bg.wasm", "application/wasm"),
        ("/parlance-frontend-0123456789abcdef.js", "javascript"),
        ("/main-fedcba9876543210.css", "text/css"),
    ] {
        let served = get(&app, path).await;
        assert_eq!(served.status, StatusCode::OK, "{path}");
        assert!(served.content_type.contains(mime), "{path}: {}", served.content_type);
        assert_eq!(served.cache_control, "public, max-age=31536000, immutable", "{path}");
        assert!(served.nosniff, "{path}");
    }
}

#[tokio::test]
async fn the_page_the_worker_and_the_manifest_are_revalidated_every_time() {
    let dir = built_app_dir();
    let app = app_serving(&dir);
    for (path, mime) in [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/sw.js", "text/javascript"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let served = get(&app, path).await;
        assert_eq!(served.status, StatusCode::OK, "{path}");
        assert!(served.content_type.starts_with(mime), "{path}: {}", served.content_type);
        assert_eq!(served.cache_control, "no-cache", "{path}");
    }
    let icon = get(&app, "/icons/icon-192.png").await;
    assert_eq!(
        (icon.status, icon.content_type.as_str(), icon.cache_control.as_str()),
        (StatusCode::OK, "image/png", "public, max-age=86400")
    );
    let svg = get(&app, "/icons/icon.svg").await;
    assert_eq!(svg.content_type, "image/svg+xml");
}

#[tokio::test]
async fn a_revalidated_page_answers_304_and_keeps_its_cache_policy() {
    let dir = built_app_dir();
    let app = app_serving(&dir);
    let first = app.clone().oneshot(Request::builder().uri("/sw.js").body(Body::empty()).unwrap()).await.unwrap();
    let last_modified = first.headers().get(header::LAST_MODIFIED).expect("ServeDir sends Last-Modified").to_str().unwrap().to_owned();
    let again = app
        .clone()
        .oneshot(Request::builder().uri("/sw.js").header(header::IF_MODIFIED_SINCE, &last_modified).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::CACHE_CONTROL], "no-cache");
}

#[tokio::test]
async fn app_routes_get_the_page_and_the_api_is_never_shadowed() {
    let dir = built_app_dir();
    let app = app_serving(&dir);
    let route = get(&app, "/conversations/42").await;
    assert_eq!(route.status, StatusCode::OK);
    assert_eq!(route.body, INDEX.as_bytes(), "a reload on an app route gets the page");
    assert_eq!(route.cache_control, "no-cache");

    let api = get(&app, "/api/no-such-endpoint").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.content_type.starts_with("application/json"), "{}", api.content_type);
    assert!(api.cache_control.is_empty(), "API answers carry no static-file cache policy: {}", api.cache_control);
}

#[tokio::test]
async fn without_a_built_app_the_page_says_how_to_build_it() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent-parlance-frontend"]));
    let served = get(&app, "/").await;
    assert_eq!(served.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&served.body).contains("scripts/build-web.sh"));
}
