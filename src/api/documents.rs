//! Documents and collections: types shared by the UI and the server, their validation,
//! and the server functions (upload is multipart).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::{Json, MultipartData, MultipartFormData};

use super::error::ApiError;

/// Where a document is in the ingestion pipeline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString,
)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DocumentStatus {
    Queued,
    Extracting,
    /// `progress_done` of `progress_total` chunks embedded.
    Embedding,
    /// Searchable.
    Ready,
    /// Not searchable; `error` says why.
    Failed,
}

impl DocumentStatus {
    /// The name on the wire and in the database (as serde writes it).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_final(self) -> bool {
        matches!(self, DocumentStatus::Ready | DocumentStatus::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DocumentView {
    pub id: String,
    pub title: String,
    pub file_name: String,
    pub media_type: String,
    pub collection: Option<String>,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub status: DocumentStatus,
    pub progress_done: u32,
    pub progress_total: u32,
    pub error: Option<String>,
    pub chunk_count: u32,
    pub size_bytes: u64,
    /// 1 for a first upload; one more each time a file of the same name (or the same
    /// address) came again with other content.
    pub version: u32,
    /// The earlier version this one replaces, with its passages, once it is ready (until
    /// then the earlier one answers).
    pub replaces: Option<String>,
    pub created_at: i64,
}

/// A document to fetch by address (`POST /api/v1/documents` with a JSON body): a web page
/// or any supported file, fetched by the server (only public addresses unless an admin
/// allows a network), read like an upload, the address kept as its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddUrl {
    /// An `http` or `https` address.
    pub url: String,
    #[serde(default)]
    pub metadata: Option<DocumentMetadata>,
}

impl AddUrl {
    /// The first broken rule: an empty or overlong address, or bad metadata.
    pub fn check(&self) -> Result<(), ApiError> {
        let n = self.url.chars().count();
        if self.url.trim().is_empty() {
            return Err(ApiError::invalid("url", "the address must not be empty"));
        }
        if n > MAX_SOURCE_CHARS {
            return Err(ApiError::invalid(
                "url",
                format!("the address is {n} characters long; the limit is {MAX_SOURCE_CHARS}"),
            ));
        }
        self.metadata.as_ref().map_or(Ok(()), DocumentMetadata::check)
    }
}

/// Optional facts about uploaded files, sent as the multipart field `metadata` (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentMetadata {
    /// Title of the document (only with a single file); default: from the file.
    #[serde(default)]
    pub title: Option<String>,
    /// Where it came from: a URL or a note.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Collection name; created when new.
    #[serde(default)]
    pub collection: Option<String>,
}

pub const MAX_DOCUMENT_TITLE_CHARS: usize = 200;
pub const MAX_SOURCE_CHARS: usize = 2000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 40;
pub const MAX_COLLECTION_NAME_CHARS: usize = 80;
/// Files per upload request.
pub const MAX_FILES_PER_UPLOAD: usize = 20;

