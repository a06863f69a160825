//! Ingestion: validate each uploaded file on its own, store it (with the file) as a queued
//! document, and process it in the background (extract → chunk → embed n/m → store → index)
//! with its progress in the database, so the UI can show it and chat stays responsive.
//!
//! The queue is the database: a worker claims the oldest waiting document under a lease it
//! renews while it works. Workers of several processes on one database share the queue,
//! and a document whose worker died (its lease ran out) is taken over and finished.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::{
    chunk::{ChunkSizes, chunk},
    extract::{Kind, extract},
};
use crate::{
    api::{
        ApiError,
        documents::{CollectionView, DocumentMetadata, DocumentStatus, DocumentView},
    },
    server::{
        auth::UserId,
        chat::now_ms,
        config::RagSettings,
        embed::Embedder,
        storage::{
            DocumentStore, StoreError,
            documents::{ChunkVector, ClaimedDocument, DocumentRecord, NewChunk, NewDocument, VectorSearch},
        },
    },
};

/// Chunks embedded per step (and per progress update).
const EMBED_STEP: usize = 16;
/// How long a claimed document stays its worker's without a sign of life; the worker
/// renews it every third of that.
const LEASE: Duration = Duration::from_secs(30);
/// How often an idle worker looks for documents another process queued.
const POLL: Duration = Duration::from_secs(2);
/// Times a document may be taken before it is given up (a file that kills its worker).
const MAX_ATTEMPTS: u32 = 3;

pub struct IngestService {
    store: Arc<dyn DocumentStore>,
    index: Arc<dyn VectorSearch>,
    pub(super) settings: RagSettings,
    /// Tells the worker a document was queued (it also polls, for other processes' uploads).
    queued: Arc<Notify>,
    collections: tokio::sync::Mutex<()>,
}

fn internal(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("document"),
        other => {
            tracing::error!(error = %other, "document storage failed");
            ApiError::internal()
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
        created_at: d.created_at,
    }
}

impl IngestService {
    /// Starts the background worker.
    pub fn start(
        store: Arc<dyn DocumentStore>,
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorSearch>,
        settings: RagSettings,
    ) -> Arc<Self> {
        let queued = Arc::new(Notify::new());
        let service = Arc::new(Self {
            store: Arc::clone(&store),
            index: Arc::clone(&index),
            settings: settings.clone(),
            queued: Arc::clone(&queued),
            collections: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(worker(queued, store, embedder, index, settings));
        service
    }

    /// Documents waiting or being processed, by any process (the ingestion backlog gauge).
    pub async fn backlog(&self) -> u64 {
        self.store.pending_documents().await.unwrap_or(0)
    }

    pub async fn collections(&self, owner: UserId) -> Result<Vec<CollectionView>, ApiError> {
        let records = self.store.list_collections(owner).await.map_err(internal)?;
        Ok(records
            .into_iter()
            .map(|c| CollectionView {
                id: c.id,
                name: c.name,
                document_count: c.document_count,
            })
            .collect())
    }

    pub async fn list(&self, owner: UserId) -> Result<Vec<DocumentView>, ApiError> {
        let collections = self.collections(owner).await?;
        let docs = self.store.list_documents(owner).await.map_err(internal)?;
        Ok(docs.into_iter().map(|d| view(d, &collections)).collect())
    }

    pub async fn get(&self, owner: UserId, id: &str) -> Result<DocumentView, ApiError> {
        let collections = self.collections(owner).await?;
        let d = self.store.get_document(owner, id).await.map_err(internal)?;
        Ok(view(d, &collections))
    }

    pub async fn delete(&self, owner: UserId, id: &str) -> Result<(), ApiError> {
        self.store.delete_document(owner, id).await.map_err(internal)?;
        self.index.forget_document(id).await;
        Ok(())
    }

    /// Drops documents already deleted from storage (with their user) from the index.
    pub async fn forget(&self, document_ids: &[String]) {
        for id in document_ids {
            self.index.forget_document(id).await;
        }
    }

    /// Validates one file and queues it. Returns the document, and whether it was a
    /// duplicate of one already stored.
    pub async fn submit(
        &self,
        owner: UserId,
        file_name: &str,
        bytes: Vec<u8>,
        metadata: &DocumentMetadata,
    ) -> Result<(DocumentView, bool), ApiError> {
        let limit = self.settings.max_upload_bytes();
        if bytes.is_empty() {
            return Err(ApiError::invalid("file", format!("{file_name} is empty")));
        }
        if bytes.len() > limit {
            return Err(super::upload::too_large(file_name, bytes.len(), limit));
        }
        let kind = Kind::detect(file_name, &bytes)
            .map_err(|m| ApiError::invalid("file", format!("{file_name}: {m}")))?;
        metadata.check()?;
        let collection_id = match &metadata.collection {
            Some(name) => {
                let _one_at_a_time = self.collections.lock().await;
                let id = uuid::Uuid::now_v7().to_string();
                Some(
                    self.store
                        .ensure_collection(owner, &id, name.trim(), now_ms())
                        .await
                        .map_err(internal)?
                        .id,
                )
            }
            None => None,
        };
        let hash = format!("{:x}", Sha256::digest(&bytes));
        if let Some(existing) = self
            .store
            .find_duplicate(owner, &hash, collection_id.as_deref())
            .await
            .map_err(internal)?
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
                now_ms: now_ms(),
            })
            .await
            .map_err(internal)?;
        self.queued.notify_one();
        Ok((self.get(owner, &record.id).await?, false))
    }

