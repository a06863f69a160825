//! Ingestion: validate each uploaded file on its own, store it (with the file) as a queued
//! document, and process it in the background (extract → chunk → embed n/m → store → index)
//! with its progress in the database, so the UI can show it and chat stays responsive.
//! The background part is [`super::worker`].

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::extract::Kind;
use crate::{
    api::{
        ApiError, ErrorCode,
        documents::{AddUrl, CollectionView, DocumentMetadata, DocumentView, UploadOutcome},
    },
    server::{
        auth::UserId,
        background::Background,
        clock::now_ms,
        config::RagSettings,
        embed::Embedder,
        storage::{
            DocumentStore, StoreError,
            documents::{DocumentRecord, NewDocument, VectorSearch},
        },
    },
};

pub struct IngestService {
    store: Arc<dyn DocumentStore>,
    index: Arc<dyn VectorSearch>,
    pub(super) settings: RagSettings,
    /// Tells the worker a document was queued (it also polls, for other processes' uploads).
    queued: Arc<Notify>,
    collections: tokio::sync::Mutex<()>,
    /// Fetches documents added by address.
    fetcher: super::fetch::Fetcher,
}

/// What can go wrong with documents; mapped to the contract's [`ApiError`] once, below.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The upload, its metadata or one of its files breaks a rule: the field and why.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A file over the size limit.
    #[error("{file_name} is {:.1} MB; the limit is {:.0} MB", mb(*size), mb(*limit))]
    TooLarge {
        file_name: String,
        size: usize,
        limit: usize,
    },
    #[error("document not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

impl IngestError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            e => Self::Store(e),
        }
    }
}

/// The contract's own checks (metadata) name their field already.
impl From<ApiError> for IngestError {
    fn from(e: ApiError) -> Self {
        Self::invalid(e.field.unwrap_or_else(|| "metadata".into()), e.message)
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::Invalid { field, message } => ApiError::invalid(field, message),
            IngestError::TooLarge { .. } => {
                ApiError::new(ErrorCode::PayloadTooLarge, message).with_field("file")
            }
            IngestError::NotFound => ApiError::not_found("document"),
            IngestError::Store(e) => {
                tracing::error!(error = %e, "document storage failed");
                ApiError::internal()
            }
        }
    }
}

fn view(d: DocumentRecord, collections: &[CollectionView]) -> DocumentView {
    DocumentView {
        collection: d
            .collection_id
            .as_ref()
            .and_then(|id| collections.iter().find(|c| &c.id == id))
            .map(|c| c.name.clone()),
        id: d.id,
        title: d.title,
        file_name: d.file_name,
        media_type: d.media_type,
        source: d.source,
        tags: d.tags,
        status: d.status,
        progress_done: d.progress_done,
        progress_total: d.progress_total,
        error: d.error,
        chunk_count: d.chunk_count,
        size_bytes: d.size_bytes,
        version: d.version,
        replaces: d.replaces,
        created_at: d.created_at,
    }
}

/// What became of one file (or address) of a request: its document, or why it was refused.
pub(super) fn outcome(file_name: String, result: Result<(DocumentView, bool), IngestError>) -> UploadOutcome {
    match result {
        Ok((document, duplicate)) => UploadOutcome {
            file_name,
            document: Some(document),
            duplicate,
            error: None,
        },
        Err(error) => UploadOutcome {
            file_name,
            document: None,
            duplicate: false,
            error: Some(error.into()),
        },
    }
}

impl IngestService {
    /// Starts the ingestion worker (which reads files through the sandboxed `stoa extract`)
    /// on `background`, which stops it at shutdown.
    pub fn start(
        store: Arc<dyn DocumentStore>,
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorSearch>,
        settings: RagSettings,
        background: &Background,
    ) -> Result<Arc<Self>, String> {
        let sandbox = super::sandbox::Sandbox::from_settings(&settings)?;
        let fetcher = super::fetch::Fetcher::from_settings(&settings)?;
        let queued = Arc::new(Notify::new());
        let service = Arc::new(Self {
            store: Arc::clone(&store),
            index: Arc::clone(&index),
            settings: settings.clone(),
            queued: Arc::clone(&queued),
            collections: tokio::sync::Mutex::new(()),
            fetcher,
        });
        background.run(
            "ingestion worker",
            super::worker::run(queued, store, embedder, index, settings, sandbox),
        );
        Ok(service)
    }

