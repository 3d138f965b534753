use axum::extract::FromRequest;

use super::error::ApiError;

/// `axum::Json`, but a malformed body is answered with the API's error body instead of plain text.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);
