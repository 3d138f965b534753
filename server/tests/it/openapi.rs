//! The OpenAPI document describes every route the server has, with the contract's own types.

use crate::support;

use axum::http::StatusCode;
use support::{app, empty_request, send, settings};

#[tokio::test]
async fn the_document_covers_every_route_and_error_code() {
    let app = app(&settings(&["--frontend-dir", "/nonexistent"]));
    let (status, doc) = send(&app, empty_request("GET", "/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let paths = &doc["paths"];
    for (path, method) in [
        ("/health", "get"),
        ("/api/chat", "post"),
        ("/api/voice", "post"),
        ("/api/sessions/{id}", "get"),
        ("/api/sessions/{id}", "delete"),
        ("/api/sessions/{id}/archive", "get"),
        ("/api/sessions/{id}/archive/{turn}/{side}", "get"),
        ("/api/account", "get"),
        ("/api/voices", "get"),
        ("/api/knowledge", "post"),
        ("/api/knowledge", "get"),
        ("/api/knowledge/{id}", "delete"),
        ("/api/knowledge/search", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is not documented");
    }
    assert!(paths["/api/voice"]["post"]["requestBody"]["content"]["multipart/form-data"].is_object());
    for status in ["429", "503", "504"] {
        assert!(paths["/api/chat"]["post"]["responses"][status].is_object(), "{status} undocumented for /api/chat");
        assert!(paths["/api/voice"]["post"]["responses"][status].is_object(), "{status} undocumented for /api/voice");
    }
    let archived_audio = &paths["/api/sessions/{id}/archive/{turn}/{side}"]["get"]["responses"];
    for content_type in ["audio/wav", "audio/webm", "audio/mp4"] {
        assert!(archived_audio["200"]["content"][content_type].is_object(), "{content_type} download undocumented: {archived_audio}");
    }
    assert!(archived_audio["404"].is_object());
    for content_type in ["application/json", "multipart/form-data"] {
        assert!(paths["/api/knowledge"]["post"]["requestBody"]["content"][content_type].is_object(), "{content_type} upload undocumented");
    }
    let search_params = paths["/api/knowledge/search"]["get"]["parameters"].to_string();
    assert!(search_params.contains("\"q\"") && search_params.contains("\"k\""), "{search_params}");

    let schemas = &doc["components"]["schemas"];
    for name in [
        "TextTurnRequest",
        "TurnResponse",
        "ErrorBody",
        "ErrorCode",
        "SessionHistory",
        "Health",
        "ServerEvent",
        "ClientMessage",
        "AudioEncoding",
        "AddNotesRequest",
        "AddNotesResponse",
        "NotePage",
        "KnowledgeSearchResponse",
        "Account",
        "HealthSummary",
        "SessionArchive",
        "ArchiveEntry",
        "ArchivedAudio",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    // OpenAPI cannot describe a WebSocket: the description points to it and its message types.
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("/api/ws") && description.contains("ClientMessage"), "{description}");
    let codes = schemas["ErrorCode"].to_string();
    for code in [
        "invalid_request",
        "payload_too_large",
        "session_not_found",
        "provider_unavailable",
        "rate_limited",
        "unauthorized",
        "forbidden",
        "server_busy",
        "method_not_allowed",
    ] {
        assert!(codes.contains(code), "error code {code} missing from {codes}");
    }
    // The socket's place in line: a state of its own, and the status event's position.
    assert!(schemas["TurnState"].to_string().contains("queued"), "{}", schemas["TurnState"]);
    assert!(schemas["ServerEvent"].to_string().contains("position"), "{}", schemas["ServerEvent"]);
    assert!(schemas["StageTimings"].to_string().contains("queued_ms"), "{}", schemas["StageTimings"]);
}
