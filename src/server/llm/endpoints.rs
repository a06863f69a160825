//! Several base URLs serving the same models under one provider name (replicas of vLLM or
//! llama.cpp server): each answer goes to the healthy endpoint with the fewest answers in
//! flight. An endpoint that cannot be reached (connection, timeout, HTTP 5xx or 429) is
//! skipped for a while; the provider's health probe brings it back as soon as it answers.

use std::{
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_openai::{Client, config::OpenAIConfig};

use super::LlmError;

/// How long an endpoint that failed is left out, unless a probe finds it well earlier.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

pub struct Endpoint {
    pub base_url: String,
    pub client: Client<OpenAIConfig>,
    in_flight: AtomicUsize,
    /// Unix milliseconds until which the endpoint is skipped; 0 when it is healthy.
    down_until: AtomicI64,
}

impl Endpoint {
    fn is_down(&self, now: i64) -> bool {
        self.down_until.load(Ordering::Relaxed) > now
    }

    /// Records the outcome of a request or probe: a failure that says the endpoint is
    /// unreachable or overloaded takes it out for [`COOL_DOWN`].
    pub fn record(&self, result: Result<(), &LlmError>) {
        match result {
            Ok(()) => self.down_until.store(0, Ordering::Relaxed),
            Err(LlmError::Unavailable(why)) => {
                let until = now_ms() + COOL_DOWN.as_millis() as i64;
                if self.down_until.swap(until, Ordering::Relaxed) == 0 {
                    tracing::warn!(endpoint = %crate::server::config::redact_url(&self.base_url), error = %why, "endpoint left out");
                }
            }
            // The endpoint answered (a bad request, an unknown model): it is up.
            Err(_) => {}
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

use crate::server::clock::now_ms;

/// The endpoints of one provider, in configuration order.
pub struct Endpoints {
    list: Vec<Arc<Endpoint>>,
    /// Where ties start, so equally loaded endpoints take turns.
    turn: AtomicUsize,
}

impl Endpoints {
    /// One client per base URL, all on the same HTTP client (connection pool, timeouts)
    /// and API key.
    pub fn new(base_urls: &[String], http: &reqwest::Client, api_key: Option<&str>) -> Self {
        let list = base_urls
            .iter()
            .map(|url| {
                let base_url = url.trim_end_matches('/').to_owned();
                let config = OpenAIConfig::new()
                    .with_api_base(&base_url)
                    .with_api_key(api_key.unwrap_or_default());
                Arc::new(Endpoint {
                    client: Client::with_config(config).with_http_client(http.clone()),
                    base_url,
                    in_flight: AtomicUsize::new(0),
                    down_until: AtomicI64::new(0),
                })
            })
            .collect();
        Self {
            list,
            turn: AtomicUsize::new(0),
        }
    }

    pub fn all(&self) -> &[Arc<Endpoint>] {
        &self.list
    }

    /// The endpoint for the next answer: among those not left out, the one with the fewest
    /// answers in flight (ties take turns); when all are left out, the one whose time
    /// out ends first. Counted in flight until the returned guard is dropped.
    pub fn pick(&self) -> InFlight {
        let now = now_ms();
        let n = self.list.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let rotated = (0..n).map(|i| &self.list[(start + i) % n]);
        let chosen = rotated
            .clone()
            .filter(|e| !e.is_down(now))
            .min_by_key(|e| e.in_flight())
            .or_else(|| rotated.min_by_key(|e| e.down_until.load(Ordering::Relaxed)))
            .expect("a provider has at least one endpoint");
        chosen.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(chosen))
    }
}

/// An endpoint with one more answer in flight, until dropped.
pub struct InFlight(Arc<Endpoint>);

impl Deref for InFlight {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Endpoints {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}/v1", 9000 + i))
            .collect();
        let http = crate::server::tls::client_builder().build().unwrap();
        Endpoints::new(&urls, &http, None)
    }

    #[test]
    fn answers_go_to_the_endpoint_with_the_fewest_in_flight_and_skip_those_left_out() {
        let pool = endpoints(3);
        let held: Vec<InFlight> = (0..6).map(|_| pool.pick()).collect();
        let counts: Vec<usize> = pool.all().iter().map(|e| e.in_flight()).collect();
        assert_eq!(counts, [2, 2, 2], "spread evenly");

        let (second, _others): (Vec<_>, Vec<_>) =
            held.into_iter().partition(|e| e.base_url.ends_with(":9001/v1"));
        drop(second);
        assert_eq!(pool.all()[1].in_flight(), 0);
        let next = pool.pick();
        assert_eq!(next.base_url, "http://127.0.0.1:9001/v1", "the least loaded");
        drop(next);

        pool.all()[1].record(Err(&LlmError::Unavailable("connection refused".into())));
        for _ in 0..4 {
            assert_ne!(
                pool.pick().base_url,
                "http://127.0.0.1:9001/v1",
                "left out while down"
            );
        }
        pool.all()[1].record(Err(&LlmError::Rejected("HTTP 400".into())));
        assert!(
            pool.all()[1].is_down(now_ms()),
            "a refusal does not bring it back"
        );
        pool.all()[1].record(Ok(()));
        assert_eq!(
            pool.pick().base_url,
            "http://127.0.0.1:9001/v1",
            "back after a success"
        );
    }

    #[test]
    fn when_every_endpoint_is_down_the_one_back_soonest_is_tried() {
        let pool = endpoints(2);
        pool.all()[0].record(Err(&LlmError::Unavailable("timeout".into())));
        std::thread::sleep(Duration::from_millis(5));
        pool.all()[1].record(Err(&LlmError::Unavailable("timeout".into())));
        assert_eq!(pool.pick().base_url, "http://127.0.0.1:9000/v1");
    }
}