impl DocumentMetadata {
    /// The first broken rule, naming the field (`metadata.tags[2]`).
    pub fn check(&self) -> Result<(), ApiError> {
        let too_long = |field: &str, value: &str, max: usize| {
            let n = value.chars().count();
            (n > max).then(|| {
                ApiError::invalid(
                    format!("metadata.{field}"),
                    format!("{field} is {n} characters long; the limit is {max}"),
                )
            })
        };
        if let Some(e) = self
            .title
            .as_deref()
            .and_then(|t| too_long("title", t, MAX_DOCUMENT_TITLE_CHARS))
        {
            return Err(e);
        }
        if let Some(e) = self
            .source
            .as_deref()
            .and_then(|s| too_long("source", s, MAX_SOURCE_CHARS))
        {
            return Err(e);
        }
        if self.tags.len() > MAX_TAGS {
            return Err(ApiError::invalid(
                "metadata.tags",
                format!("{} tags given; the limit is {MAX_TAGS}", self.tags.len()),
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            let ok = !tag.is_empty()
                && tag.chars().count() <= MAX_TAG_CHARS
                && tag
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '));
            if !ok {
                return Err(ApiError::invalid(
                    format!("metadata.tags[{i}]"),
                    format!("a tag is 1 to {MAX_TAG_CHARS} letters, digits, spaces, '-' or '_'"),
                ));
            }
        }
        if let Some(name) = &self.collection {
            check_collection_name(name).map_err(|e| e.with_field("metadata.collection"))?;
        }
        Ok(())
    }
}

pub fn check_collection_name(name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > MAX_COLLECTION_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("a collection name is 1 to {MAX_COLLECTION_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

/// What became of one uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UploadOutcome {
    pub file_name: String,
    /// The stored document (an earlier one when the same content was uploaded before).
    pub document: Option<DocumentView>,
    /// The same content was already in this collection; nothing new was stored.
    pub duplicate: bool,
    /// Why this file was refused; other files of the upload are not affected.
    pub error: Option<ApiError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CollectionView {
    pub id: String,
    pub name: String,
    pub document_count: u32,
}

/// A source an answer was given, shown as a chip `[n]` that opens the passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Citation {
    pub n: u32,
    pub document_id: String,
    pub document_title: String,
    pub chunk_id: i64,
    /// Position of the passage in its document (0 = first chunk).
    pub position: u32,
    pub heading: Option<String>,
    pub text: String,
    /// Cosine similarity to the question.
    pub score: f32,
}

/// Which of the caller's documents are searched; every field given narrows it (all of
/// them when empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentFilter {
    /// Only documents in these collections (ids).
    #[serde(default)]
    pub collection_ids: Option<Vec<String>>,
    /// Only these documents (ids).
    #[serde(default)]
    pub document_ids: Option<Vec<String>>,
    /// Only documents with at least one of these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Only documents whose source contains this text (case-insensitive).
    #[serde(default)]
    pub source: Option<String>,
    /// Only documents uploaded at or after this time (Unix milliseconds).
    #[serde(default)]
    pub uploaded_after: Option<i64>,
    /// Only documents uploaded before this time (Unix milliseconds).
    #[serde(default)]
    pub uploaded_before: Option<i64>,
}

/// Most ids or tags a filter may list.
pub const MAX_FILTER_ITEMS: usize = 1000;

impl DocumentFilter {
    /// Whether it narrows more than collections do (then it is resolved to documents).
    pub fn beyond_collections(&self) -> bool {
        self.document_ids.is_some()
            || self.tags.is_some()
            || self.source.is_some()
            || self.uploaded_after.is_some()
            || self.uploaded_before.is_some()
    }

    pub fn check(&self) -> Result<(), ApiError> {
        for (field, list) in [
            ("collection_ids", &self.collection_ids),
            ("document_ids", &self.document_ids),
            ("tags", &self.tags),
        ] {
            if list.as_ref().is_some_and(|l| l.len() > MAX_FILTER_ITEMS) {
                return Err(ApiError::invalid(
                    field,
                    format!("at most {MAX_FILTER_ITEMS} items"),
                ));
            }
        }
        if self
            .source
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SOURCE_CHARS)
        {
            return Err(ApiError::invalid(
                "source",
                format!("at most {MAX_SOURCE_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// A retrieval-only search of the caller's documents (`POST /api/v1/search/passages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PassageQuery {
    /// What to find (1 to 16,000 characters).
    pub query: String,
    /// Only these collections (ids); all of the caller's documents when absent.
    #[serde(default)]
    pub collection_ids: Option<Vec<String>>,
    /// Only these documents (ids).
    #[serde(default)]
    pub document_ids: Option<Vec<String>>,
    /// Only documents with at least one of these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Only documents whose source contains this text (case-insensitive).
    #[serde(default)]
    pub source: Option<String>,
    /// Only documents uploaded at or after this time (Unix milliseconds).
    #[serde(default)]
    pub uploaded_after: Option<i64>,
    /// Only documents uploaded before this time (Unix milliseconds).
    #[serde(default)]
    pub uploaded_before: Option<i64>,
    /// How many passages (1 to 50, default 10).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Most passages one search returns.
pub const MAX_PASSAGES: u32 = 50;

impl PassageQuery {
    /// The documents it searches.
    pub fn filter(&self) -> DocumentFilter {
        DocumentFilter {
            collection_ids: self.collection_ids.clone(),
            document_ids: self.document_ids.clone(),
            tags: self.tags.clone(),
            source: self.source.clone(),
            uploaded_after: self.uploaded_after,
            uploaded_before: self.uploaded_before,
        }
    }

    pub fn check(&self) -> Result<(), ApiError> {
        super::validation::MESSAGE.check_text("query", "query", &self.query)?;
        if self.limit.is_some_and(|n| !(1..=MAX_PASSAGES).contains(&n)) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_PASSAGES}"),
            ));
        }
        self.filter().check()
    }
}

/// A passage as retrieval ranked it, with what each step made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RankedPassage {
    /// The passage as an answer would cite it: `n` is its place in the final order (1 for
    /// the best), `score` the re-ranker's score when one ran, else its cosine similarity to
    /// the query.
    #[serde(flatten)]
    pub passage: Citation,
    /// Whether an answer would be given it (selected, and the documents cover the query).
    pub selected: bool,
    /// Its rank in keyword (BM25) search for the main query, when that found it.
    pub keyword_rank: Option<u32>,
    /// Its rank in vector search for the main query, when that found it.
    pub vector_rank: Option<u32>,
    /// Its rank after reciprocal rank fusion of every search.
    pub fused_rank: u32,
    /// The re-ranker's calibrated score (0–1), when a re-ranker ran.
    #[serde(default)]
    pub rerank_score: Option<f32>,
}

/// What a retrieval-only search found, and what the pipeline decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PassageSearch {
    /// The candidates in the pipeline's final order, at most `limit`.
    pub passages: Vec<RankedPassage>,
    /// Probability (0–1) that the documents answer the query.
    pub confidence: f32,
    /// The documents were taken not to cover the query: an answer would say so.
    pub declined: bool,
    /// Each step with its sizes and milliseconds.
    pub steps: Vec<super::trace::TraceStep>,
}

/// Uploads files (multipart fields `file`, repeated) with optional `metadata` (JSON).
/// Each file is validated on its own; its document is then processed in the background.
#[server(endpoint = "documents/upload", input = MultipartFormData, client = super::csrf::CsrfClient)]
pub async fn upload_documents(data: MultipartData) -> Result<Vec<UploadOutcome>, ApiError> {
    use crate::server::state::{principal, state};
    let multipart = data
        .into_inner()
        .ok_or_else(|| ApiError::invalid("file", "the request is not multipart/form-data"))?;
    Ok(state()?.ingest()?.upload(principal()?.user, multipart).await?)
}

/// Adds a document by address: the server fetches it (public networks only unless an
/// admin allows one) and reads it like an upload.
#[server(endpoint = "documents/add_url", input = Json, client = super::csrf::CsrfClient)]
pub async fn add_document_url(request: AddUrl) -> Result<UploadOutcome, ApiError> {
    use crate::server::state::{principal, state};
    state()?.ingest()?.add_url(principal()?.user, request).await
}

/// Stops a document still being processed (it becomes failed, "cancelled").
#[server(endpoint = "documents/cancel", input = Json, client = super::csrf::CsrfClient)]
pub async fn cancel_document(id: String) -> Result<DocumentView, ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.ingest()?.cancel(principal()?.user, &id).await?)
}

/// Every document, newest first, with its progress.
#[server(endpoint = "documents/list", input = Json, client = super::csrf::CsrfClient)]
pub async fn list_documents() -> Result<Vec<DocumentView>, ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.ingest()?.list(principal()?.user).await?)
}

/// Deletes a document with its chunks and vectors.
#[server(endpoint = "documents/delete", input = Json, client = super::csrf::CsrfClient)]
pub async fn delete_document(id: String) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.ingest()?.delete(principal()?.user, &id).await?)
}

#[server(endpoint = "collections/list", input = Json, client = super::csrf::CsrfClient)]
pub async fn list_collections() -> Result<Vec<CollectionView>, ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.ingest()?.collections(principal()?.user).await?)
}

/// The collections a conversation searches; empty means all documents.
#[server(endpoint = "conversations/collections", input = Json, client = super::csrf::CsrfClient)]
pub async fn set_conversation_collections(
    conversation_id: String,
    collection_ids: Vec<String>,
) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .set_collections(principal()?.user, &conversation_id, &collection_ids)
        .await
        .map_err(ApiError::from)
}
