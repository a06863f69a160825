//! Rate limits: token buckets per user and per client address, for starting answers,
//! uploading, and signing in. A request passes only when every bucket that applies has a
//! token; otherwise it gets 429 with the seconds until one will.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Generation,
    Upload,
    SignIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    User(UserId),
    Ip(IpAddr),
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

    /// Requests per minute for a class, per user and per address (0: no limit).
    fn per_minute(&self, class: Class) -> (u32, u32) {
        let s = &self.settings;
        match class {
            Class::Generation => (s.generations_per_user, s.generations_per_ip),
            Class::Upload => (s.uploads_per_user, s.uploads_per_ip),
            Class::SignIn => (0, s.sign_ins_per_ip),
        }
    }

    /// The buckets a request spends from, with their requests per minute.
    fn applies(&self, class: Class, user: Option<UserId>, ip: Option<IpAddr>) -> Vec<(Key, u32)> {
        let (per_user, per_ip) = self.per_minute(class);
        let mut applies: Vec<(Key, u32)> = Vec::with_capacity(2);
        if let Some(user) = user
            && per_user > 0
        {
            applies.push((Key::User(user), per_user));
        }
        if let Some(ip) = ip
            && per_ip > 0
        {
            applies.push((Key::Ip(ip), per_ip));
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
        match &self.shared {
            None => self.check_at(class, user, ip, Instant::now()),
            Some(db) => self.check_shared(db.as_ref(), class, user, ip).await,
        }
    }

    async fn check_shared(
        &self,
        db: &dyn SharedBuckets,
        class: Class,
        user: Option<UserId>,
        ip: Option<IpAddr>,
    ) -> Result<(), Duration> {
        let applies = self.applies(class, user, ip);
        if applies.is_empty() {
            return Ok(());
        }
        let now = crate::server::chat::now_ms();
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

    fn check_at(
        &self,
        class: Class,
        user: Option<UserId>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let applies = self.applies(class, user, ip);
        if applies.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_AT {
            let (s, settings) = (&mut *buckets, &self.settings);
            s.retain(|(class, _), b| {
                let full = f64::from(match class {
                    Class::Generation => settings.generations_per_user.max(settings.generations_per_ip),
                    Class::Upload => settings.uploads_per_user.max(settings.uploads_per_ip),
                    Class::SignIn => settings.sign_ins_per_ip,
                });
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
        let class = match class {
            Class::Generation => "generation",
            Class::Upload => "upload",
            Class::SignIn => "sign_in",
        };
        match self {
            Key::User(user) => format!("{class}:user:{}", user.get()),
            Key::Ip(ip) => format!("{class}:ip:{ip}"),
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
}
