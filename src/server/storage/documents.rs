//! Documents, their chunks (text, position, embedding) and collections: the storage side
//! of ingestion and retrieval, behind [`DocumentStore`] so PostgreSQL can implement it.

use async_trait::async_trait;

use super::StoreError;
use crate::{
    api::documents::{DocumentFilter, DocumentStatus},
    server::auth::UserId,
};

#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRecord {
    pub id: String,
    pub name: String,
    pub document_count: u32,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    pub id: String,
    pub collection_id: Option<String>,
    pub title: String,
    pub file_name: String,
    pub media_type: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub content_hash: String,
    pub size_bytes: u64,
    pub status: DocumentStatus,
    pub progress_done: u32,
    pub progress_total: u32,
    pub error: Option<String>,
    pub chunk_count: u32,
    /// 1 for a first upload; one more for each upload that replaced the one before.
    pub version: u32,
    /// The document this one replaces once it is ready.
    pub replaces: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub owner: UserId,
    /// The uploaded file, kept with the document until it has been processed (`None`: a
    /// document that needs no processing).
    pub upload: Option<Vec<u8>>,
    pub id: String,
    pub collection_id: Option<String>,
    pub title: String,
    pub file_name: String,
    pub media_type: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub content_hash: String,
    pub size_bytes: u64,
    /// The earlier version this one replaces once it is ready, and its own number.
    pub replaces: Option<String>,
    pub version: u32,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub position: u32,
    pub heading: Option<String>,
    pub content: String,
    pub start: u64,
    pub end: u64,
    pub tokens: u32,
    pub embedding: Vec<f32>,
}

/// A chunk with the document it belongs to, as retrieval returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkHit {
    pub id: i64,
    pub document_id: String,
    pub document_title: String,
    pub position: u32,
    pub heading: Option<String>,
    pub content: String,
}

/// Which of an owner's ready documents a search looks in: every part given narrows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scope<'a> {
    /// Only documents in these collections (ids).
    pub collections: Option<&'a [String]>,
    /// Only these documents (ids).
    pub documents: Option<&'a [String]>,
}

impl Scope<'_> {
    /// All of the owner's documents.
    pub const ALL: Scope<'static> = Scope {
        collections: None,
        documents: None,
    };

    pub fn collections(ids: &[String]) -> Scope<'_> {
        Scope {
            collections: Some(ids),
            documents: None,
        }
    }
}

/// What [`DocumentStore::store_chunks`] stored: the chunk ids in order, and the earlier
/// version it removed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunks {
    pub ids: Vec<i64>,
    pub replaced: Option<String>,
}

/// Why a cancelled document stopped (its `error`).
pub const CANCELLED: &str = "cancelled";

/// A chunk's vector, to build the in-memory index.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkVector {
    pub chunk_id: i64,
    /// The id of the user whose document it is.
    pub owner: i64,
    pub document_id: String,
    pub collection_id: Option<String>,
    pub vector: Vec<f32>,
}

/// Methods taking an `owner` see only that user's documents and collections.
/// A document a worker took for processing, with its uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDocument {
    pub id: String,
    pub owner: i64,
    pub collection_id: Option<String>,
    pub file_name: String,
    pub upload: Vec<u8>,
    /// How many times a worker took it (more than one: a worker died on it before).
    pub attempts: u32,
}

