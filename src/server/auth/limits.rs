//! Rate limits: token buckets per user and per client address, for starting answers,
//! uploading, importing, embedding, searching and signing in (and per account name for
//! signing in). A request passes only when every bucket that applies has a token;
//! otherwise it gets 429 with the seconds until one will. An IPv6 client counts as its
//! /64 network: one machine usually holds a whole /64, and would otherwise have 2^64
//! buckets.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{UserId, proxies::TrustedProxies};
use crate::server::config::LimitSettings;
use crate::server::storage::buckets::{SharedBuckets, StoredBucket};

/// What a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Class {
    Generation,
    Upload,
    Import,
    Embedding,
    Search,
    SignIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    User(UserId),
    Ip(IpAddr),
    /// An account name being signed in to (a digest of its lower-case form, so a table
    /// of buckets holds no names).
    Account(u64),
}

/// The address a per-address limit counts: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 as
/// its /64 network.
fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(network))
            }
        },
    }
}

fn account_key(name: &str) -> Key {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.trim().to_lowercase().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Key::Account(u64::from_be_bytes(first))
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets forgotten once full again, when the table grows past this.
const SWEEP_AT: usize = 10_000;

pub struct RateLimiter {
    settings: LimitSettings,
    proxies: TrustedProxies,
    buckets: Mutex<HashMap<(Class, Key), Bucket>>,
    /// The database's buckets when several processes share it; then `buckets` is unused.
    shared: Option<Arc<dyn SharedBuckets>>,
    checks: AtomicU64,
}

/// Shared buckets are swept every this many checks, of those untouched for `FORGET_MS`
/// (a bucket refills completely within a minute).
const FORGET_EVERY: u64 = 1024;
const FORGET_MS: i64 = 10 * 60 * 1000;

impl RateLimiter {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            proxies: TrustedProxies::default(),
            buckets: Mutex::new(HashMap::new()),
            shared: None,
            checks: AtomicU64::new(0),
        }
    }

    /// Per-address limits count the client named by these proxies' `X-Forwarded-For`.
    pub fn behind(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Buckets in the database, so the limits hold across every process using it.
    pub fn shared(mut self, buckets: Arc<dyn SharedBuckets>) -> Self {
        self.shared = Some(buckets);
        self
    }

    /// The address a request's per-address limits count: the peer, or the client a
    /// trusted proxy forwarded.
    pub fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        self.proxies.client(peer, headers)
    }

    /// Requests per minute for a class, per user (or, signing in, per account name) and
    /// per address (0: no limit).
    fn per_minute(&self, class: Class) -> (u32, u32) {
        let s = &self.settings;
        match class {
            Class::Generation => (s.generations_per_user, s.generations_per_ip),
            Class::Upload => (s.uploads_per_user, s.uploads_per_ip),
            Class::Import => (s.imports_per_user, s.imports_per_ip),
            Class::Embedding => (s.embeddings_per_user, s.embeddings_per_ip),
            Class::Search => (s.searches_per_user, s.searches_per_ip),
            Class::SignIn => (s.sign_ins_per_account, s.sign_ins_per_ip),
        }
    }

    /// The buckets a request spends from, with their requests per minute.
    fn applies(&self, class: Class, user: Option<UserId>, ip: Option<IpAddr>) -> Vec<(Key, u32)> {
        let (per_user, per_ip) = self.per_minute(class);
        let mut applies: Vec<(Key, u32)> = Vec::with_capacity(2);
        if let Some(user) = user
            && per_user > 0
            && class != Class::SignIn
        {
            applies.push((Key::User(user), per_user));
        }
        if let Some(ip) = ip
            && per_ip > 0
        {
            applies.push((Key::Ip(bucket_address(ip)), per_ip));
        }
        applies
    }

    /// Takes a token from the user's and the address's bucket, or says how long to wait.
    pub async fn check(
        &self,
        class: Class,
        user: Option<UserId>,
        ip: Option<IpAddr>,
    ) -> Result<(), Duration> {
        let applies = self.applies(class, user, ip);
        self.spend(class, applies).await
    }

    /// Takes a token from the bucket of the account name being signed in to, whatever
    /// address the attempt comes from: guessing one account's password from many
    /// addresses is as slow as from one.
    pub async fn check_account(&self, name: &str) -> Result<(), Duration> {
        let per_account = self.settings.sign_ins_per_account;
        if per_account == 0 {
            return Ok(());
        }
        self.spend(Class::SignIn, vec![(account_key(name), per_account)])
            .await
    }

    async fn spend(&self, class: Class, applies: Vec<(Key, u32)>) -> Result<(), Duration> {
        match &self.shared {
            None => self.spend_at(class, applies, Instant::now()),
            Some(db) => self.spend_shared(db.as_ref(), class, applies).await,
        }
    }

    async fn spend_shared(
        &self,
        db: &dyn SharedBuckets,
        class: Class,
        applies: Vec<(Key, u32)>,
    ) -> Result<(), Duration> {
        if applies.is_empty() {
            return Ok(());
        }
        let now = crate::server::clock::now_ms();
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1
            && let Err(e) = db.forget_buckets(now - FORGET_MS).await
        {
            tracing::warn!(error = %e, "could not sweep old rate-limit buckets");
        }
        let keys: Vec<String> = applies.iter().map(|(key, _)| key.name(class)).collect();
        let outcome = Mutex::new(Ok(()));
        let decide = |stored: &[Option<StoredBucket>]| {
            let now_buckets: Vec<(f64, f64, f64)> = stored
                .iter()
                .zip(&applies)
                .map(|(s, (_, per_minute))| {
                    let capacity = f64::from(*per_minute);
                    s.map_or((capacity, 0.0, capacity), |b| {
                        (b.tokens, (now - b.at_ms).max(0) as f64 / 1000.0, capacity)
                    })
                })
                .collect();
            let (tokens, result) = refill_and_spend(&now_buckets);
            *outcome.lock().unwrap_or_else(|p| p.into_inner()) = result;
            tokens
        };
        match db.update_buckets(&keys, now, &decide).await {
            Ok(()) => outcome.into_inner().unwrap_or_else(|p| p.into_inner()),
            // The database is unreachable: the request fails on its own soon enough.
            Err(e) => {
                tracing::warn!(error = %e, "rate limit not checked");
                Ok(())
            }
        }
    }

    #[cfg(test)]
    fn check_at(
        &self,
        class: Class,
        user: Option<UserId>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        self.spend_at(class, self.applies(class, user, ip), now)
    }

    fn spend_at(&self, class: Class, applies: Vec<(Key, u32)>, now: Instant) -> Result<(), Duration> {
        if applies.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_AT {
            let full: std::collections::HashMap<Class, f64> = <Class as strum::IntoEnumIterator>::iter()
                .map(|c| {
                    let (a, b) = self.per_minute(c);
                    (c, f64::from(a.max(b)))
                })
                .collect();
            buckets.retain(|(class, _), b| {
                let full = full[class];
                b.tokens + now.duration_since(b.at).as_secs_f64() * full / 60.0 < full
            });
        }
        let now_buckets: Vec<(f64, f64, f64)> = applies
            .iter()
            .map(|(key, per_minute)| {
                let capacity = f64::from(*per_minute);
                buckets
                    .get(&(class, *key))
                    .map_or((capacity, 0.0, capacity), |b| {
                        (b.tokens, now.duration_since(b.at).as_secs_f64(), capacity)
                    })
            })
            .collect();
        let (tokens, result) = refill_and_spend(&now_buckets);
        for ((key, _), tokens) in applies.into_iter().zip(tokens) {
            buckets.insert((class, key), Bucket { tokens, at: now });
        }
        result
    }
}

