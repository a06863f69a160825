//! Documents and retrieval-augmented answers: [`extract`] text from uploads (in a child
//! process, [`sandbox`]), [`chunk`] it,
//! embed and store it through [`ingest`] (multipart uploads in `upload`, the background
//! `worker`), and find passages for answers with the [`retrieve`] pipeline: [`rewrite`]
//! follow-ups, hybrid BM25 + vector search fused, an optional [`rerank`], and [`select`]
//! (whether the documents cover the question, and which passages), over the in-memory
//! [`index`] (or pgvector). Model jobs go through [`task`].

pub mod chunk;
pub mod eval;
pub mod extract;
pub mod fetch;
pub mod fetch_guard;
pub mod index;
pub mod ingest;
pub mod rerank;
pub mod retrieve;
pub mod rewrite;
pub mod sandbox;
pub mod select;
pub mod task;
mod upload;
mod worker;
