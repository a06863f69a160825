//! Conversations in and out of Stoa: export (JSON or Markdown), import, and search.

use axum::{
    Json,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    api::{
        export::{ExportFile, to_markdown},
        types::{ConversationSummary, SearchHit},
    },
    server::{
        auth::Principal,
        http::rest::{ApiQuery, Created, RestResult},
        state::AppState,
    },
};

/// `?format=` of an export.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (every branch; importable) or `markdown` (the branch shown). Default `json`.
    #[param(inline)]
    pub format: Option<ExportFormat>,
}

/// What an export is written as.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Json,
    #[serde(alias = "md")]
    Markdown,
}

/// `?q=` of a search.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find (all of them; the last as a prefix), at most 200 characters.
    pub q: Option<String>,
}

/// The export as a file download.
fn export_response(file: ExportFile, format: Option<ExportFormat>, name: &str) -> RestResult<Response> {
    let (body, content_type, extension) = match format.unwrap_or_default() {
        ExportFormat::Json => (
            serde_json::to_string_pretty(&file).unwrap_or_default(),
            "application/json",
            "json",
        ),
        ExportFormat::Markdown => (to_markdown(&file), "text/markdown; charset=utf-8", "md"),
    };
    let disposition = format!("attachment; filename=\"{name}.{extension}\"");
    let headers = [
        (header::CONTENT_TYPE, content_type.to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, body).into_response())
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/export", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id"), ExportQuery),
    responses(
        (status = 200, description = "The conversation as a JSON export (every branch) or Markdown (the branch shown)",
            content((ExportFile = "application/json"), (String = "text/markdown"))),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized, crate::server::http::rest::NotFound,
    ))]
pub(crate) async fn export_conversation(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> RestResult<Response> {
    let file = state.chat.export(who.user, Some(&id)).await?;
    export_response(file, q.format, "stoa-conversation")
}

#[utoipa::path(get, path = "/api/v1/export", tag = "conversations", params(ExportQuery),
    responses(
        (status = 200, description = "All the caller's conversations as a JSON export or Markdown",
            content((ExportFile = "application/json"), (String = "text/markdown"))),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized,
    ))]
pub(crate) async fn export_all(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> RestResult<Response> {
    let file = state.chat.export(who.user, None).await?;
    export_response(file, q.format, "stoa-conversations")
}

#[utoipa::path(post, path = "/api/v1/import", tag = "conversations", request_body = ExportFile,
    responses(
        (status = 201, description = "The imported conversations (new ids; every branch kept)", body = [ConversationSummary]),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized, crate::server::http::rest::TooLarge, crate::server::http::rest::TooManyRequests,
    ))]
pub(crate) async fn import(
    State(state): State<AppState>,
    who: Principal,
    body: axum::body::Bytes,
) -> RestResult<Created<Vec<ConversationSummary>>> {
    let file = crate::api::export::parse_export(body).await?;
    Ok(Created(state.chat.import(who.user, file).await?))
}

#[utoipa::path(get, path = "/api/v1/search", tag = "conversations", params(SearchQuery),
    responses(
        (status = 200, description = "The caller's messages matching every word, best first, with the matches marked", body = [SearchHit]),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized, crate::server::http::rest::TooManyRequests,
    ))]
pub(crate) async fn search(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> RestResult<Json<Vec<SearchHit>>> {
    let words = q.q.as_deref().unwrap_or_default();
    Ok(Json(state.chat.search(who.user, words).await?))
}