    /// Documents waiting or being processed, by any process (the ingestion backlog gauge).
    pub async fn backlog(&self) -> u64 {
        self.store.pending_documents().await.unwrap_or(0)
    }

    pub async fn collections(&self, owner: UserId) -> Result<Vec<CollectionView>, IngestError> {
        let records = self.store.list_collections(owner).await?;
        Ok(records
            .into_iter()
            .map(|c| CollectionView {
                id: c.id,
                name: c.name,
                document_count: c.document_count,
            })
            .collect())
    }

    pub async fn list(&self, owner: UserId) -> Result<Vec<DocumentView>, IngestError> {
        let collections = self.collections(owner).await?;
        let docs = self.store.list_documents(owner).await?;
        Ok(docs.into_iter().map(|d| view(d, &collections)).collect())
    }

    pub async fn get(&self, owner: UserId, id: &str) -> Result<DocumentView, IngestError> {
        let collections = self.collections(owner).await?;
        let d = self.store.get_document(owner, id).await?;
        Ok(view(d, &collections))
    }

    pub async fn delete(&self, owner: UserId, id: &str) -> Result<(), IngestError> {
        self.store.delete_document(owner, id).await?;
        self.index.forget_document(id).await;
        Ok(())
    }

    /// Drops documents already deleted from storage (with their user) from the index.
    pub async fn forget(&self, document_ids: &[String]) {
        for id in document_ids {
            self.index.forget_document(id).await;
        }
    }

    /// Stops an unfinished document at once (failed, "cancelled"); a finished one is
    /// returned as it is.
    pub async fn cancel(&self, owner: UserId, id: &str) -> Result<DocumentView, IngestError> {
        let collections = self.collections(owner).await?;
        let d = self.store.cancel_document(owner, id, now_ms()).await?;
        Ok(view(d, &collections))
    }

    /// Validates one uploaded file and queues it. Returns the document, and whether it
    /// was a duplicate of one already stored. A file with the name (and source) of one
    /// already stored but other content is its next version: it replaces that one when
    /// it is ready, and until then the earlier one answers.
    pub async fn submit(
        &self,
        owner: UserId,
        file_name: &str,
        bytes: Vec<u8>,
        metadata: &DocumentMetadata,
    ) -> Result<(DocumentView, bool), IngestError> {
        self.queue(owner, file_name, bytes, metadata, false).await
    }

