//! HTTP edge: Stoa's OpenAI-compatible API (`/v1`: models, chat completions, embeddings)
//! and concerns shared by all routes.

pub mod assets;
pub(crate) mod embeddings;
pub mod metrics;
pub mod openai;
pub(crate) mod openai_wire;
pub mod policy;
pub(crate) mod rerank;
pub mod resources;
pub mod rest;
pub mod security;

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use server_fn::error::SERVER_FN_ERROR_HEADER;

use crate::api::{ApiError, ErrorCode};

/// Largest server-function error body we re-read (they are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// server_fn answers every error with 500, including a request it could not even parse.
/// This is the one place that gives each [`ApiError`] its real status (400 for bad input,
/// 404, 503 with `Retry-After` when busy), so callers never see a 500 for their own mistake.
pub async fn server_fn_error_status(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(error) = serde_json::from_slice::<ApiError>(&bytes) {
        parts.status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        set_retry_after(&error, &mut parts.headers);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// `Retry-After` on errors that may pass (busy, no provider able to answer: 1 s; rate
/// limits: when the next request will be let through): the one place every API (server
/// functions, `/v1`, `/api/v1`) gets it from.
pub fn set_retry_after(error: &ApiError, headers: &mut axum::http::HeaderMap) {
    let secs = match error.code {
        ErrorCode::Busy | ErrorCode::Unavailable => 1,
        ErrorCode::RateLimited => error.retry_after_secs.unwrap_or(1).max(1),
        _ => return,
    };
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
}
