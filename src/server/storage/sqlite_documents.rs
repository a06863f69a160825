//! What SQLite does its own way with documents: embeddings as blobs, lists as JSON arrays,
//! and keyword search through the FTS5 index `chunks_fts` (BM25). The rest of
//! [`DocumentStore`](super::DocumentStore) is shared SQL (`sql_documents`).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, sqlite::SqliteRow};

use super::{
    StoreError,
    documents::Scope,
    rows::{keyword_terms, selective_terms},
    sql_documents::KeywordSearch,
    sqlite::SqliteStore,
};
use crate::server::auth::UserId;

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `terms` as an FTS5 expression that cannot be a syntax error: each word quoted (they are
/// letters and digits), any of them may match (BM25 ranks chunks with more of them higher).
fn fts_expression(terms: &[String]) -> Option<String> {
    let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
    (!quoted.is_empty()).then(|| quoted.join(" OR "))
}

/// The words of `query` worth searching for: each is stemmed as FTS5's `porter` tokenizer
/// stems it, its chunk count read from `chunks_fts_terms`, and the very common ones left
/// out (`selective_terms`). A word whose stem differs from FTS5's only counts as unknown,
/// so it is kept.
async fn selective_query(store: &SqliteStore, query: &str) -> Result<Vec<String>, StoreError> {
    let words = keyword_terms(query);
    if words.is_empty() {
        return Ok(words);
    }
    let stems: Vec<String> = words.iter().map(|w| porter_stemmer::stem(w)).collect();
    // max(id) stands for the number of chunks: it over-counts after deletions, which only
    // leaves out fewer words.
    let mut q = QueryBuilder::<Sqlite>::new("SELECT NULL, coalesce(max(id), 0) FROM chunks");
    for stem in &stems {
        q.push(" UNION ALL SELECT term, doc FROM chunks_fts_terms WHERE term = ");
        q.push_bind(stem.clone());
    }
    let mut total = 0u64;
    let mut counts = std::collections::HashMap::new();
    for row in q.build().fetch_all(store.pool()).await? {
        let n = row.try_get::<i64, _>(1)?.max(0) as u64;
        match row.try_get::<Option<String>, _>(0)? {
            None => total = n,
            Some(term) => {
                counts.insert(term, n);
            }
        }
    }
    let known: Vec<(String, Option<u64>)> = words
        .into_iter()
        .zip(&stems)
        .map(|(word, stem)| (word, counts.get(stem).copied()))
        .collect();
    Ok(selective_terms(&known, total))
}

/// The pieces of SQL and values the shared document SQL (`sql_documents`) takes from SQLite.
impl SqliteStore {
    /// No row locks: the write lock of `BEGIN IMMEDIATE` already serialises claims.
    pub(super) const SKIP_LOCKED: &str = "";
    /// The embedding column as selected (a little-endian `f32` blob).
    pub(super) const EMBEDDING: &str = "c.embedding";

    pub(super) fn embedding_param(n: u8) -> String {
        format!("${n}")
    }

    pub(super) fn encode_vector(v: &[f32]) -> Vec<u8> {
        to_blob(v)
    }

    pub(super) fn decode_vector(row: &SqliteRow) -> Result<Vec<f32>, StoreError> {
        Ok(from_blob(&row.try_get::<Vec<u8>, _>("embedding")?))
    }

    /// `column` is one of the list bound at `$n` (by [`Self::list`], a JSON array).
    pub(super) fn in_list(column: &str, n: u8) -> String {
        format!("{column} IN (SELECT value FROM json_each(${n}))")
    }

    pub(super) fn list<T: serde::Serialize>(items: &[T]) -> String {
        serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
    }

    /// Whether a document `d` is in scope: `$n` is the collections to search and `$n+1`
    /// the documents, each NULL for all (bound by [`Self::scope`]).
    pub(super) fn in_scope(n: u8) -> String {
        let m = n + 1;
        format!(
            "(${n} IS NULL OR d.collection_id IN (SELECT value FROM json_each(${n}))) \
             AND (${m} IS NULL OR d.id IN (SELECT value FROM json_each(${m})))"
        )
    }

    pub(super) fn scope(scope: Scope<'_>) -> (Option<String>, Option<String>) {
        (scope.collections.map(Self::list), scope.documents.map(Self::list))
    }
}

#[async_trait]
impl KeywordSearch for SqliteStore {
    async fn keyword_search(
        &self,
        owner: UserId,
        query: &str,
        scope: Scope<'_>,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let terms = selective_query(self, query).await?;
        let Some(expression) = fts_expression(&terms) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT c.id FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid \
             JOIN documents d ON d.id = c.document_id WHERE chunks_fts MATCH $1 \
             AND d.status = 'ready' AND d.user_id = $2 AND {} ORDER BY rank LIMIT $5",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::documents::{DocumentStore, NewChunk, NewDocument};

    #[test]
    fn user_text_becomes_a_safe_fts_expression() {
        assert_eq!(
            fts_expression(&keyword_terms("How do I reset my \"password\" (NOT now)?")).as_deref(),
            Some("\"reset\" OR \"password\" OR \"not\" OR \"now\"")
        );
        assert_eq!(fts_expression(&keyword_terms("? !")), None);
    }

    #[test]
    fn vectors_round_trip_through_blobs() {
        let v = vec![0.5, -1.25, 3.0e-7];
        assert_eq!(from_blob(&to_blob(&v)), v);
    }

    /// The stems keyword search looks up are the ones FTS5's `porter` tokenizer stored, on
    /// real English (the GPL, which every Debian system carries): a word stemmed otherwise
    /// is only kept in the query, so this is about how often the lookup works.
    #[tokio::test]
    async fn the_porter_stems_looked_up_are_the_ones_fts5_indexed() {
        let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store
            .insert_document(NewDocument {
                owner: UserId::single_user(),
                id: "d".into(),
                collection_id: None,
                title: "GPL".into(),
                file_name: "GPL-3".into(),
                media_type: "text/plain".into(),
                source: None,
                tags: Vec::new(),
                content_hash: "h".into(),
                size_bytes: 0,
                upload: None,
                replaces: None,
                version: 1,
                now_ms: 0,
            })
            .await
            .unwrap();
        store
            .store_chunks(
                "d",
                vec![NewChunk {
                    position: 0,
                    heading: None,
                    content: text.clone(),
                    start: 0,
                    end: 0,
                    tokens: 0,
                    embedding: vec![1.0],
                }],
                0,
            )
            .await
            .unwrap();
        let indexed: std::collections::HashSet<String> =
            sqlx::query_scalar("SELECT term FROM chunks_fts_terms")
                .fetch_all(store.pool())
                .await
                .unwrap()
                .into_iter()
                .collect();
        let words: std::collections::BTreeSet<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let missed: Vec<&String> = words
            .iter()
            .filter(|w| !indexed.contains(&porter_stemmer::stem(w)))
            .collect();
        assert!(words.len() > 1_000, "{} words", words.len());
        assert!(
            missed.len() * 100 <= words.len(),
            "{} of {} words stemmed otherwise: {missed:?}",
            missed.len(),
            words.len()
        );
    }
}
