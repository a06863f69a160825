//! PostgreSQL implementation of [`DocumentStore`]: chunks in a table with their embeddings
//! (pgvector, exchanged as text `[x,y,…]`), keyword search through the generated `tsvector`
//! column `chunks.search`.

use super::rows::{
    CLAIMED_COLUMNS, DOCUMENT_COLUMNS, HELD, claimable, claimed_from_row, collection_from_row,
    document_from_row, keyword_terms,
};
use async_trait::async_trait;
use sqlx::Row;

use super::{
    StoreError,
    documents::{
        ChunkHit, ChunkVector, ClaimedDocument, CollectionRecord, DocumentRecord, DocumentStore, NewChunk,
        NewDocument, VectorSearch,
    },
    postgres::{PgStore, affected},
};
use crate::{api::documents::DocumentStatus, server::auth::UserId};

/// A collection with the number of its documents (column `n`).
const COLLECTION_COLUMNS: &str =
    "c.id, c.name, c.created_at, (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS n";

/// Whether a document `d` is in scope: `$n` is the collections to search, or NULL for all.
fn in_collections(n: u8) -> String {
    format!("(${n}::text[] IS NULL OR d.collection_id = ANY(${n}))")
}

/// A vector as pgvector's text form, `[0.5,-1.25]` (shortest exact decimals).
pub(super) fn to_text(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(f32::to_string).collect();
    format!("[{}]", items.join(","))
}

fn from_text(text: &str) -> Result<Vec<f32>, StoreError> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| StoreError::Corrupt(format!("vector {text}")))?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("vector: {e}")))
        })
        .collect()
}

/// The words of `query` as a `tsquery` that cannot be a syntax error (words are letters and
/// digits only): any of them may match (chunks with more of them rank higher).
fn ts_query(query: &str) -> Option<String> {
    let terms = keyword_terms(query);
    (!terms.is_empty()).then(|| terms.join(" | "))
}

/// Chunks in the database below which vector search is exact (see `PgStore::exact_below`):
/// a scan of 20,000 vectors of 384 dimensions takes a few milliseconds.
pub(super) const EXACT_BELOW: u64 = 20_000;

#[async_trait]
impl DocumentStore for PgStore {
    async fn ensure_collection(
        &self,
        owner: UserId,
        id: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<CollectionRecord, StoreError> {
        // ON CONFLICT waits for a concurrent insert of the same name, and the SELECT (a new
        // snapshot) then sees it: no race between two first uses of a name.
        sqlx::query(
            "INSERT INTO collections (id, user_id, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, name) DO NOTHING",
        )
        .bind(id)
        .bind(owner.get())
        .bind(name)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        let sql =
            format!("SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.user_id = $1 AND c.name = $2");
        let row = sqlx::query(&sql)
            .bind(owner.get())
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        collection_from_row(&row)
    }

    async fn list_collections(&self, owner: UserId) -> Result<Vec<CollectionRecord>, StoreError> {
        let sql =
            format!("SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.user_id = $1 ORDER BY c.name");
        let rows = sqlx::query(&sql).bind(owner.get()).fetch_all(self.pool()).await?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn find_duplicate(
        &self,
        owner: UserId,
        content_hash: &str,
        collection_id: Option<&str>,
    ) -> Result<Option<DocumentRecord>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE user_id = $1 AND content_hash = $2 \
             AND coalesce(collection_id, '') = coalesce($3, '') AND status != 'failed'"
        );
        let row = sqlx::query(&sql)
            .bind(owner.get())
            .bind(content_hash)
            .bind(collection_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn insert_document(&self, d: NewDocument) -> Result<DocumentRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        // A failed earlier upload of the same content gives way to the new one.
        sqlx::query(
            "DELETE FROM documents WHERE user_id = $1 AND content_hash = $2 \
             AND coalesce(collection_id, '') = coalesce($3, '') AND status = 'failed'",
        )
        .bind(d.owner.get())
        .bind(&d.content_hash)
        .bind(&d.collection_id)
        .execute(&mut *tx)
        .await?;
        let sql = format!(
            "INSERT INTO documents (id, user_id, collection_id, title, file_name, media_type, source, tags, \
             content_hash, size_bytes, status, created_at, updated_at, upload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, $11, $12) RETURNING {DOCUMENT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&d.id)
            .bind(d.owner.get())
            .bind(&d.collection_id)
            .bind(&d.title)
            .bind(&d.file_name)
            .bind(&d.media_type)
            .bind(&d.source)
            .bind(serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into()))
            .bind(&d.content_hash)
            .bind(d.size_bytes as i64)
            .bind(d.now_ms)
            .bind(&d.upload)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        document_from_row(&row)
    }

    async fn get_document(&self, owner: UserId, id: &str) -> Result<DocumentRecord, StoreError> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(owner.get())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        document_from_row(&row)
    }