    /// [`Self::submit`] for a file fetched from `metadata.source` when `fetched`: its
    /// earlier version is the one fetched from the same address.
    async fn queue(
        &self,
        owner: UserId,
        file_name: &str,
        bytes: Vec<u8>,
        metadata: &DocumentMetadata,
        fetched: bool,
    ) -> Result<(DocumentView, bool), IngestError> {
        let limit = self.settings.max_upload_bytes();
        if bytes.is_empty() {
            return Err(IngestError::invalid("file", format!("{file_name} is empty")));
        }
        if bytes.len() > limit {
            return Err(IngestError::TooLarge {
                file_name: file_name.to_owned(),
                size: bytes.len(),
                limit,
            });
        }
        let kind = Kind::detect(file_name, &bytes)
            .map_err(|m| IngestError::invalid("file", format!("{file_name}: {m}")))?;
        metadata.check()?;
        let collection_id = match &metadata.collection {
            Some(name) => {
                let _one_at_a_time = self.collections.lock().await;
                let id = uuid::Uuid::now_v7().to_string();
                Some(
                    self.store
                        .ensure_collection(owner, &id, name.trim(), now_ms())
                        .await?
                        .id,
                )
            }
            None => None,
        };
        let hash = format!("{:x}", Sha256::digest(&bytes));
        if let Some(existing) = self
            .store
            .find_duplicate(owner, &hash, collection_id.as_deref())
            .await?
        {
            return Ok((self.get(owner, &existing.id).await?, true));
        }
        let title = metadata
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| {
                file_name
                    .rsplit_once('.')
                    .map_or(file_name, |(stem, _)| stem)
                    .to_owned()
            });
        let previous = self
            .store
            .previous_version(
                owner,
                collection_id.as_deref(),
                file_name,
                metadata.source.as_deref(),
                fetched,
            )
            .await?;
        let record = self
            .store
            .insert_document(NewDocument {
                owner,
                id: uuid::Uuid::now_v7().to_string(),
                collection_id: collection_id.clone(),
                title,
                file_name: file_name.to_owned(),
                media_type: kind.media_type().to_owned(),
                source: metadata.source.clone(),
                tags: metadata.tags.clone(),
                content_hash: hash,
                size_bytes: bytes.len() as u64,
                upload: Some(bytes),
                version: previous.as_ref().map_or(1, |p| p.version + 1),
                replaces: previous.map(|p| p.id),
                now_ms: now_ms(),
            })
            .await?;
        self.queued.notify_one();
        Ok((self.get(owner, &record.id).await?, false))
    }

    /// Fetches a web page (or any file) by address and queues it like an upload: the
    /// address is its source unless the metadata names one, its name comes from the
    /// address's last path segment or, without an extension, from its media type.
    pub async fn submit_url(
        &self,
        owner: UserId,
        url: &str,
        metadata: &DocumentMetadata,
    ) -> Result<(DocumentView, bool), IngestError> {
        if !self.settings.fetch_by_address {
            return Err(IngestError::invalid(
                "url",
                "adding documents by address is turned off on this server (rag.fetch_by_address)",
            ));
        }
        let fetched = self
            .fetcher
            .fetch(url)
            .await
            .map_err(|m| IngestError::invalid("url", format!("{url}: {m}")))?;
        let file_name = file_name_for(&fetched.url, fetched.content_type.as_deref());
        let mut metadata = metadata.clone();
        // The address asked for, so that fetching it again finds this document even when
        // it redirects elsewhere.
        let by_address = metadata.source.is_none();
        metadata.source.get_or_insert_with(|| {
            url::Url::parse(url.trim()).map_or_else(|_| url.trim().to_owned(), String::from)
        });
        self.queue(owner, &file_name, fetched.bytes, &metadata, by_address)
            .await
    }

    /// A document by address, checked against the contract first; its outcome like one
    /// file of an upload (refusals of the address itself are the outcome's error).
    pub async fn add_url(&self, owner: UserId, request: AddUrl) -> Result<UploadOutcome, ApiError> {
        request.check()?;
        let metadata = request.metadata.clone().unwrap_or_default();
        let result = self.submit_url(owner, &request.url, &metadata).await;
        Ok(outcome(
            result
                .as_ref()
                .map_or_else(|_| request.url.clone(), |(d, _)| d.file_name.clone()),
            result,
        ))
    }

    /// Waits until the document is ready or failed (for tests and the API).
    pub async fn wait(&self, owner: UserId, id: &str, limit: Duration) -> Result<DocumentView, IngestError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let d = self.get(owner, id).await?;
            if d.status.is_final() || tokio::time::Instant::now() > deadline {
                return Ok(d);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A file name for a fetched address: its last path segment when that has an extension,
/// else the host (and segment) with the extension of the media type.
pub fn file_name_for(url: &url::Url, content_type: Option<&str>) -> String {
    let segment = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control() && *c != '/')
                .take(120)
                .collect::<String>()
        });
    if let Some(segment) = &segment
        && segment.contains('.')
    {
        return segment.clone();
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let ext = match media.as_str() {
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/markdown" => "md",
        "application/json" => "json",
        "text/csv" => "csv",
        _ => "html",
    };
    let stem = segment.unwrap_or_else(|| url.host_str().unwrap_or("page").to_owned());
    format!("{stem}.{ext}")
}
