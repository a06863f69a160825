//! Documents and collections of `/api/v1`: upload, list, status, delete.

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
};

use crate::{
    api::{
        ApiError,
        documents::{CollectionView, DocumentView, PassageQuery, PassageSearch, UploadOutcome},
    },
    server::{
        auth::Principal,
        http::rest::{ApiJson, RestResult},
        state::AppState,
    },
};

#[utoipa::path(get, path = "/api/v1/documents", tag = "documents",
    responses(
        (status = 200, description = "The caller's documents, newest first, with their progress", body = [DocumentView]),
        crate::server::http::rest::Unauthorized, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn list_documents(
    State(state): State<AppState>,
    who: Principal,
) -> RestResult<Json<Vec<DocumentView>>> {
    Ok(Json(state.ingest()?.list(who.user).await?))
}

/// The form of an upload, as the OpenAPI document describes it (the handler reads the
/// multipart stream itself, one file at a time).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct UploadForm {
    /// One or more files.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
    /// JSON: `{"title", "source", "tags", "collection"}`, all optional.
    metadata: Option<crate::api::documents::DocumentMetadata>,
}

#[utoipa::path(post, path = "/api/v1/documents", tag = "documents",
    request_body(content(
        (UploadForm = "multipart/form-data"),
        (crate::api::documents::AddUrl = "application/json"),
    ), description = "Files: `file` fields (repeated; any supported format) and an optional `metadata` field, JSON with title, \
        source, tags and collection. Or a JSON body `{url, metadata}`: the server fetches the address (public networks only unless \
        `rag.fetch_allow_networks` allows one; redirects checked; size and time limits) and reads it like an upload"),
    responses(
        (status = 200, description = "One outcome per file: its document (processed in the background; poll its status) or why it was refused", body = [UploadOutcome]),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized, crate::server::http::rest::TooLarge, crate::server::http::rest::TooManyRequests, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn upload_documents(
    State(state): State<AppState>,
    who: Principal,
    headers: axum::http::HeaderMap,
    body: Body,
) -> RestResult<Json<Vec<UploadOutcome>>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        return Ok(Json(vec![add_url(&state, who.user, body).await?]));
    }
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok());
    let boundary =
        boundary.ok_or_else(|| ApiError::invalid("file", "the request is not multipart/form-data"))?;
    let multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    Ok(Json(state.ingest()?.upload(who.user, multipart).await?))
}

#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document and its processing status", body = DocumentView),
        crate::server::http::rest::Unauthorized, crate::server::http::rest::NotFound, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn get_document(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<Json<DocumentView>> {
    Ok(Json(state.ingest()?.get(who.user, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 204, description = "Deleted with its passages"),
        crate::server::http::rest::Unauthorized, crate::server::http::rest::NotFound, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn delete_document(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<StatusCode> {
    state.ingest()?.delete(who.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/documents/{id}/cancel", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document: failed with the error `cancelled` when it was still being processed (its worker stops at once; an earlier version it was to replace stays), unchanged when it was already ready or failed", body = DocumentView),
        crate::server::http::rest::Unauthorized, crate::server::http::rest::NotFound, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn cancel_document(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<Json<DocumentView>> {
    Ok(Json(state.ingest()?.cancel(who.user, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/collections", tag = "documents",
    responses(
        (status = 200, description = "The caller's collections", body = [CollectionView]),
        crate::server::http::rest::Unauthorized, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn list_collections(
    State(state): State<AppState>,
    who: Principal,
) -> RestResult<Json<Vec<CollectionView>>> {
    Ok(Json(state.ingest()?.collections(who.user).await?))
}

#[utoipa::path(post, path = "/api/v1/search/passages", tag = "documents", request_body = PassageQuery,
    responses(
        (status = 200, description = "The passages retrieval finds in its final order, each with its score, whether an answer would be given it, and its rank in keyword search, vector search, their fusion and the re-ranker; the confidence that the documents answer the query, whether an answer would decline, and each step's sizes and time", body = PassageSearch),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized, crate::server::http::rest::TooManyRequests, crate::server::http::rest::Unavailable,
    ))]
pub(crate) async fn search_passages(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(q): ApiJson<PassageQuery>,
) -> RestResult<Json<PassageSearch>> {
    Ok(Json(state.chat.search_passages(who.user, q).await?))
}

/// A document fetched by address: one outcome, like one file of an upload.
async fn add_url(
    state: &AppState,
    owner: crate::server::auth::UserId,
    body: Body,
) -> Result<UploadOutcome, ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::invalid("url", "the request body is larger than 64 KB"))?;
    let request: crate::api::documents::AddUrl =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("url", format!("invalid JSON: {e}")))?;
    state.ingest()?.add_url(owner, request).await
}
