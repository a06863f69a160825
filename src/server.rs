//! Native-only code: configuration, storage, the local model, services and HTTP wiring.
//! Domain modules (`chat`, `embed`, `llm`, `storage`) never import leptos or axum; only
//! `state` and `startup` touch the web frameworks.

/// Accounts, sessions, API keys, CSRF, rate limits: the gate every request passes.
pub mod auth;
/// The loops that run beside requests, stopped together at shutdown.
pub mod background;
/// Orchestrates an answer: validate, persist, stream from a provider, persist again.
pub mod chat;
/// The wall clock (unix milliseconds), which every other module may read.
pub mod clock;
/// Typed, layered settings: defaults, then a TOML file, then `STOA_*` environment variables.
pub mod config;
/// The cores the embedded models share: chat first, background embedding between.
pub mod cpu;
/// Text embeddings behind one trait; the embedded all-MiniLM-L6-v2 (on llama.cpp) is one.
pub mod embed;
/// HTTP edge: the OpenAI-compatible `/v1` API; mapping server-function errors to statuses.
pub mod http;
/// Chat model providers behind one trait (embedded llama.cpp, any OpenAI-compatible
/// server through async-openai) and the router that picks, retries and falls back.
pub mod llm;
/// Prometheus metrics: names, the recorder, and recording helpers for the services.
pub mod metrics;
/// Documents: ingestion (extract, chunk, embed, index) and hybrid retrieval with citations.
pub mod rag;
/// Builds the router and serves it until shut down.
pub mod startup;
/// The one shared application state and the server-function context helpers.
pub mod state;
/// Persistence behind the `Store` trait: SQLite by default, PostgreSQL + pgvector to scale out.
pub mod storage;
/// Tracing subscriber setup (pretty or JSON logs).
pub mod telemetry;
/// TLS for outgoing connections: rustls with ring, installed once.
pub mod tls;

#[cfg(test)]
mod tests;
