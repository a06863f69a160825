//! Ingestion: validate each uploaded file on its own, store it as a queued document, and
//! process it in the background (extract → chunk → embed n/m → store → index) with its
//! progress in the database, so the UI can show it and chat stays responsive.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    chunk::{ChunkSizes, chunk},
    extract::{Kind, extract},
};
use crate::{
    api::{
        ApiError, ErrorCode,
        documents::{CollectionView, DocumentMetadata, DocumentStatus, DocumentView},
    },
    server::{
        auth::UserId,
        chat::now_ms,
        config::RagSettings,
        embed::Embedder,
        storage::{
            DocumentStore, StoreError,
            documents::{ChunkVector, DocumentRecord, NewChunk, NewDocument, VectorSearch},
        },
    },
};

/// Chunks embedded per step (and per progress update).
const EMBED_STEP: usize = 16;
/// Documents that may wait for processing.
const QUEUE: usize = 256;

struct Job {
    owner: UserId,
    document_id: String,
    collection_id: Option<String>,
    kind: Kind,
    bytes: Vec<u8>,
}

pub struct IngestService {
    store: Arc<dyn DocumentStore>,
    index: Arc<dyn VectorSearch>,
    pub(super) settings: RagSettings,
    jobs: mpsc::Sender<Job>,
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
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let service = Arc::new(Self {
            store: Arc::clone(&store),
            index: Arc::clone(&index),
            settings: settings.clone(),
            jobs,
            collections: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(worker(receiver, store, embedder, index, settings));
        service
    }

    /// Documents queued and not yet started (the ingestion backlog gauge).
    pub fn backlog(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
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
                now_ms: now_ms(),
            })
            .await
            .map_err(internal)?;
        let job = Job {
            owner,
            document_id: record.id.clone(),
            collection_id,
            kind,
            bytes,
        };
        if self.jobs.try_send(job).is_err() {
            let reason = "too many documents are waiting to be processed; try again later";
            let _ = self
                .store
                .set_document_progress(&record.id, DocumentStatus::Failed, 0, 0, Some(reason), now_ms())
                .await;
            return Err(ApiError::new(ErrorCode::Busy, reason));
        }
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

/// Processes queued documents one at a time.
async fn worker(
    mut jobs: mpsc::Receiver<Job>,
    store: Arc<dyn DocumentStore>,
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorSearch>,
    settings: RagSettings,
) {
    while let Some(job) = jobs.recv().await {
        let id = job.document_id.clone();
        let started = std::time::Instant::now();
        match process(job, &store, &embedder, &index, &settings).await {
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
    job: Job,
    store: &Arc<dyn DocumentStore>,
    embedder: &Arc<dyn Embedder>,
    index: &Arc<dyn VectorSearch>,
    settings: &RagSettings,
) -> Result<usize, String> {
    let id = job.document_id;
    let owner = job.owner.get();
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
    let (kind, bytes) = (job.kind, job.bytes);
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
