//! Rate limits: token buckets per user and per client address, for starting answers,
//! uploading, and signing in. A request passes only when every bucket that applies has a
//! token; otherwise it gets 429 with the seconds until one will.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{UserId, proxies::TrustedProxies};
use crate::server::config::LimitSettings;

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
}

impl RateLimiter {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            proxies: TrustedProxies::default(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Per-address limits count the client named by these proxies' `X-Forwarded-For`.
    pub fn behind(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
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

    /// Takes a token from the user's and the address's bucket, or says how long to wait.
    pub fn check(&self, class: Class, user: Option<UserId>, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(class, user, ip, Instant::now())
    }

    fn check_at(
        &self,
        class: Class,
        user: Option<UserId>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
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
        // Refill every bucket, then spend only if all have a token.
        let mut wait = Duration::ZERO;
        let mut refilled = Vec::with_capacity(applies.len());
        for (key, per_minute) in &applies {
            let capacity = f64::from(*per_minute);
            let rate = capacity / 60.0;
            let b = buckets.get(&(class, *key)).copied().unwrap_or(Bucket {
                tokens: capacity,
                at: now,
            });
            let tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(capacity);
            if tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - tokens) / rate));
            }
            refilled.push((*key, tokens));
        }
        let spend = wait.is_zero();
        for (key, tokens) in refilled {
            let tokens = if spend { tokens - 1.0 } else { tokens };
            buckets.insert((class, key), Bucket { tokens, at: now });
        }
        if spend { Ok(()) } else { Err(wait) }
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
