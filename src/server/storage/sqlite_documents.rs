//! SQLite implementation of [`DocumentStore`]: chunks in a table with their embeddings,
//! keyword search through the FTS5 index `chunks_fts` (BM25).

use super::rows::{
    CLAIMED_COLUMNS, DOCUMENT_COLUMNS, HELD, claimable, claimed_from_row, collection_from_row,
    document_from_row, keyword_terms,
};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    StoreError,
    documents::{
        ChunkHit, ChunkVector, ClaimedDocument, CollectionRecord, DocumentRecord, DocumentStore, NewChunk,
        NewDocument,
    },
    sqlite::{SqliteStore, affected},
};
use crate::{api::documents::DocumentStatus, server::auth::UserId};

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The words of `query` as an FTS5 expression that cannot be a syntax error: each word
/// quoted, any of them may match (BM25 ranks chunks with more of them higher).
fn fts_query(query: &str) -> Option<String> {
    let terms: Vec<String> = keyword_terms(query).iter().map(|t| format!("\"{t}\"")).collect();
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

fn push_collection_filter(q: &mut QueryBuilder<'_, Sqlite>, collections: Option<&[String]>) {
    if let Some(ids) = collections {
        q.push(" AND d.collection_id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.clone());
        }
        if ids.is_empty() {
            list.push("NULL");
        }
        q.push(")");
    }
}

#[async_trait]
impl DocumentStore for SqliteStore {
    async fn ensure_collection(
        &self,
        owner: UserId,
        id: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<CollectionRecord, StoreError> {
        sqlx::query(
            "INSERT INTO collections (id, user_id, name, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, name) DO NOTHING",
        )
        .bind(id)
        .bind(owner.get())
        .bind(name)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT c.id, c.name, c.created_at, (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS n \
             FROM collections c WHERE c.user_id = ? AND c.name = ?",
        )
        .bind(owner.get())
        .bind(name)
        .fetch_one(self.pool())
        .await?;
        collection_from_row(&row)
    }

    async fn list_collections(&self, owner: UserId) -> Result<Vec<CollectionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.name, c.created_at, (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS n \
             FROM collections c WHERE c.user_id = ? ORDER BY c.name",
        )
        .bind(owner.get())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn find_duplicate(
        &self,
        owner: UserId,
        content_hash: &str,
        collection_id: Option<&str>,
    ) -> Result<Option<DocumentRecord>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE user_id = ? AND content_hash = ? \
             AND coalesce(collection_id, '') = coalesce(?, '') AND status != 'failed'"
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
        let mut tx = self.write_tx().await?;
        // A failed earlier upload of the same content gives way to the new one.
        sqlx::query(
            "DELETE FROM documents WHERE user_id = ? AND content_hash = ? \
             AND coalesce(collection_id, '') = coalesce(?, '') AND status = 'failed'",
        )
        .bind(d.owner.get())
        .bind(&d.content_hash)
        .bind(&d.collection_id)
        .execute(&mut *tx)
        .await?;
        let sql = format!(
            "INSERT INTO documents (id, user_id, collection_id, title, file_name, media_type, source, tags, \
             content_hash, size_bytes, status, created_at, updated_at, upload) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?) RETURNING {DOCUMENT_COLUMNS}"
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
            .bind(d.now_ms)
            .bind(&d.upload)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        document_from_row(&row)
    }

    async fn get_document(&self, owner: UserId, id: &str) -> Result<DocumentRecord, StoreError> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ? AND user_id = ?");
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
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE user_id = ? ORDER BY created_at DESC, id DESC"
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
            "UPDATE documents SET status = ?1, progress_done = ?2, progress_total = ?3, error = ?4, updated_at = ?5, \
             upload = CASE WHEN ?1 IN ('ready', 'failed') THEN NULL ELSE upload END \
             WHERE id = ?6",
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
        let mut tx = self.write_tx().await?;
        let mut ids = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chunks (document_id, position, heading, content, char_start, char_end, token_count, \
                 embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(document_id)
            .bind(i64::from(c.position))
            .bind(&c.heading)
            .bind(&c.content)
            .bind(c.start as i64)
            .bind(c.end as i64)
            .bind(i64::from(c.tokens))
            .bind(to_blob(&c.embedding))
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        let n = chunks.len() as i64;
        let done = sqlx::query(
            "UPDATE documents SET status = 'ready', chunk_count = ?, progress_done = ?, progress_total = ?, \
             error = NULL, updated_at = ?, upload = NULL, lease_until = NULL WHERE id = ? AND status <> 'ready'",
        )
        .bind(n)
        .bind(n)
        .bind(n)
        .bind(now_ms)
        .bind(document_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Deleted while it was being embedded, or finished by a worker that took it
            // over: keep nothing.
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn delete_document(&self, owner: UserId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        // Chunks first and explicitly, so the FTS trigger sees every one go.
        sqlx::query(
            "DELETE FROM chunks WHERE document_id IN (SELECT id FROM documents WHERE id = ? AND user_id = ?)",
        )
        .bind(id)
        .bind(owner.get())
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM documents WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(owner.get())
            .execute(&mut *tx)
            .await?;
        affected(done)?;
        tx.commit().await?;
        Ok(())
    }

    async fn chunk_vectors(&self) -> Result<Vec<ChunkVector>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.document_id, d.user_id, d.collection_id, c.embedding FROM chunks c \
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
                    vector: from_blob(&row.try_get::<Vec<u8>, _>("embedding")?),
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
        let Some(expression) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT c.id FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid \
             JOIN documents d ON d.id = c.document_id WHERE chunks_fts MATCH ",
        );
        q.push_bind(expression);
        q.push(" AND d.status = 'ready' AND d.user_id = ");
        q.push_bind(owner.get());
        push_collection_filter(&mut q, collections);
        q.push(" ORDER BY rank LIMIT ");
        q.push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)?)).collect()
    }

    async fn get_chunks(&self, ids: &[i64]) -> Result<Vec<ChunkHit>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT c.id, c.document_id, d.title, c.position, c.heading, c.content FROM chunks c \
             JOIN documents d ON d.id = c.document_id WHERE c.id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        q.push(")");
        let rows = q.build().fetch_all(self.pool()).await?;
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
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT EXISTS (SELECT 1 FROM documents d WHERE d.status = 'ready' AND d.user_id = ",
        );
        q.push_bind(owner.get());
        push_collection_filter(&mut q, collections);
        q.push(")");
        let row = q.build().fetch_one(self.pool()).await?;
        Ok(row.try_get::<i64, _>(0)? == 1)
    }

    async fn conversation_collections(&self, conversation_id: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT collection_id FROM conversation_collections WHERE conversation_id = ?")
                .bind(conversation_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
    }

    async fn set_conversation_collections(
        &self,
        conversation_id: &str,
        collection_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM conversation_collections WHERE conversation_id = ?")
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        for id in collection_ids {
            sqlx::query(
                "INSERT INTO conversation_collections (conversation_id, collection_id) VALUES (?, ?)",
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
        // One statement under the write lock: the pick and the mark cannot be split.
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "UPDATE documents SET status = 'extracting', lease_until = ?, attempts = attempts + 1, updated_at = ? \
             WHERE id = (SELECT id FROM documents WHERE {} ORDER BY created_at, id LIMIT 1) \
             RETURNING {CLAIMED_COLUMNS}",
            claimable("?")
        ))
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(claimed_from_row).transpose()
    }

    async fn renew_lease(&self, id: &str, lease_until_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE documents SET lease_until = ? WHERE id = ? AND {HELD}"
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
             updated_at = ? WHERE status IN ('queued', 'extracting', 'embedding') AND upload IS NULL",
        )
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_a_safe_fts_expression() {
        assert_eq!(
            fts_query("How do I reset my \"password\" (NOT now)?").as_deref(),
            Some("\"reset\" OR \"password\" OR \"not\" OR \"now\"")
        );
        assert_eq!(fts_query("? !"), None);
    }

    #[test]
    fn vectors_round_trip_through_blobs() {
        let v = vec![0.5, -1.25, 3.0e-7];
        assert_eq!(from_blob(&to_blob(&v)), v);
    }
}
