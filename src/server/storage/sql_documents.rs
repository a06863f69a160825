//! [`DocumentStore`], written once for both databases: the same SQL instantiated for
//! [`SqliteStore`] and [`PgStore`]. Where the SQL differs, each store supplies the piece
//! under the same name (`in_list`, `list`, `in_collections`, `collections`, `SKIP_LOCKED`,
//! `EMBEDDING`, `embedding_param`, `encode_vector`, `decode_vector`); keyword search,
//! FTS5 against `tsvector`, is each backend's [`KeywordSearch`].

use async_trait::async_trait;
use sqlx::Row;

use super::{
    StoreError,
    documents::{
        CANCELLED, ChunkHit, ChunkVector, ClaimedDocument, CollectionRecord, DocumentRecord, DocumentStore,
        NewChunk, NewDocument, Scope, StoredChunks,
    },
    postgres::PgStore,
    rows::{
        CLAIMED_COLUMNS, COLLECTION_COLUMNS, DOCUMENT_COLUMNS, HELD, UNFINISHED, affected, claimable,
        claimed_from_row, collection_from_row, document_from_row,
    },
    sqlite::SqliteStore,
};
use crate::{
    api::documents::{DocumentFilter, DocumentStatus},
    server::auth::UserId,
};

/// Keyword search, which each backend does with its own full-text index.
#[async_trait]
pub(super) trait KeywordSearch {
    /// Ids of `owner`'s ready chunks matching the words of `query`, best first.
    async fn keyword_search(
        &self,
        owner: UserId,
        query: &str,
        scope: Scope<'_>,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError>;
}

macro_rules! document_store {
    ($store:ty) => {
        #[async_trait]
        impl DocumentStore for $store {
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

            async fn previous_version(
                &self,
                owner: UserId,
                collection_id: Option<&str>,
                file_name: &str,
                source: Option<&str>,
                by_source: bool,
            ) -> Result<Option<DocumentRecord>, StoreError> {
                let same = if by_source {
                    "source = $3"
                } else {
                    "file_name = $4 AND coalesce(source, '') = coalesce($3, '')"
                };
                let sql = format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE user_id = $1 \
                     AND coalesce(collection_id, '') = coalesce($2, '') AND status <> 'failed' AND {same} \
                     ORDER BY version DESC, created_at DESC, id DESC LIMIT 1"
                );
                let query = sqlx::query(&sql).bind(owner.get()).bind(collection_id).bind(source);
                // PostgreSQL refuses a parameter the statement does not use.
                let query = if by_source { query } else { query.bind(file_name) };
                let row = query.fetch_optional(self.pool()).await?;
                row.as_ref().map(document_from_row).transpose()
            }

            async fn insert_document(&self, d: NewDocument) -> Result<DocumentRecord, StoreError> {
                let mut tx = self.write_tx().await?;
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
                     content_hash, size_bytes, status, created_at, updated_at, upload, replaces, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, $11, $12, $13, $14) \
                     RETURNING {DOCUMENT_COLUMNS}"
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
                    .bind(&d.replaces)
                    .bind(i64::from(d.version))
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
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(&format!(
                    "UPDATE documents SET status = $1, progress_done = $2, progress_total = $3, error = $4, \
                     updated_at = $5, upload = CASE WHEN $1 IN ('ready', 'failed') THEN NULL ELSE upload END \
                     WHERE id = $6 AND {UNFINISHED}",
                ))
                .bind(status.as_str())
                .bind(i64::from(done))
                .bind(i64::from(total))
                .bind(error)
                .bind(now_ms)
                .bind(id)
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn store_chunks(
                &self,
                document_id: &str,
                chunks: Vec<NewChunk>,
                now_ms: i64,
            ) -> Result<StoredChunks, StoreError> {
                let mut tx = self.write_tx().await?;
                let mut ids = Vec::with_capacity(chunks.len());
                for c in &chunks {
                    let sql = format!(
                        "INSERT INTO chunks (document_id, position, heading, content, char_start, char_end, token_count, \
                         embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, {}) RETURNING id",
                        <$store>::embedding_param(8)
                    );
                    let id: i64 = sqlx::query_scalar(&sql)
                    .bind(document_id)
                    .bind(i64::from(c.position))
                    .bind(&c.heading)
                    .bind(&c.content)
                    .bind(c.start as i64)
                    .bind(c.end as i64)
                    .bind(i64::from(c.tokens))
                    .bind(<$store>::encode_vector(&c.embedding))
                    .fetch_one(&mut *tx)
                    .await?;
                    ids.push(id);
                }
                let n = chunks.len() as i64;
                let replaced: Option<Option<String>> = sqlx::query_scalar(&format!(
                    "UPDATE documents SET status = 'ready', chunk_count = $1, progress_done = $1, progress_total = $1, \
                     error = NULL, updated_at = $2, upload = NULL, lease_until = NULL WHERE id = $3 AND {UNFINISHED} \
                     RETURNING replaces"
                ))
                .bind(n)
                .bind(now_ms)
                .bind(document_id)
                .fetch_optional(&mut *tx)
                .await?;
                // Deleted or cancelled while it was being embedded: keep nothing (the
                // transaction rolls back).
                let replaced = replaced.ok_or(StoreError::NotFound)?;
                // The version it replaces goes in the same transaction: a search sees one or
                // the other, never both or neither.
                if let Some(old) = &replaced {
                    sqlx::query("DELETE FROM chunks WHERE document_id = $1")
                        .bind(old)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM documents WHERE id = $1")
                        .bind(old)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(StoredChunks { ids, replaced })
            }

            async fn cancel_document(
                &self,
                owner: UserId,
                id: &str,
                now_ms: i64,
            ) -> Result<DocumentRecord, StoreError> {
                sqlx::query(&format!(
                    "UPDATE documents SET status = 'failed', error = $1, upload = NULL, lease_until = NULL, \
                     updated_at = $2 WHERE id = $3 AND user_id = $4 AND {UNFINISHED}"
                ))
                .bind(CANCELLED)
                .bind(now_ms)
                .bind(id)
                .bind(owner.get())
                .execute(self.pool())
                .await?;
                self.get_document(owner, id).await
            }

            async fn delete_document(&self, owner: UserId, id: &str) -> Result<(), StoreError> {
                let mut tx = self.write_tx().await?;
                // Chunks first and explicitly, so SQLite's FTS trigger sees every one go (on
                // PostgreSQL the cascade would do).
                sqlx::query(
                    "DELETE FROM chunks WHERE document_id IN (SELECT id FROM documents WHERE id = $1 AND user_id = $2)",
                )
                .bind(id)
                .bind(owner.get())
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query("DELETE FROM documents WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(owner.get())
                    .execute(&mut *tx)
                    .await?;
                affected(done.rows_affected())?;
                tx.commit().await?;
                Ok(())
            }

            async fn chunk_vectors(&self) -> Result<Vec<ChunkVector>, StoreError> {
                let sql = format!(
                    "SELECT c.id, c.document_id, d.user_id, d.collection_id, {} FROM chunks c \
                     JOIN documents d ON d.id = c.document_id WHERE d.status = 'ready'",
                    <$store>::EMBEDDING
                );
                let rows = sqlx::query(&sql)
                .fetch_all(self.pool())
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ChunkVector {
                            chunk_id: row.try_get("id")?,
                            owner: row.try_get("user_id")?,
                            document_id: row.try_get("document_id")?,
                            collection_id: row.try_get("collection_id")?,
                            vector: <$store>::decode_vector(row)?,
                        })
                    })
                    .collect()
            }

            async fn keyword_search(
                &self,
                owner: UserId,
                query: &str,
                scope: Scope<'_>,
                limit: u32,
            ) -> Result<Vec<i64>, StoreError> {
                KeywordSearch::keyword_search(self, owner, query, scope, limit).await
            }

            async fn get_chunks(&self, ids: &[i64]) -> Result<Vec<ChunkHit>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT c.id, c.document_id, d.title, c.position, c.heading, c.content FROM chunks c \
                     JOIN documents d ON d.id = c.document_id WHERE {}",
                    <$store>::in_list("c.id", 1)
                );
                let rows = sqlx::query(&sql)
                .bind(<$store>::list(ids))
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

