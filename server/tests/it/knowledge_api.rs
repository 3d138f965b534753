//! The knowledge endpoints over HTTP, on real embeddings and a real database in a temporary folder.

use crate::support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use parlance_server::models::catalog::MINILM_L6_V2;
use serde_json::{Value, json};
use support::{BOUNDARY, assert_error, empty_request, json_request, multipart_body, send};

fn settings_with_embeddings() -> parlance_server::Settings {
    let model_dir = support::installed_model(&MINILM_L6_V2);
    let models_dir = model_dir.parent().unwrap().to_str().unwrap().to_owned();
    support::settings(&["--frontend-dir", "/nonexistent", "--models-dir", &models_dir])
}

fn upload(files: &[(&str, &[u8])]) -> Request<Body> {
    let parts: Vec<support::Part> = files.iter().map(|(name, bytes)| ("file", Some(*name), *bytes)).collect();
    Request::builder()
        .method("POST")
        .uri("/api/knowledge")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(multipart_body(&parts)))
        .unwrap()
}

async fn total(app: &axum::Router) -> u64 {
    let (status, page) = send(app, empty_request("GET", "/api/knowledge?limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["total"].as_u64().unwrap()
}

async fn search(app: &axum::Router, query: &str) -> Value {
    let uri = format!("/api/knowledge/search?q={}&k=3", query.replace(' ', "+"));
    let (status, body) = send(app, empty_request("GET", &uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn notes_are_added_listed_found_and_deleted() {
    let app = parlance_server::start(&settings_with_embeddings()).await.expect("starts");
    let seeded = total(&app).await;
    assert!(seeded >= 10, "the shipped notes are seeded at start: {seeded}");

    let note = json!({"notes": [{"title": "My bike", "text": "My bike is a Trek Marlin 7, bought in 2023.", "source": "test"}]});
    let (status, added) = send(&app, json_request("POST", "/api/knowledge", &note)).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!((added["added"].as_u64(), added["unchanged"].as_u64()), (Some(1), Some(0)));
    let id = added["notes"][0]["id"].as_str().unwrap().to_owned();
    let (_, again) = send(&app, json_request("POST", "/api/knowledge", &note)).await;
    assert_eq!((again["added"].as_u64(), again["notes"][0]["id"].as_str()), (Some(0), Some(id.as_str())), "{again}");

    let found = search(&app, "what brand is my bicycle").await;
    assert_eq!(found["hits"][0]["id"], id.as_str(), "{found}");
    assert_eq!(found["hits"][0]["title"], "My bike");
    assert!(found["hits"][0]["snippet"].as_str().unwrap().contains("Trek"));

    let document = b"# Wi-Fi at home\n\nThe guest network is called Meadow and its password is on the fridge.\n";
    let (status, uploaded) = send(&app, upload(&[("wifi.md", document)])).await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    assert_eq!(uploaded["notes"][0]["title"], "Wi-Fi at home");
    assert_eq!(uploaded["notes"][0]["source"], "wifi.md");
    assert_eq!(total(&app).await, seeded + 2);
    let (_, page) = send(&app, empty_request("GET", &format!("/api/knowledge?offset={seeded}&limit=1"))).await;
    assert_eq!(page["notes"].as_array().unwrap().len(), 1);
    assert_eq!(page["notes"][0]["id"], id.as_str(), "oldest first: {page}");

    let (status, _) = send(&app, empty_request("DELETE", &format!("/api/knowledge/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(&app, empty_request("DELETE", &format!("/api/knowledge/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    assert_eq!(total(&app).await, seeded + 1);
    let after = search(&app, "what brand is my bicycle").await;
    assert!(after["hits"].as_array().unwrap().iter().all(|hit| hit["id"] != id.as_str()), "{after}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let app = support::app(&settings_with_embeddings());
    let good = json!({"title": "Fine", "text": "A perfectly good note."});
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "empty text",
            json_request("POST", "/api/knowledge", &json!({"notes": [{"title": "Empty", "text": "  \n"}]})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "good then empty",
            json_request("POST", "/api/knowledge", &json!({"notes": [good, {"title": "", "text": "x"}]})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        ("no notes", json_request("POST", "/api/knowledge", &json!({"notes": []})), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "wrong shape",
            json_request("POST", "/api/knowledge", &json!({"notes": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        ("20 MB upload", upload(&[("big.md", &vec![b'a'; 20 * 1024 * 1024])]), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (
            "20 MB JSON",
            json_request("POST", "/api/knowledge", &json!({"notes": [{"title": "Big", "text": "a".repeat(20 * 1024 * 1024)}]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "PNG named .md",
            upload(&[("photo.md", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "good file then a PDF",
            upload(&[("ok.md", b"# Ok\n\nfine"), ("manual.txt", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("empty file", upload(&[("blank.txt", b"   ")]), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "plain text body",
            Request::builder()
                .method("POST")
                .uri("/api/knowledge")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("hello"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("unknown id", empty_request("DELETE", "/api/knowledge/6f1c1e0e-3d2b-4c55-9a3e-0d9b8f1e2a77"), StatusCode::NOT_FOUND, "not_found"),
        ("id that is not an id", empty_request("DELETE", "/api/knowledge/x'%20OR%20'1'='1"), StatusCode::NOT_FOUND, "not_found"),
        ("empty query", empty_request("GET", "/api/knowledge/search?q=%20"), StatusCode::BAD_REQUEST, "invalid_request"),
        ("k of 0", empty_request("GET", "/api/knowledge/search?q=bike&k=0"), StatusCode::BAD_REQUEST, "invalid_request"),
        ("page of 1000", empty_request("GET", "/api/knowledge?limit=1000"), StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (name, request, status, code) in cases {
        let (got, body) = send(&app, request).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_error(&body, code);
        assert_eq!(total(&app).await, 0, "{name} left something behind");
    }
}

#[tokio::test]
async fn without_an_embeddings_model_adding_says_what_to_set_up() {
    let app = support::app(&support::settings(&["--frontend-dir", "/nonexistent"]));
    let note = json!({"notes": [{"title": "Bike", "text": "A Trek."}]});
    let (status, body) = send(&app, json_request("POST", "/api/knowledge", &note)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "not_configured");
    assert!(body["message"].as_str().unwrap().contains("parlance models"), "{body}");
    assert_eq!(search(&app, "bike").await["hits"], json!([]), "search still answers, from full text alone");
}

/// An OpenAI-compatible embeddings model whose vectors are not 384 long (the fake makes 26: letter counts) is
/// named at start-up, with both dimensions, instead of failing every note and search with a bare 500.
#[tokio::test]
async fn an_embeddings_model_of_the_wrong_dimension_is_named_at_start_and_at_first_use() {
    let provider = support::fake_openai::FakeOpenAi::start("unused").await;
    let settings = support::settings_for_provider(&provider.base_url, &["--embeddings-model", "letter-counts-26"]);

    let Err(error) = parlance_server::start(&settings).await else { panic!("start-up accepted a 26-dimensional embeddings model") };
    let message = error.to_string();
    for needle in ["letter-counts-26", "26-dimensional", "384-dimensional", "PARLANCE_EMBEDDINGS_MODEL"] {
        assert!(message.contains(needle), "{needle:?} missing from {message:?}");
    }

    // A server built without the start-up check (as the tests' router is) says the same on first use.
    let app = support::app(&settings);
    let note = json!({"notes": [{"title": "Bike", "text": "My bike is a Trek."}]});
    for request in [json_request("POST", "/api/knowledge", &note), empty_request("GET", "/api/knowledge/search?q=bike&k=3")] {
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_error(&body, "not_configured");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("letter-counts-26") && message.contains("26-dimensional"), "{message}");
    }
    assert_eq!(total(&app).await, 0, "nothing was half-written");
}
