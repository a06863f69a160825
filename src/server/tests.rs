//! Server integration tests against real parts: the embedded SmolLM2 model and SQLite
//! files in temporary directories. Run with `make test-rust` (the model must have been
//! fetched by `make models`).

mod accounts;
mod chat_stream;
pub(crate) mod documents;
mod formats;
mod hardening;
mod http;
mod operations;
mod providers;
mod replicas;
mod rest;
mod retrieval;
mod structured;
mod support;
