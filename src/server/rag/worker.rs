//! The ingestion worker. The queue is the database: the worker claims the oldest waiting
//! document under a lease it renews while it works (extract → chunk → embed n/m → store →
//! index, with its progress in the database). Workers of several processes on one
//! database share the queue, and a document whose worker died (its lease ran out) is taken
//! over and finished; one that keeps killing its worker is given up.

use std::{
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::Notify;

use super::{
    chunk::{Chunk, ChunkSizes, chunk_each},
    extract::Kind,
    sandbox::Sandbox,
};
use crate::{
    api::documents::DocumentStatus,
    server::{
        clock::now_ms,
        config::RagSettings,
        embed::Embedder,
        storage::{
            DocumentStore, StoreError,
            documents::{ChunkVector, ClaimedDocument, NewChunk, VectorSearch},
        },
    },
};

/// Chunks embedded per step (and per progress update).
const EMBED_STEP: usize = 16;
/// How long a claimed document stays its worker's without a sign of life; the worker
/// renews it every [`CANCEL_CHECK`].
const LEASE: Duration = Duration::from_secs(30);
/// How often a working worker renews its lease, and so how soon it sees a cancel.
const CANCEL_CHECK: Duration = Duration::from_secs(1);
/// How often an idle worker looks for documents another process queued.
const POLL: Duration = Duration::from_secs(2);
/// Times a document may be taken before it is given up (a file that kills its worker).
const MAX_ATTEMPTS: u32 = 3;

/// Processes queued documents one at a time: claims the oldest (or one whose worker
/// died), keeps its lease alive while working on it, records the outcome.
pub(super) async fn run(
    queued: Arc<Notify>,
    store: Arc<dyn DocumentStore>,
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorSearch>,
    settings: RagSettings,
    sandbox: Sandbox,
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
        let Some(mut doc) = claimed else {
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
        let started = std::time::Instant::now();
        // Reading and embedding stop as soon as the document is cancelled or deleted (its
        // lease can no longer be renewed), which also kills the extraction process.
        let prepared = tokio::select! {
            prepared = prepare(&mut doc, &store, &embedder, &settings, &sandbox) => Some(prepared),
            () = keep_lease(&store, &id, lease_ms) => None,
        };
        let outcome = match prepared {
            None => Err(Stop::Cancelled),
            Some(Err(stop)) => Err(stop),
            Some(Ok((chunks, vectors))) => {
                save(
                    &id,
                    doc.owner,
                    doc.collection_id.clone(),
                    chunks,
                    vectors,
                    &store,
                    &index,
                )
                .await
            }
        };
        match outcome {
            Ok(0) | Err(Stop::Cancelled) => {
                tracing::info!(document_id = %id, "document cancelled or deleted while it was processed; stopped")
            }
            Ok(chunks) => tracing::info!(
                document_id = %id,
                chunks,
                ms = started.elapsed().as_millis() as u64,
                "document ready"
            ),
            Err(Stop::Failed(reason)) => {
                tracing::warn!(document_id = %id, %reason, "document failed");
                let _ = store
                    .set_document_progress(&id, DocumentStatus::Failed, 0, 0, Some(&reason), now_ms())
                    .await;
            }
        }
    }
}

/// Why processing stopped before the document was ready.
enum Stop {
    /// The file could not be read or embedded (the document's error).
    Failed(String),
    /// The document was cancelled or deleted meanwhile.
    Cancelled,
}

impl From<String> for Stop {
    fn from(reason: String) -> Self {
        Stop::Failed(reason)
    }
}

/// Renews the document's lease while its worker is at it, and returns when it cannot:
/// the document was cancelled, deleted or taken over. Checks every second, so a cancel
/// stops the work at once; a database hiccup only logs.
async fn keep_lease(store: &Arc<dyn DocumentStore>, id: &str, lease_ms: i64) {
    loop {
        tokio::time::sleep(CANCEL_CHECK).await;
        match store.renew_lease(id, now_ms() + lease_ms).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(document_id = %id, error = %e, "lease not renewed"),
        }
    }
}

