//! Prometheus metrics, served at `GET /metrics` by `http::metrics` (text format 0.0.4).
//!
//! Recorded where things happen, through the `metrics` facade: HTTP requests per route
//! template (`http::metrics`), time to first token, tokens and tokens/s per
//! provider, provider failures by kind (the model router). Gauges that are a current state
//! (local model queue depth, ingestion backlog, answers running) are read when scraped.
//! One recorder per process: several servers in one process (tests) share it.

use std::{sync::OnceLock, time::Duration};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::llm::LlmError;

pub const HTTP_REQUESTS: &str = "stoa_http_requests_total";
pub const HTTP_DURATION: &str = "stoa_http_request_duration_seconds";
pub const FIRST_TOKEN: &str = "stoa_time_to_first_token_seconds";
pub const TOKENS: &str = "stoa_generated_tokens_total";
pub const TOKENS_PER_SEC: &str = "stoa_generation_tokens_per_second";
pub const PROVIDER_ERRORS: &str = "stoa_provider_errors_total";
pub const LOCAL_QUEUE: &str = "stoa_local_model_queue_depth";
pub const INGESTION_BACKLOG: &str = "stoa_ingestion_backlog";
pub const ANSWERS_RUNNING: &str = "stoa_answers_running";
pub const STRUCTURED: &str = "stoa_structured_answers_total";

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const RATES: &[f64] = &[1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once) and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(TOKENS_PER_SEC.into()), RATES))
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows Stoa's own only");
        }
        describe();
        // Histogram samples are folded into buckets on render or upkeep; without a scraper
        // the upkeep keeps them from piling up.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("a thread for metrics upkeep");
        handle
    })
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to the response headers (streams go on after), by method and route template"
    );
    describe_histogram!(
        FIRST_TOKEN,
        metrics::Unit::Seconds,
        "From asking a provider (queue, retries and fallbacks included) to the answer's first token"
    );
    describe_counter!(TOKENS, "Tokens generated, by provider");
    describe_histogram!(
        TOKENS_PER_SEC,
        "Generation speed of finished answers after their first token, by provider"
    );
    describe_counter!(
        PROVIDER_ERRORS,
        "Provider failures by provider and kind (before or during an answer)"
    );
    describe_gauge!(LOCAL_QUEUE, "Requests running or waiting on the embedded model");
    describe_gauge!(
        INGESTION_BACKLOG,
        "Documents waiting for ingestion or being ingested (all processes)"
    );
    describe_gauge!(ANSWERS_RUNNING, "Chat answers being generated right now");
    describe_counter!(
        STRUCTURED,
        "Answers asked to follow a JSON Schema, by provider, whether a grammar shaped them, and outcome (valid, or invalid: then retried once or refused)"
    );
}

/// The kind label of a provider failure.
pub fn error_kind(e: &LlmError) -> &'static str {
    e.into()
}

/// An answer under a JSON Schema was checked.
pub fn structured_answer(provider: &str, grammar: bool, valid: bool) {
    counter!(
        STRUCTURED,
        "provider" => provider.to_owned(),
        "grammar" => if grammar { "true" } else { "false" },
        "outcome" => if valid { "valid" } else { "invalid" },
    )
    .increment(1);
}

pub fn provider_error(provider: &str, e: &LlmError) {
    counter!(PROVIDER_ERRORS, "provider" => provider.to_owned(), "kind" => error_kind(e)).increment(1);
}

pub fn first_token(provider: &str, waited: Duration) {
    histogram!(FIRST_TOKEN, "provider" => provider.to_owned()).record(waited.as_secs_f64());
}

/// A finished answer: its tokens, and its speed after the first token.
pub fn answer_done(provider: &str, tokens: u32, since_first: Duration) {
    counter!(TOKENS, "provider" => provider.to_owned()).increment(u64::from(tokens));
    let secs = since_first.as_secs_f64();
    if tokens > 1 && secs > 0.0 {
        histogram!(TOKENS_PER_SEC, "provider" => provider.to_owned()).record(f64::from(tokens - 1) / secs);
    }
}

/// What a scrape returns: the current state's gauges set, then every metric in Prometheus
/// text format.
pub fn render(local_queue: usize, ingestion_backlog: u64, answers_running: usize) -> String {
    let handle = install();
    gauge!(LOCAL_QUEUE).set(local_queue as f64);
    gauge!(INGESTION_BACKLOG).set(ingestion_backlog as f64);
    gauge!(ANSWERS_RUNNING).set(answers_running as f64);
    handle.render()
}
