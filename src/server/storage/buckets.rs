//! Token buckets kept in the database, so that rate limits hold across every replica on
//! it (PostgreSQL). The limiter decides; the store reads and writes the buckets under a
//! row lock, so two replicas cannot both spend the last token.

use async_trait::async_trait;

use super::StoreError;

/// A bucket as stored: tokens left at `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredBucket {
    pub tokens: f64,
    pub at_ms: i64,
}

/// What the limiter computes from the buckets as stored: their new token counts (in the
/// order of the keys).
pub type Decide<'a> = &'a (dyn Fn(&[Option<StoredBucket>]) -> Vec<f64> + Send + Sync);

#[async_trait]
pub trait SharedBuckets: Send + Sync + 'static {
    /// Reads the buckets `keys` (none for a bucket never used) with a lock held, stores the
    /// token counts `decide` returns as of `now_ms`, and releases the lock.
    async fn update_buckets(
        &self,
        keys: &[String],
        now_ms: i64,
        decide: Decide<'_>,
    ) -> Result<(), StoreError>;

    /// Forgets buckets not touched since `before_ms` (a full bucket is the same as none).
    async fn forget_buckets(&self, before_ms: i64) -> Result<u64, StoreError>;
}