/// The 429 a refused request gets: how long to wait, in whole seconds (rounded up).
pub fn rate_limited(wait: Duration) -> crate::api::ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut e = crate::api::ApiError::new(
        crate::api::ErrorCode::RateLimited,
        format!("too many requests; try again in {secs} s"),
    );
    e.retry_after_secs = Some(secs);
    e
}

/// Buckets as (tokens, seconds since their last update, requests per minute = capacity):
/// refills each, then spends one token from every bucket if all have one. Returns the
/// new token counts, and how long until every bucket would have a token if one has not.
fn refill_and_spend(buckets: &[(f64, f64, f64)]) -> (Vec<f64>, Result<(), Duration>) {
    let mut wait = Duration::ZERO;
    let refilled: Vec<f64> = buckets
        .iter()
        .map(|&(tokens, secs, capacity)| {
            let rate = capacity / 60.0;
            let tokens = (tokens + secs * rate).min(capacity);
            if tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - tokens) / rate));
            }
            tokens
        })
        .collect();
    if wait.is_zero() {
        (refilled.into_iter().map(|t| t - 1.0).collect(), Ok(()))
    } else {
        (refilled, Err(wait))
    }
}

impl Key {
    /// The bucket's name in the database: `generation:user:42`, `sign_in:ip:203.0.113.7`.
    fn name(&self, class: Class) -> String {
        let class: &'static str = class.into();
        match self {
            Key::User(user) => format!("{class}:user:{}", user.get()),
            Key::Ip(ip) => format!("{class}:ip:{ip}"),
            Key::Account(digest) => format!("{class}:account:{digest:016x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_user: u32, per_ip: u32) -> RateLimiter {
        RateLimiter::new(LimitSettings {
            generations_per_user: per_user,
            generations_per_ip: per_ip,
            ..LimitSettings::default()
        })
    }

    #[test]
    fn a_burst_up_to_the_limit_passes_then_waits_for_a_refill() {
        let l = limiter(3, 0);
        let (u, t0) = (Some(UserId::for_tests(7)), Instant::now());
        for _ in 0..3 {
            assert!(l.check_at(Class::Generation, u, None, t0).is_ok());
        }
        let wait = l.check_at(Class::Generation, u, None, t0).unwrap_err();
        assert!((19..=20).contains(&wait.as_secs()), "{wait:?}");
        // Another user is not affected.
        assert!(
            l.check_at(Class::Generation, Some(UserId::for_tests(8)), None, t0)
                .is_ok()
        );
        // 20 s later (3 per minute) one more passes.
        assert!(
            l.check_at(Class::Generation, u, None, t0 + Duration::from_secs(20))
                .is_ok()
        );
    }

    #[test]
    fn the_address_limit_applies_across_users_and_a_refusal_spends_nothing() {
        let l = limiter(1, 2);
        let ip = Some("10.0.0.9".parse().unwrap());
        let t0 = Instant::now();
        assert!(
            l.check_at(Class::Generation, Some(UserId::for_tests(1)), ip, t0)
                .is_ok()
        );
        assert!(
            l.check_at(Class::Generation, Some(UserId::for_tests(2)), ip, t0)
                .is_ok()
        );
        assert!(
            l.check_at(Class::Generation, Some(UserId::for_tests(3)), ip, t0)
                .is_err()
        );
        // User 3's one token was not spent by the refused request.
        let other = Some("10.0.0.10".parse().unwrap());
        assert!(
            l.check_at(Class::Generation, Some(UserId::for_tests(3)), other, t0)
                .is_ok()
        );
        // Uploads are counted apart from answers.
        assert!(
            l.check_at(Class::Upload, Some(UserId::for_tests(3)), ip, t0)
                .is_ok()
        );
    }

    #[test]
    fn an_ipv6_client_counts_as_its_slash_64() {
        let l = limiter(0, 2);
        let t0 = Instant::now();
        let at = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(
            l.check_at(Class::Generation, None, at("2001:db8:1:2::1"), t0)
                .is_ok()
        );
        assert!(
            l.check_at(Class::Generation, None, at("2001:db8:1:2:ffff::9"), t0)
                .is_ok()
        );
        // A third address of the same /64 shares its bucket…
        assert!(
            l.check_at(Class::Generation, None, at("2001:db8:1:2:abcd::7"), t0)
                .is_err()
        );
        // …another /64 has its own.
        assert!(
            l.check_at(Class::Generation, None, at("2001:db8:1:3::1"), t0)
                .is_ok()
        );
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(
            bucket_address("::ffff:10.0.0.1".parse().unwrap()),
            at("10.0.0.1").unwrap()
        );
    }

    #[tokio::test]
    async fn sign_ins_to_one_account_are_limited_whatever_the_address() {
        let l = RateLimiter::new(LimitSettings {
            sign_ins_per_account: 3,
            ..LimitSettings::default()
        });
        for _ in 0..3 {
            assert!(l.check_account("Ada").await.is_ok());
        }
        // The same name in another case, with spaces: the same account.
        assert!(l.check_account(" ada ").await.is_err());
        assert!(
            l.check_account("bob").await.is_ok(),
            "another account is not affected"
        );
    }
}
