//! The vector index of the embedded default: every ready chunk's unit vector in memory,
//! searched exactly (a dot product per chunk). Exact search has perfect recall; at 384
//! dimensions it scans about 100k chunks in tens of milliseconds (see `bench/`).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::server::{
    auth::UserId,
    storage::{
        StoreError,
        documents::{ChunkVector, VectorSearch},
    },
};

struct Entry {
    chunk_id: i64,
    owner: i64,
    document_id: Arc<str>,
    collection_id: Option<Arc<str>>,
    vector: Box<[f32]>,
}

#[derive(Default)]
pub struct VectorIndex {
    entries: RwLock<Vec<Entry>>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl VectorIndex {
    pub fn new(vectors: Vec<ChunkVector>) -> Self {
        let index = Self::default();
        index.add(vectors);
        index
    }

    pub fn add(&self, vectors: Vec<ChunkVector>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.extend(vectors.into_iter().map(|v| Entry {
            chunk_id: v.chunk_id,
            owner: v.owner,
            document_id: v.document_id.into(),
            collection_id: v.collection_id.map(Into::into),
            vector: v.vector.into_boxed_slice(),
        }));
    }

    pub fn remove_document(&self, document_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|e| &*e.document_id != document_id);
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` chunks of `owner` most similar to `query` (cosine, as vectors are unit
    /// length), best first, limited to `collections` when given.
    pub fn search(
        &self,
        owner: UserId,
        query: &[f32],
        collections: Option<&[String]>,
        k: usize,
    ) -> Vec<(i64, f32)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut scored: Vec<(i64, f32)> = entries
            .iter()
            .filter(|e| {
                e.owner == owner.get()
                    && collections.is_none_or(|ids| {
                        e.collection_id
                            .as_deref()
                            .is_some_and(|c| ids.iter().any(|id| id == c))
                    })
            })
            .map(|e| (e.chunk_id, dot(query, &e.vector)))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }

    /// Similarity of `query` to particular chunks (for re-scoring candidates).
    pub fn similarity(&self, query: &[f32], chunk_ids: &[i64]) -> Vec<Option<f32>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        chunk_ids
            .iter()
            .map(|id| {
                entries
                    .iter()
                    .find(|e| e.chunk_id == *id)
                    .map(|e| dot(query, &e.vector))
            })
            .collect()
    }
}

#[async_trait]
impl VectorSearch for VectorIndex {
    async fn add_vectors(&self, vectors: Vec<ChunkVector>) {
        self.add(vectors);
    }

    async fn forget_document(&self, document_id: &str) {
        self.remove_document(document_id);
    }

    async fn nearest(
        &self,
        owner: UserId,
        query: &[f32],
        collections: Option<&[String]>,
        k: usize,
    ) -> Result<Vec<(i64, f32)>, StoreError> {
        Ok(self.search(owner, query, collections, k))
    }

    async fn similarities(&self, query: &[f32], chunk_ids: &[i64]) -> Result<Vec<Option<f32>>, StoreError> {
        Ok(self.similarity(query, chunk_ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(chunk_id: i64, collection: Option<&str>, vector: [f32; 2]) -> ChunkVector {
        ChunkVector {
            chunk_id,
            owner: if chunk_id == 4 { 2 } else { 1 },
            document_id: format!("d{chunk_id}"),
            collection_id: collection.map(Into::into),
            vector: vector.to_vec(),
        }
    }

    #[test]
    fn finds_the_nearest_within_the_allowed_collections() {
        let index = VectorIndex::new(vec![
            v(1, Some("a"), [1.0, 0.0]),
            v(2, Some("b"), [0.8, 0.6]),
            v(3, None, [0.0, 1.0]),
            // Another user's chunk, nearest of all, is never found for user 1.
            v(4, None, [0.6, 0.8]),
        ]);
        let q = [0.6, 0.8];
        let me = UserId::single_user();
        assert_eq!(
            index
                .search(me, &q, None, 2)
                .iter()
                .map(|h| h.0)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        let only_a = ["a".to_owned()];
        assert_eq!(
            index
                .search(me, &q, Some(&only_a), 5)
                .iter()
                .map(|h| h.0)
                .collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(index.search(UserId::for_tests(2), &q, None, 5)[0].0, 4);
        index.remove_document("d2");
        assert_eq!(index.len(), 3);
        assert_eq!(index.similarity(&q, &[3, 2]), vec![Some(0.8), None]);
    }
}
