//! What PostgreSQL does its own way with documents: embeddings in a pgvector column
//! (exchanged as text `[x,y,…]`) with exact or HNSW vector search, lists as arrays, and
//! keyword search through the generated `tsvector` column `chunks.search`. The rest of
//! [`DocumentStore`](super::DocumentStore) is shared SQL (`sql_documents`).

use async_trait::async_trait;
use sqlx::{Row, postgres::PgRow};

use super::{
    StoreError,
    documents::{ChunkVector, Scope, VectorSearch},
    postgres::PgStore,
    rows::{keyword_terms, selective_terms},
    sql_documents::KeywordSearch,
};
use crate::server::auth::UserId;

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

/// `lexemes` as a `tsquery` text that cannot be a syntax error: each one quoted, any of them
/// may match (chunks with more of them rank higher).
fn ts_expression(lexemes: &[String]) -> Option<String> {
    let quoted: Vec<String> = lexemes
        .iter()
        .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
        .collect();
    (!quoted.is_empty()).then(|| quoted.join(" | "))
}

/// The lexemes of `query` worth searching for: stemmed by `stoa_english`, each one's share of
/// chunks read from the planner's statistics of `chunks.search` (`most_common_elems`, kept
/// fresh by autovacuum's ANALYZE), and the very common ones left out (`selective_terms`).
/// Before the first ANALYZE nothing is known and every lexeme is kept.
async fn selective_query(store: &PgStore, query: &str) -> Result<Vec<String>, StoreError> {
    let words = keyword_terms(query);
    if words.is_empty() {
        return Ok(words);
    }
    let rows: Vec<(String, Option<f64>, f64)> = sqlx::query_as(
        "SELECT l.lexeme, (common.freq * greatest(c.reltuples, 0))::float8, \
                greatest(c.reltuples, 0)::float8 \
         FROM unnest(tsvector_to_array(to_tsvector('stoa_english', $1))) AS l(lexeme) \
         CROSS JOIN (SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass) c \
         LEFT JOIN (SELECT e.lexeme, e.freq FROM pg_stats s, \
                      unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) \
                        AS e(lexeme, freq) \
                    WHERE s.schemaname = current_schema() AND s.tablename = 'chunks' \
                      AND s.attname = 'search') common ON common.lexeme = l.lexeme",
    )
    .bind(words.join(" "))
    .fetch_all(store.pool())
    .await?;
    let total = rows.first().map_or(0.0, |r| r.2) as u64;
    let known: Vec<(String, Option<u64>)> = rows
        .into_iter()
        .map(|(lexeme, chunks, _)| (lexeme, chunks.map(|n| n as u64)))
        .collect();
    Ok(selective_terms(&known, total))
}

/// Chunks in the database below which vector search is exact (see `PgStore::exact_below`):
/// a scan of 20,000 vectors of 384 dimensions takes a few milliseconds.
pub(super) const EXACT_BELOW: u64 = 20_000;

/// The pieces of SQL and values the shared document SQL (`sql_documents`) takes from
/// PostgreSQL.
impl PgStore {
    /// Workers of other replicas pass over the row one of them is taking.
    pub(super) const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
    /// The embedding column as selected (pgvector's text form).
    pub(super) const EMBEDDING: &str = "c.embedding::text AS embedding";

    pub(super) fn embedding_param(n: u8) -> String {
        format!("${n}::vector")
    }

    pub(super) fn encode_vector(v: &[f32]) -> String {
        to_text(v)
    }

    pub(super) fn decode_vector(row: &PgRow) -> Result<Vec<f32>, StoreError> {
        from_text(row.try_get("embedding")?)
    }

    /// `column` is one of the array bound at `$n` (by [`Self::list`]).
    pub(super) fn in_list(column: &str, n: u8) -> String {
        format!("{column} = ANY(${n})")
    }

    pub(super) fn list<T: Clone>(items: &[T]) -> Vec<T> {
        items.to_vec()
    }

    /// Whether a document `d` is in scope: `$n` is the collections to search and `$n+1`
    /// the documents, each NULL for all (bound by [`Self::scope`]).
    pub(super) fn in_scope(n: u8) -> String {
        let m = n + 1;
        format!(
            "(${n}::text[] IS NULL OR d.collection_id = ANY(${n})) \
             AND (${m}::text[] IS NULL OR d.id = ANY(${m}))"
        )
    }

    pub(super) fn scope(scope: Scope<'_>) -> (Option<Vec<String>>, Option<Vec<String>>) {
        (
            scope.collections.map(<[String]>::to_vec),
            scope.documents.map(<[String]>::to_vec),
        )
    }
}

#[async_trait]
impl KeywordSearch for PgStore {
    async fn keyword_search(
        &self,
        owner: UserId,
        query: &str,
        scope: Scope<'_>,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let lexemes = selective_query(self, query).await?;
        let Some(expression) = ts_expression(&lexemes) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id, \
             (VALUES ($1::tsquery)) AS t(q) \
             WHERE c.search @@ q AND d.status = 'ready' AND d.user_id = $2 AND {} \
             ORDER BY ts_rank(c.search, q, 1) DESC, c.id LIMIT $5",
            Self::in_scope(3)
        );
        let (collections, documents) = Self::scope(scope);
        Ok(sqlx::query_scalar(&sql)
            .bind(expression)
            .bind(owner.get())
            .bind(collections)
            .bind(documents)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?)
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
        scope: Scope<'_>,
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
                Self::in_scope(3)
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
                Self::in_scope(3)
            )
        };
        let (collections, documents) = Self::scope(scope);
        let rows = sqlx::query(&sql)
            .bind(to_text(query))
            .bind(owner.get())
            .bind(collections)
            .bind(documents)
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
    fn lexemes_become_a_safe_tsquery() {
        let lexemes = ["reset".to_owned(), "it's".to_owned(), "a\\b".to_owned()];
        assert_eq!(
            ts_expression(&lexemes).as_deref(),
            Some("'reset' | 'it''s' | 'a\\\\b'")
        );
        assert_eq!(ts_expression(&[]), None);
    }

    #[test]
    fn vectors_round_trip_through_text() {
        let v = vec![0.5, -1.25, 3.0e-7, f32::MAX, 1.0 / 3.0];
        assert_eq!(from_text(&to_text(&v)).unwrap(), v);
        assert_eq!(from_text("[0.5,-1.25,3e-07,3.4028235e+38]").unwrap()[3], f32::MAX);
        assert!(from_text("0.5").is_err());
    }
}