#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// Creates a collection of `owner`, or returns theirs of that name.
    async fn ensure_collection(
        &self,
        owner: UserId,
        id: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<CollectionRecord, StoreError>;

    async fn list_collections(&self, owner: UserId) -> Result<Vec<CollectionRecord>, StoreError>;

    /// The document with this content in this collection, if it was uploaded before.
    async fn find_duplicate(
        &self,
        owner: UserId,
        content_hash: &str,
        collection_id: Option<&str>,
    ) -> Result<Option<DocumentRecord>, StoreError>;

    /// The newest document of `owner` in this collection that a new upload of this file
    /// replaces: the one fetched from the same address when `source` is one fetched,
    /// else the one with the same file name and source; failed ones aside.
    async fn previous_version(
        &self,
        owner: UserId,
        collection_id: Option<&str>,
        file_name: &str,
        source: Option<&str>,
        by_source: bool,
    ) -> Result<Option<DocumentRecord>, StoreError>;

    /// Stores a document in status `queued`.
    async fn insert_document(&self, document: NewDocument) -> Result<DocumentRecord, StoreError>;

    async fn get_document(&self, owner: UserId, id: &str) -> Result<DocumentRecord, StoreError>;

    /// Newest first.
    async fn list_documents(&self, owner: UserId) -> Result<Vec<DocumentRecord>, StoreError>;

    /// Records a document's progress while it is unfinished; false when it is not (it
    /// was cancelled, deleted or finished meanwhile: the worker stops).
    async fn set_document_progress(
        &self,
        id: &str,
        status: DocumentStatus,
        done: u32,
        total: u32,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Stores every chunk and marks the document `ready`, and removes the version it
    /// replaces with its chunks, in one transaction. Not found when the document was
    /// deleted or cancelled meanwhile.
    async fn store_chunks(
        &self,
        document_id: &str,
        chunks: Vec<NewChunk>,
        now_ms: i64,
    ) -> Result<StoredChunks, StoreError>;

    /// Stops an unfinished document: failed with the reason "cancelled", its upload
    /// dropped; a worker reading it stops at its next step. A finished one is left as is.
    async fn cancel_document(
        &self,
        owner: UserId,
        id: &str,
        now_ms: i64,
    ) -> Result<DocumentRecord, StoreError>;

    /// Removes the document, its chunks, vectors and index entries.
    async fn delete_document(&self, owner: UserId, id: &str) -> Result<(), StoreError>;

    /// Vectors of every chunk of ready documents (of every user: the index filters).
    async fn chunk_vectors(&self) -> Result<Vec<ChunkVector>, StoreError>;

    /// Chunk ids matching `query` by BM25 (best first), within `scope`.
    async fn keyword_search(
        &self,
        owner: UserId,
        query: &str,
        scope: Scope<'_>,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError>;

    /// Chunks by id, with their documents, in the order asked.
    async fn get_chunks(&self, ids: &[i64]) -> Result<Vec<ChunkHit>, StoreError>;

    /// Whether any ready document is in `scope`.
    async fn has_documents(&self, owner: UserId, scope: Scope<'_>) -> Result<bool, StoreError>;

    /// Ids of `owner`'s ready documents that pass `filter` (tags, source, dates; the
    /// collections and documents it names), oldest first.
    async fn filtered_documents(
        &self,
        owner: UserId,
        filter: &DocumentFilter,
    ) -> Result<Vec<String>, StoreError>;

    async fn conversation_collections(&self, conversation_id: &str) -> Result<Vec<String>, StoreError>;

    async fn set_conversation_collections(
        &self,
        conversation_id: &str,
        collection_ids: &[String],
    ) -> Result<(), StoreError>;

    /// Documents left unfinished by a stopped server are marked failed (their upload is
    /// not kept); returns how many.
    async fn fail_unfinished_documents(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// Takes the oldest document waiting to be processed, or one whose lease ran out (the
    /// process that held it died): marks it `extracting`, leased until `lease_until_ms`, one
    /// attempt more. Two workers (of any process) never take the same document.
    async fn claim_document(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<ClaimedDocument>, StoreError>;

    /// Extends the lease on a document being processed; false when it is no longer held
    /// (finished, deleted, or taken over after the lease ran out).
    async fn renew_lease(&self, id: &str, lease_until_ms: i64) -> Result<bool, StoreError>;

    /// Documents waiting to be processed or being processed (the ingestion backlog).
    async fn pending_documents(&self) -> Result<u64, StoreError>;
}

/// Nearest-neighbour search over the chunks' unit vectors. The embedded default keeps them
/// in memory (`rag::index::VectorIndex`, exact); PostgreSQL searches its pgvector column
/// (HNSW), so every replica sees every other one's documents at once.
#[async_trait]
pub trait VectorSearch: Send + Sync + 'static {
    /// Makes the vectors of chunks just stored searchable.
    async fn add_vectors(&self, vectors: Vec<ChunkVector>);

    /// Forgets a deleted document's vectors.
    async fn forget_document(&self, document_id: &str);

    /// The `k` chunks of `owner`'s ready documents most similar to `query` (cosine),
    /// best first, within `scope`.
    async fn nearest(
        &self,
        owner: UserId,
        query: &[f32],
        scope: Scope<'_>,
        k: usize,
    ) -> Result<Vec<(i64, f32)>, StoreError>;

    /// Similarity of `query` to particular chunks, in their order (`None`: no such chunk).
    async fn similarities(&self, query: &[f32], chunk_ids: &[i64]) -> Result<Vec<Option<f32>>, StoreError>;
}