    async fn list_documents(&self, owner: UserId) -> Result<Vec<DocumentRecord>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql).bind(owner.get()).fetch_all(self.pool()).await?;
        rows.iter().map(document_from_row).collect()
    }

    async fn set_document_progress(
        &self,
        id: &str,
        status: DocumentStatus,
        done: u32,
        total: u32,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE documents SET status = $1, progress_done = $2, progress_total = $3, error = $4, \
             updated_at = $5, upload = CASE WHEN $1 IN ('ready', 'failed') THEN NULL ELSE upload END WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(i64::from(done))
        .bind(i64::from(total))
        .bind(error)
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn store_chunks(
        &self,
        document_id: &str,
        chunks: Vec<NewChunk>,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut ids = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chunks (document_id, position, heading, content, char_start, char_end, token_count, \
                 embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::vector) RETURNING id",
            )
            .bind(document_id)
            .bind(i64::from(c.position))
            .bind(&c.heading)
            .bind(&c.content)
            .bind(c.start as i64)
            .bind(c.end as i64)
            .bind(i64::from(c.tokens))
            .bind(to_text(&c.embedding))
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        let n = chunks.len() as i64;
        let done = sqlx::query(
            "UPDATE documents SET status = 'ready', chunk_count = $1, progress_done = $1, progress_total = $1, \
             error = NULL, updated_at = $2, upload = NULL, lease_until = NULL WHERE id = $3 AND status <> 'ready'",
        )
        .bind(n)
        .bind(now_ms)
        .bind(document_id)
        .execute(&mut *tx)
        .await?;
        // Deleted while it was being embedded: keep nothing (the transaction rolls back).
        affected(done)?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn delete_document(&self, owner: UserId, id: &str) -> Result<(), StoreError> {
        // Its chunks, and with them their vectors and index entries, go by cascade.
        let done = sqlx::query("DELETE FROM documents WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(owner.get())
            .execute(self.pool())
            .await?;
        affected(done)
    }

    async fn chunk_vectors(&self) -> Result<Vec<ChunkVector>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.document_id, d.user_id, d.collection_id, c.embedding::text AS embedding FROM chunks c \
             JOIN documents d ON d.id = c.document_id WHERE d.status = 'ready'",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ChunkVector {
                    chunk_id: row.try_get("id")?,
                    owner: row.try_get("user_id")?,
                    document_id: row.try_get("document_id")?,
                    collection_id: row.try_get("collection_id")?,
                    vector: from_text(row.try_get("embedding")?)?,
                })
            })
            .collect()
    }

    async fn keyword_search(
        &self,
        owner: UserId,
        query: &str,
        collections: Option<&[String]>,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let Some(expression) = ts_query(query) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id, \
             to_tsquery('stoa_english', $1) q \
             WHERE c.search @@ q AND d.status = 'ready' AND d.user_id = $2 AND {} \
             ORDER BY ts_rank(c.search, q, 1) DESC, c.id LIMIT $4",
            in_collections(3)
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(expression)
            .bind(owner.get())
            .bind(collections)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?)
    }

    async fn get_chunks(&self, ids: &[i64]) -> Result<Vec<ChunkHit>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT c.id, c.document_id, d.title, c.position, c.heading, c.content FROM chunks c \
             JOIN documents d ON d.id = c.document_id WHERE c.id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        let mut hits: Vec<ChunkHit> = rows
            .iter()
            .map(|row| {
                Ok(ChunkHit {
                    id: row.try_get("id")?,
                    document_id: row.try_get("document_id")?,
                    document_title: row.try_get("title")?,
                    position: row.try_get::<i64, _>("position")?.max(0) as u32,
                    heading: row.try_get("heading")?,
                    content: row.try_get("content")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        hits.sort_by_key(|h| ids.iter().position(|id| *id == h.id));
        Ok(hits)
    }

    async fn has_documents(&self, owner: UserId, collections: Option<&[String]>) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM documents d WHERE d.status = 'ready' AND d.user_id = $1 AND {})",
            in_collections(2)
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(owner.get())
            .bind(collections)
            .fetch_one(self.pool())
            .await?)
    }

    async fn conversation_collections(&self, conversation_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT collection_id FROM conversation_collections WHERE conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_all(self.pool())
        .await?)
    }

    async fn set_conversation_collections(
        &self,
        conversation_id: &str,
        collection_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM conversation_collections WHERE conversation_id = $1")
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        for id in collection_ids {
            sqlx::query(
                "INSERT INTO conversation_collections (conversation_id, collection_id) VALUES ($1, $2)",
            )
            .bind(conversation_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_document(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<ClaimedDocument>, StoreError> {
        // SKIP LOCKED: workers of other replicas pass over the row one of them is taking.
        let row = sqlx::query(&format!(
            "UPDATE documents SET status = 'extracting', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = (SELECT id FROM documents WHERE {} ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {CLAIMED_COLUMNS}",
            claimable("$2")
        ))
        .bind(lease_until_ms)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(claimed_from_row).transpose()
    }

    async fn renew_lease(&self, id: &str, lease_until_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE documents SET lease_until = $1 WHERE id = $2 AND {HELD}"
        ))
        .bind(lease_until_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pending_documents(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM documents WHERE upload IS NOT NULL")
            .fetch_one(self.pool())
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn fail_unfinished_documents(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE documents SET status = 'failed', \
             error = 'the server stopped while this document was being processed; upload it again', \
             updated_at = $1 WHERE status IN ('queued', 'extracting', 'embedding') AND upload IS NULL",
        )
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

impl PgStore {
    /// An HNSW index (cosine) over the embeddings of `dims` dimensions, created on the first
    /// search with vectors of that size: the column takes any size (embedders differ), an
    /// index needs one. Another replica creating it at the same time is harmless.
    async fn ensure_hnsw(&self, dims: usize) {
        if self.hnsw_dims.lock().map(|d| d.contains(&dims)).unwrap_or(false) {
            return;
        }
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_{dims} ON chunks \
             USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE vector_dims(embedding) = {dims}"
        );
        match sqlx::query(&sql).execute(self.pool()).await {
            Ok(_) => {
                // Fresh statistics, so the planner knows the table the index now covers.
                let _ = sqlx::query("ANALYZE chunks").execute(self.pool()).await;
                if let Ok(mut d) = self.hnsw_dims.lock() {
                    d.push(dims);
                }
            }
            Err(e) => tracing::warn!(error = %e, dims, "HNSW index not created; searching without it"),
        }
    }
}

#[async_trait]
impl VectorSearch for PgStore {
    /// Stored with the chunks already.
    async fn add_vectors(&self, _vectors: Vec<ChunkVector>) {}

    /// Deleted with the document's chunks already.
    async fn forget_document(&self, _document_id: &str) {}

    async fn nearest(
        &self,
        owner: UserId,
        query: &[f32],
        collections: Option<&[String]>,
        k: usize,
    ) -> Result<Vec<(i64, f32)>, StoreError> {
        let dims = query.len();
        if dims == 0 || k == 0 {
            return Ok(Vec::new());
        }
        // The planner's estimate of the table's size (-1 before the first ANALYZE: new, so small).
        let estimated: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass")
                .fetch_one(self.pool())
                .await?;
        let exact = estimated < self.exact_below.load(std::sync::atomic::Ordering::Relaxed) as f32;
        let distance = format!("c.embedding::vector({dims}) <=> $1::vector({dims})");
        let sql = if exact {
            // Every chunk of the owner's documents, joined (a filter against an array of
            // their ids would compare each chunk with every id); `+ 0` keeps the index out.
            format!(
                "SELECT c.id, 1 - ({distance}) AS similarity FROM chunks c JOIN documents d ON d.id = c.document_id \
                 WHERE vector_dims(c.embedding) = {dims} AND d.user_id = $2 AND d.status = 'ready' AND {} \
                 ORDER BY ({distance}) + 0 LIMIT {k}",
                in_collections(3)
            )
        } else {
            self.ensure_hnsw(dims).await;
            // The expression and predicate match the index's, and the index scan drives the
            // query: the owner's documents are an array computed once, so the filter cannot
            // turn the plan into a scan of every chunk. Iterative scans (pgvector 0.8) keep
            // finding neighbours until `k` pass the filter (set on every connection, see
            // `PgStore::open`).
            format!(
                "SELECT c.id, 1 - ({distance}) AS similarity FROM chunks c \
                 WHERE vector_dims(c.embedding) = {dims} AND c.document_id = ANY(ARRAY( \
                   SELECT d.id FROM documents d WHERE d.user_id = $2 AND d.status = 'ready' AND {})) \
                 ORDER BY {distance} LIMIT {k}",
                in_collections(3)
            )
        };
        let rows = sqlx::query(&sql)
            .bind(to_text(query))
            .bind(owner.get())
            .bind(collections.map(<[String]>::to_vec))
            .fetch_all(self.pool())
            .await?;
        let mut found: Vec<(i64, f32)> = rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get::<f64, _>("similarity")? as f32)))
            .collect::<Result<_, StoreError>>()?;
        // Relaxed order: nearly sorted; sort exactly.
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(found)
    }

    async fn similarities(&self, query: &[f32], chunk_ids: &[i64]) -> Result<Vec<Option<f32>>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, 1 - (embedding <=> $1::vector) AS similarity FROM chunks \
             WHERE id = ANY($2) AND vector_dims(embedding) = $3",
        )
        .bind(to_text(query))
        .bind(chunk_ids)
        .bind(query.len() as i32)
        .fetch_all(self.pool())
        .await?;
        let mut by_id = std::collections::HashMap::new();
        for r in &rows {
            by_id.insert(
                r.try_get::<i64, _>("id")?,
                r.try_get::<f64, _>("similarity")? as f32,
            );
        }
        Ok(chunk_ids.iter().map(|id| by_id.get(id).copied()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_a_safe_tsquery() {
        assert_eq!(
            ts_query("How do I reset my \"password\" (NOT now)?").as_deref(),
            Some("reset | password | not | now")
        );
        assert_eq!(ts_query("? !"), None);
    }

    #[test]
    fn vectors_round_trip_through_text() {
        let v = vec![0.5, -1.25, 3.0e-7, f32::MAX, 1.0 / 3.0];
        assert_eq!(from_text(&to_text(&v)).unwrap(), v);
        assert_eq!(from_text("[0.5,-1.25,3e-07,3.4028235e+38]").unwrap()[3], f32::MAX);
        assert!(from_text("0.5").is_err());
    }
}