/// The document's chunks and their vectors, with its progress recorded on the way.
async fn prepare(
    job: &mut ClaimedDocument,
    store: &Arc<dyn DocumentStore>,
    embedder: &Arc<dyn Embedder>,
    settings: &RagSettings,
    sandbox: &Sandbox,
) -> Result<(Vec<Chunk>, Vec<Vec<f32>>), Stop> {
    let progress = |status, done, total| {
        let store = Arc::clone(store);
        let id = job.id.clone();
        async move {
            match store
                .set_document_progress(&id, status, done, total, None, now_ms())
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(Stop::Cancelled),
                Err(e) => Err(Stop::Failed(e.to_string())),
            }
        }
    };
    progress(DocumentStatus::Extracting, 0, 0).await?;
    // Pages read by OCR, recorded as they come (the newest report wins).
    let (pages_tx, mut pages_rx) = tokio::sync::watch::channel((0u32, 0u32));
    let report = move |done, total| {
        let _ = pages_tx.send((done, total));
    };
    let reading = read_text(&job.file_name, std::mem::take(&mut job.upload), sandbox, &report);
    let recording = async {
        while pages_rx.changed().await.is_ok() {
            let (done, total) = *pages_rx.borrow_and_update();
            progress(DocumentStatus::Extracting, done, total).await?;
        }
        std::future::pending::<Result<(), Stop>>().await
    };
    tokio::pin!(reading, recording);
    let text = loop {
        tokio::select! {
            text = &mut reading => break text?,
            recorded = &mut recording => recorded?,
        }
    };
    // The text is split on a blocking thread while the chunks it has made are embedded;
    // dropping this future (a cancel, a delete, shutdown) closes the channel, and the
    // splitting stops at its next chunk.
    let text_bytes = text.len();
    let reached = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let splitting = {
        let counter = Arc::clone(embedder);
        let sizes = ChunkSizes {
            size: settings.chunk_tokens as usize,
            overlap: settings.chunk_overlap as usize,
            limit: embedder.max_tokens(),
        };
        let reached = Arc::clone(&reached);
        tokio::task::spawn_blocking(move || {
            chunk_each(&text, sizes, &|s| counter.count_tokens(s), &mut |c, at| {
                reached.store(at, Ordering::Relaxed);
                match tx.send(c) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            })
        })
    };
    // Until the text is all split, the total is the chunks made so far (embedded, being
    // embedded and waiting) projected over the rest of the text.
    let total = |made: usize, splitting: &tokio::task::JoinHandle<()>| {
        let reached = reached.load(Ordering::Relaxed).max(1);
        if splitting.is_finished() || reached >= text_bytes {
            made as u32
        } else {
            (made * text_bytes / reached).max(made) as u32
        }
    };
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut vectors = Vec::new();
    let mut step = Vec::with_capacity(EMBED_STEP);
    while rx.recv_many(&mut step, EMBED_STEP).await > 0 {
        if chunks.is_empty() {
            let made = step.len() + rx.len();
            progress(DocumentStatus::Embedding, 0, total(made, &splitting)).await?;
        }
        let texts = step
            .iter()
            .map(|c: &Chunk| embedder.truncate(&c.embedding_text()))
            .collect();
        let embedded = embedder
            .embed_background(texts)
            .await
            .map_err(|e| e.to_string())?;
        vectors.extend(embedded.vectors);
        chunks.append(&mut step);
        let made = chunks.len() + rx.len();
        progress(
            DocumentStatus::Embedding,
            vectors.len() as u32,
            total(made, &splitting),
        )
        .await?;
    }
    splitting
        .await
        .map_err(|e| format!("the text could not be split: {e}"))?;
    if chunks.is_empty() {
        return Err(Stop::Failed("no text could be extracted from the file".into()));
    }
    Ok((chunks, vectors))
}

/// The file's text, read in a child process with its own limits (this process never
/// parses the file; `pages` hears how OCR goes).
async fn read_text(
    file_name: &str,
    upload: Vec<u8>,
    sandbox: &Sandbox,
    pages: &(dyn Fn(u32, u32) + Send + Sync),
) -> Result<String, String> {
    let kind = Kind::detect(file_name, &upload)?;
    Ok(sandbox.extract(kind, upload, pages).await?.text)
}

/// Stores the chunks with their vectors and adds the vectors to the index (dropping the
/// version it replaced); the number stored (0 when the document was deleted or
/// cancelled meanwhile).
async fn save(
    id: &str,
    owner: i64,
    collection_id: Option<String>,
    chunks: Vec<Chunk>,
    vectors: Vec<Vec<f32>>,
    store: &Arc<dyn DocumentStore>,
    index: &Arc<dyn VectorSearch>,
) -> Result<usize, Stop> {
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
    let stored = match store.store_chunks(id, new_chunks, now_ms()).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Ok(0), // deleted or cancelled meanwhile
        Err(e) => return Err(Stop::Failed(e.to_string())),
    };
    if let Some(old) = &stored.replaced {
        index.forget_document(old).await;
        tracing::info!(document_id = %id, replaced = %old, "new version ready; the one before is removed");
    }
    let ids = stored.ids;
    let n = ids.len();
    let vectors = ids
        .into_iter()
        .zip(for_index)
        .map(|(chunk_id, vector)| ChunkVector {
            chunk_id,
            owner,
            document_id: id.to_owned(),
            collection_id: collection_id.clone(),
            vector,
        })
        .collect();
    index.add_vectors(vectors).await;
    Ok(n)
}
