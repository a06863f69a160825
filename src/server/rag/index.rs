//! The vector index of the embedded default: every ready chunk's unit vector in memory,
//! searched exactly (a dot product per chunk). Exact search has perfect recall; at 384
//! dimensions it scans about 100k chunks in tens of milliseconds (see `bench/`).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use async_trait::async_trait;

use crate::server::{
    auth::UserId,
    storage::{
        StoreError,
        documents::{ChunkVector, Scope, VectorSearch},
    },
};

/// Below this many vectors one thread scans them (a few milliseconds); above, the scan is
/// split over the cores.
const PARALLEL_FROM: usize = 16_384;

struct Meta {
    chunk_id: i64,
    owner: i64,
    document_id: Arc<str>,
    collection_id: Option<Arc<str>>,
}

/// The vectors in one contiguous block (`dims` floats per chunk, in `meta`'s order), so a
/// scan reads memory in order.
#[derive(Default)]
struct Inner {
    dims: usize,
    meta: Vec<Meta>,
    vectors: Vec<f32>,
    position: HashMap<i64, usize>,
}

impl Inner {
    fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }

    fn reindex(&mut self) {
        self.position = self
            .meta
            .iter()
            .enumerate()
            .map(|(i, m)| (m.chunk_id, i))
            .collect();
    }

    /// The best `k` of positions `range` that pass `allowed`, unordered.
    fn best(
        &self,
        range: std::ops::Range<usize>,
        query: &[f32],
        k: usize,
        allowed: &(dyn Fn(&Meta) -> bool + Sync),
    ) -> Vec<(i64, f32)> {
        let mut scored: Vec<(i64, f32)> = range
            .filter(|&i| allowed(&self.meta[i]))
            .map(|i| (self.meta[i].chunk_id, dot(query, self.vector(i))))
            .collect();
        top(&mut scored, k);
        scored
    }
}

/// Keeps the `k` highest scores of `scored` (in no particular order).
fn top(scored: &mut Vec<(i64, f32)>, k: usize) {
    if scored.len() > k {
        if k > 0 {
            scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        }
        scored.truncate(k);
    }
}

#[derive(Default)]
pub struct VectorIndex {
    inner: Arc<RwLock<Inner>>,
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD (a plain
/// running sum cannot be reordered, so it stays scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut lanes = [0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

impl VectorIndex {
    pub fn new(vectors: Vec<ChunkVector>) -> Self {
        let index = Self::default();
        index.add(vectors);
        index
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, vectors: Vec<ChunkVector>) {
        let mut inner = self.write();
        for v in vectors {
            if inner.dims == 0 {
                inner.dims = v.vector.len();
            }
            if v.vector.len() != inner.dims || inner.dims == 0 {
                // Another embedding model's vector: it cannot be compared with this one's.
                tracing::warn!(
                    chunk = v.chunk_id,
                    dimensions = v.vector.len(),
                    expected = inner.dims,
                    "a chunk vector of other dimensions is left out of the index"
                );
                continue;
            }
            let at = inner.meta.len();
            inner.position.insert(v.chunk_id, at);
            inner.vectors.extend_from_slice(&v.vector);
            inner.meta.push(Meta {
                chunk_id: v.chunk_id,
                owner: v.owner,
                document_id: v.document_id.into(),
                collection_id: v.collection_id.map(Into::into),
            });
        }
    }

    pub fn remove_document(&self, document_id: &str) {
        let mut inner = self.write();
        let dims = inner.dims;
        let keep: Vec<bool> = inner
            .meta
            .iter()
            .map(|m| &*m.document_id != document_id)
            .collect();
        if keep.iter().all(|k| *k) {
            return;
        }
        let mut kept = 0;
        for (i, &k) in keep.iter().enumerate() {
            if k {
                inner.vectors.copy_within(i * dims..(i + 1) * dims, kept * dims);
                kept += 1;
            }
        }
        inner.vectors.truncate(kept * dims);
        let mut keep = keep.into_iter();
        inner.meta.retain(|_| keep.next().unwrap_or(false));
        inner.reindex();
    }

    pub fn len(&self) -> usize {
        self.read().meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` chunks of `owner` most similar to `query` (cosine, as vectors are unit
    /// length), best first, limited to `collections` when given. Large indexes are scanned
    /// on all cores.
    pub fn search(&self, owner: UserId, query: &[f32], scope: Scope<'_>, k: usize) -> Vec<(i64, f32)> {
        let inner = self.read();
        if k == 0 || query.len() != inner.dims {
            return Vec::new();
        }
        let owner = owner.get();
        let documents: Option<std::collections::HashSet<&str>> = scope
            .documents
            .map(|ids| ids.iter().map(String::as_str).collect());
        let allowed = |m: &Meta| {
            m.owner == owner
                && scope.collections.is_none_or(|ids| {
                    m.collection_id
                        .as_deref()
                        .is_some_and(|c| ids.iter().any(|id| id == c))
                })
                && documents.as_ref().is_none_or(|ids| ids.contains(&*m.document_id))
        };
        let n = inner.meta.len();
        let parts = if n < PARALLEL_FROM {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |p| p.get().min(8))
        };
        let mut scored = if parts == 1 {
            inner.best(0..n, query, k, &allowed)
        } else {
            let step = n.div_ceil(parts);
            let inner = &*inner;
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..parts)
                    .map(|p| {
                        let range = p * step..((p + 1) * step).min(n);
                        let allowed = &allowed;
                        scope.spawn(move || inner.best(range, query, k, allowed))
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect()
            })
        };
        top(&mut scored, k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }

    /// Similarity of `query` to particular chunks (for re-scoring candidates).
    pub fn similarity(&self, query: &[f32], chunk_ids: &[i64]) -> Vec<Option<f32>> {
        let inner = self.read();
        chunk_ids
            .iter()
            .map(|id| {
                let at = *inner.position.get(id)?;
                (query.len() == inner.dims).then(|| dot(query, inner.vector(at)))
            })
            .collect()
    }

    fn shared(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
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

    /// The scan runs on a blocking thread: at 100k chunks it takes milliseconds of CPU that
    /// would otherwise stall every other request on this async worker.
    async fn nearest(
        &self,
        owner: UserId,
        query: &[f32],
        scope: Scope<'_>,
        k: usize,
    ) -> Result<Vec<(i64, f32)>, StoreError> {
        let index = self.shared();
        let query = query.to_vec();
        let collections = scope.collections.map(<[String]>::to_vec);
        let documents = scope.documents.map(<[String]>::to_vec);
        tokio::task::spawn_blocking(move || {
            let scope = Scope {
                collections: collections.as_deref(),
                documents: documents.as_deref(),
            };
            index.search(owner, &query, scope, k)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("vector search: {e}")))
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
                .search(me, &q, Scope::ALL, 2)
                .iter()
                .map(|h| h.0)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        let only_a = ["a".to_owned()];
        assert_eq!(
            index
                .search(me, &q, Scope::collections(&only_a), 5)
                .iter()
                .map(|h| h.0)
                .collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(index.search(UserId::for_tests(2), &q, Scope::ALL, 5)[0].0, 4);
        index.remove_document("d2");
        assert_eq!(index.len(), 3);
        assert_eq!(index.similarity(&q, &[3, 2]), vec![Some(0.8), None]);
    }
}
