//! Token buckets kept in the database, so that rate limits hold across every replica on
//! it (PostgreSQL). The limiter decides; the store reads and writes the buckets under a
//! row lock, so two replicas cannot both spend the last token.

use async_trait::async_trait;

use sqlx::Row;

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

/// PostgreSQL keeps the buckets in `rate_buckets`, shared by every process on the database.
#[async_trait]
impl SharedBuckets for super::postgres::PgStore {
    async fn update_buckets(
        &self,
        keys: &[String],
        now_ms: i64,
        decide: Decide<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // Locks the buckets that exist (in key order, so two replicas cannot deadlock).
        // A bucket used for the very first time by two replicas at once is created by both
        // and the later write wins: at most one request too many, once.
        let rows = sqlx::query(
            "SELECT key, tokens, at_ms FROM rate_buckets WHERE key = ANY($1) ORDER BY key FOR UPDATE",
        )
        .bind(keys)
        .fetch_all(&mut *tx)
        .await?;
        let stored: Vec<Option<StoredBucket>> = keys
            .iter()
            .map(|k| {
                rows.iter()
                    .find(|r| r.try_get::<String, _>("key").is_ok_and(|rk| &rk == k))
                    .map(|r| {
                        Ok::<_, sqlx::Error>(StoredBucket {
                            tokens: r.try_get("tokens")?,
                            at_ms: r.try_get("at_ms")?,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        let tokens = decide(&stored);
        sqlx::query(
            "INSERT INTO rate_buckets (key, tokens, at_ms) SELECT * FROM unnest($1::text[], $2::float8[]), \
             (SELECT $3::bigint) AS now ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms",
        )
        .bind(keys)
        .bind(&tokens)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_buckets(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM rate_buckets WHERE at_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
