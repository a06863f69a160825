//! `POST /v1/embeddings` (OpenAI-compatible) over the local embedding model.

use axum::{Json, body::Bytes, extract::State};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::V1Result;
use crate::api::error::json_body;
use crate::{
    api::{ApiError, ErrorCode},
    server::{embed::EmbedError, llm::local::LOCAL_PROVIDER, state::AppState},
};

/// Inputs per request. OpenAI allows 2048; on a CPU that is minutes of work, so Stoa
/// takes fewer and says so.
pub const MAX_INPUTS: usize = 256;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingRequest {
    /// `local/all-MiniLM-L6-v2` (or its bare name).
    model: String,
    /// A string or a list of up to 256 strings, each at most 256 tokens.
    #[schema(value_type = Object)]
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

fn inputs(input: Value) -> Result<Vec<String>, ApiError> {
    let texts = match input {
        Value::String(s) => vec![s],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::Array(_) => {
            return Err(ApiError::invalid(
                "input",
                "input must be a string or a list of strings; token arrays are not supported",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "input",
                "input must be a string or a list of strings",
            ));
        }
    };
    if texts.is_empty() {
        return Err(ApiError::invalid("input", "input must not be an empty list"));
    }
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("input has {} items; the limit is {MAX_INPUTS}", texts.len()),
        ));
    }
    Ok(texts)
}

/// Unit-length embeddings from the local model, as floats or base64 (little-endian f32).
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingRequest, responses(
    (status = 200, description = "`{\"object\": \"list\", \"data\": [{\"embedding\": …}], \"usage\": …}`"),
    (status = 400, description = "Invalid input; `param` names it (e.g. `input[3]` when too long)", body = super::openai_wire::OpenAiError),
    (status = 404, description = "Unknown embedding model", body = super::openai_wire::OpenAiError),
    (status = 401, description = "No valid API key (`invalid_api_key`)", body = super::openai_wire::OpenAiError),
    (status = 429, description = "Too many requests from this user or address (`rate_limit_exceeded`); retry after `Retry-After`", body = super::openai_wire::OpenAiError),
))]
pub async fn create(State(state): State<AppState>, body: Bytes) -> V1Result<Json<Value>> {
    let req: EmbeddingRequest = json_body(&body)?;
    let embedder = state.embedder.clone();
    let embedder =
        embedder.ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "no embedding model is loaded"))?;
    let name = embedder.model();
    let qualified = format!("{LOCAL_PROVIDER}/{name}");
    if req.model != qualified && req.model != name {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "embedding model '{}' does not exist; this server has '{qualified}'",
                req.model
            ),
        )
        .with_field("model")
        .into());
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            let message = format!("encoding_format '{other}' is not supported; use float or base64");
            return Err(ApiError::invalid("encoding_format", message).into());
        }
    };
    if let Some(d) = req.dimensions.filter(|d| *d != embedder.dimensions()) {
        let message = format!("{qualified} gives {} dimensions, not {d}", embedder.dimensions());
        return Err(ApiError::invalid("dimensions", message).into());
    }
    let texts = inputs(req.input)?;
    let embedded = embedder.embed(texts).await.map_err(|e| match e {
        EmbedError::TooLong { index, .. } | EmbedError::Empty { index } => {
            ApiError::invalid(format!("input[{index}]"), e.to_string())
        }
        EmbedError::Unavailable(_) => ApiError::new(ErrorCode::Unavailable, e.to_string()),
        EmbedError::Backend(_) => {
            tracing::error!(error = %e, "embedding failed");
            ApiError::internal()
        }
    })?;
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": qualified,
        "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens},
    })))
}
