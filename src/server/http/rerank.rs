//! `POST /v1/rerank`: Stoa re-ranks texts for a query with whichever re-ranker it has
//! (`[rag.rerank]`, else the embedding model's similarity), so another Stoa or any client
//! can use it. Both dialects are spoken, told apart by their fields:
//! - Cohere's (also Jina's, vLLM's, llama.cpp's): `{model, query, documents, top_n,
//!   return_documents}` → `{model, results: [{index, relevance_score, document?}]}`;
//! - text-embeddings-inference's: `{query, texts, return_text}` → `[{index, score, text?}]`.
//!
//! Results are best first; scores are on Stoa's calibrated 0–1 scale.

use axum::{Json, body::Bytes, extract::State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::V1Result;
use crate::{
    api::{ApiError, error::json_body, validation::MESSAGE},
    server::state::AppState,
};

/// Texts per request: each is embedded or judged, which takes CPU time.
pub const MAX_TEXTS: usize = crate::api::validation::MAX_RERANK_TEXTS;

/// A document of Cohere's shape: a string, or `{"text": …}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum RerankDocument {
    Text(String),
    Object { text: String },
}

impl RerankDocument {
    fn text(&self) -> &str {
        match self {
            RerankDocument::Text(t) | RerankDocument::Object { text: t } => t,
        }
    }
}

/// Either dialect; `documents` makes it Cohere's, `texts` TEI's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RerankRequest {
    /// Ignored beyond being echoed: the server's re-ranker answers.
    #[serde(default)]
    model: Option<String>,
    /// What the texts are ranked for (1 to 16,000 characters).
    query: String,
    /// Cohere's dialect: the texts, as strings or `{"text": …}`.
    #[serde(default)]
    documents: Option<Vec<RerankDocument>>,
    /// TEI's dialect: the texts.
    #[serde(default)]
    texts: Option<Vec<String>>,
    /// Cohere: only the best `top_n`.
    #[serde(default)]
    #[schema(minimum = 1)]
    top_n: Option<usize>,
    /// Cohere: include each document's text.
    #[serde(default)]
    return_documents: Option<bool>,
    /// TEI: include each text.
    #[serde(default)]
    return_text: Option<bool>,
}

/// Scores `documents` (Cohere's shape) or `texts` (TEI's) for `query`, best first.
#[utoipa::path(post, path = "/v1/rerank", tag = "openai", request_body = RerankRequest, responses(
    (status = 200, description = "Cohere's shape `{model, results: [{index, relevance_score}]}` for `documents`, TEI's `[{index, score}]` for `texts`; best first, scores 0–1"),
    (status = 400, description = "Invalid input; `param` names it", body = super::openai_wire::OpenAiError),
    (status = 401, description = "No valid API key (`invalid_api_key`)", body = super::openai_wire::OpenAiError),
    (status = 429, description = "Too many requests from this user or address (`rate_limit_exceeded`); retry after `Retry-After`", body = super::openai_wire::OpenAiError),
    (status = 503, description = "No re-ranker and no embedding model is available", body = super::openai_wire::OpenAiError),
))]
pub async fn rerank(State(state): State<AppState>, body: Bytes) -> V1Result<Json<Value>> {
    let req: RerankRequest = json_body(&body)?;
    MESSAGE
        .check_text("query", "query", &req.query)
        .map_err(ApiError::from)?;
    let (texts, cohere): (Vec<String>, bool) = match (&req.documents, &req.texts) {
        (Some(docs), None) => (docs.iter().map(|d| d.text().to_owned()).collect(), true),
        (None, Some(texts)) => (texts.clone(), false),
        _ => {
            return Err(ApiError::invalid(
                "documents",
                "send either documents (Cohere's shape) or texts (text-embeddings-inference's)",
            )
            .into());
        }
    };
    let field = if cohere { "documents" } else { "texts" };
    if texts.is_empty() || texts.len() > MAX_TEXTS {
        return Err(ApiError::invalid(
            field,
            format!("send 1 to {MAX_TEXTS} texts (got {})", texts.len()),
        )
        .into());
    }
    if req.top_n == Some(0) {
        return Err(ApiError::invalid("top_n", "top_n must be at least 1").into());
    }
    let (name, scores) = state.chat.rerank(&req.query, &texts).await?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    if cohere {
        order.truncate(req.top_n.unwrap_or(texts.len()));
        let with_text = req.return_documents.unwrap_or(false);
        let results: Vec<Value> = order
            .iter()
            .map(|&i| {
                let mut r = json!({"index": i, "relevance_score": scores[i]});
                if with_text {
                    r["document"] = json!({"text": texts[i]});
                }
                r
            })
            .collect();
        Ok(Json(json!({
            "model": req.model.unwrap_or_else(|| format!("stoa/{name}")),
            "results": results,
        })))
    } else {
        let with_text = req.return_text.unwrap_or(false);
        Ok(Json(Value::Array(
            order
                .iter()
                .map(|&i| {
                    let mut r = json!({"index": i, "score": scores[i]});
                    if with_text {
                        r["text"] = json!(texts[i]);
                    }
                    r
                })
                .collect(),
        )))
    }
}