    /// Waits until the document is ready or failed (for tests and the API).
    pub async fn wait(&self, owner: UserId, id: &str, limit: Duration) -> Result<DocumentView, ApiError> {
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

/// Processes queued documents one at a time: claims the oldest (or one whose worker
/// died), keeps its lease alive while working on it, records the outcome.
async fn worker(
    queued: Arc<Notify>,
    store: Arc<dyn DocumentStore>,
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorSearch>,
    settings: RagSettings,
) {
    let lease_ms = LEASE.as_millis() as i64;
    loop {
        let now = now_ms();
        let claimed = match store.claim_document(now, now + lease_ms).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "cannot take a document to process");
                None
            }
        };
        let Some(doc) = claimed else {
            let _ = tokio::time::timeout(POLL, queued.notified()).await;
            continue;
        };
        let id = doc.id.clone();
        if doc.attempts > MAX_ATTEMPTS {
            let reason = format!(
                "processing stopped {} times on this file; upload it again",
                doc.attempts - 1
            );
            tracing::warn!(document_id = %id, %reason, "document given up");
            let _ = store
                .set_document_progress(&id, DocumentStatus::Failed, 0, 0, Some(&reason), now_ms())
                .await;
            continue;
        }
        if doc.attempts > 1 {
            tracing::warn!(document_id = %id, attempt = doc.attempts, "taking over a document whose worker stopped");
        }
        let renewal = {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    match store.renew_lease(&id, now_ms() + lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => tracing::warn!(document_id = %id, error = %e, "lease not renewed"),
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let outcome = process(doc, &store, &embedder, &index, &settings).await;
        renewal.abort();
        match outcome {
            Ok(chunks) => tracing::info!(
                document_id = %id,
                chunks,
                ms = started.elapsed().as_millis() as u64,
                "document ready"
            ),
            Err(reason) => {
                tracing::warn!(document_id = %id, %reason, "document failed");
                let _ = store
                    .set_document_progress(&id, DocumentStatus::Failed, 0, 0, Some(&reason), now_ms())
                    .await;
            }
        }
    }
}

async fn process(
    job: ClaimedDocument,
    store: &Arc<dyn DocumentStore>,
    embedder: &Arc<dyn Embedder>,
    index: &Arc<dyn VectorSearch>,
    settings: &RagSettings,
) -> Result<usize, String> {
    let id = job.id;
    let owner = job.owner;
    let progress = |status, done, total| {
        let store = Arc::clone(store);
        let id = id.clone();
        async move {
            store
                .set_document_progress(&id, status, done, total, None, now_ms())
                .await
                .map_err(|e| e.to_string())
        }
    };
    progress(DocumentStatus::Extracting, 0, 0).await?;
    let counter = Arc::clone(embedder);
    let sizes = ChunkSizes {
        size: settings.chunk_tokens as usize,
        overlap: settings.chunk_overlap as usize,
        limit: embedder.max_tokens(),
    };
    let kind = Kind::detect(&job.file_name, &job.upload)?;
    let bytes = job.upload;
    let chunks = tokio::task::spawn_blocking(move || {
        let extracted = extract(kind, &bytes)?;
        Ok::<_, String>(chunk(&extracted.text, sizes, &|s| counter.count_tokens(s)))
    })
    .await
    .map_err(|e| format!("extraction crashed: {e}"))??;
    if chunks.is_empty() {
        return Err("no text could be extracted from the file".into());
    }
    let total = chunks.len() as u32;
    progress(DocumentStatus::Embedding, 0, total).await?;
    let mut vectors = Vec::with_capacity(chunks.len());
    for step in chunks.chunks(EMBED_STEP) {
        let texts = step
            .iter()
            .map(|c| embedder.truncate(&c.embedding_text()))
            .collect();
        let embedded = embedder.embed(texts).await.map_err(|e| e.to_string())?;
        vectors.extend(embedded.vectors);
        progress(DocumentStatus::Embedding, vectors.len() as u32, total).await?;
    }
    let new_chunks: Vec<NewChunk> = chunks
        .into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (c, embedding))| NewChunk {
            position: i as u32,
            tokens: c.tokens as u32,
            heading: c.heading,
            content: c.content,
            start: c.start as u64,
            end: c.end as u64,
            embedding,
        })
        .collect();
    let for_index: Vec<Vec<f32>> = new_chunks.iter().map(|c| c.embedding.clone()).collect();
    let ids = match store.store_chunks(&id, new_chunks, now_ms()).await {
        Ok(ids) => ids,
        Err(StoreError::NotFound) => return Ok(0), // deleted meanwhile
        Err(e) => return Err(e.to_string()),
    };
    let n = ids.len();
    index
        .add_vectors(
            ids.into_iter()
                .zip(for_index)
                .map(|(chunk_id, vector)| ChunkVector {
                    chunk_id,
                    owner,
                    document_id: id.clone(),
                    collection_id: job.collection_id.clone(),
                    vector,
                })
                .collect(),
        )
        .await;
    Ok(n)
}