            async fn has_documents(&self, owner: UserId, scope: Scope<'_>) -> Result<bool, StoreError> {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM documents d WHERE d.status = 'ready' AND d.user_id = $1 AND {})",
                    <$store>::in_scope(2)
                );
                let (collections, documents) = <$store>::scope(scope);
                Ok(sqlx::query_scalar(&sql)
                    .bind(owner.get())
                    .bind(collections)
                    .bind(documents)
                    .fetch_one(self.pool())
                    .await?)
            }

            async fn filtered_documents(&self, owner: UserId, filter: &DocumentFilter) -> Result<Vec<String>, StoreError> {
                let scope = Scope {
                    collections: filter.collection_ids.as_deref(),
                    documents: filter.document_ids.as_deref(),
                };
                let sql = format!(
                    "SELECT d.id, d.tags FROM documents d WHERE d.status = 'ready' AND d.user_id = $1 AND {} \
                     AND ($4 IS NULL OR lower(d.source) LIKE '%' || lower($4) || '%') \
                     AND ($5 IS NULL OR d.created_at >= $5) AND ($6 IS NULL OR d.created_at < $6) \
                     ORDER BY d.created_at, d.id",
                    <$store>::in_scope(2)
                );
                let (collections, documents) = <$store>::scope(scope);
                let rows = sqlx::query(&sql)
                    .bind(owner.get())
                    .bind(collections)
                    .bind(documents)
                    .bind(filter.source.as_deref())
                    .bind(filter.uploaded_after)
                    .bind(filter.uploaded_before)
                    .fetch_all(self.pool())
                    .await?;
                let mut ids = Vec::new();
                for row in &rows {
                    let tags: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("tags")?)
                        .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
                    let wanted = filter.tags.as_ref().is_none_or(|want| {
                        want.iter().any(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
                    });
                    if wanted {
                        ids.push(row.try_get("id")?);
                    }
                }
                Ok(ids)
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
                let mut tx = self.write_tx().await?;
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
                // One statement: the pick and the mark cannot be split. SQLite runs it under its
                // write lock; on PostgreSQL SKIP LOCKED lets workers of other replicas pass over
                // the row one of them is taking.
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(&format!(
                    "UPDATE documents SET status = 'extracting', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
                     WHERE id = (SELECT id FROM documents WHERE {} ORDER BY created_at, id LIMIT 1{}) \
                     RETURNING {CLAIMED_COLUMNS}",
                    claimable("$2"),
                    <$store>::SKIP_LOCKED
                ))
                .bind(lease_until_ms)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
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
    };
}

document_store!(SqliteStore);
document_store!(PgStore);
